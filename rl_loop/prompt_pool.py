"""The trainer's prompts: recent trainable traffic, sampled where the signal is.

A GRPO group teaches only when its rewards differ, that is when the policy sometimes solves
the prompt at that budget. Every (prompt, thinking budget) keeps an estimate of its pass
rate from what was seen of it: the users' verified choices and each shadow group sampled for
it (older evidence counts half at every new group, as the policy moves). A prompt is drawn
with weight 4·p·(1-p), p the Beta(1, 1) posterior mean (the expected reward variance, 1 at
p = 1/2), never below `FLOOR`, so prompts once always right or always wrong are retried now
and then. With `weighted=False` every prompt has the same weight (the old uniform draw).
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from dataclasses import dataclass

from rlvr.store.traces import ThinkingOptions

FLOOR = 0.05   # the smallest draw weight: a prompt that never had signal is still retried
DECAY = 0.5    # what older evidence counts for when a new group arrives

Item = tuple[str, dict, ThinkingOptions]  # (prompt, verification spec, thinking options)


@dataclass
class _Entry:
    item: Item
    correct: float = 0.0
    seen: float = 0.0

    @property
    def weight(self) -> float:
        p = (self.correct + 1.0) / (self.seen + 2.0)
        return max(FLOOR, 4.0 * p * (1.0 - p))


def _key(item: Item) -> str:
    prompt, spec, options = item
    return json.dumps([prompt, spec, options.budget, options.max_answer_tokens],
                      sort_keys=True)


class PromptPool:
    def __init__(self, size: int, weighted: bool = True):
        self.size, self.weighted = size, weighted
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        """The items, oldest first."""
        return (e.item for e in list(self._entries.values()))

    def add(self, item: Item, reward: float | None = None) -> None:
        """A trainable trace's prompt (newest last; beyond `size` the oldest is dropped)."""
        key = _key(item)
        entry = self._entries.pop(key, None) or _Entry(item)
        if reward is not None:
            entry.correct, entry.seen = entry.correct + reward, entry.seen + 1
        self._entries[key] = entry
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def record(self, item: Item, rewards: list[float]) -> None:
        """A shadow group's rewards for `item` (ignored if it left the pool meanwhile)."""
        if (entry := self._entries.get(_key(item))) is not None and rewards:
            entry.correct = DECAY * entry.correct + sum(rewards)
            entry.seen = DECAY * entry.seen + len(rewards)

    def weight(self, item: Item) -> float:
        return self._entries[_key(item)].weight if self.weighted else 1.0

    def sample(self, k: int, rng: random.Random) -> list[Item]:
        """Up to `k` distinct items, drawn by weight without replacement (Efraimidis-Spirakis:
        the k largest u^(1/w))."""
        entries = list(self._entries.values())
        keyed = sorted(entries, key=lambda e: rng.random() ** (
            1.0 / (e.weight if self.weighted else 1.0)), reverse=True)
        return [e.item for e in keyed[:k]]
