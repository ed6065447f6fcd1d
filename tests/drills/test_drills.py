"""Failure drills under load against the service as a real process (``python -m app serve``).

Everything stopped or slowed here is a private instance (redis-server on a free port,
a PostgreSQL cluster in a temp dir, a delaying proxy); the shared servers are only
used through a run-unique schema and key prefix. Run alone: ``pytest -m drill tests/drills``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.features import FEATURE_NAMES

from tests.service.helpers import count_rows, wait_rows

from .conftest import (
    HEADERS,
    SHARED_PG,
    SHARED_REDIS,
    DelayProxy,
    Load,
    PrivatePostgres,
    PrivateRedis,
    metric,
    transaction,
    wait_until,
)

pytestmark = pytest.mark.drill


def _ok(outcomes: list[Any]) -> None:
    """Every request got a 200 JSON score (no 5xx, no dropped connection)."""
    bad = [(o.index, o.status, o.error) for o in outcomes if o.status != 200 or o.error is not None]
    assert bad == [], f"{len(bad)} of {len(outcomes)} requests failed, first: {bad[:5]}"


def test_redis_stopped_under_load_scores_degraded_and_recovers(service_process: Any, private_redis: PrivateRedis) -> None:
    svc = service_process({"FRAUDSTACK_REDIS_URL": private_redis.url, "FRAUDSTACK_REDIS_TIMEOUT_MS": "100",
                           "FRAUDSTACK_REDIS_RETRY_SECONDS": "0.3", "FRAUDSTACK_RATE_LIMIT_PER_SECOND": "0"})
    before = metric(httpx.get(svc.url + "/metrics").text, "fraudstack_degraded_scores_total")
    load = Load(svc.url, "rdown", concurrency=4).start()
    time.sleep(1.0)
    stopped_at = time.monotonic()
    private_redis.stop()
    assert wait_until(lambda: httpx.get(svc.url + "/health/ready").json()["velocity_store"] == "down (scoring degraded)", 5)
    time.sleep(1.5)
    restarted_at = time.monotonic()
    private_redis.start()
    assert wait_until(lambda: httpx.get(svc.url + "/health/ready").json()["velocity_store"] == "up", 5)
    time.sleep(1.5)
    outcomes = load.stop()
    after = metric(httpx.get(svc.url + "/metrics").text, "fraudstack_degraded_scores_total")

    _ok(outcomes)
    up = [o for o in outcomes if o.finished < stopped_at]
    down = [o for o in outcomes if o.started > stopped_at + 0.2 and o.finished < restarted_at]
    back = [o for o in outcomes if o.started > restarted_at + 1.0]
    assert len(up) > 10 and len(down) > 10 and len(back) > 10, (len(up), len(down), len(back))
    assert not any(o.json["degraded"] for o in up)
    # Scores keep coming while Redis is away, each marked degraded ...
    assert all(o.json["degraded"] for o in down)
    assert all(0 <= o.json["score"] <= 1 and o.json["decision"] in ("approve", "review", "decline") for o in down)
    # ... quickly: refused connections and the back-off, not timeouts on every request.
    assert max(o.latency for o in down) < 1.0
    # ... and the service recovers by itself when Redis returns.
    assert not any(o.json["degraded"] for o in back)
    # The metric counts exactly the degraded answers clients saw.
    assert after - before == sum(o.json["degraded"] for o in outcomes)
    assert svc.terminate() == 0


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_stopped_under_load_then_restarted_loses_and_duplicates_nothing(
        service_process: Any, private_pg: PrivatePostgres, pg_schema: str, mode: str) -> None:
    """``fast``: a clean shutdown; ``immediate``: a crash (no checkpoint, connections cut
    mid-transaction, recovery on restart), where a committed batch may lose its ack."""
    svc = service_process({"FRAUDSTACK_DATABASE_URL": private_pg.url, "FRAUDSTACK_DATABASE_SCHEMA": pg_schema,
                           "FRAUDSTACK_AUDIT_FLUSH_MS": "20", "FRAUDSTACK_AUDIT_RETRY_SECONDS": "0.3"})
    assert wait_until(lambda: httpx.get(svc.url + "/health/ready").json()["audit"]["up"], 10)
    # Every 10th request is a client retry: the same body again, which is the same audit record.
    load = Load(svc.url, "pgdown", concurrency=4, repeat_every=10).start()
    time.sleep(1.0)
    private_pg.stop(mode)
    assert wait_until(lambda: httpx.get(svc.url + "/health/ready").json()["audit"]["up"] is False, 10)
    time.sleep(1.5)
    private_pg.start()
    time.sleep(1.5)
    outcomes = load.stop()
    _ok(outcomes)
    distinct = {hashlib.sha256(o.body).hexdigest() for o in outcomes}
    retries = len(outcomes) - len(distinct)
    assert retries > 0 and len(distinct) > 50
    # Graceful stop flushes what is still queued or spooled.
    assert svc.terminate() == 0
    assert wait_rows(private_pg.url, pg_schema, len(distinct)) == len(distinct)
    with psycopg.connect(private_pg.url) as conn:
        rows = conn.execute(f'SELECT transaction_id, request_hash FROM "{pg_schema}".decisions').fetchall()
    assert len(rows) == len(set(rows)) == len(distinct)
    assert {h for _, h in rows} == distinct
    assert not list((Path(svc.log_path).parent / "data" / "spool").glob("*.json"))


def test_sigterm_under_load_completes_in_flight_requests_and_flushes_the_audit(
        service_process: Any, slow_redis: DelayProxy, pg_schema: str) -> None:
    # Redis replies are delayed 300 ms so requests are provably inside the service when
    # the signal arrives; records stay queued in memory until the graceful drain.
    svc = service_process({"FRAUDSTACK_REDIS_URL": slow_redis.url, "FRAUDSTACK_REDIS_TIMEOUT_MS": "2000",
                           "FRAUDSTACK_RATE_LIMIT_PER_SECOND": "0", "FRAUDSTACK_DATABASE_URL": SHARED_PG,
                           "FRAUDSTACK_DATABASE_SCHEMA": pg_schema, "FRAUDSTACK_AUDIT_FLUSH_MS": "60000",
                           "FRAUDSTACK_AUDIT_BATCH_SIZE": "10000"})
    load = Load(svc.url, "sigterm", concurrency=8).start()
    time.sleep(0.8)
    slow_redis.delay = 0.3
    sent_scripts = slow_redis.scripts
    # Wait until 8 more velocity scripts are in Redis: with 8 clients, every unfinished
    # request is now inside the service, waiting on Redis.
    assert wait_until(lambda: slow_redis.scripts >= sent_scripts + 8, 5)
    in_flight = [o for o in list(load.outcomes) if o.finished == 0.0]
    signalled = time.monotonic()
    code = svc.terminate()
    outcomes = load.stop()
    assert code == 0, svc.output()
    served = [o for o in outcomes if o.status == 200]
    assert len(in_flight) == 8
    # Every request that was inside the service when SIGTERM arrived got its score.
    assert all(o.status == 200 and o.json["degraded"] is False for o in in_flight), [
        (o.status, o.error) for o in in_flight]
    assert all(o.finished > signalled for o in in_flight)
    # Requests sent after the signal are refused or their idle connection closed, never half-answered.
    assert all(o.status == 200 or (o.status is None and o.started >= signalled - 0.05) for o in outcomes)
    # Every decision a client received is in the audit trail, once.
    assert count_rows(SHARED_PG, pg_schema) == len({o.json["transaction_id"] for o in served}) == len(served)
    assert "Traceback" not in svc.output()


@pytest.mark.parametrize("damage", ["missing directory", "missing model.onnx", "corrupt model.onnx",
                                    "model.onnx not ONNX (checksum matches)", "model.json not JSON"])
def test_broken_model_is_not_ready_with_a_reason_and_does_not_crash(
        service_process: Any, model_dir: Path, tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    onnx, meta = (model_dir / "model.onnx").read_bytes(), json.loads((model_dir / "model.json").read_text())
    expected = {"missing directory": "does not exist", "missing model.onnx": "model.onnx does not exist",
                "corrupt model.onnx": "does not match model.json", "model.onnx not ONNX (checksum matches)":
                "cannot be loaded by ONNX Runtime", "model.json not JSON": "is not valid JSON"}[damage]
    if damage == "missing directory":
        broken = tmp_path / "nowhere"
    elif damage == "missing model.onnx":
        (broken / "model.json").write_text(json.dumps(meta))
    elif damage == "corrupt model.onnx":
        (broken / "model.onnx").write_bytes(onnx[: len(onnx) // 2])
        (broken / "model.json").write_text(json.dumps(meta))
    elif damage == "model.onnx not ONNX (checksum matches)":
        garbage = b"\x00not an onnx graph\xff" * 64
        (broken / "model.onnx").write_bytes(garbage)
        (broken / "model.json").write_text(json.dumps({**meta, "sha256": hashlib.sha256(garbage).hexdigest()}))
    else:
        (broken / "model.onnx").write_bytes(onnx)
        (broken / "model.json").write_text('{"features": [')
    svc = service_process({"FRAUDSTACK_MODEL_DIR": str(broken)})
    ready = httpx.get(svc.url + "/health/ready")
    assert ready.status_code == 503
    assert ready.json()["model"]["loaded"] is False and expected in ready.json()["model"]["error"]
    assert httpx.get(svc.url + "/health/live").status_code == 200
    assert httpx.get(svc.url + "/v2/health/ready").status_code == 503
    r = httpx.post(svc.url + "/v1/score", json=transaction("broken", 1), headers=HEADERS)
    assert r.status_code == 503 and r.json()["error"]["field"] == "model" and expected in r.json()["error"]["message"]
    assert "Traceback" not in r.text
    # No crash loop: still the same process, answering, after a while; the reason logged once.
    time.sleep(1.0)
    assert svc.proc.poll() is None
    assert httpx.get(svc.url + "/health/ready").status_code == 503
    assert svc.output().count("model not loaded") == 1, svc.output()
    assert svc.terminate() == 0


def test_slow_redis_timeouts_are_honoured_and_latency_stays_bounded(service_process: Any, slow_redis: DelayProxy) -> None:
    timeout_ms = 50
    svc = service_process({"FRAUDSTACK_REDIS_URL": slow_redis.url, "FRAUDSTACK_REDIS_TIMEOUT_MS": str(timeout_ms),
                           "FRAUDSTACK_REDIS_RETRY_SECONDS": "0.3", "FRAUDSTACK_RATE_LIMIT_PER_SECOND": "0"})
    load = Load(svc.url, "slow", concurrency=4).start()
    time.sleep(0.8)
    slowed_at = time.monotonic()
    slow_redis.delay = 0.5  # ten times the timeout
    time.sleep(2.0)
    healed_at = time.monotonic()
    slow_redis.delay = 0.0
    time.sleep(2.0)
    outcomes = load.stop()
    _ok(outcomes)
    slow = [o for o in outcomes if o.started > slowed_at + 0.1 and o.finished < healed_at]
    back = [o for o in outcomes if o.started > healed_at + 1.0]
    assert len(slow) > 10 and len(back) > 10
    assert all(o.json["degraded"] for o in slow)
    # The timeout is honoured inside the service: the velocity step never waits for the slow reply ...
    assert max(o.json["timing_ms"]["velocity"] for o in slow) < timeout_ms * 3
    # ... so clients never wait for it either (0.5 s delay per Redis reply).
    assert max(o.latency for o in slow) < 0.4
    assert not any(o.json["degraded"] for o in back)
    # Late replies of timed-out calls must not be read as answers to later calls: a fresh
    # card's history, scored one after the other, counts 0, 1, 2, 3 earlier transactions.
    for i in range(4):
        probe = {**transaction("probe", i), "card_token": "ctok_probe_after_slow",
                 "timestamp": f"2026-11-20T10:00:{i:02d}Z"}
        r = httpx.post(svc.url + "/v1/score", json=probe, headers=HEADERS)
        assert r.status_code == 200 and r.json()["degraded"] is False
    assert svc.terminate() == 0
    column = FEATURE_NAMES.index("card_count_1h")
    with sqlite3.connect(Path(svc.log_path).parent / "data" / "audit.sqlite3") as db:
        rows = db.execute("SELECT transaction_id, features FROM decisions WHERE transaction_id LIKE 'probe-%' "
                          "ORDER BY transaction_id").fetchall()
    assert [(t, json.loads(f)[column]) for t, f in rows] == [(f"probe-{i:06d}", float(i)) for i in range(4)]


def test_sigterm_while_postgres_is_down_spools_and_the_next_start_replays(
        service_process: Any, private_pg: PrivatePostgres, pg_schema: str, tmp_path: Path) -> None:
    env = {"FRAUDSTACK_DATABASE_URL": private_pg.url, "FRAUDSTACK_DATABASE_SCHEMA": pg_schema,
           "FRAUDSTACK_AUDIT_FLUSH_MS": "20", "FRAUDSTACK_AUDIT_RETRY_SECONDS": "0.3"}
    svc = service_process(env)
    assert wait_until(lambda: httpx.get(svc.url + "/health/ready").json()["audit"]["up"], 10)
    load = Load(svc.url, "spool", concurrency=4).start()
    time.sleep(0.8)
    private_pg.stop()
    time.sleep(1.2)
    outcomes = load.stop()
    _ok(outcomes)
    # The database is still down: the graceful stop must put everything queued on disk.
    assert svc.terminate() == 0, svc.output()
    spool = tmp_path / "data" / "spool"
    spooled = sum(int(p.name.split("-")[2]) for p in spool.glob("*.json"))
    private_pg.start()
    before_restart = count_rows(private_pg.url, pg_schema)
    assert spooled > 0 and before_restart + spooled >= len(outcomes)
    # The next start replays the spool: every score served is in the audit trail, once.
    svc2 = service_process(env)
    assert wait_rows(private_pg.url, pg_schema, len(outcomes)) == len(outcomes)
    assert wait_until(lambda: not list(spool.glob("*.json")), 10)
    with psycopg.connect(private_pg.url) as conn:
        ids = [r[0] for r in conn.execute(f'SELECT transaction_id FROM "{pg_schema}".decisions')]
    assert sorted(ids) == sorted(o.json["transaction_id"] for o in outcomes)
    assert svc2.terminate() == 0
