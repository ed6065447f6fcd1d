"""Micro-benchmark of ``ScoringModel.score_with_reasons`` (not run in CI).

Times scores + top-3 reasons on the demo model (``bench/.model``, built if missing)
for batches of 1, 16 and 1,000 simulated transactions, with exact counterfactual
pruning (``app.pruning``) and without, interleaved call by call in the same process
so both see the same machine. One ONNX Runtime thread, as the service runs it.
Reports the median per call over the repeats, per transaction, and the ONNX rows
run per transaction; checks on every call that both give identical scores and
reasons. "pruned" is forced for single rows too, where the service does not prune
(``app.model.PRUNE_MIN_ROWS``).

``--ref REV`` also times ``app/model.py`` as of git revision REV (loaded into a
temporary module) on the same inputs, and counts the rows whose score or reasons
differ from the working tree's (before the row padding, a row's last bits depended
on its place in the batch).

    python -m bench.reasons [--ref REV] [--cpu N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.compare import ensure_model

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 16, 1000)
TOP_K = 3


def _load_ref(rev: str) -> Any:
    """``app/model.py`` as of ``rev``, imported as a separate module."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:app/model.py"], check=True,
                         capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="modelref-")) / "model_ref.py"
    tmp.write_text(src)
    spec = importlib.util.spec_from_file_location("model_ref", tmp)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["model_ref"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    shutil.rmtree(tmp.parent)
    return mod


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reasons", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=6000, help="simulated transactions the batches are drawn from")
    p.add_argument("--calls", type=int, default=3000, help="calls per variant for n=1 (fewer for bigger batches)")
    p.add_argument("--ref", default="", help="git revision whose app/model.py is timed too (BEFORE)")
    p.add_argument("--cpu", type=int, default=None, help="pin the process to this core")
    args = p.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    import app.model
    from app.features import offline_features
    from app.model import ScoringModel
    from app.training.simulate import SimulationArgs, simulate

    model_dir = ensure_model()
    model = ScoringModel(model_dir, threads=1)
    model.load()

    def pruned(x: np.ndarray) -> Any:
        # Pruned at every size, single rows included (the service runs every counterfactual
        # for a single row: app.model.PRUNE_MIN_ROWS), to show why.
        saved, app.model.PRUNE_MIN_ROWS = app.model.PRUNE_MIN_ROWS, 1
        try:
            return model.score_with_reasons(x, TOP_K)
        finally:
            app.model.PRUNE_MIN_ROWS = saved

    variants: list[tuple[str, Any]] = [
        ("pruned", pruned),
        ("every counterfactual", lambda x: model.score_with_reasons(x, TOP_K, prune=False)),
    ]
    ref_model = None
    if args.ref:
        ref_model = _load_ref(args.ref).ScoringModel(model_dir, threads=1)
        ref_model.load()
        variants.append((f"{args.ref} (before)", lambda x: ref_model.score_with_reasons(x, TOP_K)))
    x_all = offline_features(simulate(SimulationArgs(rows=args.rows, fraud_rate=0.01, days=9, seed=101)))
    differ = x_all != model.reference
    assert model.pruner is not None, "the demo model should be a prunable tree ensemble"
    kept = differ & model.pruner.may_change(x_all)

    load = os.getloadavg()
    print(f"model {model.version} ({model.pruner.trees} trees); {_cpu()}, {os.cpu_count()} vCPU, "
          f"onnxruntime {ort.__version__}, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"counterfactual rows per transaction: {differ.sum(1).mean():.1f} differing features, "
          f"{kept.sum(1).mean():.1f} after pruning\n")
    print("| n | " + " | ".join(f"{name}: ms/call | µs/txn" for name, _ in variants) + " | speed-up |")
    print("| --- | " + " | ".join("--- | ---" for _ in variants) + " | --- |")
    ref_diffs = ref_rows = 0
    for n in SIZES:
        calls = max(20, args.calls * 1 // n) if n > 1 else args.calls
        starts = [(c * n * 7) % (len(x_all) - n) for c in range(calls)]
        times: dict[str, list[float]] = {name: [] for name, _ in variants}
        for start in starts:
            x = np.ascontiguousarray(x_all[start:start + n])
            results = []
            for name, fn in variants:
                t0 = time.perf_counter()
                results.append(fn(x))
                times[name].append(time.perf_counter() - t0)
            (s0, r0), (s1, r1) = results[0], results[1]
            if s0.tobytes() != s1.tobytes() or r0 != r1:
                raise SystemExit(f"pruned and unpruned results differ (n={n}, rows {start}..{start + n})")
            if ref_model is not None:
                s2, r2 = results[2]
                ref_rows += n
                ref_diffs += sum(1 for i in range(n) if s2[i] != s0[i] or r2[i] != r0[i])
        med = {name: statistics.median(ts) for name, ts in times.items()}
        cells = " | ".join(f"{med[name] * 1e3:.3f} | {med[name] * 1e6 / n:.1f}" for name, _ in variants)
        print(f"| {n} | {cells} | {med[variants[1][0]] / med['pruned']:.2f}x |")
    load = os.getloadavg()
    print(f"\nload average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; pruned == unpruned on every call")
    if ref_model is not None:
        print(f"{args.ref}: {ref_diffs} of {ref_rows} rows differ from the working tree in score or reasons "
              "(last-bit differences from their place in the batch)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
