"""Every endpoint against the real Redis (database 1) and PostgreSQL (own schema)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from app.features import FEATURE_NAMES
from app.main import create_app

from .conftest import OTHER_KEY, SHARED_PG, SHARED_REDIS, TEST_KEY
from .helpers import assert_error, txn, wait_rows

H = {"X-API-Key": TEST_KEY}


@pytest.fixture()
def live(make_settings: Any, pg_schema: str, redis_prefix: str) -> Iterator[tuple[TestClient, str]]:
    """A client of the app on the shared Redis and PostgreSQL, isolated by prefix and schema."""
    settings = make_settings(redis_url=SHARED_REDIS, redis_key_prefix=redis_prefix,
                             database_url=SHARED_PG, database_schema=pg_schema)
    with TestClient(create_app(settings)) as client:
        yield client, pg_schema


def test_score_returns_decision_and_audits_it(live: tuple[TestClient, str]) -> None:
    client, schema = live
    r = client.post("/v1/score", json=txn(1), headers=H)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["transaction_id"] == "txn-000001"
    assert 0 <= body["score"] <= 1 and 0 <= body["risk_score"] <= 999
    assert body["decision"] in {"approve", "review", "decline"}
    assert body["model_version"] == "tiny-1" and body["degraded"] is False
    assert set(body["timing_ms"]) == {"velocity", "model", "total"}
    for reason in body["reasons"]:
        assert reason["feature"] in FEATURE_NAMES and reason["impact"] > 0
    assert wait_rows(SHARED_PG, schema, 1) == 1
    with psycopg.connect(SHARED_PG) as conn:
        row = conn.execute(f'SELECT transaction_id, decision, score, api_key_id, jsonb_array_length(features), degraded '
                           f'FROM "{schema}".decisions').fetchone()
    assert row[0] == "txn-000001" and row[1] == body["decision"] and row[2] == pytest.approx(body["score"])
    assert row[3].startswith("key-") and row[4] == len(FEATURE_NAMES) and row[5] is False


def test_velocity_counts_once_per_transaction_id(live: tuple[TestClient, str]) -> None:
    client, schema = live
    first = client.post("/v1/score", json=txn(1, timestamp="2026-11-21T14:00:00Z"), headers=H).json()
    again = client.post("/v1/score", json=txn(1, timestamp="2026-11-21T14:00:00Z"), headers=H).json()
    assert again["score"] == first["score"]  # a retry does not count twice
    # Three more of the same card within the hour push card_count_1h up and the score with it.
    scores = [client.post("/v1/score", json=txn(i, timestamp=f"2026-11-21T14:0{i}:00Z"), headers=H).json()["score"]
              for i in range(2, 5)]
    assert scores == sorted(scores) and scores[-1] > first["score"]
    # Retry of an identical request is one audit row; the four distinct requests are four.
    assert wait_rows(SHARED_PG, schema, 4) == 4
    with psycopg.connect(SHARED_PG) as conn:
        counts = conn.execute(f'SELECT features->>{FEATURE_NAMES.index("card_count_1h")} FROM "{schema}".decisions '
                              'ORDER BY transaction_id').fetchall()
    assert [float(c[0]) for c in counts] == [0.0, 1.0, 2.0, 3.0]


def test_batch_is_one_model_batch_in_order(live: tuple[TestClient, str]) -> None:
    client, schema = live
    items = [txn(10 + i, amount=str(10 ** i)) for i in range(5)]
    r = client.post("/v1/score/batch", json={"transactions": items}, headers=H)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["transaction_id"] for x in body["results"]] == [t["transaction_id"] for t in items]
    singles = [x["score"] for x in body["results"]]
    assert singles == sorted(singles)  # larger amounts, higher risk in the toy model
    assert set(body["timing_ms"]) == {"features", "model", "total"}
    assert wait_rows(SHARED_PG, schema, 5) == 5
    plain = client.post("/v1/score/batch?reasons=false", json={"transactions": [txn(20 + i) for i in range(3)]},
                        headers=H).json()["results"]
    assert [r["reasons"] for r in plain] == [[], [], []]


def test_batch_limits(make_settings: Any) -> None:
    with TestClient(create_app(make_settings(max_batch_size=2))) as client:
        r = client.post("/v1/score/batch", json={"transactions": [txn(i) for i in range(3)]}, headers=H)
        assert_error(r, 422, "validation_error", "transactions")
        r = client.post("/v1/score/batch", json={"transactions": [txn(1), txn(2, amount=-1)]}, headers=H)
        assert_error(r, 422, "validation_error", "transactions[1].amount")
        r = client.post("/v1/score/batch", json={"transactions": []}, headers=H)
        assert_error(r, 422, "validation_error", "transactions")


def test_feedback_is_stored(live: tuple[TestClient, str]) -> None:
    client, schema = live
    fb = {"transaction_id": "txn-000001", "outcome": "chargeback", "source": "chargeback-feed"}
    r = client.post("/v1/feedback", json=fb, headers=H)
    assert r.status_code == 202 and r.json() == {"transaction_id": "txn-000001", "outcome": "chargeback", "accepted": True}
    client.post("/v1/feedback", json=fb, headers=H)  # the same report twice is one row
    assert wait_rows(SHARED_PG, schema, 1, table="feedback") == 1
    with psycopg.connect(SHARED_PG) as conn:
        assert conn.execute(f'SELECT outcome, source FROM "{schema}".feedback').fetchone() == ("chargeback", "chargeback-feed")
    assert_error(client.post("/v1/feedback", json={**fb, "outcome": "maybe"}, headers=H), 422, "validation_error", "outcome")


def test_open_inference_protocol(live: tuple[TestClient, str]) -> None:
    client, _ = live
    service = client.app.state.service
    meta = client.get("/v2/models/fraudstack", headers=H).json()
    assert meta["name"] == "fraudstack" and meta["versions"] == ["tiny-1"] and meta["platform"] == "onnxruntime"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, len(FEATURE_NAMES)]}]
    x = np.tile(service.model.reference, (2, 1))
    x[1, FEATURE_NAMES.index("log_amount")] = 8.5
    req = {"id": "r1", "inputs": [{"name": "input", "shape": [2, len(FEATURE_NAMES)], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    r = client.post("/v2/models/fraudstack/infer", json=req, headers=H)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "r1" and out["model_name"] == "fraudstack" and out["model_version"] == "tiny-1"
    assert out["outputs"][0]["shape"] == [2, 2]
    np.testing.assert_allclose(out["outputs"][0]["data"], service.model.probabilities(x).reshape(-1), rtol=1e-6)
    # Nested rows (as some clients send them) work too.
    nested = {"inputs": [{**req["inputs"][0], "data": x.tolist()}]}
    assert client.post("/v2/models/fraudstack/infer", json=nested, headers=H).json()["outputs"][0]["data"] == out["outputs"][0]["data"]
    bad = {"inputs": [{**req["inputs"][0], "shape": [2, 3]}]}
    assert_error(client.post("/v2/models/fraudstack/infer", json=bad, headers=H), 422, "validation_error", "inputs[0].shape")
    short = {"inputs": [{**req["inputs"][0], "data": [1.0, 2.0]}]}
    assert_error(client.post("/v2/models/fraudstack/infer", json=short, headers=H), 422, "validation_error", "inputs[0].data")
    assert_error(client.post("/v2/models/other/infer", json=req, headers=H), 404, "not_found", "name")
    assert_error(client.get("/v2/models/fraudstack"), 401, "unauthorized", "X-API-Key")
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/fraudstack/ready").json() == {"name": "fraudstack", "ready": True}


def test_health_metrics_docs(live: tuple[TestClient, str]) -> None:
    client, _ = live
    assert client.get("/health/live").json() == {"status": "alive"}
    client.post("/v1/score", json=txn(1), headers=H)
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["model"]["loaded"] is True and len(body["model"]["sha256"]) == 64
    assert body["velocity_store"] == "up" and body["audit"]["sink"] == "postgresql"
    text = client.get("/metrics").text
    for name in ("fraudstack_request_seconds_count{route=\"/v1/score\",status=\"2xx\"}", "fraudstack_decisions_total",
                 "fraudstack_score_bucket", "fraudstack_velocity_errors_total", "fraudstack_audit_backlog",
                 'version="tiny-1"} 1.0'):
        assert name in text, name
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/score/batch", "/v1/feedback", "/v2/models/{name}", "/v2/models/{name}/infer",
            "/health/live", "/health/ready", "/metrics"} <= set(spec["paths"])
    assert "Transaction" in spec["components"]["schemas"] and "ScoreResponse" in spec["components"]["schemas"]


def test_security_headers(live: tuple[TestClient, str]) -> None:
    client, _ = live
    for r in (client.post("/v1/score", json=txn(1), headers=H), client.post("/v1/score", json={}, headers=H)):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("payload,status,code,field", [
    ({"amount": "ten"}, 422, "validation_error", "amount"),
    ({"amount": -3}, 422, "validation_error", "amount"),
    ({"currency": "XXY"}, 422, "validation_error", "currency"),
    ({"merchant_country": "QQ"}, 422, "validation_error", "merchant_country"),
    ({"card_token": "4111111111111111"}, 422, "validation_error", "card_token"),
    ({"transaction_id": 12}, 422, "validation_error", "transaction_id"),
    ({"channel": None}, 422, "validation_error", "channel"),
])
def test_bad_fields(make_settings: Any, payload: dict[str, Any], status: int, code: str, field: str) -> None:
    with TestClient(create_app(make_settings())) as client:
        body = assert_error(client.post("/v1/score", json=txn(1, **payload), headers=H), status, code, field)
        assert "4111111111111111" not in json.dumps(body)


def test_bad_requests(make_settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(make_settings(max_body_bytes=4096))) as client:
        missing = {k: v for k, v in txn(1).items() if k not in ("amount", "currency")}
        body = assert_error(client.post("/v1/score", json=missing, headers=H), 422, "validation_error", "amount")
        assert [d["field"] for d in body["details"]] == ["amount", "currency"]
        assert_error(client.post("/v1/score", content=b'{"transaction_id": "x",', headers={**H, "content-type": "application/json"}),
                     400, "malformed_json", "body")
        big = json.dumps(txn(1, metadata={f"k{i}": "x" * 200 for i in range(30)})).encode()
        assert_error(client.post("/v1/score", content=big, headers={**H, "content-type": "application/json"}),
                     413, "payload_too_large", "body")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            for _ in range(10):
                yield b" " * 1000
        assert_error(client.post("/v1/score", content=chunks(), headers={**H, "content-type": "application/json"}),
                     413, "payload_too_large", "body")
        assert_error(client.post("/v1/score", json=txn(1)), 401, "unauthorized", "X-API-Key")
        assert_error(client.post("/v1/score", json=txn(1), headers={"X-API-Key": "wrong"}), 401, "unauthorized", "X-API-Key")
        assert_error(client.post("/v1/score", content=b"a=b", headers={**H, "content-type": "application/x-www-form-urlencoded"}),
                     415, "unsupported_media_type", "Content-Type")
        assert_error(client.get("/v1/nothing", headers=H), 404, "not_found", "path")
        assert_error(client.get("/v1/score", headers=H), 405, "method_not_allowed", "method")
        assert client.post("/v1/score", json=txn(2, card_token="ok"), headers={"X-API-Key": OTHER_KEY}).status_code == 200
        client.post("/v1/score", json=txn(3, device_id="4111111111111111"), headers=H)
        assert client.post("/v1/score", json=txn(4, card_token="ctok_secret_card", device_id="dev_secret",
                                                    ip_address="198.51.100.77"), headers=H).status_code == 200
    assert "scored txn-000004" in caplog.text  # the debug line is there, with fingerprints only
    for clear in ("4111111111111111", TEST_KEY, "ctok_secret_card", "dev_secret", "198.51.100.77"):
        assert clear not in caplog.text, clear


def test_signed_requests(make_settings: Any, redis_prefix: str) -> None:
    settings = make_settings(hmac_secret="h" * 40, redis_url=SHARED_REDIS, redis_key_prefix=redis_prefix)
    with TestClient(create_app(settings)) as client:
        verifier = client.app.state.service.verifier
        body = json.dumps(txn(1)).encode()
        ts = int(time.time())
        signed = {**H, "content-type": "application/json", "X-Timestamp": str(ts), "X-Nonce": "n-000000001",
                  "X-Signature": verifier.sign(body, ts, "n-000000001")}
        assert client.post("/v1/score", content=body, headers=signed).status_code == 200
        assert_error(client.post("/v1/score", content=body, headers=signed), 409, "replayed_request", "X-Nonce")
        tampered = {**signed, "X-Nonce": "n-000000002"}
        assert_error(client.post("/v1/score", content=body, headers=tampered), 401, "unauthorized", "X-Signature")
        assert_error(client.post("/v1/score", content=body, headers={**H, "content-type": "application/json"}),
                     401, "unauthorized", "X-Timestamp")


def test_rate_limit(make_settings: Any, redis_prefix: str) -> None:
    settings = make_settings(rate_limit_per_second=3, redis_url=SHARED_REDIS, redis_key_prefix=redis_prefix)
    with TestClient(create_app(settings)) as client:
        while time.time() % 1 > 0.3:
            time.sleep(0.02)
        codes = [client.post("/v1/score", json=txn(i), headers=H).status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = client.post("/v1/score", json=txn(9), headers=H)
        assert_error(r, 429, "rate_limited", "X-API-Key")
        assert int(r.headers["retry-after"]) >= 1
        assert client.post("/v1/score", json=txn(10), headers={"X-API-Key": OTHER_KEY}).status_code == 200


def test_review_narrative_from_bedrock_when_asked(make_settings: Any) -> None:
    import boto3
    from botocore.stub import ANY, Stubber

    from app.explain import Explainer

    with TestClient(create_app(make_settings(threshold_review=0.0, threshold_decline=1.0))) as client:
        bedrock = boto3.client("bedrock-runtime", region_name="eu-west-1", aws_access_key_id="testing",
                               aws_secret_access_key="testing")
        client.app.state.service.explainer = Explainer(model_id="test-model", client=bedrock)
        answer = {"output": {"message": {"role": "assistant", "content": [{"text": "Check the card's recent use."}]}},
                  "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                  "metrics": {"latencyMs": 3}}
        with Stubber(bedrock) as stub:
            stub.add_response("converse", answer, {"modelId": "test-model", "system": ANY, "messages": ANY,
                                                   "inferenceConfig": ANY})
            body = client.post("/v1/score?narrative=true", json=txn(1), headers=H).json()
            # Without the flag the hot path never calls Bedrock (the Stubber would fail on a second call).
            plain = client.post("/v1/score", json=txn(2), headers=H).json()
            stub.assert_no_pending_responses()
        assert (body["narrative"], body["narrative_source"]) == ("Check the card's recent use.", "bedrock")
        assert plain["narrative_source"] == "template"


def test_review_gets_a_narrative(make_settings: Any) -> None:
    with TestClient(create_app(make_settings(threshold_review=0.0, threshold_decline=1.0))) as client:
        body = client.post("/v1/score", json=txn(1), headers=H).json()
        assert body["decision"] == "review" and body["narrative_source"] == "template"
        assert body["narrative"].startswith("Score ")
    with TestClient(create_app(make_settings(threshold_review=1.0, threshold_decline=1.0))) as client:
        body = client.post("/v1/score", json=txn(1), headers=H).json()
        assert body["decision"] == "approve" and body["narrative"] is None


def test_sqlite_audit_without_database(make_settings: Any, tmp_path: Any) -> None:
    import sqlite3

    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        for i in range(3):
            assert client.post("/v1/score", json=txn(i), headers=H).status_code == 200
        assert client.get("/health/ready").json()["audit"]["sink"] == "sqlite"
    conn = sqlite3.connect(settings.data_dir / "audit.sqlite3")
    assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3  # shutdown flushed


def test_unloadable_model_is_not_ready(make_settings: Any, tmp_path: Any, model_dir: Any) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.onnx").write_bytes(b"not a model")
    with TestClient(create_app(make_settings(model_dir=broken))) as client:
        r = client.get("/health/ready")
        assert r.status_code == 503 and "SHA-256" in r.json()["model"]["error"]
        assert_error(client.post("/v1/score", json=txn(1), headers=H), 503, "not_ready", "model")
        assert client.get("/health/live").status_code == 200


def test_batch_velocity_is_point_in_time_and_matches_single_scores(live: tuple[TestClient, str], make_settings: Any,
                                                                   redis_prefix: str) -> None:
    client, schema = live
    items = [txn(40 + i, timestamp=f"2026-11-21T15:0{i}:00Z") for i in range(4)]
    batch = client.post("/v1/score/batch", json={"transactions": items}, headers=H).json()["results"]
    assert wait_rows(SHARED_PG, schema, 4) == 4
    with psycopg.connect(SHARED_PG) as conn:
        counts = conn.execute(f'SELECT features->>{FEATURE_NAMES.index("card_count_1h")} FROM "{schema}".decisions '
                              'ORDER BY transaction_id').fetchall()
    assert [float(c[0]) for c in counts] == [0.0, 1.0, 2.0, 3.0]
    # The same transactions one by one in a fresh key space give the same scores.
    fresh = make_settings(redis_url=SHARED_REDIS, redis_key_prefix=redis_prefix + "single:")
    with TestClient(create_app(fresh)) as single:
        singles = [single.post("/v1/score", json=t, headers=H).json()["score"] for t in items]
    assert singles == [r["score"] for r in batch]


def test_risk_score_is_the_shared_log_scale(make_settings: Any) -> None:
    from app.risk import risk_score

    with TestClient(create_app(make_settings())) as client:
        for i, amount in enumerate(("5.00", "900.00", "8000.00")):
            body = client.post("/v1/score", json=txn(i, amount=amount), headers=H).json()
            assert body["risk_score"] == int(risk_score(body["score"]))


def test_query_flags_are_validated(make_settings: Any) -> None:
    with TestClient(create_app(make_settings())) as client:
        assert_error(client.post("/v1/score?narrative=perhaps", json=txn(1), headers=H), 422, "validation_error", "narrative")
        assert_error(client.post("/v1/score/batch?reasons=2", json={"transactions": [txn(1)]}, headers=H),
                     422, "validation_error", "reasons")
        assert client.post("/v1/score?narrative=false", json=txn(1), headers=H).status_code == 200


def test_unexpected_error_is_500_json_without_details(make_settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    # raise_server_exceptions stays on: the error must not escape the app at all.
    with TestClient(create_app(make_settings())) as client:
        async def broken(*_: Any, **__: Any) -> None:
            raise RuntimeError("ctok_leaky_token")

        client.app.state.service.score = broken
        r = client.post("/v1/score", json=txn(1), headers=H)
    body = assert_error(r, 500, "internal_error", None)
    assert "ctok_leaky_token" not in r.text and "RuntimeError" not in r.text and body["message"].startswith("internal error")
    assert "unhandled RuntimeError at test_api.py:" in caplog.text and "Traceback" not in caplog.text and "ctok_leaky_token" not in caplog.text


def test_model_with_other_features_serves_raw_vectors_only(make_settings: Any, tmp_path: Any, model_dir: Any) -> None:
    import hashlib
    import shutil

    other = tmp_path / "csv-model"
    shutil.copytree(model_dir, other)
    meta = json.loads((other / "model.json").read_text())
    meta["features"] = [f"col_{i}" for i in range(len(meta["features"]))]
    meta["reference"] = {"medians": {f"col_{i}": 0.0 for i in range(len(meta["features"]))}}
    meta["sha256"] = hashlib.sha256((other / "model.onnx").read_bytes()).hexdigest()
    (other / "model.json").write_text(json.dumps(meta))
    with TestClient(create_app(make_settings(model_dir=other))) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["model"]["scores_transactions"] is False
        body = assert_error(client.post("/v1/score", json=txn(1), headers=H), 503, "not_ready", "model")
        assert "/v2/models/fraudstack/infer" in body["message"]
        row = [float("nan")] + [0.0] * (len(FEATURE_NAMES) - 1)  # NaN = missing, accepted
        req = {"inputs": [{"name": "input", "shape": [1, len(FEATURE_NAMES)], "datatype": "FP32", "data": row}]}
        r = client.post("/v2/models/fraudstack/infer", content=json.dumps(req), headers={**H, "content-type": "application/json"})
        assert r.status_code == 200, r.text
        inf = {"inputs": [{**req["inputs"][0], "data": [1e39] + row[1:]}]}  # overflows float32
        assert_error(client.post("/v2/models/fraudstack/infer", json=inf, headers=H), 422, "validation_error", "inputs[0].data")


def test_velocity_result_ttl_reaches_redis(make_settings: Any, redis_prefix: str) -> None:
    import redis

    settings = make_settings(redis_url=SHARED_REDIS, redis_key_prefix=redis_prefix, velocity_result_ttl_seconds=30)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/score", json=txn(1), headers=H).json()["degraded"] is False
    ttl = redis.Redis.from_url(SHARED_REDIS).pttl(f"{redis_prefix}vel:v2:res:txn-000001")
    assert 0 < ttl <= 30_000


def test_hot_path_answers_like_the_framework(make_settings: Any) -> None:
    """The scoring routes bypass the framework (app.security.HotPath): same headers, errors and metrics."""
    from prometheus_client import REGISTRY

    def latency_count(route: str, status_class: str) -> float:
        return REGISTRY.get_sample_value("fraudstack_request_seconds_count",
                                         {"route": route, "status": status_class}) or 0.0

    with TestClient(create_app(make_settings())) as client:
        hot = client.post("/v1/score", json=txn(1))  # hot path: 401
        framework = client.post("/v1/feedback", json={})  # framework path: 401
        assert (hot.status_code, framework.status_code) == (401, 401)
        drop = {"content-length", "date", "server"}
        assert {k: v for k, v in hot.headers.items() if k not in drop} == {
            k: v for k, v in framework.headers.items() if k not in drop}
        assert hot.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        before = latency_count("/v2/models/{name}/infer", "4xx")
        assert_error(client.post("/v2/models/other/infer", json={"inputs": []}, headers=H), 404, "not_found", "name")
        assert latency_count("/v2/models/{name}/infer", "4xx") == before + 1
        # a path the hot routes do not own goes to the router: 404 naming the path
        assert_error(client.post("/v2/models/a/b/infer", json={}, headers=H), 404, "not_found", "path")
        assert_error(client.post("/v2/models//infer", json={}, headers=H), 404, "not_found", "path")


def test_start_up_objects_are_frozen_out_of_the_collector(make_settings: Any) -> None:
    """A full collection over everything loaded at start-up stalled the loop for ~80 ms."""
    import gc

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/health/live").status_code == 200
        # numpy, pandas, onnxruntime and the model: tens of thousands of long-lived objects
        assert gc.get_freeze_count() > 20_000
