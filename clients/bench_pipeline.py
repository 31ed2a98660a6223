"""The trainer's pipeline against its one-after-another loop, on the same demo run length.

Runs `rlvr demo` twice with the same traffic seed, duration and settings: once with
`--no-pipeline` (sample, train, gate in series), once with the pipeline (the next batch is
sampled and candidates are gated while a step trains). Per run: optimizer steps, samples
trained, promotions, what the loop waited for and what its work took, the lag of trained
rows, user latency with training on and paused, and the time to each held-out level (the
full held-out set, every promoted version scored afterwards). The speedup is steps per second
and time to the levels of the pipeline over the series loop, from the same invocation.

    python -m clients.bench_pipeline --duration 600 --out docs/bench/pipeline.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clients.demo import DemoConfig, run_demo, time_to

LEVELS = (0.86, 0.88, 0.9)
MODES = {"series": {"pipeline": False}, "pipeline": {"pipeline": True}}


def summary(report: dict, duration_s: float) -> dict:
    """The numbers of one demo run that the comparison needs."""
    phases = report.get("trainer_phases", {})
    steps = phases.get("step", 0)
    return {"steps": steps, "steps_per_min": round(60 * steps / duration_s, 2),
            "promoted": len(report["curve"]) - 1, "rejected": len(report["rejected"]),
            "best_heldout": max(p.get("heldout", {}).get("unlimited", 0.0)
                                for p in report["curve"]),
            "time_to_heldout_s": {str(level): time_to(report["curve"], level,
                                                      measure=report["measure"])
                                  for level in LEVELS},
            "latency": report["latency"], **{k: phases.get(k) for k in (
                "phase_seconds", "busy_seconds", "lag_versions", "lag_steps")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--paused", type=float, default=60.0)
    parser.add_argument("--work", type=Path, default=Path("build/bench-pipeline"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = {}
    for mode, trainer in MODES.items():
        report = run_demo(DemoConfig(out_dir=args.work / mode, duration_s=args.duration,
                                     paused_s=args.paused, trainer=trainer))
        runs[mode] = summary(report, args.duration)
        print(mode, json.dumps(runs[mode]), flush=True)
    series, pipeline = runs["series"], runs["pipeline"]
    result = {"duration_s": args.duration, "runs": runs,
              "steps_speedup": round(pipeline["steps"] / max(1, series["steps"]), 2)}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
