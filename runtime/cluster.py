"""One consistent promotion across serving replicas (`cluster = true`): each replica runs a
`ClusterAgent` on the shared promotion record (`rlvr/store/cluster.py`).

Every `poll_s` the agent reports the replica alive (and the version it serves), stages any
promotion being prepared (fetches the version and checks its checksums, off the event loop)
and acknowledges it, ok or with the reason it cannot, and switches to the newest committed
version it has not applied yet (at start too: a replica that starts or rejoins late serves
what the cluster serves). `coordinate` is `Promote` and `Rollback` on a clustered replica:
prepare, wait until every live replica acknowledged, then commit (every replica switches)
or abort with the reason (every replica keeps serving what it serves).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from rlvr.store.checkpoints import BASE_VERSION, CheckpointError
from rlvr.store.cluster import ClusterStore, Promotion, PromotionBusy

log = logging.getLogger(__name__)


class Replica(Protocol):
    """What the agent needs of a replica's weights (`runtime.admin.WeightManager`)."""

    @property
    def serving(self) -> str: ...
    def stage(self, version: str) -> None: ...
    async def promote(self, version: str) -> tuple[str, float]: ...
    async def roll_back_to(self, version: str) -> tuple[str, float]: ...


class PromotionFailed(RuntimeError):
    """The promotion was aborted; the message says which replica and why."""


class ClusterAgent:
    def __init__(self, store: ClusterStore, replica: Replica, name: str, poll_s: float = 0.2,
                 live_s: float = 5.0, stage_timeout_s: float = 60.0):
        self.store, self.replica, self.name = store, replica, name
        self.poll_s, self.live_s, self.stage_timeout_s = poll_s, live_s, stage_timeout_s
        self.applied = 0   # the newest committed promotion this replica has switched to
        self._lock = asyncio.Lock()  # one tick at a time (the loop's and a coordinator's)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the record unreachable for a moment: serve on, try again
                log.exception("cluster agent: tick failed")
            await asyncio.sleep(self.poll_s)

    async def tick(self) -> None:
        async with self._lock:
            self.store.heartbeat(self.name, self.replica.serving)
            pending = self.store.pending()
            if pending is not None and self.name not in self.store.acks(pending.id):
                await self._stage(pending)
            committed = self.store.committed()
            if committed is not None and committed.id > self.applied:
                await self._apply(committed)

    async def _stage(self, promotion: Promotion) -> None:
        try:
            if promotion.version != BASE_VERSION:
                await asyncio.to_thread(self.replica.stage, promotion.version)
            self.store.ack(promotion.id, self.name, True)
        except CheckpointError as err:
            log.error("cluster: cannot stage %s: %s", promotion.version, err)
            self.store.ack(promotion.id, self.name, False, str(err))

    async def _apply(self, promotion: Promotion) -> None:
        if promotion.action == "rollback":
            await self.replica.roll_back_to(promotion.version)
        else:
            await self.replica.promote(promotion.version)
        self.applied = promotion.id
        log.info("cluster: serving %s (promotion %d)", promotion.version, promotion.id)

    async def coordinate(self, version: str, action: str = "promote") -> Promotion:
        """Prepare, collect every live replica's acknowledgement, commit or abort; on commit
        this replica switches before returning. Raises PromotionFailed with the reason."""
        try:
            promotion = self.store.begin(version, action, self.name, self.stage_timeout_s)
        except PromotionBusy as err:
            raise PromotionFailed(str(err)) from None
        while True:
            await self.tick()  # this replica stages too
            acks, live = self.store.acks(promotion.id), self.store.live(self.live_s)
            if failed := {r: why for r, (ok, why) in acks.items() if not ok}:
                reason = "; ".join(f"replica {r} cannot stage {version}: {why}"
                                   for r, why in sorted(failed.items()))
                return self._abort(promotion, reason)
            if set(live) <= set(acks):
                self.store.decide(promotion.id, "committed")
                await self.tick()
                return self.store.get(promotion.id)
            if time.time() > promotion.deadline:
                missing = ", ".join(sorted(set(live) - set(acks)))
                return self._abort(promotion, f"replica(s) {missing} did not acknowledge "
                                              f"{version} within {self.stage_timeout_s:g} s")
            await asyncio.sleep(self.poll_s)

    def _abort(self, promotion: Promotion, reason: str) -> Promotion:
        self.store.decide(promotion.id, "aborted", reason)
        raise PromotionFailed(reason)

    def leave(self) -> None:
        self.store.leave(self.name)
