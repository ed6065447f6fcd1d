"""Soak: ``/v1/score`` at a fixed rate for a long time, Redis and PostgreSQL on.

    python -m bench.soak [--minutes 10] [--rate N | --fraction 0.5] [--segment 30]

One worker pinned with ``taskset -c 1``, ``wrk`` with ``bench/score.lua`` pinned to
core 0, paced at ``--rate`` requests/s (default: ``--fraction`` of the /v1/score
saturation throughput of the latest ``bench/results/compare-*.json``). The run is cut
into segments of ``--segment`` seconds (one wrk run each); after each one the server's
RSS, the achieved rate, p50/p99 and the audit backlog are recorded. At the end the
server is stopped with SIGTERM and the audit rows in PostgreSQL are counted against the
requests served. Writes ``bench/results/soak-<UTC>.json``, ``docs/soak.png`` and the
``soak`` section of ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from bench.compare import (BENCH, CLIENT_CORE, ROOT, Server, cleanup_shared, ensure_model, fraudstack_env, free_port, machine,
                           run_wrk)
from bench.deps import dependencies
from bench.docs import replace_section

PLOT = ROOT / "docs" / "soak.png"


def capacity_from_compare() -> tuple[float, str]:
    """/v1/score saturation of the newest compare run, and that file's name."""
    runs = sorted((BENCH / "results").glob("compare-*.json"))
    if not runs:
        raise SystemExit("bench.soak: no bench/results/compare-*.json; run python -m bench.compare first or pass --rate")
    data = json.loads(runs[-1].read_text())
    return data["series"]["fraudstack /v1/score (velocity + audit)"]["saturation"]["throughput_rps"], runs[-1].name


def backlog(port: int) -> float:
    """fraudstack_audit_backlog from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("fraudstack_audit_backlog "):
            return float(line.split()[1])
    return float("nan")


def audit_rows(database_url: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(f'SELECT count(*) FROM "{schema}".decisions').fetchone()[0]


def plot(r: dict[str, Any], path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seg = r["segments"]
    t = [s["end_s"] / 60 for s in seg]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(t, [s["p50_us"] / 1000 for s in seg], marker="o", label="p50")
    a.plot(t, [s["p99_us"] / 1000 for s in seg], marker="s", label="p99")
    a.set_xlabel("minutes")
    a.set_ylabel("latency (ms)")
    a.set_yscale("log")
    a.grid(True, which="both", alpha=0.3)
    a.legend()
    b.plot(t, [s["rss_mb"] for s in seg], marker="o", color="tab:purple")
    b.set_xlabel("minutes")
    b.set_ylabel("server RSS (MiB)")
    b.set_ylim(0, max(s["rss_mb"] for s in seg) * 1.2)
    b.grid(True, alpha=0.3)
    fig.suptitle(f"Soak: /v1/score at {r['rate']} req/s with Redis + PostgreSQL, one worker; {r['time']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(r: dict[str, Any]) -> str:
    seg = r["segments"]
    first, last = seg[0], seg[-1]
    p99s = [s["p99_us"] / 1000 for s in seg]
    m = r["machine"]
    minutes = r["elapsed_s"] / 60
    lines = [
        f"Run of {r['time']}: `{r['command']}`"
        f" ({r['rate_source']}); raw results in `{r['raw']}`. Load average before: "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}; after: {', '.join(f'{x:.2f}' for x in r['loadavg_at_end'])}.",
        "",
        f"- ran {minutes:.1f} minutes{'' if minutes >= 9.9 else ' (shorter than the 10 minutes asked for: see below)'}, "
        f"{r['served']} scores served, {r['non2xx']} non-2xx, {r['socket_errors']} socket errors; achieved "
        f"{statistics.median(s['throughput_rps'] for s in seg):.0f} req/s (median of the segments)",
        f"- server RSS: {first['rss_mb']:.0f} MiB after the first segment, {last['rss_mb']:.0f} MiB after the last "
        f"(max {max(s['rss_mb'] for s in seg):.0f} MiB); growth over the run {last['rss_mb'] - first['rss_mb']:+.1f} MiB",
        f"- p99 per segment: median {statistics.median(p99s):.2f} ms, min {min(p99s):.2f} ms, max {max(p99s):.2f} ms; "
        f"p50 first/last segment {first['p50_us'] / 1000:.2f}/{last['p50_us'] / 1000:.2f} ms",
        f"- audit trail: {r['audit_rows']} rows in PostgreSQL after the graceful stop (exit code {r['exit_code']}) for "
        f"{r['served']} scores counted by wrk (warm-up included); wrk does not count the requests in flight when each "
        f"of its runs ends, at most {r['uncounted_max']} here: the difference, {r['audit_rows'] - r['served']}, is "
        f"{'within' if 0 <= r['audit_rows'] - r['served'] <= r['uncounted_max'] else 'OUTSIDE'} that bound; largest "
        f"audit backlog seen between segments {max(s['audit_backlog'] for s in seg):.0f}",
        "",
        "| minute | achieved (req/s) | p50 (ms) | p99 (ms) | p99.9 (ms) | RSS (MiB) | audit backlog |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in seg:
        lines.append(f"| {s['end_s'] / 60:.1f} | {s['throughput_rps']:.0f} | {s['p50_us'] / 1000:.2f} | {s['p99_us'] / 1000:.2f} | "
                     f"{s['p999_us'] / 1000:.2f} | {s['rss_mb']:.1f} | {s['audit_backlog']:.0f} |")
    lines += ["", f"![soak: latency and memory over time]({PLOT.name})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the soak."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=int, help="offered requests/s (default: --fraction of the measured capacity)")
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--segment", type=int, default=30, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--redis-url", default="private", help="Redis (default: a private redis-server on the client core)")
    p.add_argument("--database-url", default="private", help="PostgreSQL (default: a private, durable cluster on the client core; '' for SQLite)")
    p.add_argument("--section", default="soak", help="docs/BENCHMARKS.md section to write (bench/docs.py markers)")
    p.add_argument("--heading", default="Soak: /v1/score at half capacity, Redis and PostgreSQL on")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    if args.rate:
        rate, source = args.rate, "rate given"
    else:
        cap, name = capacity_from_compare()
        rate, source = int(cap * args.fraction), f"{args.fraction:g} x the /v1/score saturation of {cap:.0f} req/s in {name}"
    run = "s" + uuid.uuid4().hex[:8]
    data_dir = Path(tempfile.mkdtemp(prefix="fraudstack-soak-"))
    model_dir = ensure_model()
    r: dict[str, Any] = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                         "command": "python -m bench.soak " + shlex.join(sys.argv[1:] if argv is None else argv),
                         "rate": rate, "rate_source": source,
                         "args": {"minutes": args.minutes, "segment": args.segment, "connections": args.connections},
                         "segments": []}
    with dependencies(args.redis_url, args.database_url, CLIENT_CORE) as (redis_url, database_url, deps):
        r["dependencies"] = deps
        port = free_port()
        env = fraudstack_env(model_dir, data_dir, run, redis_url, database_url)
        server = Server("fraudstack", [sys.executable, "-m", "app", "serve", "--port", str(port)], env, port, "/health/ready")
        url = f"http://127.0.0.1:{port}/v1/score"
        started = time.monotonic()
        try:
            r["warmup"] = run_wrk(url, BENCH / "score.lua", 3, args.connections, rate, {"BENCH_RUN": run + "w"})
            i = 0
            while time.monotonic() - started < args.minutes * 60 - 1:
                seconds = max(1, min(args.segment, int(args.minutes * 60 - (time.monotonic() - started))))
                x = run_wrk(url, BENCH / "score.lua", seconds, args.connections, rate, {"BENCH_RUN": f"{run}-{i}"})
                x.update(end_s=time.monotonic() - started, rss_mb=server.rss_mb(), audit_backlog=backlog(port))
                r["segments"].append(x)
                print(f"  {x['end_s'] / 60:5.1f} min: {x['throughput_rps']:.0f} req/s, p99 {x['p99_us'] / 1000:.2f} ms, "
                      f"RSS {x['rss_mb']:.1f} MiB", file=sys.stderr, flush=True)
                i += 1
            r["elapsed_s"] = time.monotonic() - started
            server.stop()
            r["exit_code"] = server.proc.returncode
            runs = [r["warmup"], *r["segments"]]
            r["served"] = sum(s["requests"] - s["non2xx"] for s in runs)
            r["non2xx"] = sum(s["non2xx"] for s in runs)
            r["socket_errors"] = sum(s["socket_errors"] for s in runs)
            # wrk does not count the requests still in flight when each of its runs ends
            # (at most one per connection), but the server answered and audited them.
            r["uncounted_max"] = args.connections * len(runs)
            r["audit_rows"] = audit_rows(database_url, f"bench_{run}")
        finally:
            if server.proc.poll() is None:
                server.stop()
            cleanup_shared(run, redis_url, database_url)
            shutil.rmtree(data_dir, ignore_errors=True)
    r["loadavg_at_end"] = list(os.getloadavg())
    raw = BENCH / "results" / f"soak-{r['time'].replace(':', '').replace('+0000', 'Z')}.json"
    r["raw"] = str(raw.relative_to(ROOT))
    raw.write_text(json.dumps(r, indent=1))
    text = markdown(r)
    if not args.no_docs:
        plot(r, ROOT / "docs" / f"{args.section}.png")
        replace_section(args.section, text.replace(f"]({PLOT.name})", f"]({args.section}.png)"), args.heading)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
