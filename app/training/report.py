"""The model card: ``report.html`` with the curves and tables a reviewer looks at."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str) -> str:
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def figures(y: np.ndarray, p: np.ndarray, p_base: np.ndarray | None,
            importance: list[dict]) -> dict[str, str]:
    """PNG (base64) of each plot."""
    out = {}
    fig, ax = plt.subplots(figsize=(5, 4))
    prec, rec, _ = precision_recall_curve(y, p)
    ax.plot(rec, prec, label="model")
    if p_base is not None:
        pb, rb, _ = precision_recall_curve(y, p_base)
        ax.plot(rb, pb, label="logistic baseline", alpha=0.7)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (held-out period)")
    ax.legend()
    out["pr"] = _png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label="model")
    if p_base is not None:
        fb, tb, _ = roc_curve(y, p_base)
        ax.plot(fb, tb, label="logistic baseline", alpha=0.7)
    ax.set_xscale("log")
    ax.set(xlim=(1e-4, 1), xlabel="false-positive rate (log)", ylabel="recall", title="ROC")
    ax.legend()
    out["roc"] = _png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    # Log-spaced bins: at 0.1-1% fraud almost all rows sit below 1e-3, where
    # quantile bins would hold no fraud at all and vanish from a log plot.
    edges = np.logspace(-6, 0, 13)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    mean, frac, n = [], [], []
    for b in range(len(edges) - 1):
        sel = idx == b
        if sel.sum() >= 20 and y[sel].sum() > 0:
            mean.append(p[sel].mean())
            frac.append(y[sel].mean())
            n.append(int(sel.sum()))
    ax.plot(mean, frac, "o-", label="model (bins with fraud, >= 20 rows)")
    for xm, fr, cnt in zip(mean, frac, n):
        ax.annotate(f"{cnt:,}", (xm, fr), fontsize=7, xytext=(3, -8), textcoords="offset points")
    ax.plot([1e-6, 1], [1e-6, 1], "k--", lw=1, label="perfect")
    ax.set(xscale="log", yscale="log", xlabel="predicted probability", ylabel="observed fraud rate",
           title="Calibration (log-spaced bins, row counts)")
    ax.legend()
    out["calibration"] = _png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.logspace(-6, 0, 50)
    pc = np.clip(p, 1e-6, 1)
    ax.hist(pc[y == 0], bins=bins, alpha=0.6, density=True, label="legitimate")
    ax.hist(pc[y == 1], bins=bins, alpha=0.6, density=True, label="fraud")
    ax.set(xscale="log", xlabel="calibrated probability", ylabel="density",
           title="Score distribution by class")
    ax.legend()
    out["scores"] = _png(fig)

    top = importance[:15][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1))
    ax.barh([t["feature"] for t in top], [t["importance"] for t in top])
    ax.set(xlabel="drop in average precision when permuted", title="Feature importance")
    out["importance"] = _png(fig)
    return out


def write_report(path: Path, meta: dict, figs: dict[str, str]) -> None:
    """Write the HTML model card."""
    m = meta["metrics"]
    rows = "".join(
        f"<tr><td>{r['cutoff']:.5f}</td><td>{r['risk_score']}</td><td>{r['precision']:.3f}</td>"
        f"<td>{r['recall']:.3f}</td><td>{r['flag_rate']:.4%}</td><td>{r['false_positive_rate']:.4%}</td></tr>"
        for r in meta["threshold_table"])
    metric_rows = "".join(
        f"<tr><td>{html.escape(k)}</td>" + "".join(
            f"<td>{m[k].get(c, float('nan')):.4f}</td>" for c in
            ("average_precision", "roc_auc", "recall_at_0.01_fpr", "recall_at_0.001_fpr", "brier"))
        + "</tr>" for k in ("test", "baseline_test", "validation") if k in m)
    scen = m.get("per_scenario", {})
    scen_rows = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{v['positives']}</td><td>{v['recall_at_review']:.3f}</td>"
        f"<td>{v['recall_at_0.01_fpr']:.3f}</td><td>{v['average_precision']:.4f}</td>"
        f"<td>{v.get('fraud_amount', float('nan')):,.0f}</td><td>{v.get('stopped_amount', float('nan')):,.0f}</td>"
        f"<td>{v.get('stopped_amount_baseline', float('nan')):,.0f}</td></tr>"
        for s, v in scen.items())
    cost = m.get("cost", {})
    cost_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:,.2f}</td></tr>" for k, v in cost.items())
    th = meta["thresholds"]
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>Model card {html.escape(meta['version'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}figure{{display:inline-block;margin:8px}}</style></head><body>
<h1>Fraud model {html.escape(meta['version'])}</h1>
<p>{len(meta['features'])} features; trained on {meta['training']['rows']['train']:,} rows,
validated on {meta['training']['rows']['validation']:,}, held-out test period {meta['training']['rows']['test']:,}
({'time-ordered' if meta['training']['time_ordered'] else 'stratified random'} split).
Chosen hyper-parameters: <code>{html.escape(str(meta['training']['hyperparameters']))}</code>.</p>
<h2>Metrics (held-out period unless noted)</h2>
<table><tr><th>set</th><th>AUPRC</th><th>ROC AUC</th><th>recall @1% FPR</th><th>recall @0.1% FPR</th><th>Brier</th></tr>{metric_rows}</table>
<h2>Decision thresholds</h2>
<p>review at p &ge; {th['review']:.5f} (risk score {th['review_risk_score']}), decline at p &ge; {th['decline']:.5f}
(risk score {th['decline_risk_score']}); costs {html.escape(str(meta['costs']))}.</p>
<table><tr><th>cut-off</th><th>risk score</th><th>precision</th><th>recall</th><th>flag rate</th><th>FPR</th></tr>{rows}</table>
<h2>Cost on the held-out period</h2><table>{cost_rows}</table>
{'<h2>Per fraud scenario</h2><table><tr><th>scenario</th><th>frauds</th><th>recall at review cut-off</th><th>recall @1% FPR</th><th>AUPRC vs legitimate</th><th>fraud amount</th><th>stopped (model)</th><th>stopped (baseline)</th></tr>' + scen_rows + '</table>' if scen else ''}
<h2>Plots</h2>
{_img(figs['pr'], 'Precision-recall curve')}{_img(figs['roc'], 'ROC curve')}
{_img(figs['calibration'], 'Calibration')}{_img(figs['scores'], 'Score distribution by class')}
{_img(figs['importance'], 'Feature importance (permutation, validation period)')}
</body></html>"""
    path.write_text(body, encoding="utf-8")
