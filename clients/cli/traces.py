"""`rlvr traces`: counts of the trace log, and a JSONL export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clients.cli.errors import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("traces", help="inspect (and export) the verified trace log")
    p.add_argument("--state-dir", type=Path, default=Path("state"))
    p.add_argument("--trace-store", default="", help="the server's trace_store, when it is "
                   "Postgres (postgresql://...)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--export", type=Path, default=None, help="write traces as JSONL")
    p.add_argument("--trainable-only", action="store_true", help="export trainable traces only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Counts of the trace log (and a JSONL export)."""
    import sqlite3

    from rlvr.store.layout import StateDir
    from rlvr.store.sqlite import damaged_sqlite_help
    from rlvr.store.traces import DamagedStore, TraceReader

    path = args.trace_store or StateDir(args.state_dir).traces
    if not args.trace_store and not path.is_file():
        raise CliError(f"no trace log at {path} (is --state-dir the server's state directory?)")
    try:
        return _print_traces(args, TraceReader(path))
    except sqlite3.DatabaseError as err:
        raise CliError(str(DamagedStore(str(path), damaged_sqlite_help(path, err)))) from None
    except DamagedStore as err:
        raise CliError(str(err)) from None


def _print_traces(args: argparse.Namespace, reader) -> int:
    from dataclasses import asdict

    try:
        stats = reader.stats()
        if args.export:
            with open(args.export, "w") as f:
                for trace in reader.iter_all():
                    if trace.trainable or not args.trainable_only:
                        f.write(json.dumps(asdict(trace)) + "\n")
            stats["exported_to"] = str(args.export)
    finally:
        reader.close()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"{stats['total']} traces, {stats['trainable']} trainable, mean reward "
              f"{stats['mean_reward'] if stats['mean_reward'] is not None else '-'}")
        print(f"  by verdict: {stats['by_verdict']}")
        print(f"  by weight version: {stats['by_weight_version']}")
    return 0
