"""Fixtures for the lifecycle tests: a local model store holding two model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.lifecycle import LocalModelStore, hash_key

from .models import build_model

CLIENT_KEY = "test-key-not-a-secret"
ADMIN_KEY = "admin-test-key-not-a-secret"


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 (low scores) and v2 (every score above 0.99), fitted once per run."""
    root = tmp_path_factory.mktemp("models")
    return {"v1": build_model(root / "v1", "v1", bias=0.0), "v2": build_model(root / "v2", "v2", bias=12.0)}


@pytest.fixture()
def store(tmp_path: Path, model_dirs: dict[str, Path]) -> LocalModelStore:
    """A local store with v1 and v2 uploaded and v1 active."""
    from app.model import file_sha256

    s = LocalModelStore(tmp_path / "store")
    for version, d in model_dirs.items():
        s.upload(version, d)
    s.write_pointer("active", "v1", file_sha256(model_dirs["v1"] / "model.onnx"))
    return s


@pytest.fixture()
def make_app(tmp_path: Path, store: LocalModelStore, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Factory of the service app reading its model from the store (SQLite audit, in-process velocity).

    Lifecycle settings come from the environment, as in a deployment.
    """
    from app.main import create_app
    from app.settings import Settings

    def make(**env: str | None) -> Any:
        values: dict[str, str | None] = {"FRAUDSTACK_MODEL_STORE": str(store.root),
                                         "FRAUDSTACK_ADMIN_KEY_HASH": hash_key(ADMIN_KEY)}
        values.update(env)
        for key, value in values.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        settings = Settings(environment="development", api_keys=[CLIENT_KEY], model_dir=tmp_path / "unused",
                            data_dir=tmp_path / "data", audit_flush_ms=10)
        return create_app(settings)

    return make
