"""Drift monitoring: PSI of the score and features on simulated streams, EMF lines, gauges."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from app.drift import DriftMonitor, bin_counts, emf_record, psi, references
from app.features import FEATURE_NAMES, offline_features
from app.model import ScoringModel, Thresholds
from app.training.export import histogram_reference
from app.training.simulate import SimulationArgs, simulate

MONITORED = ("log_amount", "card_count_1h", "card_amount_24h", "hour")


@pytest.fixture(scope="module")
def model(model_dirs: dict[str, Path]) -> ScoringModel:
    m = ScoringModel(model_dirs["v1"])
    m.load()
    return m


def _stream(seed: int, fraud_rate: float = 0.005, amount_factor: float = 1.0) -> np.ndarray:
    df = simulate(SimulationArgs(rows=12_000, fraud_rate=fraud_rate, days=14, seed=seed))
    df["amount"] = df["amount"] * amount_factor
    return offline_features(df).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model: ScoringModel) -> dict[str, Any]:
    """model.json's drift_reference, built by the training code's own function on a reference stream."""
    x = _stream(seed=11)
    scores = model.probabilities(x)[:, 1]
    return {"drift_reference": {
        "score": histogram_reference(scores),
        "features": {f: histogram_reference(x[:, FEATURE_NAMES.index(f)]) for f in MONITORED}}}


def _run(model: ScoringModel, meta: dict[str, Any], x: np.ndarray, version: str = "v1") -> DriftMonitor:
    monitor = DriftMonitor(version, references(meta, FEATURE_NAMES), model.thresholds, window=len(x),
                           dimensions={"Environment": "test", "Service": "scoring-api"}, flush_rows=500)
    scores = model.probabilities(x)[:, 1]
    for row, score in zip(x, scores):
        monitor.offer(row, float(score), "approve", version)
    monitor.flush()  # the tail below flush_rows; the window (= the stream) closes here
    return monitor


def test_serving_bins_reproduce_the_training_reference(reference: dict[str, Any]) -> None:
    x = _stream(seed=11)
    for f in MONITORED:
        ref = reference["drift_reference"]["features"][f]
        counts = bin_counts(ref["edges"], x[:, FEATURE_NAMES.index(f)])
        assert np.allclose(counts / counts.sum(), ref["shares"])
        assert psi(ref["shares"], counts) == pytest.approx(0.0, abs=1e-9)


def test_same_population_is_stable_and_shifted_stream_alarms(model: ScoringModel, reference: dict[str, Any],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    stable = _run(model, reference, _stream(seed=12)).last
    assert set(stable) == {"score", *MONITORED}
    assert max(stable.values()) < 0.1, stable
    with caplog.at_level(logging.INFO, logger="fraudstack.emf"):
        shifted = _run(model, reference, _stream(seed=13, fraud_rate=0.05, amount_factor=3.0), version="v1-shifted").last
    assert shifted["log_amount"] > 0.25, shifted
    assert shifted["score"] > 0.25, shifted
    assert shifted["hour"] < 0.1, shifted  # time of day did not move
    assert REGISTRY.get_sample_value("fraudstack_model_psi", {"version": "v1-shifted", "subject": "log_amount"}) == \
        pytest.approx(shifted["log_amount"])
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "fraudstack.emf"]
    assert len(lines) == 1
    doc = lines[0]
    assert doc["ScorePSI"] == pytest.approx(shifted["score"])
    assert doc["FeaturePSIMax"] == pytest.approx(max(v for k, v in shifted.items() if k != "score"))
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "fraudstack"
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Environment", "Service"]]
    assert (doc["Environment"], doc["Service"]) == ("test", "scoring-api")


def test_windows_decision_rates_and_other_versions() -> None:
    refs = references({"drift_reference": {"score": {"edges": [0.0, 0.5, 1.0], "shares": [0.5, 0.5]}}}, FEATURE_NAMES)
    monitor = DriftMonitor("v7", refs, Thresholds(review=0.3, decline=0.8), window=10, flush_rows=3)
    row = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    for score in [0.1] * 5 + [0.5] * 3 + [0.9] * 2:
        monitor.offer(row, score, "ignored", "v7")
    monitor.offer(row, 0.9, "decline", "v6")  # a request finished on the previous model: not this population
    monitor.flush()
    assert monitor.n == 0  # the window of 10 closed and reset
    # shares: 5 below 0.5, 5 above -> exactly the reference
    assert monitor.last == {"score": pytest.approx(0.0)}
    rates = {d: REGISTRY.get_sample_value("fraudstack_model_window_decision_rate", {"version": "v7", "decision": d})
             for d in ("approve", "review", "decline")}
    assert rates == {"approve": 0.5, "review": 0.3, "decline": 0.2}


def test_psi_exact_value_and_errors() -> None:
    # two bins, expected 50/50, observed 80/20: (0.3 ln 1.6) + (-0.3 ln 0.4)
    assert psi([0.5, 0.5], [80, 20]) == pytest.approx(0.3 * np.log(1.6) - 0.3 * np.log(0.4))
    with pytest.raises(ValueError, match="psi needs 2 non-empty bin counts"):
        psi([0.5, 0.5], [0, 0])
    assert emf_record({"ScorePSI": 0.5}, {"Service": "s", "Environment": "e"}, timestamp_ms=1)["_aws"] == {
        "Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "fraudstack", "Dimensions": [["Environment", "Service"]],
                                               "Metrics": [{"Name": "ScorePSI", "Unit": "None"}]}]}


def test_service_publishes_psi_per_window_for_the_active_model(make_app: Any) -> None:
    import asyncio

    from ..service.helpers import txn
    from .conftest import ADMIN_KEY, CLIENT_KEY
    from .test_hot_swap import _with_client

    app = make_app(FRAUDSTACK_DRIFT_WINDOW="100")

    async def body(client: Any) -> Any:
        for i in range(100):
            await client.post("/v1/score", json=txn(20_000 + i), headers={"X-API-Key": CLIENT_KEY})
        first = (await client.get("/metrics")).text
        await client.post("/admin/model/reload", json={"version": "v2"}, headers={"X-Admin-Key": ADMIN_KEY})
        for i in range(100):
            await client.post("/v1/score", json=txn(30_000 + i), headers={"X-API-Key": CLIENT_KEY})
        return first, app.state.model_manager.drift

    first, drift = asyncio.run(_with_client(app, body))
    assert 'fraudstack_model_window_decision_rate{decision="approve",version="v1"} 1.0' in first
    assert 'fraudstack_model_psi{subject="score",version="v1"}' in first
    assert 'fraudstack_model_psi{subject="log_amount",version="v1"}' in first
    assert drift.version == "v2" and drift.last.keys() == {"score", "log_amount"}
    # every v2 score is a decline: the window's decision rate says so
    assert REGISTRY.get_sample_value("fraudstack_model_window_decision_rate", {"version": "v2", "decision": "decline"}) == 1.0
