"""Put the newest ``python -m bench.run`` results into docs/BENCHMARKS.md.

    python -m bench.run && python -m bench.service_section ["the bench.run command, for the text"] [results.json]

Rewrites the ``service-bench`` section (bench/docs.py markers) with that run's table and
the machine-readable capacity line read by ``python -m tools.capacity`` (delivery):
``<!-- capacity: scores_per_worker_per_s=<saturation req/s> p99_ms=<p99 at saturation>
p99_at_rps=<saturation req/s> -->``. After it changes, regenerate docs/CAPACITY.md with
``python -m tools.capacity``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.docs import replace_section
from bench.run import _markdown

RESULTS = Path(__file__).resolve().parent / "results"


def capacity_line(r: dict) -> str:
    """The one line tools.capacity parses: saturation throughput of one worker and its p99 there."""
    sat = r["saturation"]
    rps = round(sat["throughput_rps"])
    return f"<!-- capacity: scores_per_worker_per_s={rps} p99_ms={sat['p99_us'] / 1000:.2f} p99_at_rps={rps} -->"


def main() -> int:
    """Write the section from the newest bench.run result (or the one named second)."""
    runs = [Path(sys.argv[2])] if len(sys.argv) > 2 else sorted(RESULTS.glob("2*.json"))
    if not runs:
        print("bench.service_section: no bench/results/<time>.json; run python -m bench.run first", file=sys.stderr)
        return 2
    r = json.loads(runs[-1].read_text())
    command = sys.argv[1] if len(sys.argv) > 1 else "python -m bench.run"
    load = r["machine"]["loadavg_at_start"]
    body = "\n".join([
        f"Run of {r['time']} (`{command}`), raw results in `bench/results/{runs[-1].name}`; "
        f"load average at the start {', '.join(f'{x:.2f}' for x in load)}.",
        "", _markdown(r), "",
        "Machine-readable figures of this run for the capacity model (`python -m tools.capacity` turns them into "
        "`docs/CAPACITY.md`; `python -m bench.service_section` rewrites this line with every run): saturation "
        "throughput of the one worker, and its p99 at that rate.", "",
        capacity_line(r),
    ])
    replace_section("service-bench", body, "Scoring service: results of python -m bench.run")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
