"""`rlvr cluster`: serving replicas and a trainer placed by Ray (`clients/ray_cluster.py`)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from clients import arguments
from clients.cli.errors import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="N serving replicas and one trainer on a Ray cluster, "
                                       "one consistent promotion")
    p.add_argument("--replicas", type=arguments.positive_int, default=2)
    p.add_argument("--trace-store", required=True, help="postgresql://... shared by all")
    p.add_argument("--checkpoint-store", required=True,
                   help="a folder every node reaches, or s3://bucket/prefix")
    p.add_argument("--address", default="auto", help="the Ray cluster (auto: the one `ray "
                   "start` runs here; '' starts a local one)")
    p.add_argument("--state-root", type=Path, default=Path("cluster-state"),
                   help="replica i keeps its state in STATE_ROOT/replica-i on its node")
    p.add_argument("--base-port", type=arguments.positive_int, default=50051,
                   help="replica i listens on BASE_PORT + i")
    p.add_argument("--metrics-base-port", type=arguments.positive_int, default=9090,
                   help="replica i serves /metrics on METRICS_BASE_PORT + i")
    p.add_argument("--config", type=Path, default=None, help="the replicas' TOML settings")
    p.add_argument("--trainer-config", type=Path, default=None,
                   help="the trainer's TOML settings")
    p.add_argument("--no-train", dest="train", action="store_false", help="serve only")
    p.add_argument("--cpus-per-replica", type=arguments.positive_float, default=1.0)
    p.add_argument("--gpus-per-replica", type=arguments.non_negative_float, default=0.0)
    p.add_argument("--trainer-cpus", type=arguments.non_negative_float, default=0.0)
    p.add_argument("--trainer-gpus", type=arguments.non_negative_float, default=0.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start everything, print the address clients use, run until SIGTERM/SIGINT."""
    import ray

    from clients.ray_cluster import ClusterPlan, RayCluster
    from runtime.config import ConfigError

    from rlvr.store.traces import is_postgres

    if not is_postgres(args.trace_store):
        raise CliError(f"--trace-store must be a postgresql:// URL (the replicas' shared trace "
                       f"store and promotion record), got {args.trace_store!r}")
    plan = ClusterPlan(args.replicas, args.trace_store, args.checkpoint_store,
                       args.state_root.resolve(), args.base_port, args.metrics_base_port,
                       args.config,
                       args.cpus_per_replica, args.gpus_per_replica, args.train,
                       args.trainer_cpus, args.trainer_gpus, args.trainer_config)
    try:
        ray.init(address=args.address or None, include_dashboard=False)
    except ConnectionError as err:
        raise CliError(f"--address {args.address!r}: no Ray cluster ({err}); run `ray start "
                       "--head` first, or pass --address '' for a local one") from None
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        cluster = RayCluster(plan).start()
    except (ConfigError, RuntimeError) as err:
        raise CliError(str(err)) from None
    print(f"serving on {cluster.address} ({args.replicas} replicas"
          f"{', one trainer' if args.train else ''}); Ctrl-C stops", flush=True)
    stopping.wait()
    print(f"stopped: {cluster.stop()}")
    return 0
