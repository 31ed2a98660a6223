"""The gRPC entrypoint: rlvr.v1.Reasoning plus health, reflection, metrics and graceful drain.

Request path: Generate -> validate (request_spec) -> admission -> one ChoiceRun per choice
(generation) -> engine token streams. Cancelling the RPC (client cancel, deadline) or Abort
closes the choice streams, which aborts their requests inside vLLM.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import socket
import time
from contextlib import aclosing
from dataclasses import dataclass, field

import grpc
import psycopg
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from vllm.exceptions import VLLMClientError

from rlvr import plugins
from rlvr.store import traces
from rlvr.store.checkpoints import CheckpointError, CheckpointStore
from rlvr.store.cluster import ClusterStore
from rlvr.store.layout import StateDir
from rlvr.store.postgres import redacted
from rlvr.v1 import admin_pb2, admin_pb2_grpc
from rlvr.v1 import reasoning_pb2 as pb
from rlvr.v1 import reasoning_pb2_grpc as pb_grpc
from runtime import generation as gen
from runtime.events import to_proto, token_trace, verification_proto
from runtime import orphans
from runtime.admin import AdminService, WeightManager
from runtime.auth import AuthInterceptor
from runtime.cluster import ClusterAgent
from runtime.budget import InvalidRequest
from runtime.config import ServerConfig
from runtime.engine import Engine
from runtime.metrics import Metrics
from runtime.recorder import FeedbackError, Recorder, RequestContext
from runtime.request_spec import EFFORT_NAMES, GenerateSpec, parse_generate, verification_spec
from runtime.trainer_process import TrainerProcess

log = logging.getLogger(__name__)

SERVICE = "rlvr.v1.Reasoning"
SHADOW_PRIORITY = 1 << 20  # below every user request, however loaded its caller
# Keepalive: never GOAWAY a client for pinging during a long silent stream (see reference note).
SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share it
]


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class StartupError(RuntimeError):
    """The server cannot start (port in use, unreadable TLS files, ...): a clear message."""


@dataclass
class ActiveRequest:
    runs: list[gen.ChoiceRun] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    aborted: bool = False


class ReasoningService(pb_grpc.ReasoningServicer):
    def __init__(self, config: ServerConfig, engine: Engine, metrics: Metrics,
                 auth: AuthInterceptor):
        self.config, self.engine, self.metrics, self.auth = config, engine, metrics, auth
        self.recorder: Recorder | None = None  # created once the engine (tokenizer) is up
        self.active: dict[str, ActiveRequest] = {}
        self.choices_by_caller: dict[str, int] = {}  # choices in flight per caller
        self.ready = False
        self.draining = False

    async def _reject(self, context, method: str, code: grpc.StatusCode, message: str):
        self.metrics.requests.labels(method, code.name).inc()
        await context.abort(code, message)

    async def Generate(self, request, context):
        if not self.ready or self.draining:
            await self._reject(context, "Generate", grpc.StatusCode.UNAVAILABLE,
                               "server is draining" if self.draining else "engine is starting")
        try:
            spec = parse_generate(request, self.config, self.engine, self.engine.max_model_len)
        except InvalidRequest as err:
            await self._reject(context, "Generate", grpc.StatusCode.INVALID_ARGUMENT, str(err))
        principal = self.auth.principal(context.invocation_metadata(), context.peer())
        for wanted, name in ((spec.shadow, "shadow"), (spec.return_tokens, "return_tokens")):
            if wanted and not principal.can_train:
                await self._reject(context, "Generate", grpc.StatusCode.PERMISSION_DENIED,
                                   f"{name}: only a train-scoped caller may ask for it")
        if spec.adapter and spec.adapter not in self.engine.staged:
            await self._reject(context, "Generate", grpc.StatusCode.FAILED_PRECONDITION,
                               f"adapter: {spec.adapter!r} is not staged (Admin.StageAdapter; "
                               f"staged now: {', '.join(self.engine.staged) or 'none'})")
        if spec.request_id in self.active:
            await self._reject(context, "Generate", grpc.StatusCode.ALREADY_EXISTS,
                               f"request_id: {spec.request_id!r} is already running")
        if len(self.active) >= self.config.max_pending:
            await self._reject(context, "Generate", grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"admission queue full ({self.config.max_pending} requests)")
        caller, cap = principal.caller, self.config.max_choices_per_caller
        held = self.choices_by_caller.get(caller, 0)
        if cap and not spec.shadow and held + spec.n > cap:
            await self._reject(context, "Generate", grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"sampling.n: {caller} has {held} choices in flight; each "
                               f"caller's share is {cap} (max_choices_per_caller)")
        self.choices_by_caller[caller] = held + spec.n
        priority = SHADOW_PRIORITY if spec.shadow else min(held, SHADOW_PRIORITY - 1)
        active = self.active[spec.request_id] = ActiveRequest()
        self.metrics.queue_depth.inc()
        code = grpc.StatusCode.CANCELLED
        thinking_options, sampling_options = spec.options()
        request_context = RequestContext(spec.request_id, principal, spec.prompt_text,
                                         thinking_options, sampling_options, spec.verification,
                                         spec.shadow)
        try:
            if spec.verification is not None and (problem := await self.recorder.check_reference(
                    spec.verification, caller)):
                code = grpc.StatusCode.INVALID_ARGUMENT
                await context.abort(code, f"verification.reference: {problem}")
            async with aclosing(self._events(spec, active, request_context, priority)) as events:
                async for event in events:
                    yield event
            code = grpc.StatusCode.OK
        except VLLMClientError as err:  # a limit of the engine that parse_generate missed
            code = grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, f"rejected by the engine: {err}")
        finally:
            del self.active[spec.request_id]
            if (left := self.choices_by_caller[caller] - spec.n) > 0:
                self.choices_by_caller[caller] = left
            else:
                del self.choices_by_caller[caller]
            self.metrics.requests.labels("GenerateShadow" if spec.shadow else "Generate",
                                         code.name).inc()

    async def _events(self, spec: GenerateSpec, active: ActiveRequest,
                      request: RequestContext, priority: int):
        """Run all choices concurrently and yield their events as proto messages (vLLM
        priority: lower is sooner; see max_running_choices)."""
        active.runs = [gen.ChoiceRun(self.engine, spec.prompt_ids, spec.plan, spec.sampling,
                                     spec.request_id, i, priority, spec.adapter)
                       for i in range(spec.n)]
        queue: asyncio.Queue = asyncio.Queue()
        active.tasks = [asyncio.create_task(self._pump(run, queue, request))
                        for run in active.runs]
        started, remaining = False, spec.n
        last_token_at = [0.0] * spec.n
        held: dict[int, list] = {i: [] for i in range(spec.n)}  # best-of-n: until verified
        finals: dict[int, gen.Finished] = {}
        try:
            while remaining:
                index, event = await queue.get()
                if event is None or isinstance(event, BaseException):
                    if isinstance(event, asyncio.CancelledError) and active.aborted:
                        event = active.runs[index].finish(gen.ABORTED)  # usage so far
                    elif isinstance(event, BaseException):
                        raise event
                    else:
                        remaining -= 1
                        continue
                if not started:
                    started = True
                    self.metrics.queue_depth.dec()
                    self.metrics.running.inc()
                self._observe(event, last_token_at)
                if isinstance(event, gen.Finished):
                    remaining -= 1
                    finals[index] = event
                tokens = token_trace(active.runs[index]) if spec.return_tokens and isinstance(
                    event, gen.Finished) else None
                message = to_proto(spec.request_id, event, spec.hide_thinking, tokens)
                if isinstance(event, gen.Finished):
                    message.finished.effective_budget = spec.plan.budget
                    message.finished.effective_max_answer_tokens = spec.plan.answer_tokens
                if spec.best_of_n:
                    held[index].append(message)
                else:
                    yield message
            if spec.verification is not None:
                rewards = {i: f.verification.reward if f.verification else -1.0
                           for i, f in finals.items()}
                best = max(rewards, key=lambda i: (rewards[i], -i), default=0)
                for message in held[best] if spec.best_of_n else ():
                    yield message
                yield pb.GenerateEvent(request_id=spec.request_id, summary=pb.Summary(
                    choices=spec.n, best_index=best, verified_correct=sum(
                        bool(f.verification) and f.verification.verdict == "correct"
                        for f in finals.values())))
        finally:
            for task in active.tasks:
                task.cancel()
            await asyncio.gather(*active.tasks, return_exceptions=True)
            (self.metrics.running if started else self.metrics.queue_depth).dec()

    async def _pump(self, run: gen.ChoiceRun, queue: asyncio.Queue,
                    request: RequestContext) -> None:
        """Move one choice's events into the shared queue; a final None (or error) marks its end.
        A finished choice is verified (when the request has a spec) and recorded first."""
        try:
            async with aclosing(run.events()) as events:
                async for event in events:
                    if isinstance(event, gen.Finished):
                        if request.spec is not None:
                            event.verification = await self.recorder.verify(
                                run.state.answer_text, request.spec, event.weight_version,
                                request.principal.caller)
                        if not request.shadow:
                            self.recorder.record(request, run, event)
                    queue.put_nowait((run.index, event))
                    if isinstance(event, gen.Finished):
                        return
            queue.put_nowait((run.index, None))
        except BaseException as err:  # noqa: BLE001 - forwarded to the consumer, which decides
            queue.put_nowait((run.index, err))
            if not isinstance(err, (asyncio.CancelledError, VLLMClientError)):
                log.exception("choice %s of %s failed", run.index, run.request_id)

    def _observe(self, event: gen.Event, last_token_at: list[float]) -> None:
        m, now = self.metrics, time.perf_counter()
        if isinstance(event, gen.Delta) and event.token_count and not event.forced:
            if last_token_at[event.index]:
                gap = (now - last_token_at[event.index]) / event.token_count
                for _ in range(event.token_count):
                    m.itl.observe(gap)
            last_token_at[event.index] = now
        elif isinstance(event, gen.ThinkingEnded):
            m.thinking_end.labels(event.reason).inc()
            m.forced_continuations.inc(event.forced_continuations)
        elif isinstance(event, gen.Finished):
            m.ttft.observe(event.time_to_first_token_s or event.total_s)
            m.e2e.observe(event.total_s)
            m.thinking_tokens.observe(event.thinking_tokens)
            m.answer_tokens.observe(event.answer_tokens)

    async def Abort(self, request, context):
        aborted = []
        for request_id in request.request_ids:
            active = self.active.get(request_id)
            if active is not None and not active.aborted:
                active.aborted = True
                for task in active.tasks:
                    task.cancel()
                aborted.append(request_id)
        self.metrics.requests.labels("Abort", "OK").inc()
        return pb.AbortResponse(aborted=aborted)

    async def SubmitFeedback(self, request, context):
        if not self.ready:
            await self._reject(context, "SubmitFeedback", grpc.StatusCode.UNAVAILABLE,
                               "engine is starting")
        which = request.WhichOneof("feedback")
        if which is None:
            await self._reject(context, "SubmitFeedback", grpc.StatusCode.INVALID_ARGUMENT,
                               "feedback: set reward or verification")
        principal = self.auth.principal(context.invocation_metadata(), context.peer())
        spec = None
        if which == "verification":
            try:
                spec = verification_spec(request.verification, self.config)
            except InvalidRequest as err:
                await self._reject(context, "SubmitFeedback", grpc.StatusCode.INVALID_ARGUMENT,
                                   str(err))
            if problem := await self.recorder.check_reference(spec, principal.caller):
                await self._reject(context, "SubmitFeedback", grpc.StatusCode.INVALID_ARGUMENT,
                                   f"verification.reference: {problem}")
        try:
            verdict, trainable = await self.recorder.feedback(
                request.request_id, request.index, principal,
                request.reward if which == "reward" else None, spec, request.replace)
        except FeedbackError as err:
            await self._reject(context, "SubmitFeedback", err.code, str(err))
        self.metrics.requests.labels("SubmitFeedback", "OK").inc()
        return pb.FeedbackResponse(result=verification_proto(verdict), trainable=trainable)

    async def GetModelInfo(self, request, context):
        c = self.config
        self.metrics.requests.labels("GetModelInfo", "OK").inc()
        return pb.ModelInfo(
            model_name=self.engine.model_dir.name, model_path=str(self.engine.model_dir.resolve()),
            weight_version=self.engine.weight_version,
            think_start=self.engine.think_start if self.engine.supports_thinking else "",
            think_end=self.engine.think_end if self.engine.supports_thinking else "",
            context_length=self.engine.max_model_len,
            max_budget=c.max_budget, default_budget=c.default_budget,
            default_max_answer_tokens=c.default_max_answer_tokens,
            effort_presets=[pb.EffortPreset(effort=e, budget=c.effort_budget(name))
                            for e, name in EFFORT_NAMES.items()],
            default_wrap_up=c.default_wrap_up, default_continuation=c.default_continuation,
            max_n=c.max_n, max_lora_rank=self.engine.max_lora_rank)


class Server:
    """Owns the gRPC server, the engine, health and metrics; `run()` serves until SIGTERM."""

    def __init__(self, config: ServerConfig):
        self.config = config
        checkpoints = CheckpointStore(config.state_dir, config.checkpoint_store)
        self.metrics = Metrics(config.state_dir, checkpoints)
        self.engine = Engine(config.model, config.engine_settings(gpu_count()),
                             stream_interval=config.stream_interval)
        self.trainer_token = secrets.token_urlsafe(32) if config.runs_trainer else ""
        self.auth = AuthInterceptor(config.api_tokens, config.admin_tokens, config.train_tokens,
                                    config.trust_local_anonymous,
                                    internal_tokens=config.internal_tokens +
                                    ([self.trainer_token] if self.trainer_token else []))
        self.service = ReasoningService(config, self.engine, self.metrics, self.auth)
        self.weights = WeightManager(self.engine, checkpoints, self.metrics)
        self.cluster: ClusterAgent | None = None  # with `cluster`: set at start, when the port
        # (part of its default name) is known
        self.admin = AdminService(self.weights, config.state_dir,
                                  ready=lambda: self.service.ready and not self.service.draining,
                                  trainer_failure=lambda: self.trainer.failure if self.trainer
                                  else "")
        self.health = health.aio.HealthServicer()
        self.grpc: grpc.aio.Server | None = None
        self.trainer: TrainerProcess | None = None
        self.stopping: asyncio.Event | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen first (health answers NOT_SERVING while warming up), then load the engine."""
        self.grpc = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[self.auth])
        pb_grpc.add_ReasoningServicer_to_server(self.service, self.grpc)
        admin_pb2_grpc.add_AdminServicer_to_server(self.admin, self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        names = (pb.DESCRIPTOR.services_by_name["Reasoning"].full_name,
                 admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
                 health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self.grpc)
        address = f"{self.config.host}:{self.config.port}"
        try:
            if self.config.tls_cert:
                creds = grpc.ssl_server_credentials(
                    [(self.config.tls_key.read_bytes(), self.config.tls_cert.read_bytes())])
                self.port = self.grpc.add_secure_port(address, creds)
            else:
                self.port = self.grpc.add_insecure_port(address)
        except (OSError, RuntimeError) as err:
            raise StartupError(f"cannot listen on {address}: {err}") from None
        await self.grpc.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.config.metrics_port:
            try:
                self.metrics.serve(self.config.host, self.config.metrics_port)
            except OSError as err:
                await self.grpc.stop(None)
                raise StartupError(f"cannot serve metrics on port {self.config.metrics_port}: "
                                   f"{err}") from None
        log.info("listening on %s:%d (metrics on :%d); loading %s", self.config.host, self.port,
                 self.config.metrics_port, self.config.model)
        try:
            reference_check = plugins.load(self.config.model, "reference_check")
        except plugins.PluginError as err:
            await self.grpc.stop(None)
            raise StartupError(str(err)) from None
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        try:  # damaged state: one clear line and a non-zero exit, before the engine loads
            traces.open_database(self.config.trace_location, check=True).close()
            self.weights.checkpoints.history()
        except (traces.DamagedStore, CheckpointError) as err:
            await self.grpc.stop(None)
            raise StartupError(str(err)) from None
        orphans.reap(self.config.state_dir)  # engine processes of a server killed by SIGKILL
        await self.engine.start()
        await self.weights.restore()  # after a restart: the last promoted version
        self.service.recorder = Recorder(self.config, self.metrics, self.engine.tokenizer,
                                         reference_check)
        self.metrics.set_weight_version(self.engine.weight_version)
        self.service.ready = True
        await self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        log.info("ready: serving %s (weight version %s)", self.config.model.name,
                 self.engine.weight_version)
        if self.trainer_token:
            host = "localhost" if self.config.host in ("0.0.0.0", "::", "") else self.config.host
            self.trainer = TrainerProcess(f"{host}:{self.port}", self.config.state_dir,
                                          self.trainer_token, self.config.model.resolve(),
                                          self.config.train_config, self.config.tls_cert,
                                          self.config.trace_store, self.config.checkpoint_store)
            self.trainer.start()
            self.metrics.trainer_restarts.set_function(lambda: self.trainer.restarts)
        if self.config.cluster:  # serve what the cluster serves, then follow it
            await self._join_cluster()
        orphans.record(self.config.state_dir)

    async def _join_cluster(self) -> None:
        name = self.config.replica_name or f"{socket.gethostname()}:{self.port}"
        try:
            store = ClusterStore(self.config.trace_store)
        except psycopg.Error as err:
            raise StartupError(f"cluster: the promotion record at "
                               f"{redacted(self.config.trace_store)} cannot be used: "
                               f"{str(err).strip()}") from None
        self.cluster = ClusterAgent(store, self.weights, name,
                                    stage_timeout_s=self.config.cluster_stage_timeout_s)
        self.admin.cluster = self.cluster
        await self.cluster.tick()
        self.cluster_task = asyncio.create_task(self.cluster.run())
        log.info("cluster: replica %s serves %s", name, self.engine.weight_version)

    async def drain(self) -> None:
        """Stop admitting, let in-flight streams finish within the grace period, then stop."""
        log.info("draining: %d requests in flight, grace %.0fs", len(self.service.active),
                 self.config.drain_grace_s)
        self.service.draining = True
        if self.trainer is not None:
            await self.trainer.stop()
        if self.cluster is not None:
            self.cluster_task.cancel()
            self.cluster.leave()  # coordinators stop waiting for this replica at once
        await self.health.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        deadline = time.monotonic() + self.config.drain_grace_s
        while self.service.active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.health.enter_graceful_shutdown()
        await self.grpc.stop(grace=1.0)
        if self.service.recorder is not None:
            self.service.recorder.close()  # commits every queued trace
        self.engine.shutdown()
        StateDir(self.config.state_dir).server_processes.unlink(missing_ok=True)
        log.info("stopped")

    async def run(self) -> None:
        self.stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.start()
        await self.stopping.wait()
        await self.drain()
