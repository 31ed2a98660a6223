"""Validate a GenerateRequest and turn it into what the generation loop needs.

Every rejection raises InvalidRequest naming the offending field; the server maps it to
INVALID_ARGUMENT. Nothing here talks to the engine beyond tokenizing.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from rlvr.store.traces import ThinkingOptions
from rlvr.v1 import reasoning_pb2 as pb
from runtime.budget import InvalidRequest, ThinkingPlan, make_plan, resolve_budget
from runtime.config import ServerConfig
from runtime.generation import Sampling
from runtime.verifiers import SpecError, validate_spec
from runtime.verifiers.base import VerificationSpec

EFFORT_NAMES = {pb.EFFORT_LOW: "low", pb.EFFORT_MEDIUM: "medium", pb.EFFORT_HIGH: "high"}
MAX_STOP_STRINGS, MAX_STOP_CHARS, MAX_REQUEST_ID_CHARS = 8, 64, 128


@dataclass
class GenerateSpec:
    request_id: str
    prompt_ids: list[int]
    prompt_text: str
    plan: ThinkingPlan
    sampling: Sampling
    n: int
    hide_thinking: bool
    verification: VerificationSpec | None
    best_of_n: bool
    shadow: bool = False
    return_tokens: bool = False  # each Finished carries its TokenTrace (train scope only)
    adapter: str = ""  # a staged adapter to sample from (shadow requests only)

    def options(self) -> tuple[ThinkingOptions, dict]:
        """(thinking options, sampling options) as recorded in traces."""
        p, s = self.plan, self.sampling
        thinking = ThinkingOptions(budget=p.requested_budget, effective_budget=p.budget,
                                   min_tokens=p.min_tokens, max_answer_tokens=p.answer_tokens)
        sampling = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                    "seed": s.seed, "n": self.n, "stop": list(s.stop)}
        return thinking, sampling


def verification_spec(v: pb.VerificationSpec, config: ServerConfig) -> VerificationSpec:
    """The spec a request or a feedback carries, validated cheaply (the reference's slow
    check is the verifier pool's, at admission); raises InvalidRequest naming the field."""
    timeout = v.timeout_s if v.HasField("timeout_s") else config.verifier_timeout_s
    if not 0 < timeout <= config.max_verifier_timeout_s:
        raise InvalidRequest("verification.timeout_s", f"must be in (0, "
                             f"{config.max_verifier_timeout_s:g}] seconds (the server's "
                             f"max_verifier_timeout_s), got {timeout:g}")
    spec = VerificationSpec(kind=v.kind, reference=v.reference, tolerance=v.tolerance,
                            tests=tuple(v.tests), timeout_s=timeout)
    try:
        validate_spec(spec)
    except SpecError as err:
        raise InvalidRequest(f"verification.{err.field}", str(err)) from None
    return spec


def _messages(request: pb.GenerateRequest, config: ServerConfig) -> list[dict[str, str]]:
    which = request.WhichOneof("input")
    if which == "prompt":
        if not request.prompt.strip():
            raise InvalidRequest("prompt", "must not be empty")
        if len(request.prompt) > config.max_prompt_chars:
            raise InvalidRequest("prompt", f"longer than {config.max_prompt_chars} characters")
        return [{"role": "user", "content": request.prompt}]
    if which == "chat":
        messages = [{"role": m.role, "content": m.content} for m in request.chat.messages]
        if not messages or not any(m["content"].strip() for m in messages):
            raise InvalidRequest("chat.messages", "must hold at least one non-empty message")
        if sum(len(m["content"]) for m in messages) > config.max_prompt_chars:
            raise InvalidRequest("chat.messages",
                                 f"longer than {config.max_prompt_chars} characters")
        return messages
    raise InvalidRequest("prompt", "set either prompt or chat")


def _sampling(request: pb.GenerateRequest, config: ServerConfig) -> tuple[Sampling, int]:
    s = request.sampling
    temperature = s.temperature if s.HasField("temperature") else config.default_temperature
    if not math.isfinite(temperature) or not 0 <= temperature <= 2:
        raise InvalidRequest("sampling.temperature", f"must be in [0, 2], got {temperature}")
    top_p = s.top_p if s.HasField("top_p") else 1.0
    if not math.isfinite(top_p) or not 0 < top_p <= 1:
        raise InvalidRequest("sampling.top_p", f"must be in (0, 1], got {top_p}")
    top_k = s.top_k if s.HasField("top_k") else 0
    if top_k < -1:
        raise InvalidRequest("sampling.top_k", f"must be -1, 0 (off) or positive, got {top_k}")
    n = s.n if s.HasField("n") else 1
    if not 1 <= n <= config.max_n:
        raise InvalidRequest("sampling.n", f"must be between 1 and {config.max_n}, got {n}")
    stops = tuple(s.stop)
    if len(stops) > MAX_STOP_STRINGS or any(not 0 < len(x) <= MAX_STOP_CHARS for x in stops):
        raise InvalidRequest("sampling.stop", f"at most {MAX_STOP_STRINGS} non-empty strings of "
                             f"at most {MAX_STOP_CHARS} characters")
    seed = s.seed if s.HasField("seed") else None
    return Sampling(temperature, top_p, top_k if top_k > 0 else 0, seed, stops,
                    logprobs=request.return_logprobs), n


def parse_generate(request: pb.GenerateRequest, config: ServerConfig, engine,
                   context_length: int) -> GenerateSpec:
    """Validate every field and build the spec; raises InvalidRequest."""
    request_id = request.request_id or uuid.uuid4().hex
    if len(request_id) > MAX_REQUEST_ID_CHARS or not request_id.isprintable():
        raise InvalidRequest("request_id", f"must be printable, at most {MAX_REQUEST_ID_CHARS} "
                             "characters")
    messages = _messages(request, config)
    sampling, n = _sampling(request, config)
    t = request.thinking
    if not engine.supports_thinking:
        asked = [f for f in ("budget", "min_tokens") if getattr(t, f)]  # 0 is allowed
        if asked or t.effort != pb.EFFORT_UNSPECIFIED:
            field = f"thinking.{asked[0]}" if asked else "thinking.effort"
            raise InvalidRequest(field, f"this model has no thinking delimiters "
                                 f"({engine.think_start!r}/{engine.think_end!r} are not single "
                                 "tokens of its vocabulary), so it cannot think: only budget 0")
    if t.effort not in (pb.EFFORT_UNSPECIFIED, *EFFORT_NAMES):
        raise InvalidRequest("thinking.effort", f"unknown effort value {t.effort}")
    requested = resolve_budget(
        t.budget if t.HasField("budget") else None, EFFORT_NAMES.get(t.effort),
        default=config.default_budget if engine.supports_thinking else 0,
        maximum=config.max_budget,
        presets={name: config.effort_budget(name) for name in EFFORT_NAMES.values()})
    try:
        prompt_ids = engine.render_chat(messages)
    except Exception as err:  # the chat template rejects what it cannot render
        raise InvalidRequest("chat.messages" if request.HasField("chat") else "prompt",
                             f"cannot render with the model's chat template: {err}") from None
    wrap_up = t.wrap_up if t.HasField("wrap_up") else config.default_wrap_up
    continuation = t.continuation if t.HasField("continuation") else config.default_continuation
    max_answer = (request.max_answer_tokens if request.HasField("max_answer_tokens")
                  else config.default_max_answer_tokens)
    plan = make_plan(requested_budget=requested,
                     min_tokens=t.min_tokens if t.HasField("min_tokens") else None,
                     max_answer_tokens=max_answer, prompt_tokens=len(prompt_ids),
                     context_length=context_length, wrap_up_ids=engine.encode_text(wrap_up),
                     continuation_ids=engine.encode_text(continuation),
                     budget_fits=not t.HasField("budget"),
                     answer_fits=not request.HasField("max_answer_tokens"),
                     wrap_up_share=None if t.HasField("wrap_up") else config.wrap_up_max_share)
    verification = (verification_spec(request.verification, config)
                    if request.HasField("verification") else None)
    if request.adapter and not request.shadow:
        raise InvalidRequest("adapter", "only shadow requests sample from a staged adapter; "
                             "users get the served version")
    prompt_text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return GenerateSpec(request_id, prompt_ids, prompt_text, plan, sampling, n, t.hide_thinking,
                        verification, verification is not None and request.verification.best_of_n,
                        request.shadow, request.return_tokens or request.return_logprobs,
                        request.adapter)
