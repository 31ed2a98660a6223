"""`rlvr ask`: one prompt to a running server; prints the thinking and the answer."""

from __future__ import annotations

import argparse
import json
import sys

from clients import arguments
from clients.cli.errors import CliError, env_token


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="send one prompt to a running server")
    p.add_argument("prompt")
    p.add_argument("--server", default="localhost:50051")
    p.add_argument("--budget", type=arguments.non_negative_int, default=None,
                   help="max thinking tokens (0 = no thinking)")
    p.add_argument("--min-thinking", type=arguments.non_negative_int, default=None)
    p.add_argument("--effort", choices=["low", "medium", "high"], default=None)
    p.add_argument("--max-answer-tokens", type=arguments.non_negative_int, default=None)
    p.add_argument("--temperature", type=float, default=None,
                   help="0 = greedy (the server checks the range)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--request-id", default=None)
    p.add_argument("--token", default=None, help="bearer token (default: $RLVR_TOKEN)")
    p.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    p.add_argument("--verify", default=None, metavar="KIND:REFERENCE",
                   help="verify the answer at serve time, e.g. numeric:46 or choice:B")
    p.add_argument("--n", type=arguments.non_negative_int, default=None, help="number of choices")
    p.add_argument("--best-of-n", action="store_true",
                   help="with --verify and --n: return only the best verified choice")
    p.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Send one prompt and print the thinking and the answer (or one JSON object)."""
    from clients.client import Client, RlvrError, collect

    options = {"budget": args.budget, "min_thinking": args.min_thinking, "effort": args.effort,
               "max_answer_tokens": args.max_answer_tokens, "temperature": args.temperature,
               "seed": args.seed, "request_id": args.request_id or "", "verify": args.verify,
               "n": args.n, "best_of_n": args.best_of_n}
    with Client(args.server, token=env_token(args.token, "RLVR_TOKEN")) as client:
        try:
            events = client.stream(args.prompt, timeout=args.timeout, **options)
            if args.stream and not args.json:
                events = _echo(events)
            results = collect(events)
        except RlvrError as err:
            raise CliError(f"{args.server}: {err}") from None
        except ValueError as err:
            raise CliError(str(err)) from None
    result = results[0]
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not args.stream:
        print(f"<think>{result.thinking}</think>")
        print(result.answer)
    if result.verification and not args.json:
        v = result.verification
        print(f"[verified {v['kind']}: {v['verdict']} (reward {v['reward']:g}, extracted "
              f"{v['extracted_answer']!r}); {result.verified_correct} of {len(results)} "
              "choices correct]", file=sys.stderr)
    print(f"[{result.thinking_end} thinking, {result.usage.thinking_tokens} thinking tokens, "
          f"{result.usage.answer_tokens} answer tokens, finish {result.finish_reason}, "
          f"weights {result.weight_version}]", file=sys.stderr)
    return 0


def _echo(events):
    """Print deltas as they arrive while passing the events through."""
    from rlvr.v1 import reasoning_pb2 as pb

    in_thinking = False
    for event in events:
        if event.WhichOneof("event") == "delta":
            thinking = event.delta.channel == pb.CHANNEL_THINKING
            if thinking and not in_thinking:
                print("<think>", end="")
            if not thinking and in_thinking:
                print("</think>")
            in_thinking = thinking
            print(event.delta.text, end="", flush=True)
        yield event
    print()
