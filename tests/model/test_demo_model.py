"""The demo model the service builds on first start: a complete, valid model directory."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnxruntime as ort
import pytest

from app.features import FEATURE_NAMES, vectorize
from app.risk import risk_score
from app.training.simulate import SCENARIOS


def test_demo_model_directory(demo_dir):
    out, seconds = demo_dir
    assert seconds < 60
    meta = json.loads((out / "model.json").read_text())
    onx = (out / "model.onnx").read_bytes()
    assert meta["sha256"] == hashlib.sha256(onx).hexdigest()
    assert meta["features"] == list(FEATURE_NAMES)
    assert 0 < meta["thresholds"]["review"] <= meta["thresholds"]["decline"] <= 1
    assert meta["thresholds"]["review_risk_score"] == int(risk_score(meta["thresholds"]["review"]))
    assert set(meta["reference"]["medians"]) == set(FEATURE_NAMES)
    assert meta["metrics"]["test"]["average_precision"] > 0.5  # a working model, not noise
    assert meta["training"]["onnx_max_abs_diff"] <= 1e-5
    assert (out / "report.html").stat().st_size > 10_000
    scen = meta["metrics"]["per_scenario"]
    assert set(scen) == set(SCENARIOS)
    for v in scen.values():
        assert 0 <= v["stopped_amount"] <= v["fraud_amount"] and 0 <= v["recall_at_review"] <= 1
    c = meta["metrics"]["cost"]
    assert c["saved_vs_approve_all"] == pytest.approx(c["approve_all"] - c["model"])
    assert c["model"] < c["approve_all"]

    sess = ort.InferenceSession(onx, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["probabilities"]
    txn = dict(transaction_id="a", timestamp="2026-03-02T13:30:00Z", amount=3.0, currency="EUR",
               card_token="c", customer_id="u", merchant_id="m", mcc="5816", merchant_country="US",
               card_country="US", channel="online", device_id="d", ip_address="10.0.0.1", ip_country="NG")
    x = vectorize(txn, {})[None, :]
    probs = sess.run(["probabilities"], {"input": np.repeat(x, 3, axis=0)})[0]
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_summary_of_a_model_directory(demo_dir, capsys):
    from app.training.summary import main

    out, _ = demo_dir
    meta = json.loads((out / "model.json").read_text())
    assert main([str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{meta['metrics']['test']['average_precision']:.4f}" in text
    for scenario in SCENARIOS:
        assert f"| {scenario} |" in text
    assert main([str(out / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err
