"""The soak's wait (tests/test_soak.py `soak_until`) without an engine: traffic runs for the
minimum, then in slices until the condition holds, and gives up at the hard deadline; no
record is lost between slices."""

from __future__ import annotations

import asyncio
import time

from rl_loop.toy.traffic import Record
from tests.test_soak import soak_until


class FakeTraffic:
    """Traffic.run's contract: send for `duration` seconds, append to `records`, return them."""

    def __init__(self):
        self.records, self.calls = [], []

    async def run(self, duration: float) -> list:
        self.calls.append(duration)
        start = time.monotonic()
        while time.monotonic() - start < duration:
            self.records.append(Record(time.monotonic(), 0.0, True, 1.0, "v0"))
            await asyncio.sleep(0.01)
        return self.records


def soak(ready_after: float | None, min_s=0.3, hard_s=1.2, chunk_s=0.2):
    traffic, start = FakeTraffic(), time.monotonic()

    def done() -> bool:
        return ready_after is not None and time.monotonic() - start >= ready_after
    records, ok, elapsed = asyncio.run(soak_until(traffic, done, min_s, hard_s, chunk_s))
    assert records is traffic.records and len(records) >= len(traffic.calls)  # none lost
    return traffic.calls, ok, elapsed


# only lower bounds on time: how much longer a loaded machine takes must not matter
def test_a_condition_met_early_still_soaks_the_minimum():
    calls, ok, elapsed = soak(ready_after=0.0)
    assert ok and calls == [0.3] and elapsed >= 0.3


def test_a_slow_condition_extends_the_soak_in_slices():
    calls, ok, elapsed = soak(ready_after=0.6)
    assert ok and calls[0] == 0.3 and len(calls) >= 2 and elapsed >= 0.6
    assert all(c <= 0.2 for c in calls[1:])


def test_a_condition_never_met_stops_at_the_hard_deadline():
    calls, ok, elapsed = soak(ready_after=None)
    assert not ok and elapsed >= 1.2 and sum(calls) <= 1.2 + 0.2  # at most one slice over
