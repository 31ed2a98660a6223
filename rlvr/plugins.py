"""What a model folder offers beyond its weights, registered by name, never imported by name.

A model folder may hold `rlvr_plugins.json`, mapping a plug-in point to a `module:function`
import path (the embedded model registers its task families this way):
- `reference_check(prompt_text) -> str | None`: the correct answer to a prompt, computed by
  the deployment itself; the runtime's trust check compares the client's reference with it
  (None: it does not know the prompt);
- `validation_items(n) -> list[dict]`: built-in validation items for the promotion gate
  (keys of `rl_loop.gate.ValidationItem`), beside those held out of the traffic.
Serving and training code call these through `load()`, so neither imports the toy world.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable

FILE = "rlvr_plugins.json"
POINTS = ("reference_check", "validation_items")


class PluginError(ValueError):
    """A plug-in file that names an unknown point or an import path that does not resolve."""


def load(model_dir: Path, point: str) -> Callable | None:
    """The function registered for `point` by the model folder, or None."""
    path = Path(model_dir) / FILE
    if point not in POINTS:
        raise PluginError(f"unknown plug-in point {point!r} (one of {', '.join(POINTS)})")
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())
        target = entries.get(point) if isinstance(entries, dict) else None
    except (OSError, ValueError) as err:
        raise PluginError(f"{path}: {err}") from None
    if target is None:
        return None
    module, _, name = str(target).partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise PluginError(f"{path}: {point} = {target!r} does not resolve ({err})") from None
