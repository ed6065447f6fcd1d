"""Spread of several ``python -m bench.run`` results: one row per run, then medians.

    for i in 1 2 3 4 5; do python -m bench.run --duration 8 --rates 1000; done
    python -m bench.repeats bench/results/<time>.json ...

Single runs of the saturation and fixed-rate figures on a small shared machine move
by several percent (saturation) and by up to 3x (p99 at 1,000/s) from run to run, so a
target is judged on the spread of several runs, not on one.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print("bench.repeats: name the bench/results/<time>.json files of the runs", file=sys.stderr)
        return 2
    rows = []
    print("| run | saturation (scores/s) | p99 at saturation (ms) | p99 at 1,000/s (ms) | degraded scores | 1,000-txn batch (ms, median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in paths:
        r = json.loads(path.read_text())
        at_1000 = next((f for f in r["fixed_rate"] if f["offered_rps"] == 1000), None)
        row = (round(r["saturation"]["throughput_rps"]), r["saturation"]["p99_us"] / 1000,
               at_1000["p99_us"] / 1000 if at_1000 else float("nan"), int(r["counters"]["degraded"]),
               r["batch"]["round_trip_ms_median"])
        rows.append(row)
        print(f"| {path.name} | {row[0]} | {row[1]:.2f} | {row[2]:.2f} | {row[3]} | {row[4]:.1f} |")
    med = [statistics.median(col) for col in zip(*rows)]
    print(f"| median of {len(rows)} | {med[0]:.0f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.0f} | {med[4]:.1f} |")
    print(f"\nsaturation >= 3,000/s in {sum(r[0] >= 3000 for r in rows)} of {len(rows)} runs; "
          f"p99 at 1,000/s < 5 ms in {sum(r[2] < 5 for r in rows)} of {len(rows)}; "
          f"runs with degraded scores: {sum(r[3] > 0 for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
