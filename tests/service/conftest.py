"""Fixtures for the service tests: real PostgreSQL and Redis, isolated per test run.

Shared servers (127.0.0.1:5432, 127.0.0.1:6379) are only used through a schema
and a key prefix unique to this run (Redis database 1), both removed afterwards.
Tests that stop a server use private instances started here on free ports.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tools.localpg import PrivatePostgres

RUN_ID = uuid.uuid4().hex[:10]
SHARED_PG = "postgresql://postgres@127.0.0.1:5432/test"
SHARED_REDIS = "redis://127.0.0.1:6379/1"
TEST_KEY = "test-key-not-a-secret"
OTHER_KEY = "other-test-key-not-a-secret"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Block until 127.0.0.1:port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


@pytest.fixture(scope="session")
def run_id() -> str:
    """Unique id of this test run."""
    return RUN_ID


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model fitted for this run (see tiny_model.py)."""
    from .tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture()
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema on the shared server for one test, dropped afterwards."""
    schema = f"fs_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    yield schema
    with psycopg.connect(SHARED_PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture()
def redis_prefix() -> Iterator[str]:
    """A key prefix in Redis database 1 for one test; its keys are deleted afterwards."""
    prefix = f"fstest:{RUN_ID}:{uuid.uuid4().hex[:6]}:"
    yield prefix
    client = redis.Redis.from_url(SHARED_REDIS)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    client.close()


class PrivateRedis:
    """A redis-server of our own, on a free port, that tests may stop and start."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private Redis, running; stopped at the end of the test."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster for the whole run (tests stop and start it)."""
    server = PrivatePostgres()
    server.start()
    yield server
    server.destroy()


@pytest.fixture()
def make_settings(tmp_path: Path, model_dir: Path) -> Any:
    """Factory of Settings for a test: explicit values, data in the test's temp dir."""
    from app.settings import Settings

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "development", "api_keys": [TEST_KEY, OTHER_KEY], "model_dir": model_dir,
            "data_dir": tmp_path / "data", "audit_flush_ms": 10, "audit_retry_seconds": 0.2,
            "redis_retry_seconds": 0.2, "redis_timeout_ms": 200,
        }
        values.update(overrides)
        return Settings(**values)

    return make
