"""A small demo model, built in seconds, for a fresh machine with no model configured."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from app.training.procedure import FAST_GRID, ProcedureArgs
from app.training.simulate import SimulationArgs, simulate
from app.training.train import dataset_from_transactions, train_and_export

DEMO_ROWS = 40_000


def build_demo_model(out_dir: Path, rows: int = DEMO_ROWS, seed: int = 7) -> Path:
    """Simulate a small stream, train with one regularisation setting and export
    ``model.onnx`` + ``model.json`` + ``report.html`` into ``out_dir``; returns ``out_dir``.

    Uses a higher fraud rate (1%) than the default so a small sample still holds
    enough fraud of every scenario. Not a production model: the service says so.
    """
    out_dir = Path(out_dir)
    df = simulate(SimulationArgs(rows=rows, fraud_rate=0.01, days=21, seed=seed))
    data = dataset_from_transactions(df, f"demo: simulate(rows={rows}, fraud_rate=0.01, days=21, seed={seed})")
    # One OpenMP thread: on a busy machine (a server starting next to its
    # workers) multi-threaded tree fitting on small data is ~10x slower, not faster.
    with threadpool_limits(1):
        train_and_export(data, out_dir, args=ProcedureArgs(grid=FAST_GRID, max_iter=200, n_iter_no_change=20),
                         log=None)
    return out_dir


if __name__ == "__main__":
    import sys

    print(build_demo_model(Path(sys.argv[1] if len(sys.argv) > 1 else "models/demo")))
