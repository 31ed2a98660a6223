"""Serve-time verification, trust decisions, the trace log and delayed feedback.

The server hands every finished choice to `Recorder.record()`. Choices whose request carried a
verification spec are verified (in the worker pool) and appended to the trace log; the others
are kept in a bounded in-memory window so that `SubmitFeedback` can still turn them into
traces later, or, when the trace store is shared by several replicas (Postgres), stored at
once as untrainable traces, so that feedback reaches them whichever replica receives it. A trace is trainable only when the caller may train (see auth.Principal), the
verifier produced a real verdict, and, for prompts the model folder's `reference_check`
plug-in knows (the embedded task families register one), the client's reference agrees with
the answer the deployment computes itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import grpc

from runtime.auth import Principal
from runtime.config import ServerConfig
from runtime.generation import ChoiceRun, Finished
from runtime.metrics import Metrics
from rlvr.store.traces import (ThinkingOptions, Trace, TraceLog, TraceReader, TraceSource,
                                TraceStore)
from runtime.verifiers.base import CORRECT, INCORRECT, UNPARSEABLE, Verdict, VerificationSpec
from runtime.verifiers.numeric import numeric_equal
from runtime.verifiers.pool import VerifierPool

FEEDBACK = "feedback"
REAL_VERDICTS = (CORRECT, INCORRECT, UNPARSEABLE, FEEDBACK)
RECENT_LIMIT = 10_000
SHARED_COMMIT_WAIT_S = 2.0  # feedback to a shared store waits this long for the trace's commit


class FeedbackError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class RequestContext:
    """What the recorder needs to know about a request besides its choices."""

    request_id: str
    principal: Principal
    prompt_text: str
    thinking_options: ThinkingOptions | None
    sampling_options: dict
    spec: VerificationSpec | None
    shadow: bool = False


ReferenceCheck = Callable[[str], "str | None"]  # prompt text -> the correct answer, if known


def reference_problem(prompt_text: str, spec: VerificationSpec,
                      check: ReferenceCheck | None) -> str:
    """'' when the client's reference is plausible, else why the trace must not be trained on."""
    known = check(prompt_text) if check is not None else None
    if known is None or spec.kind not in ("numeric", "exact", "math"):
        return ""
    same = numeric_equal(spec.reference, known) or spec.reference.strip() == known
    return "" if same else "reference_mismatch"


class Recorder:
    def __init__(self, config: ServerConfig, metrics: Metrics, tokenizer,
                 reference_check: ReferenceCheck | None = None):
        self.config, self.metrics, self.tokenizer = config, metrics, tokenizer
        self.reference_check = reference_check
        self.pool = VerifierPool(config.verifier_workers, config.verifier_share)
        self.store: TraceLog = TraceStore(config.trace_location, config.trace_max_rows,
                                          config.trace_max_age_days)
        self.reader: TraceSource = TraceReader(config.trace_location)
        self.recent: OrderedDict[str, tuple[float, list[Trace]]] = OrderedDict()
        metrics.trace_queue_depth.set_function(lambda: self.store.queue_depth)
        metrics.verifier_jobs_waiting.set_function(lambda: self.pool.waiting)
        metrics.verifier_workers_busy.set_function(lambda: self.pool.busy)
        metrics.traces_written.set_function(lambda: self.store.written)

    async def check_reference(self, spec: VerificationSpec, caller: str) -> str:
        """'' when the reference is cheap to use, else why not (run in the caller's share)."""
        if spec.kind != "math":  # the other kinds were fully checked by validate_spec
            return ""
        return await self.pool.check_reference(spec, caller, self.config.reference_check_s)

    async def verify(self, answer: str, spec: VerificationSpec, weight_version: str,
                     caller: str) -> Verdict:
        verdict = await self.pool.verify(answer, spec, caller)
        self.metrics.verifications.labels(spec.kind, verdict.verdict, weight_version).inc()
        self.metrics.verifier_seconds.labels(spec.kind).observe(verdict.seconds)
        return verdict

    def _trust(self, request: RequestContext, verdict: Verdict | None,
               spec: VerificationSpec | None) -> str:
        """'' when trainable, else the reason it is not."""
        if not request.principal.can_train:
            return "untrusted_source"
        if verdict is None or verdict.verdict not in REAL_VERDICTS:
            return "no_verdict"
        return reference_problem(request.prompt_text, spec, self.reference_check) if spec else ""

    def record(self, request: RequestContext, run: ChoiceRun, finished: Finished) -> None:
        """Log a finished choice: to the store when verified, else to the feedback window."""
        verdict = finished.verification
        reason = self._trust(request, verdict, request.spec)
        trace = Trace(
            request_id=request.request_id, choice_index=run.index,
            source=request.principal.name, trainable=not reason, untrusted_reason=reason,
            prompt_text=request.prompt_text, prompt_ids=run.prompt_ids,
            thinking_ids=run.thinking_ids, answer_ids=run.answer_ids,
            thinking_end=finished.thinking_end, thinking_options=request.thinking_options,
            sampling_options=request.sampling_options, weight_version=finished.weight_version,
            spec=request.spec.to_dict() if request.spec else {},
            reward=verdict.reward if verdict else None,
            verdict=verdict.verdict if verdict else "", extracted_answer=
            verdict.extracted_answer if verdict else "")
        if request.spec is not None or self.store.shared:
            self.store.append(trace)  # shared: feedback may reach another replica
            return
        _, traces = self.recent.setdefault(request.request_id, (time.time(), []))
        traces.append(trace)
        self.recent.move_to_end(request.request_id)
        while len(self.recent) > RECENT_LIMIT:
            self.recent.popitem(last=False)

    async def _find(self, request_id: str, index: int) -> Trace:
        if request_id in self.recent:
            created, traces = self.recent[request_id]
            trace = next((t for t in traces if t.choice_index == index), None)
        else:
            # a shared store: the replica that served it may not have committed it yet
            deadline = time.monotonic() + (SHARED_COMMIT_WAIT_S if self.store.shared else 0)
            while (trace := next((t for t in self.reader.find(request_id)
                                  if t.choice_index == index), None)) is None \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            created = trace.created_at if trace else 0.0
        if trace is None or time.time() - created > self.config.feedback_window_s:
            raise FeedbackError(grpc.StatusCode.NOT_FOUND,
                                f"request_id: no trace for {request_id!r} choice {index} "
                                "(unknown or expired)")
        return trace

    async def feedback(self, request_id: str, index: int, principal: Principal,
                       reward: float | None, spec: VerificationSpec | None,
                       replace: bool) -> tuple[Verdict, bool]:
        """Attach a delayed reward (or verify now against a spec the server validated);
        returns (verdict, trainable)."""
        if reward is not None and not 0.0 <= reward <= 1.0:
            raise FeedbackError(grpc.StatusCode.INVALID_ARGUMENT, "reward: must be in [0, 1]")
        self.store.flush()
        trace = await self._find(request_id, index)
        if trace.feedback_at is not None and not replace:
            raise FeedbackError(grpc.StatusCode.ALREADY_EXISTS,
                                f"request_id: {request_id!r} choice {index} already has "
                                "feedback (set replace to overwrite it)")
        if spec is not None:
            answer = self.tokenizer.decode(trace.answer_ids, skip_special_tokens=True)
            verdict = await self.verify(answer, spec, trace.weight_version, principal.caller)
            trace.spec = spec.to_dict()
        else:
            verdict = Verdict(reward, FEEDBACK, verifier=FEEDBACK)
        request = RequestContext(request_id, principal, trace.prompt_text, None, {}, spec)
        reason = self._trust(request, verdict, spec)
        if trace.untrusted_reason == "untrusted_source" or (
                spec is None and trace.untrusted_reason == "reference_mismatch"):
            # feedback cannot launder an untrusted request, nor a bare reward a wrong reference
            # (the trainer would sample groups against that reference); a new spec is re-checked
            reason = trace.untrusted_reason
        trace.reward, trace.verdict = verdict.reward, verdict.verdict
        trace.extracted_answer = verdict.extracted_answer
        trace.trainable, trace.untrusted_reason = not reason, reason
        trace.feedback_at = time.time()
        if request_id in self.recent:
            remaining = [t for t in self.recent[request_id][1] if t is not trace]
            if remaining:
                self.recent[request_id] = (self.recent[request_id][0], remaining)
            else:
                del self.recent[request_id]
        self.store.append(trace)
        return verdict, trace.trainable

    def close(self) -> None:
        self.store.close()
        self.reader.close()
        self.pool.close()
