"""Shared helpers for the service tests."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import psycopg

EXAMPLE: dict[str, Any] = json.loads((Path(__file__).parents[2] / "app" / "examples" / "transaction.json").read_text())


def txn(i: int, **changes: Any) -> dict[str, Any]:
    """The example transaction with a distinct id (and optional changes)."""
    t = copy.deepcopy(EXAMPLE)
    t["transaction_id"] = f"txn-{i:06d}"
    t.update(changes)
    return t


def count_rows(url: str, schema: str, table: str = "decisions") -> int:
    """Rows in schema.table (0 when the table does not exist yet)."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".{table}',)).fetchone()[0]
        if exists is None:
            return 0
        return conn.execute(f'SELECT count(*) FROM "{schema}".{table}').fetchone()[0]


def wait_rows(url: str, schema: str, expected: int, table: str = "decisions", timeout: float = 20.0) -> int:
    """Poll until the table holds ``expected`` rows (or time out); returns the last count."""
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        n = count_rows(url, schema, table)
        if n >= expected:
            time.sleep(0.1)  # a late duplicate would show up now
            return count_rows(url, schema, table)
        time.sleep(0.05)
    return n


def assert_error(response: Any, status: int, code: str, field: str | None) -> dict[str, Any]:
    """The response is our JSON error with this status, code and field; no trace inside."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()["error"]
    assert (body["code"], body["field"]) == (code, field), body
    assert "Traceback" not in response.text
    return body
