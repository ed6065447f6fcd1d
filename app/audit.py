"""Audit trail: every decision and every feedback record, written off the request path.

Requests only append to an in-memory queue. A background task writes the queue
in batches to PostgreSQL (psycopg 3) or, when no database is configured, to a
SQLite file. When PostgreSQL is unreachable the batch goes to a durable local
spool (one fsync'ed file per batch, renamed into place atomically) and the spool
is replayed, oldest first, once the database answers again. Rows are unique on
(transaction_id, request_hash), inserts use ``ON CONFLICT DO NOTHING``, so a
replay after a crash between commit and spool deletion writes nothing twice.
A graceful shutdown drains the queue to the database or, failing that, the spool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import orjson

log = logging.getLogger("fraudstack.audit")

DECISION_COLUMNS = ("transaction_id", "request_hash", "received_at", "api_key_id", "model_version", "score",
                    "risk_score", "decision", "degraded", "reasons", "features", "latency_ms")
FEEDBACK_COLUMNS = ("feedback_hash", "transaction_id", "outcome", "reported_at", "source", "note", "api_key_id",
                    "received_at")
_JSON_COLUMNS = {"reasons", "features"}

# Migrations are append-only: each entry runs once, in order, inside one transaction.
PG_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS decisions (
        id BIGSERIAL PRIMARY KEY,
        transaction_id TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        api_key_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        risk_score INTEGER NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'review', 'decline')),
        degraded BOOLEAN NOT NULL,
        reasons JSONB NOT NULL,
        features JSONB NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        written_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (transaction_id, request_hash)
    );
    CREATE INDEX IF NOT EXISTS decisions_received_at ON decisions (received_at);
    """,
    """
    CREATE TABLE IF NOT EXISTS feedback (
        id BIGSERIAL PRIMARY KEY,
        feedback_hash TEXT NOT NULL UNIQUE,
        transaction_id TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('fraud', 'chargeback', 'legitimate')),
        reported_at TIMESTAMPTZ NOT NULL,
        source TEXT,
        note TEXT,
        api_key_id TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        written_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS feedback_transaction_id ON feedback (transaction_id);
    """,
)

SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        transaction_id TEXT NOT NULL, request_hash TEXT NOT NULL, received_at TEXT NOT NULL,
        api_key_id TEXT NOT NULL, model_version TEXT NOT NULL, score REAL NOT NULL,
        risk_score INTEGER NOT NULL, decision TEXT NOT NULL, degraded INTEGER NOT NULL,
        reasons TEXT NOT NULL, features TEXT NOT NULL, latency_ms REAL NOT NULL,
        written_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
        UNIQUE (transaction_id, request_hash)
    );
    CREATE INDEX IF NOT EXISTS decisions_received_at ON decisions (received_at);
    """,
    """
    CREATE TABLE IF NOT EXISTS feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        feedback_hash TEXT NOT NULL UNIQUE, transaction_id TEXT NOT NULL, outcome TEXT NOT NULL,
        reported_at TEXT NOT NULL, source TEXT, note TEXT, api_key_id TEXT NOT NULL,
        received_at TEXT NOT NULL, written_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
    );
    CREATE INDEX IF NOT EXISTS feedback_transaction_id ON feedback (transaction_id);
    """,
)


class AuditSink(Protocol):
    """Where batches end up; ``write`` raises on any failure (the caller spools)."""

    name: str

    async def write(self, decisions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> None: ...

    async def close(self) -> None: ...


def _row(rec: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(orjson.dumps(rec[c]).decode() if c in _JSON_COLUMNS else rec.get(c) for c in columns)


class PostgresSink:
    """PostgreSQL via psycopg 3 (async); reconnects on the next write after a failure."""

    name = "postgresql"

    def __init__(self, url: str, schema: str, connect_timeout: float = 2.0) -> None:
        self._url, self._schema, self._timeout = url, schema, connect_timeout
        self._conn: Any = None
        self._migrated = False
        self._staged = False  # the staging table exists on the current connection

    async def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, connect_timeout=self._timeout, autocommit=False,
                options=f"-c search_path={self._schema}",
            )
            if not self._migrated:
                await self._migrate(self._conn)
                self._migrated = True
        return self._conn

    async def _migrate(self, conn: Any) -> None:
        from psycopg import sql

        schema = sql.Identifier(self._schema)
        async with conn.transaction():
            # Several workers start at once: serialise migrations on an advisory lock.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"fraudstack-migrate:{self._schema}",))
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            await conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())").format(schema))
            cur = await conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations").format(schema))
            current = (await cur.fetchone())[0]
            for version, statement in enumerate(PG_MIGRATIONS, start=1):
                if version <= current:
                    continue
                await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
                await conn.execute(statement)
                await conn.execute(sql.SQL("INSERT INTO {}.schema_migrations (version) VALUES (%s)").format(schema), (version,))
                log.info("audit schema %s migrated to version %d", self._schema, version)

    async def write(self, decisions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> None:
        conn = await self._connection()
        try:
            async with conn.transaction():
                async with conn.cursor() as cur:
                    if decisions:
                        # COPY into a per-session staging table, then one INSERT ... ON CONFLICT
                        # DO NOTHING: the same idempotent insert as row by row, for a fraction of
                        # the client CPU (measured: docs/BENCHMARKS.md).
                        if not self._staged:
                            await cur.execute(_STAGE_DECISIONS_PG)
                            self._staged = True
                        async with cur.copy(_COPY_DECISIONS_PG) as copy:
                            for r in decisions:
                                await copy.write_row(_row(r, DECISION_COLUMNS))
                        await cur.execute(_INSERT_STAGED_DECISIONS_PG)
                    if feedback:
                        await cur.executemany(_INSERT_FEEDBACK_PG, [_row(r, FEEDBACK_COLUMNS) for r in feedback])
        except BaseException:
            await self._drop()
            raise

    async def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            conn = await self._connection()
            await conn.execute("SELECT 1")
            await conn.rollback()
            return True
        except Exception:
            await self._drop()
            return False

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._staged = False
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                pass

    async def close(self) -> None:
        """Close the connection."""
        await self._drop()


_DECISION_LIST = ", ".join(DECISION_COLUMNS)
# Temporary (this session only), emptied at every commit; its columns take their types
# from the decisions table, so a migration of that table carries over.
_STAGE_DECISIONS_PG = (f"CREATE TEMP TABLE IF NOT EXISTS decisions_in ON COMMIT DELETE ROWS AS "
                       f"SELECT {_DECISION_LIST} FROM decisions WITH NO DATA")
_COPY_DECISIONS_PG = f"COPY decisions_in ({_DECISION_LIST}) FROM STDIN"
_INSERT_STAGED_DECISIONS_PG = (f"INSERT INTO decisions ({_DECISION_LIST}) SELECT {_DECISION_LIST} FROM decisions_in "
                               "ON CONFLICT (transaction_id, request_hash) DO NOTHING")
_INSERT_FEEDBACK_PG = (
    f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join(['%s'] * len(FEEDBACK_COLUMNS))}) "
    "ON CONFLICT (feedback_hash) DO NOTHING"
)


class SqliteSink:
    """SQLite file, for a single machine with no database configured."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT DEFAULT CURRENT_TIMESTAMP)")
        self._conn.execute("BEGIN IMMEDIATE")
        current = self._conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
        for version, statement in enumerate(SQLITE_MIGRATIONS, start=1):
            if version > current:
                for part in filter(str.strip, statement.split(";")):
                    self._conn.execute(part)
                self._conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
        self._conn.execute("COMMIT")

    def _write(self, decisions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> None:
        c = self._conn
        c.execute("BEGIN")
        try:
            if decisions:
                c.executemany(
                    f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) VALUES ({', '.join('?' * len(DECISION_COLUMNS))}) "
                    "ON CONFLICT (transaction_id, request_hash) DO NOTHING",
                    [_row(r, DECISION_COLUMNS) for r in decisions])
            if feedback:
                c.executemany(
                    f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))}) "
                    "ON CONFLICT (feedback_hash) DO NOTHING",
                    [_row(r, FEEDBACK_COLUMNS) for r in feedback])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    async def write(self, decisions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._write, decisions, feedback)

    async def ping(self) -> bool:
        """SQLite is local: always reachable once opened."""
        return True

    async def close(self) -> None:
        """Close the file."""
        self._conn.close()


class Spool:
    """Durable local queue of batches: one JSON file per batch, fsync'ed, renamed into place."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        # Files left by a crash mid-write never got their final name; they hold nothing acknowledged.
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        self.records = sum(self._count(p) for p in self.files())

    @staticmethod
    def _count(path: Path) -> int:
        try:
            return int(path.name.split("-")[2])
        except (IndexError, ValueError):
            return 0

    def files(self) -> list[Path]:
        """Spooled batches, oldest first."""
        return sorted(self.dir.glob("*.json"))

    def append(self, decisions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> Path:
        """Write one batch durably (blocking: call from a thread)."""
        n = len(decisions) + len(feedback)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}-{n}-batch.json"
        tmp = self.dir / (name + ".tmp")
        data = orjson.dumps({"decisions": decisions, "feedback": feedback})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.dir / name
        os.replace(tmp, final)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.records += n
        return final

    def read(self, path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Load one spooled batch."""
        data = orjson.loads(path.read_bytes())
        return data["decisions"], data["feedback"]

    def remove(self, path: Path) -> None:
        """Forget a batch once the database has committed it."""
        path.unlink(missing_ok=True)
        self.records = max(0, self.records - self._count(path))


#: Longest wait for one batch's database write before it is spooled instead; the pod's
#: termination grace period budgets one such wait for the shutdown flush
#: (components/scoring_app_specs.py ``AUDIT_FLUSH_SECONDS``).
WRITE_TIMEOUT_SECONDS = 10.0


class AuditWriter:
    """Batches records to a sink off the request path; spools and replays on failure."""

    def __init__(self, sink: AuditSink, spool: Spool, batch_size: int = 500, flush_ms: int = 50,
                 retry_seconds: float = 1.0) -> None:
        self.sink, self.spool = sink, spool
        self.batch_size, self.flush_s, self.retry_s = batch_size, flush_ms / 1000.0, retry_seconds
        self._decisions: deque[dict[str, Any]] = deque()
        self._feedback: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.sink_ok = True
        self.written = 0
        self._next_replay = 0.0
        # A database that stops answering without closing the connection (a network
        # partition) must not hold the queue forever: past this, the batch is spooled.
        # Committed-but-unacknowledged batches are then replayed harmlessly (ON CONFLICT).
        self.write_timeout = WRITE_TIMEOUT_SECONDS

    @property
    def backlog(self) -> int:
        """Records not yet in the database (queued in memory plus spooled on disk)."""
        return len(self._decisions) + len(self._feedback) + self.spool.records

    def submit_decision(self, record: dict[str, Any]) -> None:
        """Queue a decision record (never blocks, never raises)."""
        self._decisions.append(record)
        if len(self._decisions) >= self.batch_size:
            self._wake.set()

    def submit_feedback(self, record: dict[str, Any]) -> None:
        """Queue a feedback record."""
        self._feedback.append(record)
        self._wake.set()

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Drain everything queued to the sink or, failing that, the spool."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.sink.close()

    def _take(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        d = [self._decisions.popleft() for _ in range(min(self.batch_size, len(self._decisions)))]
        f = [self._feedback.popleft() for _ in range(min(self.batch_size, len(self._feedback)))]
        return d, f

    async def _write_or_spool(self, d: list[dict[str, Any]], f: list[dict[str, Any]]) -> None:
        if self.sink_ok:
            try:
                await asyncio.wait_for(self.sink.write(d, f), timeout=self.write_timeout)
                self.written += len(d) + len(f)
                return
            except Exception as exc:
                self.sink_ok = False
                self._next_replay = time.monotonic() + self.retry_s
                log.warning("audit %s unreachable (%s); spooling to %s", self.sink.name, type(exc).__name__, self.spool.dir)
        try:
            await asyncio.to_thread(self.spool.append, d, f)
        except BaseException:
            # Not written anywhere: put the records back so nothing is dropped.
            self._decisions.extendleft(reversed(d))
            self._feedback.extendleft(reversed(f))
            raise

    async def _replay(self) -> None:
        """Write spooled batches back, oldest first, until one fails."""
        for path in self.spool.files():
            d, f = await asyncio.to_thread(self.spool.read, path)
            try:
                await asyncio.wait_for(self.sink.write(d, f), timeout=self.write_timeout)
            except Exception as exc:
                self.sink_ok = False
                self._next_replay = time.monotonic() + self.retry_s
                log.debug("audit replay failed: %s", type(exc).__name__)
                return
            self.spool.remove(path)
            self.written += len(d) + len(f)
            if not self.sink_ok:
                log.warning("audit %s reachable again; replaying the spool", self.sink.name)
            self.sink_ok = True

    async def _run(self) -> None:
        if self.spool.records:  # left by an earlier run: replay at once
            self._wake.set()
        while True:
            timeout = min(self.flush_s, self.retry_s) if self.spool.records else self.flush_s
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if self.spool.records and (self.sink_ok or time.monotonic() >= self._next_replay):
                    await self._replay()
                while self._decisions or self._feedback:
                    await self._write_or_spool(*self._take())
            except Exception:  # a full disk, say: keep the records in memory and try again
                log.exception("audit writer iteration failed")
                await asyncio.sleep(self.retry_s)
            if self._stopping and not (self._decisions or self._feedback):
                if self.spool.records and self.sink_ok:
                    await self._replay()
                return
