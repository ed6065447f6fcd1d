"""Audit writer pieces: migrations (real PostgreSQL, own schema), spool, hung database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg

from app.audit import PG_MIGRATIONS, AuditWriter, PostgresSink, SqliteSink, Spool

from .conftest import SHARED_PG


def _decision(i: int) -> dict[str, Any]:
    return {"transaction_id": f"txn-{i}", "request_hash": f"h{i}", "received_at": "2026-11-21T14:03:07+00:00",
            "api_key_id": "key-test", "model_version": "v1", "score": 0.5, "risk_score": 940, "decision": "review",
            "degraded": False, "reasons": [{"feature": "amount", "value": 1.0, "impact": 0.1}], "features": [1.0, 2.0],
            "latency_ms": 1.5}


def test_postgres_migrations_run_once_and_inserts_are_idempotent(pg_schema: str) -> None:
    async def scenario() -> None:
        for _ in range(2):  # a second start (or a second worker) migrates nothing twice
            sink = PostgresSink(SHARED_PG, pg_schema)
            await sink.write([_decision(1), _decision(2)], [])
            await sink.write([_decision(2)], [])
            await sink.close()

    asyncio.run(scenario())
    with psycopg.connect(SHARED_PG) as conn:
        versions = [r[0] for r in conn.execute(f'SELECT version FROM "{pg_schema}".schema_migrations ORDER BY version')]
        rows = conn.execute(f'SELECT transaction_id, reasons->0->>\'feature\' FROM "{pg_schema}".decisions ORDER BY 1').fetchall()
    assert versions == list(range(1, len(PG_MIGRATIONS) + 1))
    assert rows == [("txn-1", "amount"), ("txn-2", "amount")]


def test_sqlite_migrations_run_once(tmp_path: Path) -> None:
    first = SqliteSink(tmp_path / "a.sqlite3")
    asyncio.run(first.write([_decision(1)], []))
    asyncio.run(first.close())
    second = SqliteSink(tmp_path / "a.sqlite3")
    asyncio.run(second.write([_decision(1), _decision(2)], []))
    assert second._conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 2
    assert [r[0] for r in second._conn.execute("SELECT version FROM schema_migrations")] == [1, 2]


def test_spool_survives_restarts_and_drops_partial_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([_decision(1), _decision(2)], [])
    (tmp_path / "00000000000000000001-deadbeef-5-batch.json.tmp").write_bytes(b'{"decis')  # a crash mid-write
    again = Spool(tmp_path)
    assert again.records == 2 and len(again.files()) == 1 and not list(tmp_path.glob("*.tmp"))
    decisions, feedback = again.read(again.files()[0])
    assert [d["transaction_id"] for d in decisions] == ["txn-1", "txn-2"] and feedback == []


class HungDatabase:
    """A database that accepts the connection and then never answers (a network partition)."""

    name = "postgresql"

    async def write(self, decisions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


def test_a_hung_database_does_not_hold_the_queue(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, bool]:
        writer = AuditWriter(HungDatabase(), Spool(tmp_path), batch_size=10, flush_ms=10, retry_seconds=60)
        writer.write_timeout = 0.2
        writer.start()
        for i in range(3):
            writer.submit_decision(_decision(i))
        await asyncio.sleep(0.6)
        spooled, ok = writer.spool.records, writer.sink_ok
        await writer.stop()
        return spooled, ok

    assert asyncio.run(scenario()) == (3, False)
