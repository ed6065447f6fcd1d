"""Side-by-side benchmark: fraudstack against KServe's model server, same ONNX model, one run.

    python -m bench.compare [--duration 10] [--rates 250,500,1000,2000,3000] [--no-docs]

What it does, in one run:

1. builds the demo model once (``bench/.model``) and installs the peer into its own
   virtualenv (``bench/setup_peers.sh`` -> ``bench/.venv-kserve``);
2. writes 256 Open Inference Protocol request bodies (``bench/.work/v2_bodies.jsonl``)
   and checks that both servers answer the first one with the same probabilities;
3. for each server in turn (one worker, pinned with ``taskset -c 1``; ``wrk`` pinned
   with ``taskset -c 0``; loopback only): saturation (``wrk`` as fast as it can) and
   fixed offered rates (paced by the Lua script) for ``POST /v2/models/{name}/infer``
   with the SAME bodies; for fraudstack also ``POST /v1/score`` with Redis velocity
   features and the PostgreSQL audit trail on (``bench/score.lua``);
4. times the offline preview of both stacks and the policy pack over their plans;
5. writes ``bench/results/compare-<UTC>.json``, ``docs/benchmark-latency.png`` and the
   ``compare`` section of ``docs/BENCHMARKS.md`` (bench/docs.py; the rest of the file is kept).

Latency is what ``wrk`` measures: from writing a request on a connection to reading its
response. Fixed rates are paced per connection (after each response the connection
sleeps ``connections / rate`` on average), so this is closed-loop pacing: when the
server stalls, the next requests are sent later rather than queued (coordinated
omission). The achieved rate is reported next to the offered one; a run whose achieved
rate falls short of the offered one is flagged as not sustained.
"""

from __future__ import annotations

import argparse
import json
import os
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

import numpy as np

from bench.deps import dependencies, free_port
from bench.docs import replace_section

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
KEY = "bench-key-not-a-secret"
MODEL_NAME = "fraudstack"
SERVER_CORE, CLIENT_CORE = "1", "0"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
PLOT = ROOT / "docs" / "benchmark-latency.png"
SUSTAINED = 0.95  # achieved/offered below this: the server did not keep up


def wait_http(url: str, timeout: float = 120.0) -> None:
    """Block until ``url`` answers 200."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


def ensure_model() -> Path:
    """The demo model directory shared by every server in the run."""
    model_dir = BENCH / ".model"
    if not (model_dir / "model.json").is_file():
        from app.training.demo import build_demo_model

        model_dir = Path(build_demo_model(model_dir))
    return model_dir


def ensure_peer() -> Path:
    """The peer's own interpreter (installed by bench/setup_peers.sh)."""
    subprocess.run(["bash", str(BENCH / "setup_peers.sh")], check=True, stdout=subprocess.DEVNULL)
    return BENCH / ".venv-kserve" / "bin" / "python"


def write_bodies(model_dir: Path, path: Path, n: int = 256) -> list[list[float]]:
    """``n`` V2 request bodies of one row each: the model's reference vector, perturbed (seeded)."""
    meta = json.loads((model_dir / "model.json").read_text())
    ref = np.asarray([float(meta["reference"]["medians"][f]) for f in meta["features"]])
    rng = np.random.default_rng(20261122)
    rows = []
    for i in range(n):
        noise = rng.lognormal(0.0, 0.6, size=ref.shape)
        row = np.where(ref != 0, ref * noise, rng.poisson(0.3, size=ref.shape)).astype(np.float32)
        rows.append([float(v) for v in row])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for i, row in enumerate(rows):
            fh.write(json.dumps({"id": f"req-{i}", "inputs": [{"name": "input", "shape": [1, len(row)],
                                                                "datatype": "FP32", "data": row}]}) + "\n")
    return rows


def run_wrk(url: str, lua: Path, seconds: int, connections: int, rate: int, env: dict[str, str]) -> dict[str, Any]:
    """One ``wrk`` run pinned to the client core; the Lua ``done`` hook prints BENCH_JSON."""
    env = {**os.environ, **env, "BENCH_API_KEY": KEY, "BENCH_RATE": str(rate), "BENCH_CONNECTIONS": str(connections)}
    cmd = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
           "-s", str(lua.relative_to(ROOT)), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    match = re.search(r"BENCH_JSON (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"wrk output without BENCH_JSON:\n{out}")
    data = json.loads(match.group(1))
    data["throughput_rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["command"] = " ".join(cmd)
    return data


class Server:
    """One server process pinned to the server core, stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, ready_path: str) -> None:
        self.name, self.port = name, port
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *argv], cwd=ROOT, env={**os.environ, **env},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}{ready_path}")
        except TimeoutError:
            self.proc.kill()
            raise RuntimeError(f"{name} did not start; log: {self.log.name}") from None

    def rss_mb(self) -> float:
        """Resident memory of the server process (the child of taskset, same pid)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def fraudstack_env(model_dir: Path, data_dir: Path, run: str, redis_url: str, database_url: str) -> dict[str, str]:
    """The service's settings for a benchmark: Redis DB 1 and a PostgreSQL schema unique to the run."""
    env = {"FRAUDSTACK_MODEL_DIR": str(model_dir), "FRAUDSTACK_MODEL_NAME": MODEL_NAME,
           "FRAUDSTACK_REDIS_URL": redis_url, "FRAUDSTACK_REDIS_KEY_PREFIX": f"bench:{run}:",
           "FRAUDSTACK_API_KEYS": KEY, "FRAUDSTACK_DATA_DIR": str(data_dir),
           # The per-key limit would cap saturation; it is exercised by the tests, not measured here.
           "FRAUDSTACK_RATE_LIMIT_PER_SECOND": "0", "FRAUDSTACK_LOG_LEVEL": "WARNING"}
    if database_url:
        env["FRAUDSTACK_DATABASE_URL"] = database_url
        env["FRAUDSTACK_DATABASE_SCHEMA"] = f"bench_{run}"
    return env


def cleanup_shared(run: str, redis_url: str, database_url: str) -> None:
    """Remove this run's Redis keys and PostgreSQL schema (nothing else is touched)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"bench:{run}:*", count=5000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i:i + 1000])
    client.close()
    if database_url:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "bench_{run}" CASCADE')


def check_same_answer(ports: dict[str, int], body: str) -> dict[str, list[float]]:
    """Both servers return the same probabilities for the same request (same model, same runtime)."""
    import httpx

    answers = {}
    for name, port in ports.items():
        r = httpx.post(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer", content=body,
                       headers={"Content-Type": "application/json", "X-API-Key": KEY}, timeout=10)
        r.raise_for_status()
        answers[name] = r.json()["outputs"][0]["data"]
    values = list(answers.values())
    if not all(np.allclose(v, values[0], atol=1e-6) for v in values):
        raise RuntimeError(f"servers disagree on the same request: {answers}")
    return answers


def load_series(url: str, lua: Path, args: argparse.Namespace, env: dict[str, str], label: str) -> dict[str, Any]:
    """Warm-up, saturation, then each fixed rate."""
    print(f"  {label}: warm-up, saturation", file=sys.stderr, flush=True)
    run_wrk(url, lua, 3, args.connections, 0, env)
    out: dict[str, Any] = {"url": url, "saturation": run_wrk(url, lua, args.duration, args.connections, 0, env)}
    out["fixed_rate"] = []
    for rate in args.rate_list:
        print(f"  {label}: {rate} req/s", file=sys.stderr, flush=True)
        x = run_wrk(url, lua, args.duration, args.paced_connections, rate, env)
        x["offered_rps"] = rate
        x["sustained"] = x["throughput_rps"] >= SUSTAINED * rate and x["non2xx"] == 0 and x["socket_errors"] == 0
        out["fixed_rate"].append(x)
    return out


def time_command(argv: list[str], repeats: int) -> dict[str, Any]:
    """Median and best wall time of a whole command (a fresh interpreter each time)."""
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
    return {"command": " ".join(argv[1:]) if argv[0] == sys.executable else " ".join(argv),
            "median_s": statistics.median(walls), "best_s": min(walls), "repeats": repeats}


def offline_timings(repeats: int) -> dict[str, Any]:
    """The offline preview of both stacks and the policy pack over their plans."""
    out_dir = ROOT / "out"
    out_dir.mkdir(exist_ok=True)
    res: dict[str, Any] = {}
    for stack in ("staging", "production"):
        res[f"preview_{stack}"] = time_command(
            [sys.executable, "-m", "tools.preview", "--stack", stack, "--json", f"out/{stack}.json"], repeats)
    bench = subprocess.run([sys.executable, "-m", "policies.bench", "out/staging.json", "out/production.json",
                            "--repeat", "20"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    res["policy_pack"] = {"command": "python -m policies.bench out/staging.json out/production.json --repeat 20",
                          "output": bench.strip().splitlines()}
    return res


def machine() -> dict[str, Any]:
    """CPU (lscpu), kernel, Python and the load average."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    pick = ("Architecture", "Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "CPU max MHz", "L3 cache",
            "Hypervisor vendor")
    import platform

    return {"lscpu": {k: fields[k].strip() for k in pick if k in fields}, "kernel": platform.release(),
            "python": platform.python_version(), "loadavg_at_start": list(os.getloadavg())}


def plot(results: dict[str, Any], path: Path) -> None:
    """p50 and p99 against offered load, one line per server and route."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    styles = {"fraudstack /v2 infer": ("tab:blue", "o"), "kserve /v2 infer": ("tab:red", "s"),
              "fraudstack /v1/score (velocity + audit)": ("tab:green", "^")}
    for label, series in results["series"].items():
        color, marker = styles.get(label, ("gray", "x"))
        pts = series["fixed_rate"]
        xs = [p["offered_rps"] for p in pts]
        for ax, key in zip(axes, ("p50_us", "p99_us")):
            ys = [p[key] / 1000 for p in pts]
            ax.plot(xs, ys, marker=marker, color=color, label=label)
            for p, y in zip(pts, ys):
                if not p["sustained"]:
                    ax.plot([p["offered_rps"]], [y], marker="x", color="black", markersize=10)
    for ax, title in zip(axes, ("p50 latency", "p99 latency")):
        ax.set_title(title)
        ax.set_xlabel("offered load (requests/s)")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_xscale("log")
        rates = sorted({p["offered_rps"] for series in results["series"].values() for p in series["fixed_rate"]})
        ax.set_xticks(rates, [str(x) for x in rates])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8)
    when = results["time"]
    fig.suptitle(f"One worker on one core, wrk on the other (x = rate not sustained); {when}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt_row(label: str, x: dict[str, Any], offered: str) -> str:
    flag = "" if x.get("sustained", True) else " (not sustained)"
    return (f"| {label} | {offered} | {x['throughput_rps']:.0f}{flag} | {x['p50_us'] / 1000:.2f} | {x['p99_us'] / 1000:.2f} | "
            f"{x['p999_us'] / 1000:.2f} | {x['non2xx']} | {x['socket_errors']} |")


def markdown(r: dict[str, Any]) -> str:
    """The docs section: ratios first, then every run, the commands and the machine."""
    s = r["series"]
    fs, ks, v1 = s["fraudstack /v2 infer"], s["kserve /v2 infer"], s.get("fraudstack /v1/score (velocity + audit)")
    sat_ratio = fs["saturation"]["throughput_rps"] / ks["saturation"]["throughput_rps"]
    m = r["machine"]
    cpu = m["lscpu"]
    lines = [
        f"Run of {r['time']} (`python -m bench.compare --duration {r['args']['duration']} --rates {r['args']['rates']}`), "
        f"raw results in `{r['raw']}`. Load average before the run: "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}; after: {', '.join(f'{x:.2f}' for x in r['loadavg_at_end'])}.",
        "",
        f"Machine: {cpu.get('Model name', '?')}, {cpu.get('CPU(s)', '?')} CPUs ({cpu.get('Thread(s) per core', '?')} thread(s) per core"
        f"{', hypervisor ' + cpu['Hypervisor vendor'] if 'Hypervisor vendor' in cpu else ''}), kernel {m['kernel']}, Python {m['python']}. "
        f"Servers: {r['versions']}.",
        "",
        "**Ratios, fraudstack against KServe, same model file, same request bodies, same run:**",
        "",
        "| measure | fraudstack | KServe | ratio |",
        "| --- | --- | --- | --- |",
        f"| `/v2/models/{MODEL_NAME}/infer` saturation (req/s) | {fs['saturation']['throughput_rps']:.0f} | "
        f"{ks['saturation']['throughput_rps']:.0f} | **{sat_ratio:.2f}x** throughput |",
    ]
    for a, b in zip(fs["fixed_rate"], ks["fixed_rate"]):
        # Latencies compare only where both servers carried the offered rate; past a
        # server's capacity its latency is that of an overloaded, closed-loop client.
        if a["sustained"] and b["sustained"]:
            verdicts = {key: f"**{b[key] / a[key]:.2f}x** lower latency" for key in ("p50_us", "p99_us")}
        elif a["sustained"]:
            verdicts = dict.fromkeys(("p50_us", "p99_us"), f"KServe did not carry this rate (achieved {b['throughput_rps']:.0f} req/s)")
        elif b["sustained"]:
            verdicts = dict.fromkeys(("p50_us", "p99_us"), f"fraudstack did not carry this rate (achieved {a['throughput_rps']:.0f} req/s)")
        else:
            verdicts = dict.fromkeys(("p50_us", "p99_us"), "neither carried this rate: not compared")
        for key, name in (("p50_us", "p50"), ("p99_us", "p99")):
            lines.append(f"| {name} at {a['offered_rps']} req/s (ms) | {a[key] / 1000:.2f}{'' if a['sustained'] else ' (not sustained)'} | "
                         f"{b[key] / 1000:.2f}{'' if b['sustained'] else ' (not sustained)'} | {verdicts[key]} |")
    lines += ["", "(A throughput ratio above 1 and a latency ratio above 1 both mean fraudstack is ahead. A rate is "
              f"*sustained* when the server achieved at least {SUSTAINED:.0%} of it with no error.)", "",
              "Every run:", "",
              "| server and route | offered (req/s) | achieved (req/s) | p50 (ms) | p99 (ms) | p99.9 (ms) | non-2xx | socket errors |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, series in s.items():
        lines.append(_fmt_row(label, series["saturation"], "max"))
        for x in series["fixed_rate"]:
            lines.append(_fmt_row(label, x, str(x["offered_rps"])))
    lines += ["", f"Server memory (RSS) after the load: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in r["rss_mb"].items()) + ".",
              "", f"![latency against offered load]({PLOT.name})", ""]
    off = r.get("offline")
    if off:
        lines += ["Offline tools (fresh interpreter per run, wall time):", "",
                  "| command | median (s) | best (s) | runs |", "| --- | --- | --- | --- |"]
        for key in ("preview_staging", "preview_production"):
            t = off[key]
            lines.append(f"| `python {t['command']}` | {t['median_s']:.2f} | {t['best_s']:.2f} | {t['repeats']} |")
        lines += ["", f"`{off['policy_pack']['command']}` (the pack alone, in-process):", "", "```",
                  *off["policy_pack"]["output"], "```", ""]
    lines += ["Commands of the load runs (the script runs them; URLs and ports vary per run):", "", "```"]
    for label, series in s.items():
        lines.append(f"# {label}")
        lines.append(series["saturation"]["command"])
        if series["fixed_rate"]:
            lines.append(series["fixed_rate"][0]["command"] + "   # BENCH_RATE=<rate> in the environment")
    lines += ["```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the whole comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--rates", default="250,500,1000,2000,3000", help="fixed offered rates (requests/s)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections at saturation")
    p.add_argument("--paced-connections", type=int, default=16, help="wrk connections at fixed rates")
    p.add_argument("--redis-url", default="private", help="Redis (default: a private redis-server on the client core)")
    p.add_argument("--database-url", default="private", help="PostgreSQL (default: a private, durable cluster on the client core; '' for SQLite)")
    p.add_argument("--offline-repeats", type=int, default=3, help="runs of each offline command (0 skips them)")
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/ (results JSON only)")
    args = p.parse_args(argv)
    args.rate_list = [int(x) for x in args.rates.split(",") if x]
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench.compare: '{tool}' not found (Debian: apt-get install wrk util-linux)", file=sys.stderr)
            return 2
    run = "c" + uuid.uuid4().hex[:8]
    model_dir = ensure_model()
    peer_python = ensure_peer()
    bodies_path = BENCH / ".work" / "v2_bodies.jsonl"
    write_bodies(model_dir, bodies_path)
    first_body = bodies_path.read_text().splitlines()[0]
    results: dict[str, Any] = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run": run,
                               "machine": machine(), "model_dir": str(model_dir.relative_to(ROOT)),
                               "args": {"duration": args.duration, "rates": args.rates, "connections": args.connections,
                                        "paced_connections": args.paced_connections},
                               "series": {}, "rss_mb": {}}
    peer_version = subprocess.run([str(peer_python), "-c", "import importlib.metadata as m; print(m.version('kserve'), "
                                   "m.version('onnxruntime'), m.version('uvicorn'), m.version('fastapi'))"],
                                  capture_output=True, text=True, check=True).stdout.split()
    import importlib.metadata as md

    results["versions"] = (f"fraudstack (uvicorn {md.version('uvicorn')}, FastAPI {md.version('fastapi')}, onnxruntime "
                           f"{md.version('onnxruntime')}); KServe {peer_version[0]} (uvicorn {peer_version[2]}, FastAPI "
                           f"{peer_version[3]}, onnxruntime {peer_version[1]})")
    with dependencies(args.redis_url, args.database_url, CLIENT_CORE) as (redis_url, database_url, deps):
        results["dependencies"] = deps
        v2_env = {"BENCH_BODIES": str(bodies_path)}
        data_dir = Path(tempfile.mkdtemp(prefix="fraudstack-compare-"))
        answers: dict[str, Any] = {}
        try:
            port = free_port()
            print("fraudstack ...", file=sys.stderr, flush=True)
            fs = Server("fraudstack", [sys.executable, "-m", "app", "serve", "--port", str(port)],
                        fraudstack_env(model_dir, data_dir, run, redis_url, database_url), port, "/health/ready")
            try:
                answers["fraudstack"] = check_same_answer({"fraudstack": port}, first_body)["fraudstack"]
                url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"
                results["series"]["fraudstack /v2 infer"] = load_series(url, BENCH / "v2_infer.lua", args, v2_env, "fraudstack v2")
                results["series"]["fraudstack /v1/score (velocity + audit)"] = load_series(
                    f"http://127.0.0.1:{port}/v1/score", BENCH / "score.lua", args, {"BENCH_RUN": run}, "fraudstack v1/score")
                results["rss_mb"]["fraudstack"] = fs.rss_mb()
            finally:
                fs.stop()
            port = free_port()
            print("kserve ...", file=sys.stderr, flush=True)
            ks = Server("kserve", [str(peer_python), str(BENCH / "peers" / "kserve_onnx.py"), "--model-dir", str(model_dir),
                                   "--name", MODEL_NAME, "--port", str(port)], {}, port, f"/v2/models/{MODEL_NAME}/ready")
            try:
                answers["kserve"] = check_same_answer({"kserve": port}, first_body)["kserve"]
                url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"
                results["series"]["kserve /v2 infer"] = load_series(url, BENCH / "v2_infer.lua", args, v2_env, "kserve v2")
                results["rss_mb"]["kserve"] = ks.rss_mb()
            finally:
                ks.stop()
        finally:
            cleanup_shared(run, redis_url, database_url)
            shutil.rmtree(data_dir, ignore_errors=True)
    if not np.allclose(answers["fraudstack"], answers["kserve"], atol=1e-6):
        raise RuntimeError(f"the servers disagree on the same request: {answers}")
    results["same_answer"] = answers
    if args.offline_repeats:
        print("offline preview and policy pack ...", file=sys.stderr, flush=True)
        results["offline"] = offline_timings(args.offline_repeats)
    results["loadavg_at_end"] = list(os.getloadavg())
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    raw = out_dir / f"compare-{results['time'].replace(':', '').replace('+0000', 'Z')}.json"
    results["raw"] = str(raw.relative_to(ROOT))
    raw.write_text(json.dumps(results, indent=1))
    section = markdown(results)
    if not args.no_docs:
        plot(results, PLOT)
        replace_section("compare", section, "fraudstack against KServe (same model, same requests)")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
