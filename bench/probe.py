"""Per-request CPU probes behind the hot-path figures in docs/BENCHMARKS.md (not run in CI).

    python -m bench.probe [--seconds 8] [--only probe,score,client,gc]

* ``probe``: worker CPU per request for a request refused at the key check, through the
  hot path (``POST /v1/score``) and through the framework (``POST /v1/feedback``): the
  cheapest request each path answers. Also a gauge of the machine's speed at the time.
* ``score``: worker CPU per ``POST /v1/score`` at saturation (16 connections), velocity
  features and the audit trail on (private Redis and durable PostgreSQL on the client
  core, ``bench/deps.py``).
* ``client``: client CPU per velocity ``observe`` through redis-py's asyncio client and
  through ``app.resp.RespClient`` (20,000 simulated transactions, 16 concurrent callers,
  one private Redis, in this process pinned to the server core).
* ``gc``: a full garbage collection over the service's start-up objects, before and
  after ``gc.freeze()``.

One worker pinned to core 0, ``wrk`` to core 1, as in ``bench.run``. Worker CPU is the
process's user + system time over the measured run (/proc), divided by the requests wrk
counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.deps import dependencies, free_port
from bench.compare import wait_http
from bench.run import KEY, LUA, ROOT

SERVER_CORE, CLIENT_CORE = "0", "1"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _model_dir() -> Path:
    model_dir = ROOT / "bench" / ".model"
    if not (model_dir / "model.json").is_file():
        from app.training.demo import build_demo_model

        build_demo_model(model_dir)
    return model_dir


def _serve(env: dict[str, str], data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    full = {**os.environ, "FRAUDSTACK_MODEL_DIR": str(_model_dir()), "FRAUDSTACK_API_KEYS": KEY,
            "FRAUDSTACK_DATA_DIR": str(data_dir), "FRAUDSTACK_RATE_LIMIT_PER_SECOND": "0",
            "FRAUDSTACK_LOG_LEVEL": "WARNING", **env}
    proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, sys.executable, "-m", "app", "serve", "--port", str(port)],
                            cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/health/ready")
    return proc, port


def _wrk(port: int, path: str, seconds: int, script: Path, env: dict[str, str]) -> int:
    out = subprocess.run(["taskset", "-c", CLIENT_CORE, "wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{port}{path}"], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r"(\d+) requests in", out)
    if match is None:
        raise RuntimeError(f"wrk output without a request count:\n{out}")
    return int(match.group(1))


def _measure(proc: subprocess.Popen[bytes], port: int, path: str, seconds: int, script: Path,
             env: dict[str, str]) -> tuple[float, float]:
    """(worker CPU µs per request, requests/s) of one wrk run after a 2 s warm-up."""
    _wrk(port, path, 2, script, env)
    before, start = _cpu_seconds(proc.pid), time.monotonic()
    n = _wrk(port, path, seconds, script, env)
    cpu, wall = _cpu_seconds(proc.pid) - before, time.monotonic() - start
    return 1e6 * cpu / n, n / wall


def probe(seconds: int) -> list[str]:
    """The 401 probe: hot path against framework."""
    data_dir = Path(tempfile.mkdtemp(prefix="fs-probe-"))
    script = data_dir / "refused.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = \'{"a": 1}\'\nwrk.headers["Content-Type"] = "application/json"\n')
    proc, port = _serve({}, data_dir)
    try:
        hot = _measure(proc, port, "/v1/score", seconds, script, {})
        framework = _measure(proc, port, "/v1/feedback", seconds, script, {})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return [f"- 401 probe, hot path (`POST /v1/score` without a key): {hot[0]:.1f} µs of worker CPU per request "
            f"({hot[1]:.0f} req/s)",
            f"- 401 probe, framework (`POST /v1/feedback` without a key): {framework[0]:.1f} µs per request "
            f"({framework[1]:.0f} req/s)"]


def score(seconds: int) -> list[str]:
    """Worker CPU per /v1/score at saturation, velocity and audit on."""
    data_dir = Path(tempfile.mkdtemp(prefix="fs-probe-"))
    run = f"probe{os.getpid()}"
    with dependencies("private", "private", CLIENT_CORE) as (redis_url, database_url, deps):
        proc, port = _serve({"FRAUDSTACK_REDIS_URL": redis_url, "FRAUDSTACK_REDIS_KEY_PREFIX": f"{run}:",
                             "FRAUDSTACK_DATABASE_URL": database_url, "FRAUDSTACK_DATABASE_SCHEMA": run}, data_dir)
        try:
            env = {"BENCH_API_KEY": KEY, "BENCH_RUN": run, "BENCH_RATE": "0", "BENCH_CONNECTIONS": "16"}
            cpu, rps = _measure(proc, port, "/v1/score", seconds, LUA, env)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return [f"- `/v1/score` at saturation (16 connections, {deps}): {cpu:.0f} µs of worker CPU per score "
            f"({rps:.0f} scores/s)"]


def client(rows: int = 20_000) -> list[str]:
    """Client CPU per velocity observe: redis-py against app.resp, same Redis, same stream."""
    import redis.asyncio as aioredis

    from app.resp import RespClient
    from app.training.simulate import SimulationArgs, simulate
    from app.velocity import RedisVelocityStore

    os.sched_setaffinity(0, {int(SERVER_CORE)})
    df = simulate(SimulationArgs(rows=rows, seed=5, days=8)).sort_values("timestamp")
    txns = df.to_dict("records")
    for t in txns:
        t["timestamp"] = int(t["timestamp"].value // 10**6)
    lines = []
    with dependencies("private", "", CLIENT_CORE) as (redis_url, _, _deps):
        for name, make in (("redis-py", lambda: aioredis.from_url(redis_url)),
                           ("app.resp.RespClient", lambda: RespClient(redis_url, timeout=2.0))):
            async def main() -> float:
                conn = make()
                store = RedisVelocityStore(conn, key_prefix=f"probe:{name}", timeout=2.0)
                await store.observe(txns[0])
                pending = iter(txns[1:])

                async def caller() -> None:
                    for txn in pending:
                        await store.observe(txn)

                start = time.process_time()
                await asyncio.gather(*[caller() for _ in range(16)])
                used = time.process_time() - start
                await conn.aclose()
                return 1e6 * used / (len(txns) - 1)

            lines.append(f"- velocity `observe` through {name}: {asyncio.run(main()):.1f} µs of client CPU per call "
                         f"({rows:,} transactions, 16 concurrent callers)")
    return lines


def collector() -> list[str]:
    """A full collection over the start-up objects, before and after gc.freeze()."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="fs-probe-"))
    gc.unfreeze()
    app = create_app(Settings(model_dir=_model_dir(), api_keys=[KEY], data_dir=data_dir))
    with TestClient(app):
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        start = time.perf_counter()
        gc.collect()
        before = time.perf_counter() - start
        gc.freeze()
        start = time.perf_counter()
        gc.collect()
        after = time.perf_counter() - start
    return [f"- full garbage collection with the start-up objects in the collector: {1000 * before:.1f} ms; "
            f"frozen ({frozen:,} objects at start-up): {1000 * after:.2f} ms"]


def main(argv: list[str] | None = None) -> int:
    """Run the chosen probes and print their lines."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=8, help="seconds per measured wrk run")
    p.add_argument("--only", default="probe,score,client,gc", help="comma-separated: probe, score, client, gc")
    args = p.parse_args(argv)
    chosen = set(args.only.split(","))
    unknown = chosen - {"probe", "score", "client", "gc"}
    if unknown:
        p.error(f"--only: unknown probe(s) {', '.join(sorted(unknown))}")
    print(f"bench.probe {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "probe" in chosen:
        print("\n".join(probe(args.seconds)), flush=True)
    if "score" in chosen:
        print("\n".join(score(args.seconds)), flush=True)
    if "client" in chosen:
        print("\n".join(client()), flush=True)
    if "gc" in chosen:
        print("\n".join(collector()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
