"""Micro-benchmark of the Redis velocity script (not run in CI).

Replays a simulated transaction stream (``app.training.simulate``, time order)
through ``RedisVelocityStore.observe`` against a PRIVATE redis-server on a free
port (``--save "" --appendonly no``, stopped at the end), then times
1,000-transaction batches (``observe_matrix``, what the service calls; ``observe_many``
for a revision without it). The store talks to Redis through
``app.resp.RespClient``, as the service does (``--client redis-py`` for redis-py's
asyncio client). Reports per call: client latency p50/p99 of ``observe``, Redis
CPU per script call (``INFO commandstats``: evalsha usec_per_call, and the
redis-server process's CPU time per call from /proc, which a shared machine
disturbs less) and Redis commands run per script call (all other ``cmdstat_*``
calls / evalsha calls), with the costliest commands per call.

For the batches it also reports the script calls per batch, Redis time per batch
script call (how long one call keeps Redis from serving anyone else) and per
transaction (commandstats), and the redis-server process's CPU per batch transaction;
``--chunk N`` sets the working tree's transactions per batch script call (its
``chunk_size``; default ``app.velocity.DEFAULT_CHUNK``).

``--ref REV`` also measures ``app/velocity.py`` as of git revision REV (loaded
into a temporary module) in the same run, on the same server after a FLUSHALL,
and checks that both return identical features for every transaction.
``--repeat N`` measures each store N times, alternating, and reports medians.

    python -m bench.velocity_script [--rows 20000] [--days 8] [--ref REV] [--repeat 3] [--chunk N]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.deps import free_port

ROOT = Path(__file__).resolve().parent.parent
# Commands the benchmark itself sends; not part of a script call's cost.
_OWN = {"cmdstat_evalsha", "cmdstat_eval", "cmdstat_script", "cmdstat_info", "cmdstat_config",
        "cmdstat_flushall", "cmdstat_ping", "cmdstat_client", "cmdstat_hello", "cmdstat_select"}


def _load_ref(rev: str) -> Any:
    """``app/velocity.py`` as of ``rev``, imported as a separate module."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:app/velocity.py"], check=True,
                         capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="velref-")) / "velocity_ref.py"
    tmp.write_text(src)
    spec = importlib.util.spec_from_file_location("velocity_ref", tmp)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shutil.rmtree(tmp.parent)
    return mod


def _records(rows: int, days: int, seed: int) -> list[dict[str, Any]]:
    from app.training.simulate import SimulationArgs, simulate

    df = simulate(SimulationArgs(rows=rows, days=days, seed=seed))
    cols = ["transaction_id", "timestamp", "amount", "currency", "card_token", "customer_id", "merchant_id",
            "mcc", "merchant_country", "card_country", "channel", "device_id", "ip_address", "ip_country"]
    recs = df[[c for c in cols if c in df.columns]].to_dict("records")
    for r in recs:
        r["timestamp"] = r["timestamp"].isoformat()
        for k, v in list(r.items()):
            if isinstance(v, float) and v != v:
                r[k] = None
    return recs


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _observe_batch(store: Any, batch: list[dict[str, Any]], client: Any) -> Any:
    """A batch's velocity features as the service asks for them: ``observe_matrix`` (a
    matrix), or before it existed ``observe_many`` (dicts)."""
    matrix = getattr(store, "observe_matrix", None)
    if matrix is not None:
        return await matrix(batch, timeout=30.0)
    many = getattr(store, "observe_many", None)
    if many is not None:
        return await many(batch, timeout=30.0)
    # the old store had no observe_many: what the service did instead (one pipeline)
    from app.features import VELOCITY_FEATURES

    pipe = client.pipeline(transaction=False)
    for raw in batch:
        keys, args = store._keys_args(raw)
        await store._script(keys=keys, args=args, client=pipe)
    out = []
    for reply in await pipe.execute():
        out.append({n: float(v) for n, v in zip(VELOCITY_FEATURES, reply.decode().split(","))})
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(mod: Any, url: str, pid: int, recs: list[dict[str, Any]], batch_size: int,
                   batches: int, client_kind: str, chunk: int = 0) -> tuple[dict[str, float], list[dict[str, float]]]:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)  # FLUSHALL, INFO, CONFIG; the store's own client below
    if client_kind == "resp":
        from app.resp import RespClient

        store_client: Any = RespClient(url, timeout=30.0)
    else:
        store_client = client
    try:
        await client.flushall()
        options = {"chunk_size": chunk} if chunk and "chunk_size" in inspect.signature(mod.RedisVelocityStore).parameters else {}
        store = mod.RedisVelocityStore(store_client, key_prefix="bench:vel", timeout=5.0, result_ttl=900, **options)
        await store.observe(dict(recs[0], transaction_id="warm-up"))  # loads the script
        if hasattr(store, "observe_many"):  # and the batch's (a script of its own since the chunked batches)
            await store.observe_many([dict(recs[0], transaction_id="warm-up-batch")])
        await client.flushall()
        await client.config_resetstat()
        cpu0 = _cpu_seconds(pid)
        lat, results = [], []
        for r in recs:
            t0 = time.perf_counter()
            results.append(await store.observe(r))
            lat.append((time.perf_counter() - t0) * 1e6)
        cpu = _cpu_seconds(pid) - cpu0
        stats = await client.info("commandstats")
        ev = stats["cmdstat_evalsha"]
        inner = sum(v["calls"] for k, v in stats.items() if k not in _OWN)
        inner_us = sum(v["usec"] for k, v in stats.items() if k not in _OWN)
        top = sorted(((v["usec"] / ev["calls"], k[8:], v["calls"] / ev["calls"]) for k, v in stats.items()
                      if k not in _OWN), reverse=True)[:6]
        # batches continue the stream's history with new transaction ids one second later
        last = recs[-1]["timestamp"]
        btimes = []
        bcpu0 = _cpu_seconds(pid)
        for b in range(batches):
            batch = [dict(r, transaction_id=f"b{b}-{r['transaction_id']}", timestamp=last)
                     for r in recs[b * batch_size:(b + 1) * batch_size]]
            t0 = time.perf_counter()
            got = await _observe_batch(store, batch, store_client)
            btimes.append((time.perf_counter() - t0) * 1000)
            if not isinstance(got, list):  # a matrix: as dicts, for the comparison (not timed)
                from app.features import VELOCITY_FEATURES

                got = [dict(zip(VELOCITY_FEATURES, row)) for row in got.tolist()]
            results.extend(got)
        bcpu = _cpu_seconds(pid) - bcpu0
        # the batches' script calls: what commandstats counted since the replay
        after = (await client.info("commandstats"))["cmdstat_evalsha"]
        bcalls, busec = after["calls"] - ev["calls"], after["usec"] - ev["usec"]
        btxns = min(len(recs), batches * batch_size)
        return {
            "calls": ev["calls"],
            "observe_p50_us": _pct(lat, 0.50),
            "observe_p99_us": _pct(lat, 0.99),
            "observe_mean_us": statistics.fmean(lat),
            "redis_usec_per_call": ev["usec_per_call"],
            "redis_cpu_usec_per_call": cpu * 1e6 / ev["calls"],
            "redis_cmds_per_call": inner / ev["calls"],
            "redis_cmds_usec_per_call": inner_us / ev["calls"],
            "top": ", ".join(f"{name} {n:.1f}x {us:.0f} µs" for us, name, n in top),
            "batch_ms_median": statistics.median(btimes),
            "batch_ms_max": max(btimes),
            "batch_script_calls": bcalls / max(1, batches),
            "batch_redis_usec_per_script": busec / max(1, bcalls),
            "batch_redis_usec_per_txn": busec / max(1, btxns),
            "batch_redis_cpu_usec_per_txn": bcpu * 1e6 / max(1, btxns),
        }, results
    finally:
        await client.aclose()
        if store_client is not client:
            await store_client.aclose()


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.velocity_script", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000, help="simulated transactions replayed one by one")
    p.add_argument("--days", type=int, default=8, help="days the simulated stream spans (fewer = denser history)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--ref", default="", help="git revision whose app/velocity.py is measured too (BEFORE)")
    p.add_argument("--repeat", type=int, default=3, help="measurements of each store (alternating); medians reported")
    p.add_argument("--chunk", type=int, default=0,
                   help="transactions per script call of a batch (the working tree's chunk_size; 0: its default)")
    p.add_argument("--redis-core", type=int, default=-1,
                   help="pin redis-server to this core and the benchmark (the client) to the others "
                        "(default: nothing pinned); on a shared 2-core machine this keeps the client's work "
                        "and Redis's from taking turns on one core")
    p.add_argument("--client", choices=("resp", "redis-py"), default="resp",
                   help="the store's Redis client: app.resp.RespClient (the service's) or redis-py's asyncio client")
    args = p.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server not found (apt-get install redis-server)", file=sys.stderr)
        return 2
    import app.velocity as current

    stores = ([(f"ref {args.ref}", _load_ref(args.ref))] if args.ref else []) + [("working tree", current)]
    recs = _records(args.rows, args.days, args.seed)
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="velbench-")
    pin: list[str] = []
    if args.redis_core >= 0:
        pin = ["taskset", "-c", str(args.redis_core)]
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)) - {args.redis_core})
    proc = subprocess.Popen([*pin, "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", data_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        import redis

        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        print(f"{len(recs)} transactions over {args.days} d, batches {args.batches} x {args.batch_size}; "
              f"client {args.client}; redis-server {port}"
              f"{f' on core {args.redis_core}, the client on the others' if pin else ''}; "
              f"load average before {_loadavg()}")
        runs: list[list[dict[str, float]]] = [[] for _ in stores]
        outs: list[list[dict[str, float]]] = [[] for _ in stores]
        for r in range(max(1, args.repeat)):
            for i, (name, mod) in enumerate(stores):
                figures, results = asyncio.run(_measure(mod, url, proc.pid, recs, args.batch_size, args.batches,
                                                        args.client, args.chunk))
                runs[i].append(figures)
                outs[i] = results
                print(f"run {r + 1} {name}: Redis {figures['redis_usec_per_call']:.1f} µs/call "
                      f"(process CPU {figures['redis_cpu_usec_per_call']:.1f}), "
                      f"batch {figures['batch_ms_median']:.1f} ms ({figures['batch_redis_usec_per_txn']:.1f} µs of Redis "
                      f"per transaction); load average {_loadavg()}")
        rows = [(name, {k: statistics.median(f[k] for f in runs[i]) if k != "top" else runs[i][-1][k]
                        for k in runs[i][0]}) for i, (name, _) in enumerate(stores)]
        print(f"load average after {_loadavg()}; medians of {max(1, args.repeat)} runs:")
        print("| store | observe p50 µs | observe p99 µs | Redis µs/call | Redis CPU µs/call | Redis cmds/call | "
              "1,000-txn batch ms (median / max) |")
        print("|---|---|---|---|---|---|---|")
        for name, f in rows:
            print(f"| {name} | {f['observe_p50_us']:.0f} | {f['observe_p99_us']:.0f} | "
                  f"{f['redis_usec_per_call']:.1f} | {f['redis_cpu_usec_per_call']:.1f} | "
                  f"{f['redis_cmds_per_call']:.1f} | {f['batch_ms_median']:.1f} / {f['batch_ms_max']:.1f} |")
        print("| store | script calls per batch | Redis µs per batch script call | Redis µs per batch transaction "
              "(commandstats) | Redis CPU µs per batch transaction (process) |")
        print("|---|---|---|---|---|")
        for name, f in rows:
            print(f"| {name} | {f['batch_script_calls']:.0f} | {f['batch_redis_usec_per_script']:.1f} | "
                  f"{f['batch_redis_usec_per_txn']:.1f} | {f['batch_redis_cpu_usec_per_txn']:.1f} |")
        for name, f in rows:
            print(f"{name}: of Redis µs/call, {f['redis_cmds_usec_per_call']:.1f} in the commands "
                  f"(the rest is Lua and argument handling); per call: {f['top']}")
        if len(rows) == 2:
            a, b = rows[0][1], rows[1][1]
            print(f"ratio ref/working tree: Redis µs/call {a['redis_usec_per_call'] / b['redis_usec_per_call']:.2f}x, "
                  f"Redis CPU {a['redis_cpu_usec_per_call'] / b['redis_cpu_usec_per_call']:.2f}x, "
                  f"cmds/call {a['redis_cmds_per_call'] / b['redis_cmds_per_call']:.2f}x, "
                  f"observe p50 {a['observe_p50_us'] / b['observe_p50_us']:.2f}x, "
                  f"batch {a['batch_ms_median'] / b['batch_ms_median']:.2f}x, "
                  f"batch Redis µs per transaction {a['batch_redis_usec_per_txn'] / b['batch_redis_usec_per_txn']:.2f}x")
            diff = sum(x != y for x, y in zip(outs[0], outs[1]))
            print(f"feature mismatches between the two: {diff} of {len(outs[0])}")
            if diff:
                return 1
        return 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
