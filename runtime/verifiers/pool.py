"""Verifiers run in worker processes with a hard per-item timeout.

A hung or crashing verifier is killed and its worker replaced; serving never waits longer
than the spec's `timeout_s` for a verdict. No signal-based timeouts: the parent kills.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from runtime.verifiers.base import ERROR, TIMEOUT, Verdict, VerificationSpec

log = logging.getLogger(__name__)


def _worker_main(conn) -> None:
    """Worker process: receive (answer, spec dict), send back a verdict dict, forever."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from runtime.verifiers import check

    while True:
        job = conn.recv()
        if job is None:
            return
        answer, spec = job
        conn.send(asdict(check(answer, VerificationSpec(**spec))))


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

    def run(self, answer: str, spec: VerificationSpec) -> Verdict:
        """Verify in the worker, or kill it on timeout / crash and start a fresh one."""
        start = time.perf_counter()
        try:
            self.conn.send((answer, asdict(spec)))
            if self.conn.poll(spec.timeout_s):
                return Verdict(**self.conn.recv())
            verdict = Verdict(0.0, TIMEOUT, detail=f"no verdict within {spec.timeout_s}s")
        except (EOFError, OSError, BrokenPipeError) as err:
            verdict = Verdict(0.0, ERROR, detail=f"verifier worker died: {err}")
        self.restart()
        verdict.verifier, verdict.seconds = spec.kind, time.perf_counter() - start
        return verdict

    def restart(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.start()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()


class VerifierPool:
    """`await pool.verify(answer, spec)` from the event loop; `workers` run in parallel."""

    def __init__(self, workers: int = 2):
        ctx = mp.get_context("spawn")  # never fork a process that holds gRPC and vLLM threads
        self._workers = [_Worker(ctx) for _ in range(workers)]
        self._idle: queue.Queue[_Worker] = queue.Queue()
        for worker in self._workers:
            self._idle.put(worker)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="rlvr-verify")

    def verify_blocking(self, answer: str, spec: VerificationSpec) -> Verdict:
        worker = self._idle.get()
        try:
            return worker.run(answer, spec)
        finally:
            self._idle.put(worker)

    async def verify(self, answer: str, spec: VerificationSpec) -> Verdict:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.verify_blocking, answer, spec)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for worker in self._workers:
            worker.stop()
