"""Train, calibrate, choose thresholds, export and document a fraud model.

Simulated (or your own) transactions, features from ``app.features``::

    python -m app.training.train --data data/transactions.parquet --out models/sim
    python -m app.training.train --simulate-rows 200000 --out models/sim

Any labelled table of numeric features (the model inputs are its columns)::

    python -m app.training.train --csv creditcard.csv --label Class --time-column Time \
        --amount-column Amount --out models/cc

Writes ``model.onnx``, ``model.json`` and ``report.html`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from app.risk import risk_score
from app.training.costs import CostModel, choose_thresholds, threshold_table, total_cost
from app.training.export import (
    build_onnx,
    check_parity,
    histogram_reference,
    onnx_probabilities,
    sha256_bytes,
    write_model_dir,
)
from app.training.procedure import (
    ProcedureArgs,
    apply_platt,
    baseline_proba,
    fit_baseline,
    fit_platt,
    log_to_stderr,
    metrics,
    sample_negatives,
    search_then_fit,
    split_rows,
)
from app.training.report import figures, write_report

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    """A feature matrix with labels and what is known about each row."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    times: np.ndarray | None = None
    amounts: np.ndarray | None = None
    scenarios: np.ndarray | None = None
    source: str = ""
    # When each row's label became known (same unit as ``times``), for --label-delay.
    label_times: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.X.shape[1] != len(self.feature_names):
            raise ValueError(f"X has shape {self.X.shape}, expected (N, {len(self.feature_names)})")
        if len(self.y) != len(self.X):
            raise ValueError("X and y have different lengths")
        if not set(np.unique(self.y)) <= {0, 1}:
            raise ValueError("labels must be 0/1")


def _per_scenario(y, p, scenarios, review: float, amounts=None, p_base=None, base_review=None) -> dict:
    """Per fraud scenario: AUPRC and recall of that scenario against all legitimate
    rows, and the fraud amount stopped (reviewed or declined) by model and baseline."""
    out = {}
    legit = y == 0
    for s in sorted(set(scenarios[y == 1]) - {""}):
        rows = legit | (scenarios == s)
        m = metrics(y[rows], p[rows])
        mine = scenarios == s
        flagged = (p >= review) & mine
        entry = {"positives": m["positives"], "average_precision": m.get("average_precision", 0.0),
                 "recall_at_0.01_fpr": m.get("recall_at_0.01_fpr", 0.0),
                 "recall_at_review": float(flagged.sum() / max(m["positives"], 1))}
        if amounts is not None:
            entry["fraud_amount"] = float(amounts[mine].sum())
            entry["stopped_amount"] = float(amounts[flagged].sum())
            if p_base is not None:
                entry["stopped_amount_baseline"] = float(amounts[(p_base >= base_review) & mine].sum())
        out[str(s)] = entry
    return out


def train_and_export(data: Dataset, out_dir: Path, costs: CostModel = CostModel(),
                     args: ProcedureArgs = ProcedureArgs(),
                     log: Callable[[str], None] | None = log_to_stderr,
                     label_delay: bool = False) -> dict:
    """The whole procedure; returns model.json's content.

    ``label_delay``: train as a bank would on the first day of the validation
    period, when frauds whose chargeback has not arrived yet still look legitimate
    (needs ``data.label_times``). Validation and test keep the final labels.
    """
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    X = np.asarray(data.X, dtype=np.float32)
    y = np.asarray(data.y, dtype=np.int64)
    split = split_rows(y, data.times, args)
    y_fit = y.copy()
    hidden = 0
    if label_delay:
        if data.label_times is None or not split.time_ordered:
            raise ValueError("--label-delay needs label times and a time column")
        cutoff = np.asarray(data.times)[split.val].min()
        late = np.zeros(len(y), dtype=bool)
        late[split.train] = np.asarray(data.label_times)[split.train] > cutoff
        hidden = int((late & (y == 1)).sum())
        y_fit[late] = 0
        say(f"label delay: {hidden} training frauds not yet reported at the cutoff are labelled legitimate")
    fit_rows, neg_share = sample_negatives(split.train, y_fit, args)
    Xtr, ytr = X[fit_rows], y_fit[fit_rows]
    Xva, yva = X[split.val], y[split.val]
    Xte, yte = X[split.test], y[split.test]
    say(f"split ({'time-ordered' if split.time_ordered else 'stratified'}): train {len(split.train):,} "
        f"(fitting on {len(ytr):,}: {neg_share:.1%} of negatives) "
        f"({ytr.sum()} fraud), validation {len(yva):,} ({yva.sum()}), test {len(yte):,} ({yte.sum()})")

    say(f"searching {len(args.grid)} regularisation settings (early stopping on validation AP)")
    found = search_then_fit(Xtr, ytr, Xva, yva, args, log=say)
    model = found.model
    raw_val = model.predict_proba(Xva)[:, 1]
    a, b = fit_platt(raw_val, yva)
    p_val = apply_platt(raw_val, a, b)
    p_test = apply_platt(model.predict_proba(Xte)[:, 1], a, b)
    say(f"calibrated (Platt on log-odds: a={a:.3f}, b={b:.3f})")

    say("logistic-regression baseline")
    base = fit_baseline(Xtr, ytr, args.seed)
    braw_val = baseline_proba(base, Xva)
    ba, bb = fit_platt(braw_val, yva)
    pb_val = apply_platt(braw_val, ba, bb)
    pb_test = apply_platt(baseline_proba(base, Xte), ba, bb)

    amt = lambda idx: None if data.amounts is None else np.asarray(data.amounts)[idx]  # noqa: E731
    th = choose_thresholds(p_val, yva, amt(split.val), costs)
    bth = choose_thresholds(pb_val, yva, amt(split.val), costs)
    all_baseline_thresholds = bth
    thresholds = {**th, "review_risk_score": int(risk_score(th["review"])),
                  "decline_risk_score": int(risk_score(th["decline"]))}
    say(f"thresholds: review >= {th['review']:.5f}, decline >= {th['decline']:.5f}")

    m_test = metrics(yte, p_test)
    cost = {
        "approve_all": total_cost(np.zeros(len(yte)), yte, amt(split.test), costs, 2.0, 2.0),
        "baseline": total_cost(pb_test, yte, amt(split.test), costs, bth["review"], bth["decline"]),
        "model": total_cost(p_test, yte, amt(split.test), costs, th["review"], th["decline"]),
    }
    cost["saved_vs_approve_all"] = cost["approve_all"] - cost["model"]
    cost["saved_vs_baseline"] = cost["baseline"] - cost["model"]
    all_metrics = {"test": m_test, "validation": metrics(yva, p_val),
                   "baseline_test": metrics(yte, pb_test), "baseline_thresholds": all_baseline_thresholds,
                   "cost": cost}
    if data.scenarios is not None:
        all_metrics["per_scenario"] = _per_scenario(yte, p_test, np.asarray(data.scenarios)[split.test],
                                                    th["review"], amt(split.test), pb_test, bth["review"])
    say(f"held-out: AUPRC {m_test.get('average_precision', float('nan')):.4f} "
        f"(baseline {all_metrics['baseline_test'].get('average_precision', float('nan')):.4f}), "
        f"recall@1%FPR {m_test.get('recall_at_0.01_fpr', float('nan')):.3f}")

    say("exporting ONNX")
    onx_bytes = build_onnx(model, X.shape[1], a, b).SerializeToString()
    diff = check_parity(onx_bytes, model, a, b, Xva)
    say(f"ONNX parity on validation: max |diff| {diff:.2e}")
    say("permutation importance (validation period, through the ONNX graph)")
    importance = permutation_ranking(onx_bytes, Xva, yva, data.feature_names, args.seed)
    sha = sha256_bytes(onx_bytes)
    cut_table = sorted({th["review"], th["decline"], *np.quantile(p_val, [0.9, 0.99, 0.995, 0.999])})
    table = threshold_table(p_test, yte, cut_table)
    fnames = list(data.feature_names)
    with np.errstate(all="ignore"):
        medians = np.nanmedian(Xtr, axis=0)
    meta = {
        "format_version": FORMAT_VERSION,
        "version": f"{datetime.now(timezone.utc):%Y%m%d%H%M%S}-{sha[:8]}",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features": fnames,
        "input": {"name": "input", "dtype": "float32", "shape": [None, len(fnames)]},
        "output": {"name": "probabilities", "shape": [None, 2], "fraud_column": 1},
        "thresholds": thresholds,
        "costs": costs.as_dict(),
        "risk_score": {"formula": "round(999 * (log10(clip(p, 1e-5, 1)) + 5) / 5)",
                       "function": "app.risk.risk_score"},
        "calibration": {"method": "platt_on_log_odds", "a": a, "b": b,
                        "fitted_on": "validation period", "inside_onnx": True},
        "training": {
            "source": data.source,
            "rows": {"train": int(len(split.train)), "fitted": int(len(ytr)), "validation": int(len(yva)),
                     "test": int(len(yte))},
            "negatives_kept": neg_share,
            "label_delay": {"applied": label_delay, "frauds_hidden": hidden},
            "positives": {"train": int(ytr.sum()), "validation": int(yva.sum()), "test": int(yte.sum())},
            "positive_rate": float(y.mean()),
            "time_ordered": split.time_ordered,
            "periods": _periods(data.times, split),
            "hyperparameters": {**found.params, "n_iter": int(model.n_iter_)},
            "search": found.trials,
            "refit_val_average_precision": found.refit_val_average_precision,
            "fitted_on": found.fitted_on,
            "onnx_max_abs_diff": diff,
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "metrics": all_metrics,
        "threshold_table": table,
        "feature_importance": importance,
        "reference": {
            # An all-missing column has no median; 0 keeps the service's counterfactuals defined.
            "medians": {f: (0.0 if np.isnan(v) else float(v)) for f, v in zip(fnames, medians)},
        },
        "drift_reference": {
            "score": histogram_reference(p_val),
            "features": {r["feature"]: histogram_reference(Xva[:, fnames.index(r["feature"])])
                         for r in importance[:10]},
        },
    }
    write_model_dir(out_dir, onx_bytes, meta)
    write_report(out_dir / "report.html", dict(meta, sha256=sha),
                 figures(yte, p_test, pb_test, importance))
    say(f"wrote {out_dir}/model.onnx, model.json, report.html in {time.perf_counter() - t0:.1f}s")
    return dict(meta, sha256=sha)


def permutation_ranking(onx_bytes: bytes, X: np.ndarray, y: np.ndarray, names: Sequence[str],
                        seed: int, max_negatives: int = 20_000) -> list[dict]:
    """Drop in average precision when each feature is shuffled (all positives and a
    sample of negatives; scored with ONNX Runtime, which is ~100x faster here)."""
    rng = np.random.default_rng(seed)
    neg = np.flatnonzero(y == 0)
    sub = np.concatenate([np.flatnonzero(y == 1), rng.choice(neg, min(len(neg), max_negatives), replace=False)])
    Xs, ys = np.array(X[sub], dtype=np.float32), y[sub]
    base = average_precision_score(ys, onnx_probabilities(onx_bytes, Xs)[:, 1])
    out = []
    for j, name in enumerate(names):
        col = Xs[:, j].copy()
        Xs[:, j] = rng.permutation(col)
        ap = average_precision_score(ys, onnx_probabilities(onx_bytes, Xs)[:, 1])
        Xs[:, j] = col
        out.append({"feature": name, "importance": float(base - ap)})
    return sorted(out, key=lambda r: -r["importance"])


def _periods(times, split) -> dict | None:
    if times is None:
        return None
    t = np.asarray(times)
    return {name: [float(t[idx].min()), float(t[idx].max())]
            for name, idx in (("train", split.train), ("validation", split.val), ("test", split.test))}


# ---------------------------------------------------------------------------
# Data loading.
# ---------------------------------------------------------------------------
def dataset_from_transactions(df: pd.DataFrame, source: str) -> Dataset:
    """Features of a transaction history (simulator output or the same columns)."""
    from app.features import FEATURE_NAMES, _timestamps_ms, offline_features

    if "is_fraud" not in df:
        raise ValueError(f"{source}: no 'is_fraud' label column")
    X = offline_features(df)
    return Dataset(X=X, y=df["is_fraud"].to_numpy(dtype=np.int64), feature_names=FEATURE_NAMES,
                   times=_timestamps_ms(df["timestamp"]).astype(np.float64),
                   amounts=df["amount"].to_numpy(dtype=np.float64),
                   label_times=(_timestamps_ms(df["label_available_at"]).astype(np.float64)
                                if "label_available_at" in df else None),
                   scenarios=df["fraud_scenario"].fillna("").astype(str).to_numpy()
                   if "fraud_scenario" in df else None, source=source)


def dataset_from_csv(path: Path, label: str, time_column: str | None = None,
                     amount_column: str | None = None, drop: Sequence[str] = ()) -> Dataset:
    """A labelled table of numeric features; every other column is a model input."""
    df = pd.read_csv(path)
    for name, col in (("--label", label), ("--time-column", time_column), ("--amount-column", amount_column),
                      *(("--drop", d) for d in drop)):
        if col is not None and col not in df.columns:
            raise ValueError(f"{name}: column {col!r} is not in {path} (columns: {', '.join(map(str, df.columns[:20]))})")
    yraw = df[label]
    if yraw.isna().any():
        raise ValueError(f"--label: column {label!r} has {int(yraw.isna().sum())} empty values")
    ynum = pd.to_numeric(yraw, errors="coerce")
    if ynum.isna().any() or not set(ynum.unique()) <= {0, 1}:
        raise ValueError(f"--label: column {label!r} must hold only 0 and 1 (found {sorted(map(str, yraw.unique()))[:5]})")
    features = [c for c in df.columns if c not in {label, time_column, *drop}]
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise ValueError(f"non-numeric feature columns: {', '.join(map(str, bad))} "
                         "(encode them as numbers or exclude them with --drop)")
    if not features:
        raise ValueError("no feature columns left")
    times = None
    if time_column is not None:
        tcol = df[time_column]
        times = (pd.to_numeric(tcol, errors="coerce") if pd.api.types.is_numeric_dtype(tcol)
                 else pd.to_datetime(tcol, utc=True, errors="coerce").astype("int64")).to_numpy(dtype=np.float64)
        if np.isnan(times).any():
            raise ValueError(f"--time-column: column {time_column!r} has empty or unparseable values")
    return Dataset(X=df[features].to_numpy(dtype=np.float32), y=ynum.to_numpy(dtype=np.int64),
                   feature_names=tuple(map(str, features)), times=times,
                   amounts=df[amount_column].to_numpy(dtype=np.float64) if amount_column else None,
                   source=f"csv:{path.name}")


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = argparse.ArgumentParser(prog="python -m app.training.train",
                                description="Train and export a fraud model (ONNX + model.json + report.html).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="simulator output (.parquet or .csv)")
    src.add_argument("--simulate-rows", type=int, help="simulate this many transactions first")
    src.add_argument("--csv", type=Path, help="any labelled CSV of numeric features")
    p.add_argument("--label", help="label column (0/1) for --csv")
    p.add_argument("--time-column", help="time column for a time-ordered split (--csv); not a feature")
    p.add_argument("--amount-column", help="per-row fraud loss for the cost model (--csv)")
    p.add_argument("--drop", action="append", default=[], help="column to exclude (--csv); repeatable")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--fraud-rate", type=float, default=0.005, help="with --simulate-rows")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--review-cost", type=float, default=CostModel.review_cost)
    p.add_argument("--false-decline-cost", type=float, default=CostModel.false_decline_cost)
    p.add_argument("--fraud-loss", type=float, default=CostModel.fraud_loss,
                   help="loss per approved fraud when amounts are unknown")
    p.add_argument("--fast", action="store_true", help="one regularisation setting instead of the search")
    p.add_argument("--label-delay", action="store_true",
                   help="simulator data: hide training frauds whose label arrives after the training cutoff")
    p.add_argument("--jobs", type=int, default=2, help="search candidates fitted in parallel processes")
    p.add_argument("--threads", type=int, default=0,
                   help="OpenMP threads for tree fitting (0 = all cores; use 1 on a busy shared machine)")
    a = p.parse_args(argv)
    if a.csv is not None and not a.label:
        p.error("--csv needs --label COLUMN")
    if a.csv is None and (a.label or a.time_column or a.amount_column or a.drop):
        p.error("--label/--time-column/--amount-column/--drop only apply to --csv")
    try:
        costs = CostModel(review_cost=a.review_cost, false_decline_cost=a.false_decline_cost,
                          fraud_loss=a.fraud_loss)
        if a.csv is not None:
            log_to_stderr(f"reading {a.csv}")
            data = dataset_from_csv(a.csv, a.label, a.time_column, a.amount_column, a.drop)
        else:
            if a.data is not None:
                log_to_stderr(f"reading {a.data}")
                df = pd.read_parquet(a.data) if a.data.suffix == ".parquet" else pd.read_csv(a.data)
                source = str(a.data.name)
            else:
                from app.training.simulate import SimulationArgs, simulate

                df = simulate(SimulationArgs(rows=a.simulate_rows, fraud_rate=a.fraud_rate, seed=a.seed),
                              progress=True)
                source = f"simulate(rows={a.simulate_rows}, fraud_rate={a.fraud_rate}, seed={a.seed})"
            started = time.perf_counter()
            data = dataset_from_transactions(df, source)
            log_to_stderr(f"features: {data.X.shape[0]:,} x {data.X.shape[1]} in {time.perf_counter() - started:.1f}s")
        from app.training.procedure import FAST_GRID

        args = ProcedureArgs(grid=FAST_GRID if a.fast else ProcedureArgs().grid, n_jobs=max(1, a.jobs))
        with threadpool_limits(a.threads if a.threads > 0 else None):
            train_and_export(data, a.out, costs, args, label_delay=a.label_delay)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
