"""`rlvr status`, `rlvr promote`, `rlvr rollback`: the Admin service (admin token)."""

from __future__ import annotations

import argparse
import json

from clients.cli.errors import CliError, env_token


def add_parser(sub: argparse._SubParsersAction) -> None:
    for name, text in (("status", "weight versions, gate results and trainer state"),
                       ("promote", "hot-swap a published version into serving"),
                       ("rollback", "go back to the previously promoted version")):
        p = sub.add_parser(name, help=text)
        if name == "promote":
            p.add_argument("version")
        p.add_argument("--server", default="localhost:50051")
        p.add_argument("--token", default=None,
                       help="admin token (default: $RLVR_ADMIN_TOKEN, then $RLVR_TOKEN)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """status / promote / rollback through the Admin service (admin token required)."""
    from clients.client import Client, RlvrError

    token = env_token(args.token, "RLVR_ADMIN_TOKEN", "RLVR_TOKEN")
    with Client(args.server, token=token) as client:
        try:
            if args.command == "promote":
                swap = client.promote(args.version)
            elif args.command == "rollback":
                swap = client.rollback()
            else:
                listing, training = client.list_versions(), client.training_status()
        except RlvrError as err:
            raise CliError(f"{args.server}: {err}") from None
    if args.command in ("promote", "rollback"):
        report = {"previous": swap.previous, "current": swap.current,
                  "swap_ms": round(1000 * swap.swap_seconds, 1)}
    else:
        report = {"current": listing.current, "history": list(listing.history),
                  "versions": [{"version": v.version, "parent": v.parent, "step": v.step,
                                "status": v.status, "reason": v.reason,
                                "metrics": json.loads(v.metrics_json or "{}")}
                               for v in listing.versions],
                  "trainer": {"state": training.state, "paused": training.paused,
                              **json.loads(training.status_json or "{}")}}
    print(json.dumps(report, indent=2) if args.json or args.command == "status"
          else f"{report['previous']} -> {report['current']} ({report['swap_ms']} ms)")
    return 0
