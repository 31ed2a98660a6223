"""Verifiers run in worker processes with a hard per-item timeout, shared fairly by callers.

A hung or crashing verifier is killed and its worker replaced; serving never waits longer
than the job's timeout for a verdict. No signal-based timeouts: the parent kills.

Fairness: jobs wait in one queue per caller, a free worker goes to the waiting caller served
longest ago (round robin), and one caller holds at most `per_caller` workers at a time, so a
caller whose references or tests are slow (a huge power, an endless test) spends its own
share and never the others'.
Two kinds of job: `verify` an answer, and `check_reference` (at admission, under a short
timeout: does the reference parse and compare cheaply?).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from runtime.verifiers.base import ERROR, TIMEOUT, Verdict, VerificationSpec

log = logging.getLogger(__name__)
VERIFY, REFERENCE = "verify", "reference"


def _worker_main(conn) -> None:
    """Worker process: warm up (imports, first parse), say so, then receive (job kind, answer,
    spec dict) and send back a verdict dict, forever. Job timeouts start after the warm-up."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from runtime.verifiers import check, check_reference

    check_reference(VerificationSpec("math", reference="1"))
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, answer, spec = job
        spec = VerificationSpec(**spec)
        conn.send(asdict(check(answer, spec) if kind == VERIFY else check_reference(spec)))


@dataclass
class _Job:
    kind: str
    answer: str
    spec: VerificationSpec
    caller: str
    timeout_s: float
    future: Future


class _Worker:
    def __init__(self, ctx):
        self.ctx = ctx
        self.start()

    def start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                     name="rlvr-verifier")
        self.proc.start()
        child.close()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until the worker has warmed up (a dead or stuck one is left to fail its first job)."""
        try:
            if self.conn.poll(timeout_s):
                self.conn.recv()
        except (EOFError, OSError):
            log.error("a verifier worker died while starting")

    def run(self, job: _Job) -> Verdict:
        """Run the job in the worker, or kill it on timeout / crash and start a fresh one."""
        start = time.perf_counter()
        try:
            self.conn.send((job.kind, job.answer, asdict(job.spec)))
            if self.conn.poll(job.timeout_s):
                return Verdict(**self.conn.recv())
            verdict = Verdict(0.0, TIMEOUT, detail=f"no verdict within {job.timeout_s:g}s")
        except (EOFError, OSError, BrokenPipeError) as err:
            verdict = Verdict(0.0, ERROR, detail=f"verifier worker died: {err}")
        self.restart()
        verdict.verifier, verdict.seconds = job.spec.kind, time.perf_counter() - start
        return verdict

    def restart(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.start()
        self.wait_ready()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()


class VerifierPool:
    """`await pool.verify(answer, spec, caller)` from any event loop; `workers` in parallel,
    at most `per_caller` of them (default: all) for one caller."""

    def __init__(self, workers: int = 2, per_caller: int = 0):
        ctx = mp.get_context("spawn")  # never fork a process that holds gRPC and vLLM threads
        self._workers = [_Worker(ctx) for _ in range(workers)]
        for worker in self._workers:  # started together, warmed up in parallel
            worker.wait_ready()
        self.per_caller = per_caller or workers
        self._idle = list(self._workers)
        self._waiting: dict[str, deque[_Job]] = {}  # jobs not started, per caller
        self._busy: Counter[str] = Counter()  # workers held per caller
        self._last_served: dict[str, int] = {}  # caller -> the turn it last got a worker
        self._turns = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="rlvr-verify")

    @property
    def waiting(self) -> int:
        return sum(len(jobs) for jobs in list(self._waiting.values()))

    @property
    def busy(self) -> int:
        return len(self._workers) - len(self._idle)

    def submit(self, kind: str, answer: str, spec: VerificationSpec, caller: str = "",
               timeout_s: float | None = None) -> Future:
        job = _Job(kind, answer, spec, caller, timeout_s or spec.timeout_s, Future())
        with self._lock:
            self._waiting.setdefault(caller, deque()).append(job)
            self._dispatch()
        return job.future

    def _dispatch(self) -> None:
        """Hand idle workers to waiting jobs: the caller served longest ago first, each within
        its share (call with the lock held)."""
        while self._idle:
            ready = [c for c in self._waiting if self._busy[c] < self.per_caller]
            if not ready:
                return
            caller = min(ready, key=lambda c: self._last_served.get(c, -1))
            job = self._waiting[caller].popleft()
            if not self._waiting[caller]:
                del self._waiting[caller]
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller went away while its job waited
            self._turns += 1
            self._last_served[caller] = self._turns
            self._busy[caller] += 1
            self._executor.submit(self._run, self._idle.pop(), job)

    def _run(self, worker: _Worker, job: _Job) -> None:
        try:
            verdict = worker.run(job)
        except BaseException as err:  # noqa: BLE001 - the job's future reports it
            verdict = Verdict(0.0, ERROR, detail=f"verifier pool: {err}")
        with self._lock:
            self._idle.append(worker)
            self._busy[job.caller] -= 1
            if not self._busy[job.caller]:
                del self._busy[job.caller]
                if job.caller not in self._waiting:  # an idle caller keeps no state
                    del self._last_served[job.caller]
            self._dispatch()
        job.future.set_result(verdict)

    def verify_blocking(self, answer: str, spec: VerificationSpec, caller: str = "") -> Verdict:
        return self.submit(VERIFY, answer, spec, caller).result()

    async def verify(self, answer: str, spec: VerificationSpec, caller: str = "") -> Verdict:
        return await asyncio.wrap_future(self.submit(VERIFY, answer, spec, caller))

    async def check_reference(self, spec: VerificationSpec, caller: str,
                              timeout_s: float) -> str:
        """'' when the spec's reference parses and compares within `timeout_s`, else why not."""
        verdict = await asyncio.wrap_future(self.submit(REFERENCE, "", spec, caller, timeout_s))
        if verdict.verdict == TIMEOUT:
            return (f"did not parse and compare within {timeout_s:g}s (a huge power or "
                    "factorial?); give the value in a form that is cheap to compare")
        return verdict.detail if verdict.verdict == ERROR else ""

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for worker in self._workers:
            worker.stop()
