"""Retraining from production: the audit trail joined with feedback labels -> a candidate model.

``python -m app.training.retrain --database-url URL --store URI [--cutoff ISO] ...``

Point in time: every row's features are the vector the service computed when it scored
the transaction (``decisions.features``, the first decision per transaction), never
recomputed later; a label counts only if the feedback had *arrived* (``received_at``)
by the cutoff, and the latest such label wins (a chargeback later reversed reads as the
reversal). A transaction without a label is a negative only once it is older than the
label maturity (fraud is reported days or weeks late); younger unlabelled rows are left
out rather than taught as legitimate.

The candidate goes through the training procedure's own gates (time-ordered validation,
ONNX parity against scikit-learn) and the service's (``app.lifecycle.verify_model``),
gets its model card, and is uploaded under ``models/<version>/`` with the store's
``candidate`` pointer moved to it. The ``active`` pointer is never touched: promotion
is a separate, deliberate step after shadowing (docs/model-lifecycle.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from app.features import FEATURE_NAMES
from app.training.train import Dataset

FRAUD = ("fraud", "chargeback")

_ROWS_SQL = """
WITH d AS (
    SELECT DISTINCT ON (transaction_id) transaction_id, received_at, features
    FROM {schema}.decisions
    WHERE received_at >= %(since)s AND received_at < %(cutoff)s
    ORDER BY transaction_id, received_at, id
), f AS (
    SELECT DISTINCT ON (transaction_id) transaction_id, outcome
    FROM {schema}.feedback
    WHERE received_at < %(cutoff)s AND reported_at < %(cutoff)s
    ORDER BY transaction_id, reported_at DESC, received_at DESC, id DESC
)
SELECT d.transaction_id, d.received_at, d.features, f.outcome
FROM d LEFT JOIN f USING (transaction_id)
ORDER BY d.received_at, d.transaction_id
"""


class RetrainRefused(RuntimeError):
    """Not enough (or not usable) data to build a candidate."""


@dataclass(frozen=True)
class Selection:
    """What the audit trail gave: the dataset and why rows were left out."""

    dataset: Dataset
    transaction_ids: list[str]
    labelled_fraud: int
    labelled_legitimate: int
    unlabelled_negatives: int
    skipped_immature: int
    skipped_other_features: int


def select(conn: Any, schema: str, cutoff: datetime, days: int, maturity_days: int) -> Selection:
    """Rows of the last ``days`` before ``cutoff`` with labels as known at ``cutoff``."""
    from psycopg import sql

    since = cutoff - timedelta(days=days)
    mature_before = cutoff - timedelta(days=maturity_days)
    rows = conn.execute(sql.SQL(_ROWS_SQL).format(schema=sql.Identifier(schema)),
                        {"since": since, "cutoff": cutoff}).fetchall()
    X, y, times, ids = [], [], [], []
    fraud = legit = unlabelled = immature = other = 0
    width = len(FEATURE_NAMES)
    for txn_id, received_at, features, outcome in rows:
        vec = json.loads(features) if isinstance(features, str) else features
        if not isinstance(vec, list) or len(vec) != width:
            other += 1  # scored by a model of another feature version
            continue
        if outcome is None:
            if received_at >= mature_before:
                immature += 1
                continue
            label = 0
            unlabelled += 1
        else:
            label = 1 if outcome in FRAUD else 0
            fraud += label
            legit += 1 - label
        X.append(vec)
        y.append(label)
        times.append(received_at.timestamp() * 1000.0)
        ids.append(txn_id)
    x = np.asarray(X, dtype=np.float32).reshape(len(X), width)
    data = Dataset(X=x, y=np.asarray(y, dtype=np.int64), feature_names=tuple(FEATURE_NAMES),
                   times=np.asarray(times, dtype=np.float64),
                   amounts=x[:, FEATURE_NAMES.index("amount")].astype(np.float64) if len(x) else None,
                   source=f"audit trail {schema}: decisions {since:%Y-%m-%d} to {cutoff:%Y-%m-%dT%H:%MZ}, "
                          f"labels known at cutoff, unlabelled older than {maturity_days} d = legitimate")
    return Selection(data, ids, fraud, legit, unlabelled, immature, other)


def add_parity_sample(out_dir: Path, X: np.ndarray, rows: int = 32) -> None:
    """Store inputs and this export's ONNX probabilities in model.json, so the service can
    check at load time that its ONNX Runtime reproduces them (``app.lifecycle.verify_model``)."""
    from app.training.export import onnx_probabilities, write_model_dir

    onnx_bytes = (out_dir / "model.onnx").read_bytes()
    meta = json.loads((out_dir / "model.json").read_text())
    sample = np.asarray(X[:rows], dtype=np.float32)
    meta["parity"] = {"inputs": sample.tolist(),
                      "probabilities": onnx_probabilities(onnx_bytes, sample)[:, 1].astype(float).tolist()}
    write_model_dir(out_dir, onnx_bytes, meta)


def retrain(conn: Any, schema: str, cutoff: datetime, out_dir: Path, store: Any, *, days: int = 90,
            maturity_days: int = 30, min_fraud: int = 20, fast: bool = False,
            log: Any = None) -> dict[str, Any]:
    """Select, train (with the procedure's gates), verify, upload as the candidate; returns a summary."""
    from app.lifecycle import verify_model
    from app.model import ScoringModel
    from app.training.procedure import FAST_GRID, ProcedureArgs
    from app.training.train import train_and_export

    sel = select(conn, schema, cutoff, days, maturity_days)
    if sel.labelled_fraud < min_fraud:
        raise RetrainRefused(f"only {sel.labelled_fraud} fraud labels known at the cutoff (need --min-fraud {min_fraud})")
    args = ProcedureArgs(grid=FAST_GRID, max_iter=200, n_iter_no_change=20) if fast else ProcedureArgs()
    meta = train_and_export(sel.dataset, out_dir, args=args, log=log)
    add_parity_sample(out_dir, sel.dataset.X)
    candidate = ScoringModel(out_dir)
    verify_model(candidate, FEATURE_NAMES)  # the gates the service applies before serving it
    store.upload(meta["version"], out_dir)
    store.write_pointer("candidate", meta["version"], candidate.sha256)
    return {"version": meta["version"], "sha256": candidate.sha256, "rows": len(sel.transaction_ids),
            "labelled_fraud": sel.labelled_fraud, "labelled_legitimate": sel.labelled_legitimate,
            "unlabelled_negatives": sel.unlabelled_negatives, "skipped_immature": sel.skipped_immature,
            "skipped_other_features": sel.skipped_other_features,
            "average_precision_test": meta["metrics"]["test"].get("average_precision")}


def _cutoff(value: str | None) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cutoff: {value!r} is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit 0 with the candidate's version, 2 on bad input or refused data."""
    p = argparse.ArgumentParser(prog="python -m app.training.retrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="PostgreSQL of the audit trail")
    p.add_argument("--schema", default="fraudstack", help="schema of the audit tables (default fraudstack)")
    p.add_argument("--store", required=True, help="model store: s3://bucket[/prefix] or a local directory")
    p.add_argument("--out", type=Path, default=None, help="where to write the candidate's directory (default: a temp dir)")
    p.add_argument("--cutoff", default=None, help="ISO 8601 time: data and labels as known then (default: now)")
    p.add_argument("--days", type=int, default=90, help="decisions of the last N days before the cutoff (default 90)")
    p.add_argument("--label-maturity-days", type=int, default=30,
                   help="unlabelled decisions older than this count as legitimate; younger ones are left out (default 30)")
    p.add_argument("--min-fraud", type=int, default=20, help="refuse to train with fewer fraud labels (default 20)")
    p.add_argument("--fast", action="store_true", help="one regularisation setting (tests, smoke runs)")
    p.add_argument("--region", default=None, help="AWS region of an S3 store")
    a = p.parse_args(argv)
    try:
        cutoff = _cutoff(a.cutoff)
    except argparse.ArgumentTypeError as exc:
        print(exc, file=sys.stderr)
        return 2
    for name, value in (("--days", a.days), ("--label-maturity-days", a.label_maturity_days), ("--min-fraud", a.min_fraud)):
        if value < 1:
            print(f"{name}: must be at least 1 (got {value})", file=sys.stderr)
            return 2
    import tempfile

    import psycopg

    from app.lifecycle import StoreError, open_store
    from app.model import ModelLoadError
    from app.training.export import ExportRefused
    from app.training.procedure import log_to_stderr

    out = a.out or Path(tempfile.mkdtemp(prefix="fraudstack-candidate-"))
    try:
        store = open_store(a.store, a.region)
        with psycopg.connect(a.database_url, connect_timeout=10, autocommit=True) as conn:
            summary = retrain(conn, a.schema, cutoff, out, store, days=a.days, maturity_days=a.label_maturity_days,
                              min_fraud=a.min_fraud, fast=a.fast, log=log_to_stderr)
    except psycopg.Error as exc:
        print(f"--database-url: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    except (RetrainRefused, ExportRefused, ModelLoadError, StoreError, ValueError) as exc:
        print(f"retrain refused: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({**summary, "model_dir": str(out)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
