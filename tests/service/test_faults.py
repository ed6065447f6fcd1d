"""Dependencies failing and returning, and graceful shutdown, on private server instances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from app.main import create_app

from .conftest import SHARED_PG, SHARED_REDIS, TEST_KEY, PrivatePostgres, PrivateRedis, free_port, wait_port
from .helpers import count_rows, txn, wait_rows

H = {"X-API-Key": TEST_KEY}
# Failure drills (issue 9 builds on these): run alone with `pytest -m drill`.
pytestmark = pytest.mark.drill
ROOT = Path(__file__).parents[2]


def test_redis_down_scores_degraded_and_recovers(make_settings: Any, private_redis: PrivateRedis) -> None:
    settings = make_settings(redis_url=private_redis.url, redis_timeout_ms=100, redis_retry_seconds=0.2)
    def counter(text: str, name: str) -> float:
        return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])

    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/score", json=txn(1), headers=H).json()["degraded"] is False
        before = client.get("/metrics").text
        private_redis.stop()
        started = time.perf_counter()
        down = [client.post("/v1/score", json=txn(i), headers=H) for i in range(2, 12)]
        elapsed = time.perf_counter() - started
        assert [r.status_code for r in down] == [200] * 10
        assert all(r.json()["degraded"] for r in down)
        assert elapsed < 2.0  # failures are fast: refused connections, then the back-off skips Redis
        assert client.get("/health/ready").json()["velocity_store"] == "down (scoring degraded)"
        after = client.get("/metrics").text
        assert counter(after, "fraudstack_velocity_errors_total") - counter(before, "fraudstack_velocity_errors_total") >= 1
        assert counter(after, "fraudstack_degraded_scores_total") - counter(before, "fraudstack_degraded_scores_total") == 10
        private_redis.start()
        deadline = time.monotonic() + 10
        degraded = True
        i = 100
        while degraded and time.monotonic() < deadline:
            time.sleep(0.1)
            i += 1
            degraded = client.post("/v1/score", json=txn(i), headers=H).json()["degraded"]
        assert degraded is False
        assert client.get("/health/ready").json()["velocity_store"] == "up"


def test_redis_down_scores_a_batch_degraded_and_recovers(make_settings: Any, private_redis: PrivateRedis) -> None:
    settings = make_settings(redis_url=private_redis.url, redis_timeout_ms=100, redis_retry_seconds=0.2)

    def batch(client: TestClient, ids: range) -> list[dict[str, Any]]:
        r = client.post("/v1/score/batch", json={"transactions": [txn(i, card_token=f"ctok_{i % 3}") for i in ids]},
                        headers=H)
        assert r.status_code == 200
        return r.json()["results"]

    def degraded_total(client: TestClient) -> float:
        line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("fraudstack_degraded_scores_total "))
        return float(line.split()[1])

    with TestClient(create_app(settings)) as client:
        assert [r["degraded"] for r in batch(client, range(40))] == [False] * 40
        before = degraded_total(client)
        private_redis.stop()
        down = batch(client, range(100, 140))
        assert [r["degraded"] for r in down] == [True] * 40
        assert degraded_total(client) - before == 40
        # scored from the defaults, as a single score without Redis is
        single = client.post("/v1/score", json=txn(100, card_token="ctok_1"), headers=H).json()
        assert single["degraded"] is True and single["score"] == down[0]["score"]
        private_redis.start()
        deadline = time.monotonic() + 10
        results = down
        i = 200
        while any(r["degraded"] for r in results) and time.monotonic() < deadline:
            time.sleep(0.1)
            results = batch(client, range(i, i + 5))
            i += 5
        assert not any(r["degraded"] for r in results)


def test_postgres_down_and_back_loses_and_duplicates_nothing(make_settings: Any, private_pg: PrivatePostgres,
                                                             pg_schema: str) -> None:
    settings = make_settings(database_url=private_pg.url, database_schema=pg_schema, audit_flush_ms=20,
                             audit_retry_seconds=0.2)
    sent = 0
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        for _ in range(20):
            assert client.post("/v1/score", json=txn(sent), headers=H).status_code == 200
            sent += 1
        assert wait_rows(private_pg.url, pg_schema, 20) == 20
        private_pg.stop()
        for _ in range(25):
            assert client.post("/v1/score", json=txn(sent), headers=H).status_code == 200
            sent += 1
        # An identical retry during the outage is the same audit record.
        assert client.post("/v1/score", json=txn(sent - 1), headers=H).status_code == 200
        deadline = time.monotonic() + 10
        while service.audit.spool.records < 26 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.audit.spool.records == 26 and service.audit.sink_ok is False
        assert client.get("/health/ready").json()["audit"]["up"] is False
        private_pg.start()
        for _ in range(15):
            assert client.post("/v1/score", json=txn(sent), headers=H).status_code == 200
            sent += 1
        assert wait_rows(private_pg.url, pg_schema, sent) == sent == 60
        assert service.audit.spool.records == 0 and list(service.audit.spool.files()) == []
    with psycopg.connect(private_pg.url) as conn:
        distinct = conn.execute(f'SELECT count(DISTINCT (transaction_id, request_hash)), count(*) FROM "{pg_schema}".decisions').fetchone()
    assert distinct == (60, 60)


def test_records_spooled_at_shutdown_are_replayed_by_the_next_start(make_settings: Any, private_pg: PrivatePostgres,
                                                                    pg_schema: str) -> None:
    settings = make_settings(database_url=private_pg.url, database_schema=pg_schema, audit_flush_ms=60000)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/score", json=txn(0), headers=H)
        private_pg.stop()
        for i in range(1, 8):
            client.post("/v1/score", json=txn(i), headers=H)
    # The first record may have reached the database before the stop; none may be lost.
    spooled = sum(int(p.name.split("-")[2]) for p in (settings.data_dir / "spool").glob("*.json"))
    assert spooled >= 7
    private_pg.start()
    with TestClient(create_app(settings)):
        assert wait_rows(private_pg.url, pg_schema, 8) == 8
    assert list((settings.data_dir / "spool").glob("*.json")) == []


def test_sigterm_flushes_the_audit_trail(model_dir: Path, pg_schema: str, redis_prefix: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FRAUDSTACK_MODEL_DIR": str(model_dir), "FRAUDSTACK_DATABASE_URL": SHARED_PG,
           "FRAUDSTACK_DATABASE_SCHEMA": pg_schema, "FRAUDSTACK_REDIS_URL": SHARED_REDIS,
           "FRAUDSTACK_REDIS_KEY_PREFIX": redis_prefix, "FRAUDSTACK_API_KEYS": TEST_KEY,
           "FRAUDSTACK_DATA_DIR": str(tmp_path / "data"),
           # Records stay queued in memory until shutdown: only the graceful drain can write them.
           "FRAUDSTACK_AUDIT_FLUSH_MS": "60000", "FRAUDSTACK_AUDIT_BATCH_SIZE": "10000"}
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=H) as http:
            for i in range(30):
                assert http.post("/v1/score", json=txn(i)).status_code == 200
        time.sleep(0.3)
        assert count_rows(SHARED_PG, pg_schema) == 0
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output.decode()
    assert count_rows(SHARED_PG, pg_schema) == 30
    assert TEST_KEY.encode() not in output
