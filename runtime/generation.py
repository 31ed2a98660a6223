"""One choice of one request: think under an exact budget, then answer.

The loop reads generated token ids from the engine and enforces the ThinkingPlan itself, so
the runtime knows exactly what was sampled and what it injected:
- a natural `</think>` at or above the minimum flows straight into the answer, in the same
  engine request (the common case costs one engine request);
- an early `</think>` (below `min_tokens`) is dropped and replaced by the continuation text;
  thinking resumes in a new engine request whose prompt is everything so far;
- at the budget the engine request is closed (which aborts it in vLLM), the wrap-up text and
  `</think>` are appended, and the answer is generated with its own token limit.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

from tokenizers.decoders import DecodeStream

from runtime.budget import ThinkingPlan

THINKING, ANSWER = "thinking", "answer"
NATURAL, FORCED, DISABLED = "natural", "forced", "disabled"
STOP, LENGTH, ABORTED = "stop", "length", "aborted"


@dataclass
class Sampling:
    temperature: float
    top_p: float
    top_k: int
    seed: int | None
    stop: tuple[str, ...] = ()
    logprobs: bool = False  # keep the engine's log-prob of every sampled token


@dataclass
class Delta:
    index: int
    channel: str
    text: str
    token_count: int
    forced: bool = False


@dataclass
class ThinkingEnded:
    index: int
    reason: str
    thinking_tokens: int
    forced_continuations: int


@dataclass
class Finished:
    index: int
    finish_reason: str
    prompt_tokens: int
    thinking_tokens: int
    answer_tokens: int
    thinking_end: str
    forced_continuations: int
    weight_version: str
    time_to_first_token_s: float
    time_to_first_answer_token_s: float
    total_s: float
    verification: object = None  # a verifiers.base.Verdict when the request carried a spec


Event = Delta | ThinkingEnded | Finished


class TokenEngine(Protocol):
    """What the loop needs from the engine layer (runtime.engine.Engine implements it)."""

    tokenizer: object
    weight_version: str
    think_end_id: int | None
    eos_ids: frozenset[int]

    def sampling_params(self, *, max_tokens: int, temperature: float, top_p: float,
                        top_k: int, seed: int | None, logprobs: bool = False): ...

    def stream(self, prompt_ids: list[int], params, request_id: str, priority: int = 0,
               adapter: str = "") -> AsyncIterator[tuple[list[int], list[float] | None]]: ...


class StopMatcher:
    """Holds back answer text that could still grow into a stop string."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""  # answer text received so far
        self.sent = 0   # characters of it already released

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add text; returns (text safe to release, whether a stop string was found)."""
        self.text += piece
        # Held-back text guarantees a new match starts at or after `sent`.
        hits = [i for i in (self.text.find(s, self.sent) for s in self.stops) if i >= 0]
        if hits:
            end = min(hits)
            out, self.sent = self.text[self.sent:end], max(self.sent, end)
            return out, True
        safe = max(self.sent, len(self.text) - self.hold)
        out, self.sent = self.text[self.sent:safe], safe
        return out, False

    def flush(self) -> str:
        out, self.sent = self.text[self.sent:], len(self.text)
        return out


def merge_deltas(events: list[Event]) -> list[Event]:
    """Join adjacent deltas of the same channel and origin (fewer messages under load)."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if (isinstance(event, Delta) and isinstance(last, Delta) and last.channel == event.channel
                and last.forced == event.forced):
            merged[-1] = Delta(last.index, last.channel, last.text + event.text,
                               last.token_count + event.token_count, last.forced)
        else:
            merged.append(event)
    return merged


@dataclass
class ChoiceState:
    context: list[int]
    thinking: int = 0
    answer: int = 0
    continuations: int = 0
    segments: int = 0
    phase: str = THINKING
    thinking_end: str = ""
    answer_text: str = ""  # the answer as sent to the client (what verifiers check)
    injected: set[int] = field(default_factory=set)  # context positions the runtime chose
    logprobs: dict[int, float] = field(default_factory=dict)  # position -> engine log-prob
    eos_id: int | None = None  # the end-of-sequence id that ended the answer, if one did
    first_token_at: float = 0.0
    first_answer_at: float = 0.0
    decoders: dict = field(default_factory=lambda: {
        THINKING: DecodeStream(skip_special_tokens=True),
        ANSWER: DecodeStream(skip_special_tokens=True)})


class ChoiceRun:
    """Generates one choice; iterate `events()` to drive it."""

    def __init__(self, engine: TokenEngine, prompt_ids: list[int], plan: ThinkingPlan,
                 sampling: Sampling, request_id: str, index: int, priority: int = 0,
                 adapter: str = ""):
        self.engine, self.plan, self.sampling = engine, plan, sampling
        self.prompt_tokens = len(prompt_ids)
        self.request_id, self.index, self.priority = request_id, index, priority
        self.adapter = adapter  # a staged adapter (shadow requests) instead of the served weights
        self.state = ChoiceState(context=list(prompt_ids))
        self.stop = StopMatcher(sampling.stop)
        self.started = time.perf_counter()
        self.weight_version = adapter or engine.weight_version

    def _text(self, channel: str, token: int) -> str:
        return self.state.decoders[channel].step(self.engine.tokenizer._tokenizer, token) or ""

    def _mark_first(self, channel: str) -> None:
        now = time.perf_counter() - self.started
        if not self.state.first_token_at:
            self.state.first_token_at = now
        if channel == ANSWER and not self.state.first_answer_at:
            self.state.first_answer_at = now

    def _inject(self, ids: tuple[int, ...]) -> Delta | None:
        """Append runtime-chosen thinking tokens (wrap-up or continuation)."""
        if not ids:
            return None
        start = len(self.state.context)
        self.state.injected.update(range(start, start + len(ids)))
        self.state.context.extend(ids)
        self.state.thinking += len(ids)
        self._mark_first(THINKING)
        return Delta(self.index, THINKING, "".join(self._text(THINKING, t) for t in ids),
                     len(ids), forced=True)

    def _close(self, reason: str, sampled: bool = False,
               logprob: float | None = None) -> list[Event]:
        """End thinking: append `</think>` (after the wrap-up when forced); `sampled` when the
        model chose that `</think>` itself."""
        events: list[Event] = []
        if reason == FORCED and (delta := self._inject(self.plan.wrap_up_for(self.state.thinking))):
            events.append(delta)
        if self.engine.think_end_id is not None:  # a model without delimiters never thinks
            self._append(self.engine.think_end_id, logprob, sampled)
        self.state.phase, self.state.thinking_end = ANSWER, reason
        events.append(ThinkingEnded(self.index, reason, self.state.thinking,
                                    self.state.continuations))
        return events

    def finish(self, reason: str) -> Finished:
        s = self.state
        version = self.weight_version  # a swap during the request is reported as "old->new"
        if not self.adapter and self.engine.weight_version != version:
            version = f"{version}->{self.engine.weight_version}"
        return Finished(self.index, reason, self.prompt_tokens, s.thinking, s.answer,
                        s.thinking_end, s.continuations, version,
                        s.first_token_at, s.first_answer_at,
                        time.perf_counter() - self.started)

    def _append(self, token: int, logprob: float | None, sampled: bool = True) -> None:
        position = len(self.state.context)
        self.state.context.append(token)
        if not sampled:
            self.state.injected.add(position)
        elif logprob is not None:
            self.state.logprobs[position] = logprob

    def completion(self) -> tuple[list[int], list[bool], list[float]]:
        """Exactly what the model saw after the prompt, for training: (token ids, injected by
        the runtime, engine log-probs with NaN where none was kept), ending with the
        end-of-sequence id when one ended the answer."""
        s, start = self.state, self.prompt_tokens
        ids = s.context[start:] + ([s.eos_id] if s.eos_id is not None else [])
        injected = [start + i in s.injected for i in range(len(ids))]
        logprobs = [s.logprobs.get(start + i, float("nan")) for i in range(len(ids))]
        return ids, injected, logprobs

    @property
    def prompt_ids(self) -> list[int]:
        return self.state.context[: self.prompt_tokens]

    @property
    def thinking_ids(self) -> list[int]:
        return self.state.context[self.prompt_tokens: self.prompt_tokens + self.state.thinking]

    @property
    def answer_ids(self) -> list[int]:
        if self.state.phase == THINKING:
            return []
        closed = int(self.engine.think_end_id is not None)
        return self.state.context[self.prompt_tokens + self.state.thinking + closed:]

    def _seed(self, segment: int) -> int:
        """Distinct per choice and per engine request, reproducible for a request seed."""
        return (self.sampling.seed * 1_000_003 + self.index * 7_919 + segment) % (1 << 63)

    def _max_tokens(self) -> int:
        if self.state.phase == THINKING:
            return self.plan.sampled_cap - self.state.thinking + 1 + self.plan.answer_tokens
        return self.plan.answer_tokens - self.state.answer

    def _on_thinking_token(self, token: int, logprob: float | None
                           ) -> tuple[list[Event], bool]:
        """Handle one sampled token while thinking; returns (events, restart engine request)."""
        s, plan = self.state, self.plan
        eos = token in self.engine.eos_ids
        if token == self.engine.think_end_id or eos:
            if s.thinking < plan.min_tokens:
                s.continuations += 1
                delta = self._inject(plan.continuation_for(s.thinking))
                events: list[Event] = [delta] if delta else []
                if s.thinking >= plan.sampled_cap:
                    events += self._close(FORCED)
                return events, True
            # A bare end of sequence inside thinking also closes it (the runtime then writes
            # the `</think>`); the answer needs a new request.
            return self._close(NATURAL, sampled=not eos, logprob=logprob), eos
        self._append(token, logprob)
        s.thinking += 1
        self._mark_first(THINKING)
        events = [Delta(self.index, THINKING, self._text(THINKING, token), 1)]
        if s.thinking >= plan.sampled_cap:
            return events + self._close(FORCED), True
        return events, False

    def _on_answer_token(self, token: int, logprob: float | None
                         ) -> tuple[list[Event], Finished | None]:
        s = self.state
        if token in self.engine.eos_ids:
            s.eos_id = token
            if logprob is not None:
                s.logprobs[len(s.context)] = logprob
            tail = self.stop.flush()
            s.answer_text += tail
            return ([Delta(self.index, ANSWER, tail, 0)] if tail else []), self.finish(STOP)
        self._append(token, logprob)
        s.answer += 1
        self._mark_first(ANSWER)
        text, stopped = self.stop.feed(self._text(ANSWER, token))
        s.answer_text += text
        events: list[Event] = [Delta(self.index, ANSWER, text, 1)]
        if stopped:
            return events, self.finish(STOP)
        if s.answer >= self.plan.answer_tokens:
            if tail := self.stop.flush():
                s.answer_text += tail
                events.append(Delta(self.index, ANSWER, tail, 0))
            return events, self.finish(LENGTH)
        return events, None

    def _on_chunk(self, ids: list[int], logprobs: list[float] | None = None
                  ) -> tuple[list[Event], Finished | None, bool]:
        """Handle the tokens of one engine output; returns (merged deltas and other events,
        the final event if the choice finished, whether to restart the engine request)."""
        events: list[Event] = []
        for i, token in enumerate(ids):
            logprob = None if logprobs is None else logprobs[i]
            if self.state.phase == THINKING:
                new, restart = self._on_thinking_token(token, logprob)
                events += new
                if restart:
                    return merge_deltas(events), None, True
            else:
                new, finished = self._on_answer_token(token, logprob)
                events += new
                if finished:
                    return merge_deltas(events), finished, False
        return merge_deltas(events), None, False

    async def events(self) -> AsyncIterator[Event]:
        """Drive the engine until this choice finishes; closing this iterator aborts it."""
        if self.plan.requested_budget == 0 or self.plan.sampled_cap <= 0:
            for event in self._close(DISABLED if self.plan.requested_budget == 0 else FORCED):
                yield event
        while True:
            s = self.state
            s.segments += 1
            params = self.engine.sampling_params(
                max_tokens=self._max_tokens(), temperature=self.sampling.temperature,
                top_p=self.sampling.top_p, top_k=self.sampling.top_k,
                seed=None if self.sampling.seed is None else self._seed(s.segments),
                logprobs=self.sampling.logprobs)
            segment_id = f"{self.request_id}/{self.index}/{s.segments}"
            restart = False
            stream = self.engine.stream(list(s.context), params, segment_id, self.priority,
                                        self.adapter)
            async with aclosing(stream):
                async for ids, logprobs in stream:
                    events, finished, restart = self._on_chunk(ids, logprobs)
                    for event in events:
                        yield event
                    if finished:
                        yield finished
                        return
                    if restart:
                        break
            if not restart:  # the engine stopped on its own token limit
                if s.phase == THINKING:
                    for event in self._close(FORCED):
                        yield event
                    continue
                yield self.finish(LENGTH)
                return
