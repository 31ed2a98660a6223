"""Training samples: one choice of a shadow request, exactly as the model saw it."""

from __future__ import annotations

from dataclasses import dataclass

from rlvr.v1 import reasoning_pb2 as pb


@dataclass
class Sample:
    prompt_ids: list[int]
    completion_ids: list[int]
    sampled_mask: list[int]  # 1 where the policy sampled the token, 0 where the runtime injected
    reward: float
    version: str


def samples_from_events(events: list[pb.GenerateEvent]) -> list[Sample]:
    """One Sample per finished choice, from the exact token ids the server reports
    (`return_tokens`): never re-tokenised text, which differs from what was sampled for any
    tokenizer with merges."""
    samples = []
    for event in events:
        if event.WhichOneof("event") != "finished":
            continue
        f, t = event.finished, event.finished.tokens
        reward = f.verification.reward if f.HasField("verification") else 0.0
        samples.append(Sample(list(t.prompt_ids), list(t.completion_ids),
                              [0 if injected else 1 for injected in t.injected], reward,
                              f.weight_version))
    return samples
