"""A fresh machine: nothing configured, `python -m app serve` builds the demo model and serves."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.settings import DEV_API_KEY

from .conftest import free_port, wait_port

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_fresh_start_builds_demo_model_and_says_so_once(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTACK_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=200)
        example = json.loads((ROOT / "app" / "examples" / "transaction.json").read_text())
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            r = http.post("/v1/score", json=example, headers={"X-API-Key": DEV_API_KEY})
            assert r.status_code == 200, r.text
            body = r.json()
            ready = http.get("/health/ready").json()
        assert body["decision"] in {"approve", "review", "decline"} and body["degraded"] is False
        assert ready["model"]["loaded"] is True and ready["velocity_store"] == "in-process" and ready["audit"]["sink"] == "sqlite"
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    for notice in ("building the demo model", "model: DEMO model", "velocity: in-process store", "audit: SQLite",
                   f"auth: development key '{DEV_API_KEY}'"):
        assert output.count(notice) == 1, (notice, output)
    model_dir = tmp_path / "var" / "demo-model"
    assert (model_dir / "model.onnx").is_file() and ready["model"]["version"] == json.loads((model_dir / "model.json").read_text())["version"]
    rows = sqlite3.connect(tmp_path / "var" / "audit.sqlite3").execute("SELECT transaction_id, decision FROM decisions").fetchall()
    assert rows == [("txn-000001", body["decision"])]
