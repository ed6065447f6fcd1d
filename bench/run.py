"""Load benchmark of /v1/score with Redis velocity features on.

One worker pinned to core 0 (``taskset``), ``wrk`` pinned to core 1, on 127.0.0.1:
saturation throughput, latency at fixed offered rates (paced by bench/score.lua),
and the time of a 1,000-transaction batch. Velocity features come from a private
redis-server (pinned to the client core) unless --redis-url is given; the audit trail
goes to a PostgreSQL schema unique to the run (dropped at the end). Nothing else on
shared servers is touched.

    python -m bench.run [--duration 15] [--rates 500,1000,2000] [--connections 32]

Prints a Markdown table and writes bench/results/<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.compare import wait_http
from bench.deps import dependencies, free_port

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "bench" / "score.lua"
KEY = "bench-key-not-a-secret"


def _wrk(port: int, seconds: int, connections: int, rate: int, run: str, core: str,
         oip_body: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "BENCH_API_KEY": KEY, "BENCH_RUN": run, "BENCH_RATE": str(rate),
           "BENCH_CONNECTIONS": str(connections)}
    script, path = LUA, "/v1/score"
    if oip_body is not None:
        env["BENCH_BODY"] = oip_body
        script, path = ROOT / "bench" / "infer.lua", "/v2/models/fraudstack/infer"
    cmd = ["taskset", "-c", core, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
           "-s", str(script), f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"BENCH_JSON (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"wrk output without BENCH_JSON:\n{out}")
    data = json.loads(match.group(1))
    data["throughput_rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["command"] = " ".join(cmd)
    return data


def _batch(port: int, n: int, repeats: int, run: str, reasons: bool = True) -> dict[str, Any]:
    import httpx
    import orjson

    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY, "Content-Type": "application/json"},
                          timeout=120)
    walls, server = [], []
    for r in range(repeats):
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        txns = [{"transaction_id": f"{run}-batch{int(reasons)}-{r}-{i}", "timestamp": now, "amount": f"{10 + i % 500}.00",
                 "currency": "EUR", "card_token": f"ctok_b{i % 700}", "customer_id": f"cust_b{i % 700}",
                 "merchant_id": f"m_{i % 300}", "mcc": "5411", "merchant_country": "DE", "card_country": "DE",
                 "channel": "online", "device_id": f"dev_b{i % 900}", "ip_address": f"10.9.{i % 250}.{r % 250}",
                 "ip_country": "DE"} for i in range(n)]
        body = orjson.dumps({"transactions": txns})
        t0 = time.perf_counter()
        resp = client.post("/v1/score/batch" + ("" if reasons else "?reasons=false"), content=body)
        walls.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
        server.append(resp.json()["timing_ms"])
    client.close()
    return {"size": n, "repeats": repeats, "reasons": reasons, "round_trip_ms_median": statistics.median(walls),
            "round_trip_ms_min": min(walls),
            "server_total_ms_median": statistics.median(s["total"] for s in server),
            "server_features_ms_median": statistics.median(s["features"] for s in server),
            "server_model_ms_median": statistics.median(s["model"] for s in server)}


def _oip_body(model_dir: Path) -> str:
    """One-row Open Inference Protocol request built from model.json's reference values."""
    meta = json.loads((model_dir / "model.json").read_text())
    row = [float(meta["reference"]["medians"][f]) for f in meta["features"]]
    return json.dumps({"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}]})


def _loop_lag(port: int, over: str = "0.025") -> dict[str, float]:
    """Wake-ups of the worker's loop-lag timer (every 0.1 s) so far, and how many came later
    than ``over`` seconds (fraudstack_event_loop_lag_seconds on /metrics)."""
    import httpx

    out = {"samples": 0.0, "late": 0.0, "over_s": float(over)}
    within = 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith("fraudstack_event_loop_lag_seconds_count "):
            out["samples"] = float(line.split()[-1])
        elif line.startswith(f'fraudstack_event_loop_lag_seconds_bucket{{le="{over}"}} '):
            within = float(line.split()[-1])
    out["late"] = out["samples"] - within
    return out


def _counters(port: int) -> dict[str, float]:
    """Scores, degraded scores and Redis errors over the whole run (from /metrics)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    out = {"scored": 0.0, "degraded": 0.0, "redis_errors": 0.0}
    for line in text.splitlines():
        if line.startswith("fraudstack_decisions_total{"):
            out["scored"] += float(line.split()[-1])
        elif line.startswith("fraudstack_degraded_scores_total "):
            out["degraded"] = float(line.split()[-1])
        elif line.startswith("fraudstack_velocity_errors_total "):
            out["redis_errors"] = float(line.split()[-1])
    return out


def _script_cost(url: str) -> float | None:
    """Redis time per single-score velocity script (EVALSHA) over the runs so far, from INFO commandstats."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha")
    finally:
        client.close()
    return float(stats["usec_per_call"]) if stats else None


def _machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg()}


def _measure(args: argparse.Namespace, run: str, model_dir: Path, data_dir: Path, prefix: str, schema: str,
             redis_url: str, database_url: str, deps: str) -> dict[str, Any]:
    """Start the worker, run every load, stop it; the results."""
    env = {**os.environ, "FRAUDSTACK_MODEL_DIR": str(model_dir), "FRAUDSTACK_REDIS_URL": redis_url,
           "FRAUDSTACK_REDIS_KEY_PREFIX": prefix, "FRAUDSTACK_API_KEYS": KEY, "FRAUDSTACK_DATA_DIR": str(data_dir),
           # The per-key limit would cap saturation; it is exercised by the tests, not measured here.
           "FRAUDSTACK_RATE_LIMIT_PER_SECOND": "0", "FRAUDSTACK_LOG_LEVEL": "WARNING"}
    if database_url:
        env["FRAUDSTACK_DATABASE_URL"] = database_url
        env["FRAUDSTACK_DATABASE_SCHEMA"] = schema
    port = free_port()
    machine = _machine()
    server = subprocess.Popen(["taskset", "-c", args.server_core, sys.executable, "-m", "app", "serve", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(data_dir / "server.log").open("wb"))
    results: dict[str, Any] = {"machine": machine, "run": run, "model_dir": str(model_dir),
                               "dependencies": deps,
                               "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        wait_http(f"http://127.0.0.1:{port}/health/ready")
        results["warmup"] = _wrk(port, 3, args.connections, 0, run + "w", args.client_core)
        # One connection, one request at a time: comparable with the sequential-client
        # figures of other model servers in /work/shared/reference/anchors.md.
        results["sequential"] = _wrk(port, args.duration, 1, 0, run + "q", args.client_core)
        results["saturation"] = _wrk(port, args.duration, args.connections, 0, run + "s", args.client_core)
        # The Open Inference Protocol on the same model: one raw row (the reference values),
        # no velocity, no audit; the request issue 9 sends to peer model servers too.
        oip = _oip_body(model_dir)
        results["oip_sequential"] = _wrk(port, args.duration, 1, 0, run, args.client_core, oip)
        results["oip_saturation"] = _wrk(port, args.duration, args.connections, 0, run, args.client_core, oip)
        results["fixed_rate"] = [
            {"offered_rps": r, **_wrk(port, args.duration, args.paced_connections, r, f"{run}r{r}", args.client_core)}
            for r in (int(x) for x in args.rates.split(",") if x)]
        # Read before the batches: their script calls (up to app.velocity.DEFAULT_CHUNK
        # transactions each) are EVALSHAs too and would mix into the per-score figure.
        results["redis_script_usec_per_call"] = _script_cost(redis_url)
        # Also before the batches, which hold the loop for tens of milliseconds by design.
        results["loop_lag"] = _loop_lag(port)
        results["batch"] = _batch(port, 1000, 20, run)
        results["batch_without_reasons"] = _batch(port, 1000, 20, run, reasons=False)
        results["counters"] = _counters(port)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        if database_url:
            results["audit"] = _audit_check(results, database_url, schema)
        _cleanup(redis_url, database_url, prefix, schema)
    return results


def _audit_check(results: dict[str, Any], database_url: str, schema: str) -> dict[str, int]:
    """Audit rows after the worker's graceful stop against the scores answered 2xx.

    wrk counts the responses it read; requests still in flight when a run ended were
    scored (and audited) without being counted, so rows may exceed answers by at most
    the connections of each run, and must never fall short of them.
    """
    import psycopg

    runs = [results.get("warmup"), results.get("sequential"), results.get("saturation"), *results.get("fixed_rate", [])]
    answered = sum(r["requests"] - r["non2xx"] for r in runs if r)
    answered += sum(b["size"] * b["repeats"] for b in (results.get("batch"), results.get("batch_without_reasons")) if b)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(f'SELECT count(*) FROM "{schema}".decisions').fetchone()[0]
    return {"rows": int(rows), "answered_2xx": int(answered)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    p.add_argument("--rates", default="500,1000,2000", help="fixed offered rates (requests/s)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections at saturation")
    p.add_argument("--paced-connections", type=int, default=64,
                   help="wrk connections for fixed-rate runs (many, so the pause after each response dominates its latency)")
    p.add_argument("--model-dir", type=Path, help="model directory (default: the demo model, built once)")
    p.add_argument("--redis-url", default="private",
                   help="Redis for velocity features (default: a private redis-server pinned to the client core)")
    p.add_argument("--database-url", default="private",
                   help="PostgreSQL for the audit trail (default: a private, durable cluster pinned to the client core; "
                        "'' for SQLite)")
    p.add_argument("--server-core", default="0")
    p.add_argument("--client-core", default="1")
    args = p.parse_args(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench: '{tool}' not found (Debian: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'})", file=sys.stderr)
            return 2
    run = "b" + uuid.uuid4().hex[:8]
    data_dir = Path(tempfile.mkdtemp(prefix="fraudstack-bench-"))
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = ROOT / "bench" / ".model"
        if not (model_dir / "model.json").is_file():
            from app.training.demo import build_demo_model

            model_dir = Path(build_demo_model(model_dir))
    prefix, schema = f"bench:{run}:", f"bench_{run}"
    with dependencies(args.redis_url, args.database_url, args.client_core) as (redis_url, database_url, deps):
        results = _measure(args, run, model_dir, data_dir, prefix, schema, redis_url, database_url, deps)
    shutil.rmtree(data_dir, ignore_errors=True)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{results['time'].replace(':', '')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(_markdown(results))
    print(f"\nraw results: {path.relative_to(ROOT)}")
    return 0


def _cleanup(redis_url: str, database_url: str, prefix: str, schema: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=5000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)
    client.close()
    if database_url:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, load average at start "
             f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}", "",
             "| run | offered (req/s) | achieved (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | p99.9 (ms) | non-2xx | socket errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = [("/v1/score sequential (1 connection)", "-", r["sequential"]), ("/v1/score saturation", "max", r["saturation"])]
    rows += [(f"/v1/score fixed rate", str(x["offered_rps"]), x) for x in r["fixed_rate"]]
    rows += [("OIP /v2/.../infer sequential", "-", r["oip_sequential"]), ("OIP /v2/.../infer saturation", "max", r["oip_saturation"])]
    for name, offered, x in rows:
        lines.append(f"| {name} | {offered} | {x['throughput_rps']:.0f} | {x['p50_us'] / 1000:.2f} | {x['p90_us'] / 1000:.2f} | "
                     f"{x['p99_us'] / 1000:.2f} | {x['p999_us'] / 1000:.2f} | {x['non2xx']} | {x['socket_errors']} |")
    c = r["counters"]
    lines += ["", f"Scores over the run: {c['scored']:.0f}; scored degraded (without velocity features): {c['degraded']:.0f}; "
              f"Redis errors/timeouts: {c['redis_errors']:.0f}; Redis CPU per velocity script: "
              f"{r.get('redis_script_usec_per_call') or float('nan'):.0f} µs (INFO commandstats)"]
    lag = r.get("loop_lag")
    if lag:
        lines.append(f"Event-loop stalls before the batches: {lag['late']:.0f} of {lag['samples']:.0f} wake-ups of the "
                     f"worker's 0.1 s lag timer came more than {lag['over_s'] * 1000:.0f} ms late "
                     "(fraudstack_event_loop_lag_seconds; the Redis timeout is 25 ms)")
    lines.append("")
    for b in (r["batch"], r["batch_without_reasons"]):
        lines.append(f"Batch of {b['size']} {'with' if b['reasons'] else 'without'} reasons (median of {b['repeats']}): "
                     f"round trip {b['round_trip_ms_median']:.1f} ms (min {b['round_trip_ms_min']:.1f}); in the service "
                     f"after parsing {b['server_total_ms_median']:.1f} ms (velocity+features {b['server_features_ms_median']:.1f} ms, "
                     f"model{'+reasons' if b['reasons'] else ''} {b['server_model_ms_median']:.1f} ms)")
    if "audit" in r:
        a = r["audit"]
        lines += ["", f"Audit trail after the worker's graceful stop: {a['rows']:,} rows for {a['answered_2xx']:,} scores "
                      "answered 2xx (rows may exceed answers by the requests in flight when each wrk run ended; never fall short)"]
    lines += ["", f"Dependencies: {r['dependencies']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
