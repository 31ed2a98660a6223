"""`rlvr traffic`: synthetic verified traffic from the embedded task families."""

from __future__ import annotations

import argparse
import json

from clients import arguments
from clients.cli.errors import env_token


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("traffic", help="send synthetic verified traffic to a server")
    p.add_argument("--server", default="localhost:50051")
    p.add_argument("--rate", type=arguments.positive_float, default=4.0, help="requests per second")
    p.add_argument("--duration", type=arguments.positive_float, default=60.0, help="seconds")
    p.add_argument("--token", default=None, help="bearer token (default: $RLVR_TOKEN)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Synthetic verified traffic from the embedded task families."""
    import asyncio

    from rl_loop.toy.traffic import run_traffic

    token = env_token(args.token, "RLVR_TOKEN")
    report = asyncio.run(run_traffic(args.server, args.rate, args.duration, token, args.seed))
    print(json.dumps(report, indent=2))
    return 0
