"""Argument types of the `rlvr` command line: each turns bad input into a one-line usage error."""

from __future__ import annotations

import argparse
from pathlib import Path


def budgets(text: str) -> list[int | None]:
    from runtime.budget import parse_budget

    try:
        return [parse_budget(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"budgets are non-negative integers or 'unlimited', comma separated ({err})")


def model_dir(text: str) -> Path:
    path = Path(text)
    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a model folder (no config.json)")
    return path


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def finite_float(text: str, minimum: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > minimum if strict else value >= minimum) or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a finite number {'>' if strict else '>='} {minimum:g}, got {text}")
    return value


def positive_float(text: str) -> float:
    return finite_float(text, 0.0, strict=True)


def non_negative_float(text: str) -> float:
    return finite_float(text, 0.0, strict=False)


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def names(text: str) -> list[str]:
    """Comma-separated names (their meaning is checked where they are used)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected one or more names, comma separated")
    return parts
