"""Retraining from the audit trail plus feedback in the real PostgreSQL (a schema per test, dropped after)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from app.audit import PostgresSink
from app.drift import quality
from app.features import FEATURE_NAMES, offline_features
from app.lifecycle import LocalModelStore, verify_model
from app.model import ScoringModel
from app.training import retrain
from app.training.simulate import START, SimulationArgs, simulate

PG = "postgresql://postgres@127.0.0.1:5432/test"
T0 = START.to_pydatetime()
CUTOFF = T0 + timedelta(days=11)
MATURITY = 2


@pytest.fixture()
def schema() -> Iterator[str]:
    name = f"fs_lifecycle_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _decision(txn_id: str, at: datetime, features: list[float], decision: str = "approve", h: str = "h1") -> dict:
    return {"transaction_id": txn_id, "request_hash": h, "received_at": at, "api_key_id": "k", "model_version": "v0",
            "score": 0.01, "risk_score": 1, "decision": decision, "degraded": False, "reasons": [], "features": features,
            "latency_ms": 1.0}


def _feedback(txn_id: str, outcome: str, reported: datetime, received: datetime | None = None) -> dict:
    return {"feedback_hash": uuid.uuid4().hex, "transaction_id": txn_id, "outcome": outcome, "reported_at": reported,
            "source": "test", "note": None, "api_key_id": "k", "received_at": received or reported}


@pytest.fixture()
def audit(schema: str) -> dict[str, Any]:
    """A simulated stream written as decisions, fraud labelled a day later, plus the point-in-time traps."""
    df = simulate(SimulationArgs(rows=6000, fraud_rate=0.05, days=12, seed=5))
    X = offline_features(df)
    ts = [t.to_pydatetime() for t in df["timestamp"]]
    ids = df["transaction_id"].astype(str).tolist()
    fraud = df["is_fraud"].to_numpy().astype(bool)
    decisions = [_decision(i, t, x.tolist(), "decline" if f and n % 2 else "approve")
                 for n, (i, t, x, f) in enumerate(zip(ids, ts, X, fraud))]
    feedback = [_feedback(i, "fraud", t + timedelta(days=1)) for i, t, f in zip(ids, ts, fraud) if f]
    early = [n for n, t in enumerate(ts) if t < CUTOFF - timedelta(days=MATURITY + 1)]
    legit = [n for n in early if not fraud[n]]
    traps = {
        # fraud reported before the cutoff but received after it: not known at the cutoff
        "late_arrival": next(n for n in early if fraud[n]),
        # chargeback, then reversed to legitimate before the cutoff: the latest label wins
        "reversed": legit[0],
        # reported after the cutoff: not known
        "reported_late": legit[1],
        # retried request scored again later with other features: the first scoring counts
        "retried": legit[2],
        # scored by a model of another feature version
        "old_features": legit[3],
    }
    feedback = [fb for fb in feedback if fb["transaction_id"] != ids[traps["late_arrival"]]]
    n = traps["late_arrival"]
    feedback.append(_feedback(ids[n], "fraud", CUTOFF - timedelta(hours=1), received=CUTOFF + timedelta(hours=1)))
    n = traps["reversed"]
    feedback += [_feedback(ids[n], "chargeback", ts[n] + timedelta(hours=2)),
                 _feedback(ids[n], "legitimate", ts[n] + timedelta(hours=5))]
    n = traps["reported_late"]
    feedback.append(_feedback(ids[n], "fraud", CUTOFF + timedelta(days=1)))
    n = traps["retried"]
    decisions.append(_decision(ids[n], ts[n] + timedelta(seconds=30), [9.0] * len(FEATURE_NAMES), h="h2"))
    n = traps["old_features"]
    decisions[n] = _decision(ids[n], ts[n], X[n].tolist()[:-1])

    async def write() -> None:
        sink = PostgresSink(PG, schema)
        try:
            for i in range(0, len(decisions), 1000):
                await sink.write(decisions[i:i + 1000], [])
            await sink.write([], feedback)
        finally:
            await sink.close()

    asyncio.run(write())
    return {"ids": ids, "ts": ts, "X": X, "fraud": fraud, "traps": traps}


def test_selection_is_point_in_time_correct(schema: str, audit: dict[str, Any]) -> None:
    ids, ts, X, fraud, traps = audit["ids"], audit["ts"], audit["X"], audit["fraud"], audit["traps"]
    with psycopg.connect(PG, autocommit=True) as conn:
        sel = retrain.select(conn, schema, CUTOFF, days=30, maturity_days=MATURITY)
    rows = dict(zip(sel.transaction_ids, range(len(sel.transaction_ids))))
    before = [n for n, t in enumerate(ts) if t < CUTOFF]
    mature = CUTOFF - timedelta(days=MATURITY)
    # expected labels, computed independently of the SQL
    expected: dict[str, int] = {}
    for n in before:
        if n == traps["old_features"]:
            continue
        labelled = fraud[n] and ts[n] + timedelta(days=1) < CUTOFF and n != traps["late_arrival"]
        if labelled:
            expected[ids[n]] = 1
        elif n == traps["reversed"]:
            expected[ids[n]] = 0
        elif ts[n] < mature:
            expected[ids[n]] = 0
    assert set(rows) == set(expected)
    assert {i: int(sel.dataset.y[rows[i]]) for i in rows} == expected
    assert sel.dataset.y[rows[ids[traps["late_arrival"]]]] == 0  # its label had not arrived
    assert sel.dataset.y[rows[ids[traps["reported_late"]]]] == 0
    assert ids[traps["old_features"]] not in rows and sel.skipped_other_features == 1
    # features are the vectors stored at scoring time, the first scoring of a retried transaction
    for key in ("retried", "reversed"):
        n = traps[key]
        assert np.array_equal(sel.dataset.X[rows[ids[n]]], X[n].astype(np.float32))
    assert sel.labelled_fraud == sum(expected.values())
    assert sel.skipped_immature == sum(1 for n in before if ts[n] >= mature and ids[n] not in expected
                                       and n != traps["old_features"])
    assert list(sel.dataset.times) == sorted(sel.dataset.times)


def test_retrain_uploads_a_verified_candidate_never_active(schema: str, audit: dict[str, Any], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    store = LocalModelStore(tmp_path / "store")
    store.write_pointer("active", "v-current", "0" * 64)
    rc = retrain.main(["--database-url", PG, "--schema", schema, "--store", str(store.root), "--out",
                       str(tmp_path / "cand"), "--cutoff", CUTOFF.isoformat(), "--days", "30",
                       "--label-maturity-days", str(MATURITY), "--fast"])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads(out)
    version = summary["version"]
    assert store.read_pointer("candidate") == version
    assert store.read_pointer("active") == "v-current"
    files = sorted(p.name for p in (store.root / "models" / version).iterdir())
    assert files == ["model.json", "model.onnx", "report.html"]
    meta = json.loads((store.root / "models" / version / "model.json").read_text())
    assert meta["features"] == list(FEATURE_NAMES) and len(meta["parity"]["inputs"]) == 32
    assert meta["training"]["source"].startswith(f"audit trail {schema}: ")
    assert meta["training"]["time_ordered"] is True
    candidate = ScoringModel(store.download(version, tmp_path / "check"))
    verify_model(candidate, FEATURE_NAMES)
    assert candidate.sha256 == summary["sha256"]
    assert summary["labelled_fraud"] >= 20 and summary["skipped_other_features"] == 1


def test_retrain_refuses_too_few_labels_and_bad_input(schema: str, audit: dict[str, Any], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    base = ["--database-url", PG, "--schema", schema, "--store", str(store), "--fast"]
    assert retrain.main(base + ["--cutoff", (T0 + timedelta(hours=30)).isoformat(), "--min-fraud", "500"]) == 2
    assert "retrain refused: only " in capsys.readouterr().err
    assert retrain.main(base + ["--cutoff", "yesterday"]) == 2
    assert "--cutoff: 'yesterday' is not an ISO 8601 date-time" in capsys.readouterr().err
    assert retrain.main(base + ["--days", "0"]) == 2
    assert "--days: must be at least 1 (got 0)" in capsys.readouterr().err
    assert not (store / "pointers" / "candidate").exists()


def test_quality_from_the_audit_trail(schema: str, audit: dict[str, Any]) -> None:
    ids, ts, fraud, traps = audit["ids"], audit["ts"], audit["fraud"], audit["traps"]
    with psycopg.connect(PG, autocommit=True) as conn:
        q = quality(conn, schema, T0, CUTOFF)
    # labelled decisions in [T0, cutoff): fraud labels that arrived, plus the reversed one
    decided = {n: ("decline" if fraud[n] and n % 2 else "approve") for n in range(len(ids))}
    labelled = {n: 1 for n in range(len(ids)) if fraud[n] and ts[n] < CUTOFF and ts[n] + timedelta(days=1) < CUTOFF
                and n != traps["late_arrival"]}
    labelled[traps["reversed"]] = 0
    declined_fraud = sum(1 for n, y in labelled.items() if y and decided[n] == "decline")
    declined = sum(1 for n in labelled if decided[n] == "decline")
    assert q["labelled"] == len(labelled)
    assert q["decline_precision"] == pytest.approx(declined_fraud / declined)
    assert q["decline_recall"] == pytest.approx(declined_fraud / sum(labelled.values()))
    assert q["review_recall"] == q["decline_recall"]  # no review decisions in this trail


def test_quality_monitor_sets_gauges_and_emits_emf(schema: str, audit: dict[str, Any],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from prometheus_client import REGISTRY

    from app.drift import QualityMonitor

    # the stream is from January 2026: a window reaching back far enough holds it
    days = (datetime.now(timezone.utc) - T0).days + 1
    monitor = QualityMonitor(PG, schema, days, 60, {"Environment": "test", "Service": "scoring-api"})
    with caplog.at_level(logging.INFO, logger="fraudstack.emf"):
        values = monitor.run_once()
    assert values["labelled"] > 0 and values["decline_precision"] is not None
    assert REGISTRY.get_sample_value("fraudstack_model_quality", {"band": "decline", "measure": "recall"}) == \
        pytest.approx(values["decline_recall"])
    assert REGISTRY.get_sample_value("fraudstack_model_labelled_decisions") == values["labelled"]
    doc = json.loads([r for r in caplog.records if r.name == "fraudstack.emf"][-1].getMessage())
    assert doc["DeclinePrecision"] == pytest.approx(values["decline_precision"])
    assert {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {
        "DeclinePrecision", "DeclineRecall", "ReviewPrecision", "ReviewRecall"}


def test_quality_monitor_before_the_first_audit_batch_measures_nothing_and_warns_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from app.drift import QualityMonitor

    fresh = f"fresh_{uuid.uuid4().hex[:8]}"  # no audit tables: a worker's first seconds
    with caplog.at_level(logging.INFO, logger="fraudstack.drift"):
        assert QualityMonitor(PG, fresh, 30, 60, {}).run_once() == {}
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "fraudstack.drift"] == [
        ("INFO", f"quality metrics: no audit tables in schema {fresh} yet")]
