"""Markdown summary of a model directory: ``python -m app.training.summary models/sim``."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def markdown_summary(meta: dict) -> str:
    """Held-out metrics, cost, per-scenario table and thresholds as Markdown."""
    m = meta["metrics"]
    t, b = m["test"], m["baseline_test"]
    lines = [
        f"Model `{meta['version']}`, {len(meta['features'])} features, held-out period of "
        f"{t['rows']:,} transactions ({t['positives']} frauds).",
        "",
        "| | AUPRC | ROC AUC | recall @ 1% FPR | recall @ 0.1% FPR |",
        "| --- | --- | --- | --- | --- |",
        f"| boosted trees (calibrated) | {t['average_precision']:.4f} | {t['roc_auc']:.4f} | "
        f"{t['recall_at_0.01_fpr']:.3f} | {t['recall_at_0.001_fpr']:.3f} |",
        f"| logistic-regression baseline | {b['average_precision']:.4f} | {b['roc_auc']:.4f} | "
        f"{b['recall_at_0.01_fpr']:.3f} | {b['recall_at_0.001_fpr']:.3f} |",
        "",
    ]
    c = m["cost"]
    lines += [
        f"Cost on the held-out period (fraud approved = its amount, review {meta['costs']['review_cost']:g}, "
        f"false decline {meta['costs']['false_decline_cost']:g}): approve everything {c['approve_all']:,.0f}; "
        f"baseline {c['baseline']:,.0f}; model {c['model']:,.0f}: **{c['saved_vs_approve_all']:,.0f} saved** "
        f"against approving everything, **{c['saved_vs_baseline']:,.0f} saved against the baseline**.",
        "",
    ]
    scen = m.get("per_scenario")
    if scen:
        lines += ["| scenario | frauds | AUPRC vs all legitimate | recall @ 1% FPR | recall at the review cut-off "
                  "| fraud amount | stopped by model | stopped by baseline |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for s, v in scen.items():
            lines.append(
                f"| {s} | {v['positives']} | {v['average_precision']:.3f} | {v['recall_at_0.01_fpr']:.3f} | "
                f"{v['recall_at_review']:.3f} | {v.get('fraud_amount', float('nan')):,.0f} | "
                f"{v.get('stopped_amount', float('nan')):,.0f} | {v.get('stopped_amount_baseline', float('nan')):,.0f} |")
        lines.append("")
    th = meta["thresholds"]
    lines += [f"Thresholds: review at p >= {th['review']:.4f} (risk score {th['review_risk_score']}), "
              f"decline at p >= {th['decline']:.4f} (risk score {th['decline_risk_score']}).", "",
              "| cut-off | risk score | precision | recall | flag rate | FPR |", "| --- | --- | --- | --- | --- | --- |"]
    for r in meta["threshold_table"]:
        lines.append(f"| {r['cutoff']:.4f} | {r['risk_score']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['flag_rate']:.4%} | {r['false_positive_rate']:.4%} |")
    tr = meta["training"]
    lines += ["", f"Chosen setting: `{tr['hyperparameters']}`; search (validation AUPRC): "
              + ", ".join(f"{s['max_leaf_nodes']} leaves/{s['n_iter']} trees {s['val_average_precision']:.4f}"
                          for s in tr["search"]) + f". ONNX max |diff| {tr['onnx_max_abs_diff']:.1e}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the summary of ``DIR/model.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app.training.summary MODEL_DIR", file=sys.stderr)
        return 2
    path = Path(args[0]) / "model.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    print(markdown_summary(meta), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
