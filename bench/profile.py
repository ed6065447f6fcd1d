"""Where each server spends its CPU at saturation on ``/v2/models/{name}/infer``: py-spy.

    python -m bench.profile [--seconds 8]

Starts fraudstack and the KServe peer in turn exactly as ``bench.compare`` does (same
model, same bodies, ``taskset -c 1``; ``wrk`` on core 0, 32 connections), samples the
server with ``py-spy record --gil --format raw`` (only the thread holding the GIL: the
Python work; ONNX Runtime releases the GIL) while wrk saturates it, and prints the
functions with the most own (self) samples. Needs root or
ptrace permission for py-spy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import Counter
from pathlib import Path

from bench.compare import (BENCH, MODEL_NAME, Server, ensure_model, ensure_peer, fraudstack_env, free_port, run_wrk,
                           write_bodies, cleanup_shared)


def sample(pid: int, seconds: int) -> Counter[tuple[str, ...]]:
    """Collapsed stacks of ``pid`` over ``seconds`` (py-spy raw format: 'f1;f2;... count')."""
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "--gil",
                    "-f", "raw", "-o", str(out)], check=True, capture_output=True)
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        stacks[tuple(stack.split(";"))] += int(n)
    out.unlink()
    return stacks


def summary(name: str, stacks: Counter[tuple[str, ...]], rps: float) -> list[str]:
    total = sum(stacks.values())
    own: Counter[str] = Counter()
    for frames, n in stacks.items():
        own[frames[-1].split(" (")[0] + " (" + frames[-1].split("(")[-1].split("/")[-1]] += n
    lines = [f"**{name}** ({rps:.0f} req/s under the profiler, {total} samples):", "",
             "| own samples | function |", "| --- | --- |"]
    lines += [f"| {100 * n / total:.1f} % | `{f}` |" for f, n in own.most_common(8)]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    """Profile both servers."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=8)
    args = p.parse_args(argv)
    model_dir, peer = ensure_model(), ensure_peer()
    bodies = BENCH / ".work" / "v2_bodies.jsonl"
    write_bodies(model_dir, bodies)
    run, data_dir = "p" + uuid.uuid4().hex[:8], Path(tempfile.mkdtemp(prefix="fraudstack-profile-"))
    servers = {
        "fraudstack": lambda port: Server("fraudstack", [sys.executable, "-m", "app", "serve", "--port", str(port)],
                                          fraudstack_env(model_dir, data_dir, run, "redis://127.0.0.1:6379/1", ""),
                                          port, "/health/ready"),
        "KServe": lambda port: Server("kserve", [str(peer), str(BENCH / "peers" / "kserve_onnx.py"), "--model-dir",
                                                 str(model_dir), "--name", MODEL_NAME, "--port", str(port)],
                                      {}, port, f"/v2/models/{MODEL_NAME}/ready"),
    }
    lines: list[str] = []
    try:
        for name, start in servers.items():
            port = free_port()
            server = start(port)
            try:
                url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"
                result: dict = {}
                load = threading.Thread(target=lambda: result.update(run_wrk(url, BENCH / "v2_infer.lua", args.seconds + 3, 32,
                                                                             0, {"BENCH_BODIES": str(bodies)})))
                load.start()
                stacks = sample(server.proc.pid, args.seconds)
                load.join()
                lines += summary(name, stacks, result["throughput_rps"])
            finally:
                server.stop()
    finally:
        cleanup_shared(run, "redis://127.0.0.1:6379/1", "")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
