"""Property tests: arbitrary bodies never produce a 5xx, and every 4xx names a field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.main import create_app

from .conftest import TEST_KEY
from .helpers import EXAMPLE

H = {"X-API-Key": TEST_KEY, "content-type": "application/json"}
scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | st.text(max_size=30)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=6)
# The example with one field replaced, removed or added: close enough to reach deep validation.
mutations = st.tuples(st.sampled_from([*EXAMPLE, "metadata", "account_id", "extra"]), values, st.booleans())


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["field"] and error["message"] and error["code"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[TestClient]:
    """One app for all examples of this module (in-process velocity store, SQLite audit)."""
    from app.settings import Settings

    settings_ = Settings(environment="development", api_keys=[TEST_KEY], model_dir=model_dir,
                         data_dir=tmp_path_factory.mktemp("fuzz"))
    with TestClient(create_app(settings_)) as c:
        yield c


@settings(max_examples=150, deadline=None)
@given(mutation=mutations)
def test_mutated_transactions(client: TestClient, mutation: tuple[str, Any, bool]) -> None:
    field, value, remove = mutation
    body = dict(EXAMPLE)
    if remove:
        body.pop(field, None)
    else:
        body[field] = value
    _check(client.post("/v1/score", content=json.dumps(body), headers=H))
    _check(client.post("/v1/score/batch", content=json.dumps({"transactions": [body]}), headers=H))


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200) | values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bodies(client: TestClient, body: bytes) -> None:
    for path in ("/v1/score", "/v1/score/batch", "/v1/feedback", "/v2/models/fraudstack/infer"):
        _check(client.post(path, content=body, headers=H))
