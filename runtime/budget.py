"""Thinking-budget semantics: from a request's thinking options to an exact, enforceable plan.

The contract, for every choice of every request:
- thinking tokens (sampled plus injected) never exceed the budget; 0 disables thinking;
- when the budget runs out, the wrap-up text is injected (if it fits in what is left of the
  budget; the server's default one only if it takes at most `wrap_up_share` of the budget)
  and `</think>` is forced; the answer then gets its own `max_answer_tokens`;
- below `min_tokens`, an attempt to close thinking is replaced by the continuation text (s1's
  "Wait") and thinking goes on, as far as the budget and the context allow.
"""

from __future__ import annotations

from dataclasses import dataclass

# Injected before a forced `</think>` when the budget runs out (counts inside the budget).
# Short on purpose: with a character-level model every character is a thinking token.
DEFAULT_WRAP_UP = "\nTime is up.\n"

# Injected instead of `</think>` while thinking is shorter than the request's minimum (s1).
DEFAULT_CONTINUATION = "Wait"

EFFORTS = ("low", "medium", "high")


class InvalidRequest(ValueError):
    """A request field the client got wrong; `field` names it (maps to INVALID_ARGUMENT)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class ThinkingPlan:
    """What the generation loop enforces for one request, in tokens."""

    budget: int                    # max thinking tokens (after the context clamp); 0 = disabled
    min_tokens: int                # thinking shorter than this cannot close
    answer_tokens: int             # max tokens after `</think>`
    wrap_up_ids: tuple[int, ...]   # injected before a forced close, when it fits
    continuation_ids: tuple[int, ...]
    requested_budget: int          # the budget the client asked for (or the default)

    @property
    def sampled_cap(self) -> int:
        """Thinking tokens after which the close is forced: room is left for the wrap-up, but
        never below `min_tokens` (the wrap-up is then dropped if it no longer fits)."""
        wrap = len(self.wrap_up_ids)
        cap = self.budget - wrap if 0 < wrap <= self.budget else self.budget
        return max(cap, self.min_tokens)

    def wrap_up_for(self, thinking_tokens: int) -> tuple[int, ...]:
        """The wrap-up ids to inject at a forced close, or () when they would not fit."""
        fits = thinking_tokens + len(self.wrap_up_ids) <= self.budget
        return self.wrap_up_ids if fits else ()

    def continuation_for(self, thinking_tokens: int) -> tuple[int, ...]:
        """Continuation ids to inject at an early close, cut to what the budget leaves."""
        return self.continuation_ids[: max(0, self.budget - thinking_tokens)]


def budget_label(budget: int | None) -> str:
    """How reports name a budget: its number, or "unlimited" for None."""
    return "unlimited" if budget is None else str(budget)


def parse_budget(text: str) -> int | None:
    """'unlimited' -> None, otherwise a non-negative integer."""
    if text.strip().lower() in ("unlimited", "none", "inf"):
        return None
    value = int(text)
    if value < 0:
        raise ValueError(f"thinking budget must be >= 0 or 'unlimited', got {text!r}")
    return value


def _non_negative(field: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise InvalidRequest(field, f"must be >= 0, got {value}")


def resolve_budget(budget: int | None, effort: str | None, *, default: int, maximum: int,
                   presets: dict[str, int]) -> int:
    """The requested budget from `budget` or `effort` (mutually exclusive) or the default."""
    if budget is not None and effort is not None:
        raise InvalidRequest("thinking.effort", "set either thinking.budget or thinking.effort, "
                             "not both")
    if effort is not None:
        if effort not in presets:
            raise InvalidRequest("thinking.effort", f"unknown effort {effort!r} "
                                 f"(one of {', '.join(presets)})")
        return presets[effort]
    if budget is None:
        return default
    _non_negative("thinking.budget", budget)
    if budget > maximum:
        raise InvalidRequest("thinking.budget", f"{budget} exceeds the server maximum {maximum}")
    return budget


def make_plan(*, requested_budget: int, min_tokens: int | None, max_answer_tokens: int,
              prompt_tokens: int, context_length: int, wrap_up_ids: list[int],
              continuation_ids: list[int], budget_fits: bool = False,
              answer_fits: bool = False, wrap_up_share: float | None = None) -> ThinkingPlan:
    """Fit a validated request into the context and return its plan.

    Nothing the client set explicitly is cut: a `budget`, `min_tokens` or `max_answer_tokens`
    that does not fit after the prompt is InvalidRequest naming the field and the room left.
    Values the client left to the server (`budget_fits` / `answer_fits`: the server default or
    an effort preset) mean "as much as fits": they are reduced to the room, and the response
    reports the effective values. `wrap_up_share` (for the server's default wrap-up; None for
    one the client set): the wrap-up is dropped when it would take more than this share of
    the budget, so a tight budget is left to the model's own thinking."""
    _non_negative("thinking.min_tokens", min_tokens)
    min_tokens = min_tokens or 0
    if min_tokens > requested_budget:
        raise InvalidRequest("thinking.min_tokens",
                             f"{min_tokens} exceeds the thinking budget {requested_budget}")
    if max_answer_tokens < 1:
        raise InvalidRequest("max_answer_tokens", f"must be >= 1, got {max_answer_tokens}")
    if min_tokens > 0 and not continuation_ids:
        raise InvalidRequest("thinking.continuation", "must not be empty when min_tokens > 0")
    room = context_length - prompt_tokens - 1  # one slot for `</think>`
    if room < 1:
        raise InvalidRequest("prompt", f"{prompt_tokens} prompt tokens leave no room in the "
                             f"model's context of {context_length} tokens")
    left = f"the prompt ({prompt_tokens} tokens) leaves {room} of the model's {context_length}"
    if max_answer_tokens > room and not answer_fits:
        raise InvalidRequest("max_answer_tokens", f"{max_answer_tokens} does not fit: {left}")
    answer = min(max_answer_tokens, room)
    if requested_budget > room - answer and not budget_fits:
        raise InvalidRequest("thinking.budget", f"{requested_budget} thinking tokens plus "
                             f"{answer} answer tokens do not fit: {left}")
    budget = min(requested_budget, room - answer)
    if min_tokens > budget:
        raise InvalidRequest("thinking.min_tokens", f"{min_tokens} does not fit: {left}, "
                             f"{budget} after {answer} answer tokens")
    if wrap_up_share is not None and len(wrap_up_ids) > wrap_up_share * budget:
        wrap_up_ids = []
    return ThinkingPlan(budget=budget, min_tokens=min_tokens,
                        answer_tokens=answer, wrap_up_ids=tuple(wrap_up_ids),
                        continuation_ids=tuple(continuation_ids),
                        requested_budget=requested_budget)
