"""Time the pack over plan files: ``python -m policies.bench out/staging.json out/production.json``.

Each plan (written by ``python -m tools.preview --stack S --json FILE``) is evaluated with
its stack's policy config ``--repeat`` times; prints resources, violations and the best and
median wall time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from .engine import evaluate, load_config


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m policies.bench", description=__doc__.splitlines()[0])
    parser.add_argument("plans", nargs="+", type=Path, help="plan JSON files")
    parser.add_argument("--repeat", type=int, default=5, help="evaluations per plan (default 5)")
    args = parser.parse_args(argv)
    total = 0.0
    for path in args.plans:
        plan = json.loads(path.read_text(encoding="utf-8"))
        stack = plan.get("stack", "production")
        config = load_config(stack)
        times, found = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            found = evaluate(plan["resources"], config, project=plan.get("project", "fraudstack"), stack=stack)
            times.append(time.perf_counter() - start)
        total += statistics.median(times)
        print(f"{path}: stack {stack}, {len(plan['resources'])} resources, {len(found)} violations, "
              f"best {min(times) * 1000:.1f} ms, median {statistics.median(times) * 1000:.1f} ms")
    print(f"all plans (median sum): {total * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
