"""Python client for rlvr.v1.Reasoning, sync (`Client`) and asyncio (`AsyncClient`), one
implementation: every unary RPC is written once (`_Rpcs`) and each class only says how a call
runs (blocking, or awaited), and how a stream is read.

    with Client("localhost:50051") as client:
        result = client.ask("What is 12+30?", budget=16)
        print(result.answer, result.usage.thinking_tokens, result.thinking_end)

`stream()` yields the raw GenerateEvent messages; `ask()` reads the stream to the end and
returns an AskResult per choice (index 0 for `ask`, all of them for `ask_n`). A non-OK status
raises RlvrError carrying the gRPC status code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterable, Iterator

import grpc

from rlvr.v1 import admin_pb2 as apb
from rlvr.v1 import admin_pb2_grpc as apb_grpc
from rlvr.v1 import reasoning_pb2 as pb
from rlvr.v1 import reasoning_pb2_grpc as pb_grpc

EFFORTS = {"low": pb.EFFORT_LOW, "medium": pb.EFFORT_MEDIUM, "high": pb.EFFORT_HIGH}
END_NAMES = {pb.THINKING_END_NATURAL: "natural", pb.THINKING_END_FORCED: "forced",
             pb.THINKING_END_DISABLED: "disabled", pb.THINKING_END_UNSPECIFIED: ""}
FINISH_NAMES = {pb.FINISH_REASON_STOP: "stop", pb.FINISH_REASON_LENGTH: "length",
                pb.FINISH_REASON_ABORTED: "aborted", pb.FINISH_REASON_UNSPECIFIED: ""}


class RlvrError(Exception):
    """A non-OK gRPC status from the runtime."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code, self.message = code, message


@dataclass
class Usage:
    prompt_tokens: int = 0
    thinking_tokens: int = 0
    answer_tokens: int = 0


@dataclass
class AskResult:
    request_id: str = ""
    index: int = 0
    thinking: str = ""
    answer: str = ""
    usage: Usage = field(default_factory=Usage)
    thinking_end: str = ""
    forced_continuations: int = 0
    weight_version: str = ""
    finish_reason: str = ""
    timing: dict = field(default_factory=dict)
    verification: dict | None = None  # kind, reward, verdict, extracted_answer, ... when verified
    verified_correct: int | None = None  # from the summary: correct choices of the request
    effective_budget: int = 0            # what the request ran with (defaults fitted)
    effective_max_answer_tokens: int = 0

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def build_request(prompt: str | list[dict[str, str]], *, request_id: str = "",
                  budget: int | None = None, min_thinking: int | None = None,
                  effort: str | None = None, wrap_up: str | None = None,
                  continuation: str | None = None, hide_thinking: bool = False,
                  max_answer_tokens: int | None = None, temperature: float | None = None,
                  top_p: float | None = None, top_k: int | None = None, seed: int | None = None,
                  n: int | None = None, stop: Iterable[str] = (), verify: str | None = None,
                  tolerance: float = 0.0, best_of_n: bool = False, spec: dict | None = None,
                  shadow: bool = False, return_tokens: bool = False,
                  return_logprobs: bool = False, adapter: str = "") -> pb.GenerateRequest:
    """A GenerateRequest from keyword arguments (None = server default). Verification:
    `verify="KIND:REFERENCE"` (with `tolerance`), or a whole spec as a dict (`kind`,
    `reference`, `tolerance`, `tests`, `timeout_s`), e.g. a trace's. `adapter`: a staged
    adapter for a shadow request (`stage_adapter`)."""
    request = pb.GenerateRequest(request_id=request_id, shadow=shadow,
                                 return_tokens=return_tokens, return_logprobs=return_logprobs,
                                 adapter=adapter)
    if isinstance(prompt, str):
        request.prompt = prompt
    else:
        request.chat.messages.extend(pb.ChatMessage(**m) for m in prompt)
    for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k),
                        ("seed", seed), ("n", n)):
        if value is not None:
            setattr(request.sampling, name, value)
    request.sampling.stop.extend(stop)
    if max_answer_tokens is not None:
        request.max_answer_tokens = max_answer_tokens
    t = request.thinking
    for name, value in (("budget", budget), ("min_tokens", min_thinking), ("wrap_up", wrap_up),
                        ("continuation", continuation)):
        if value is not None:
            setattr(t, name, value)
    if effort is not None:
        if effort not in EFFORTS:
            raise ValueError(f"effort must be one of {', '.join(EFFORTS)}, got {effort!r}")
        t.effort = EFFORTS[effort]
    t.hide_thinking = hide_thinking
    if verify is not None:
        kind, sep, reference = verify.partition(":")
        if not sep:
            raise ValueError(f"verify must look like KIND:REFERENCE (e.g. numeric:46), got {verify!r}")
        request.verification.CopyFrom(pb.VerificationSpec(
            kind=kind, reference=reference, tolerance=tolerance, best_of_n=best_of_n))
    if spec is not None:
        if verify is not None:
            raise ValueError("give either verify or spec, not both")
        request.verification.CopyFrom(pb.VerificationSpec(
            kind=spec["kind"], reference=spec.get("reference", ""),
            tolerance=spec.get("tolerance", 0.0), tests=list(spec.get("tests", ())),
            timeout_s=spec.get("timeout_s"), best_of_n=best_of_n))
    return request


def verification_dict(v: pb.VerificationResult) -> dict:
    return {"kind": v.kind, "reward": v.reward, "verdict": v.verdict,
            "extracted_answer": v.extracted_answer, "verifier_version": v.verifier_version,
            "seconds": v.seconds, "detail": v.detail, "flags": list(v.flags)}


def feedback_request(request_id: str, index: int, reward: float | None, verify: str | None,
                     replace: bool) -> pb.FeedbackRequest:
    request = pb.FeedbackRequest(request_id=request_id, index=index, replace=replace)
    if (reward is None) == (verify is None):
        raise ValueError("give exactly one of reward and verify")
    if reward is not None:
        request.reward = reward
    else:
        kind, _, reference = verify.partition(":")
        request.verification.CopyFrom(pb.VerificationSpec(kind=kind, reference=reference))
    return request


def collect(events: Iterable[pb.GenerateEvent]) -> list[AskResult]:
    """Fold a finished event stream into one AskResult per choice."""
    results: dict[int, AskResult] = {}
    summary = None
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "summary":
            summary = event.summary
            continue
        index = getattr(event, kind).index
        r = results.setdefault(index, AskResult(request_id=event.request_id, index=index))
        if kind == "delta":
            if event.delta.channel == pb.CHANNEL_THINKING:
                r.thinking += event.delta.text
            else:
                r.answer += event.delta.text
        elif kind == "thinking_ended":
            r.thinking_end = END_NAMES[event.thinking_ended.reason]
        else:
            f = event.finished
            r.usage = Usage(f.usage.prompt_tokens, f.usage.thinking_tokens, f.usage.answer_tokens)
            r.thinking_end, r.forced_continuations = END_NAMES[f.thinking_end], f.forced_continuations
            r.weight_version, r.finish_reason = f.weight_version, FINISH_NAMES[f.finish_reason]
            r.effective_budget = f.effective_budget
            r.effective_max_answer_tokens = f.effective_max_answer_tokens
            r.timing = {"time_to_first_token_s": f.timing.time_to_first_token_s,
                        "time_to_first_answer_token_s": f.timing.time_to_first_answer_token_s,
                        "total_s": f.timing.total_s}
            if f.HasField("verification"):
                r.verification = verification_dict(f.verification)
    for r in results.values():
        r.verified_correct = summary.verified_correct if summary else None
    return [results[i] for i in sorted(results)]


def env_token(given: str | None, *names: str) -> str | None:
    """The token a flag gave, else the first of the environment variables `names` set."""
    return given or next((os.environ[name] for name in names if os.environ.get(name)), None)


def _channel(target: str, tls: bool, root_cert: bytes | None, aio: bool):
    module = grpc.aio if aio else grpc
    options = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000)]
    if "," in target:  # several replicas, e.g. "ipv4:10.0.0.1:50051,10.0.0.2:50051"
        options.append(("grpc.lb_policy_name", "round_robin"))
    if tls:
        return module.secure_channel(target, grpc.ssl_channel_credentials(root_cert), options)
    return module.insecure_channel(target, options)


def _metadata(token: str | None) -> tuple:
    return (("authorization", f"Bearer {token}"),) if token else ()


class _Rpcs:
    """Every unary RPC, once: its stub method and request. How a call runs is the subclass's
    `_call`: `Client` blocks and returns the response, `AsyncClient` returns an awaitable."""

    aio = False  # grpc.aio channel (AsyncClient) or a blocking one

    def __init__(self, target: str = "localhost:50051", *, token: str | None = None,
                 tls: bool = False, root_cert: bytes | None = None):
        self.channel = _channel(target, tls, root_cert, aio=self.aio)
        self.stub = pb_grpc.ReasoningStub(self.channel)
        self.admin = apb_grpc.AdminStub(self.channel)
        self.metadata = _metadata(token)

    def list_versions(self) -> apb.ListVersionsResponse:
        """Admin (needs an admin token): versions, their status and the promotion history."""
        return self._call(self.admin.ListVersions, apb.ListVersionsRequest())

    def promote(self, version: str) -> apb.SwapResponse:
        """Admin: hot-swap a published version into serving."""
        return self._call(self.admin.Promote, apb.PromoteRequest(version=version))

    def rollback(self) -> apb.SwapResponse:
        """Admin: go back to the previously promoted version."""
        return self._call(self.admin.Rollback, apb.RollbackRequest())

    def stage_adapter(self, name: str, base_version: str,
                      retire: Iterable[str] = ()) -> apb.StageAdapterResponse:
        """Admin: retire staged adapters, then load the state directory's `staged/<name>`
        adapter for shadow requests (an empty name only retires)."""
        return self._call(self.admin.StageAdapter, apb.StageAdapterRequest(
            name=name, base_version=base_version, retire=list(retire)))

    def training_status(self) -> apb.TrainingStatus:
        """Admin: the trainer's state, last step and gate results."""
        return self._call(self.admin.GetTrainingStatus, apb.TrainingControlRequest())

    def pause_training(self) -> apb.TrainingStatus:
        """Admin: the trainer stops after its current step (serving goes on)."""
        return self._call(self.admin.PauseTraining, apb.TrainingControlRequest())

    def resume_training(self) -> apb.TrainingStatus:
        """Admin: the trainer goes on."""
        return self._call(self.admin.ResumeTraining, apb.TrainingControlRequest())

    def abort(self, *request_ids: str) -> list[str]:
        """Abort requests in flight; returns the ids that were still running."""
        return self._call(self.stub.Abort, pb.AbortRequest(request_ids=request_ids),
                          then=lambda response: list(response.aborted))

    def feedback(self, request_id: str, *, index: int = 0, reward: float | None = None,
                 verify: str | None = None, replace: bool = False) -> pb.FeedbackResponse:
        """Delayed reward for a served request: a reward in [0, 1] or KIND:REFERENCE."""
        return self._call(self.stub.SubmitFeedback,
                          feedback_request(request_id, index, reward, verify, replace))

    def model_info(self) -> pb.ModelInfo:
        """The served model, its version, limits and verifier kinds."""
        return self._call(self.stub.GetModelInfo, pb.GetModelInfoRequest())

    def _call(self, method, request, then=None):
        raise NotImplementedError


class Client(_Rpcs):
    """Blocking client."""

    def stream(self, prompt, *, timeout: float | None = None, **options) -> Iterator[pb.GenerateEvent]:
        call = self.stub.Generate(build_request(prompt, **options), timeout=timeout,
                                  metadata=self.metadata)
        try:
            yield from call
        except grpc.RpcError as err:
            raise RlvrError(err.code(), err.details()) from None
        finally:
            call.cancel()

    def ask_n(self, prompt, *, timeout: float | None = None, **options) -> list[AskResult]:
        return collect(self.stream(prompt, timeout=timeout, **options))

    def ask(self, prompt, *, timeout: float | None = None, **options) -> AskResult:
        return self.ask_n(prompt, timeout=timeout, **options)[0]

    def _call(self, method, request, then=None):
        try:
            response = method(request, metadata=self.metadata)
        except grpc.RpcError as err:
            raise RlvrError(err.code(), err.details()) from None
        return then(response) if then else response

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(_Rpcs):
    """asyncio client; use inside a running event loop. Every RPC method of `Client` is here
    too, returning an awaitable."""

    aio = True

    async def stream(self, prompt, *, timeout: float | None = None,
                     **options) -> AsyncIterator[pb.GenerateEvent]:
        call = self.stub.Generate(build_request(prompt, **options), timeout=timeout,
                                  metadata=self.metadata)
        try:
            async for event in call:
                yield event
        except grpc.RpcError as err:
            raise RlvrError(err.code(), err.details()) from None
        finally:
            call.cancel()

    async def ask_n(self, prompt, *, timeout: float | None = None, **options) -> list[AskResult]:
        return collect([e async for e in self.stream(prompt, timeout=timeout, **options)])

    async def ask(self, prompt, *, timeout: float | None = None, **options) -> AskResult:
        return (await self.ask_n(prompt, timeout=timeout, **options))[0]

    async def _call(self, method, request, then=None):
        try:
            response = await method(request, metadata=self.metadata)
        except grpc.RpcError as err:
            raise RlvrError(err.code(), err.details()) from None
        return then(response) if then else response

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
