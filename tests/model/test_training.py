"""Training procedure: CSV mode at extreme imbalance, ONNX parity and refusal,
thresholds, calibration, errors naming the bad input."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from app.risk import decide, risk_score, risk_score_one
from app.training import export
from app.training.costs import CostModel, choose_thresholds, threshold_table, total_cost
from app.training.procedure import FAST_GRID, ProcedureArgs, apply_platt, logit
from app.training.train import dataset_from_csv, main


def _imbalanced_table(n: int = 60_000, rate: float = 0.002, seed: int = 0) -> pd.DataFrame:
    """A table like public card data: anonymised numeric components, an amount,
    a time column in seconds, ~0.2% positives that differ in a few components."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    X = rng.normal(size=(n, 12))
    X[y == 1, 0] += 3.0  # linear signals
    X[y == 1, 3] -= 3.0
    X[y == 1, 7] *= 5.0  # a variance signal a linear model cannot use
    X[rng.random((n, 12)) < 0.01] = np.nan  # missing values must survive into ONNX
    df = pd.DataFrame(X, columns=[f"V{i}" for i in range(1, 13)])
    df.insert(0, "Time", np.sort(rng.uniform(0, 172_800, n)).round(0))
    df["Amount"] = np.round(rng.lognormal(3.5, 1.0, n), 2)
    df["Class"] = y
    return df


@pytest.fixture(scope="module")
def csv_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("csv")
    df = _imbalanced_table(50_000)
    path = tmp / "cards.csv"
    df.to_csv(path, index=False)
    out = tmp / "model"
    rc = main(["--csv", str(path), "--label", "Class", "--time-column", "Time",
               "--amount-column", "Amount", "--threads", "1", "--out", str(out)])
    assert rc == 0
    return df, out


def test_csv_mode_outputs(csv_model):
    df, out = csv_model
    meta = json.loads((out / "model.json").read_text())
    features = [c for c in df.columns if c not in ("Class", "Time")]
    assert meta["features"] == features  # inputs are the CSV columns, time excluded
    assert meta["training"]["time_ordered"] is True
    assert meta["training"]["positive_rate"] == pytest.approx(df["Class"].mean())
    assert len(meta["training"]["search"]) == len(ProcedureArgs().grid)
    t = meta["metrics"]["test"]
    assert t["average_precision"] > 0.6 and t["roc_auc"] > 0.95
    # the boosted model is at least as good as the logistic baseline on this table
    assert t["average_precision"] >= meta["metrics"]["baseline_test"]["average_precision"] - 0.05
    periods = meta["training"]["periods"]
    assert periods["train"][1] <= periods["validation"][0] <= periods["validation"][1] <= periods["test"][0]
    med = meta["reference"]["medians"]
    assert list(med) == features and all(isinstance(v, float) for v in med.values())
    assert med["Amount"] == pytest.approx(float(df["Amount"].iloc[: meta["training"]["rows"]["train"]].median()), rel=0.05)
    drift = meta["drift_reference"]
    assert abs(sum(drift["score"]["shares"]) - 1) < 1e-9 and len(drift["features"]) == 10
    html = (out / "report.html").read_text()
    for needle in ("Precision-recall", "ROC", "Calibration", "Score distribution", "Feature importance",
                   "data:image/png;base64,"):
        assert needle in html


def test_csv_model_onnx_matches_with_missing_values(csv_model):
    df, out = csv_model
    meta = json.loads((out / "model.json").read_text())
    X = df[meta["features"]].to_numpy(dtype=np.float32)[:5000]
    assert np.isnan(X).any()
    sess = ort.InferenceSession((out / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    p = sess.run(["probabilities"], {"input": X})[0]
    assert p.shape == (5000, 2) and np.all((p >= 0) & (p <= 1))
    # calibrated: mean predicted probability is near the observed rate on the table
    assert p[:, 1].mean() == pytest.approx(df["Class"][:5000].mean(), abs=0.002)


def test_export_refuses_divergent_onnx(csv_model, tmp_path):
    df = _imbalanced_table(8000, rate=0.02, seed=3)
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = df.drop(columns=["Class"]).to_numpy(dtype=np.float32)
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, df["Class"])
    good = export.build_onnx(model, X.shape[1], 1.0, 0.0).SerializeToString()
    assert export.check_parity(good, model, 1.0, 0.0, X) <= 1e-5
    # a graph calibrated differently from scikit-learn must not be exported
    bad = export.build_onnx(model, X.shape[1], 1.0, 0.01).SerializeToString()
    with pytest.raises(export.ExportRefused, match="differ"):
        export.check_parity(bad, model, 1.0, 0.0, X)


def test_thresholds_monotone_and_cost_optimal():
    rng = np.random.default_rng(1)
    y = (rng.random(20_000) < 0.01).astype(int)
    p = np.clip(rng.beta(1, 60, 20_000) + y * rng.beta(4, 3, 20_000), 0, 1)
    amounts = rng.lognormal(4, 1, 20_000)
    costs = CostModel(review_cost=5, false_decline_cost=15)
    th = choose_thresholds(p, y, amounts, costs)
    assert 0 < th["review"] <= th["decline"] <= 1
    best = total_cost(p, y, amounts, costs, th["review"], th["decline"])
    for r, d in [(0.01, 0.5), (0.05, 0.9), (th["review"] * 1.5, th["decline"]), (th["review"], th["review"])]:
        assert best <= total_cost(p, y, amounts, costs, r, d) + 1e-6
    # more expensive reviews never widen the review band
    pricey = choose_thresholds(p, y, amounts, CostModel(review_cost=50, false_decline_cost=15))
    assert pricey["review"] >= th["review"]
    table = threshold_table(p, y, sorted([0.01, 0.1, 0.5, 0.9]))
    recalls = [r["recall"] for r in table]
    fprs = [r["false_positive_rate"] for r in table]
    assert recalls == sorted(recalls, reverse=True) and fprs == sorted(fprs, reverse=True)


def test_risk_score_one_equals_the_vectorised_form():
    # The per-score path uses the scalar form: it must agree everywhere, rounding included.
    rng = np.random.default_rng(11)
    p = np.concatenate([rng.random(50_000), 10.0 ** rng.uniform(-7, 0, 50_000),
                        [0.0, 1e-5, 1e-3, 1e-2, 0.1, 0.5, 1.0]])
    # probabilities whose exact risk score ends in .5 (half-to-even rounding on both sides)
    p = np.concatenate([p, 10.0 ** (np.arange(0, 999) * 5.0 / 999.0 + 2.5 / 999.0 - 5.0)])
    assert [risk_score_one(x) for x in p.tolist()] == risk_score(p).tolist()


def test_risk_score_and_decision():
    assert risk_score(np.array([0.0, 1e-5, 1e-3, 1e-2, 0.1, 1.0])).tolist() == [0, 0, 400, 599, 799, 999]
    th = {"review": 0.1, "decline": 0.6}
    assert [decide(p, th) for p in (0.01, 0.1, 0.59, 0.6)] == ["approve", "review", "review", "decline"]


def test_platt_is_identity_at_a1_b0():
    p = np.array([1e-6, 0.01, 0.5, 0.99])
    np.testing.assert_allclose(apply_platt(p, 1.0, 0.0), p, rtol=1e-9)
    assert np.isfinite(logit(np.array([0.0, 1.0]))).all()


def test_csv_errors_name_the_problem(tmp_path, capsys):
    df = _imbalanced_table(3000, rate=0.05)
    df["merchant"] = "shop"
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "m"
    assert main(["--csv", str(path), "--label", "Class", "--out", str(out)]) == 2
    assert "non-numeric feature columns: merchant" in capsys.readouterr().err
    assert main(["--csv", str(path), "--label", "Nope", "--drop", "merchant", "--out", str(out)]) == 2
    assert "--label: column 'Nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="only 0 and 1"):
        dataset_from_csv(path, "Amount", drop=["merchant"])
    with pytest.raises(SystemExit):
        main(["--csv", str(path), "--out", str(out)])  # --label missing
    assert not out.exists()
    # --drop makes it train, with the fast setting
    assert main(["--csv", str(path), "--label", "Class", "--drop", "merchant", "--fast",
                 "--threads", "1", "--out", str(out)]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert "merchant" not in meta["features"] and meta["training"]["time_ordered"] is False
    assert len(meta["training"]["search"]) == len(FAST_GRID)


def test_label_delay_hides_late_frauds_from_training(tmp_path):
    from app.training.simulate import SimulationArgs, simulate
    from app.training.train import dataset_from_transactions, train_and_export

    df = simulate(SimulationArgs(rows=12_000, fraud_rate=0.02, days=14, seed=5))
    data = dataset_from_transactions(df, "test")
    args = ProcedureArgs(grid=FAST_GRID, max_iter=30, n_iter_no_change=10)
    meta = train_and_export(data, tmp_path / "m", args=args, log=None, label_delay=True)
    hidden = meta["training"]["label_delay"]
    # frauds in the last days before the cutoff cannot have been reported yet
    assert hidden["applied"] is True and hidden["frauds_hidden"] > 0
    train_frauds = int(df["is_fraud"].iloc[: meta["training"]["rows"]["train"]].sum())
    assert meta["training"]["positives"]["train"] + hidden["frauds_hidden"] == train_frauds
    late = (df["label_available_at"] > df["timestamp"].iloc[meta["training"]["rows"]["train"]])
    assert hidden["frauds_hidden"] == int((late & (df["is_fraud"] == 1)).iloc[: meta["training"]["rows"]["train"]].sum())
    with pytest.raises(ValueError, match="label"):
        train_and_export(data.__class__(X=data.X, y=data.y, feature_names=data.feature_names),
                         tmp_path / "n", args=args, log=None, label_delay=True)


def test_search_on_a_sample_then_refit_never_validates_worse():
    from sklearn.metrics import average_precision_score

    from app.training.procedure import SEARCH_GRID, search_then_fit

    df = _imbalanced_table(12_000, rate=0.02, seed=4)
    X = df.drop(columns=["Class", "Time"]).to_numpy(dtype=np.float32)
    y = df["Class"].to_numpy()
    args = ProcedureArgs(grid=SEARCH_GRID[:2], max_iter=40, n_iter_no_change=10, max_search_rows=3000, n_jobs=1)
    found = search_then_fit(X[:8000], y[:8000], X[8000:], y[8000:], args)
    assert len(found.trials) == 2 and found.refit_val_average_precision is not None
    final_ap = average_precision_score(y[8000:], found.model.predict_proba(X[8000:])[:, 1])
    best_search = max(t["val_average_precision"] for t in found.trials)
    assert final_ap >= best_search - 1e-12
    assert found.fitted_on in ("full training sample", "search sample")
