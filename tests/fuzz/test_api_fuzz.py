"""Schemathesis against the service's own OpenAPI, every route, with and without a valid key.

Invariants on every generated request (valid and invalid, schemathesis' positive and
negative modes): never a 5xx; every 4xx is our JSON error naming the problem; without a
valid key a protected route never answers 2xx.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.service.conftest import TEST_KEY

def _openapi() -> dict[str, Any]:
    # The document the service publishes at /openapi.json, built from the app itself
    # (no model or dependency is needed for it); the requests go to the running process.
    from app.main import create_app
    from app.settings import Settings

    return create_app(Settings(api_keys=[TEST_KEY], environment="development")).openapi()


schema = schemathesis.openapi.from_dict(_openapi())

FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
MODEL_NAME = "fraudstack"
PUBLIC = {"/health/live", "/health/ready", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready",
          "/v2/models/{name}/ready"}


#: (test, method path) -> status codes seen; the last test proves the fuzzing got past the gates.
SEEN: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)


def _check(case: Any, response: Any, test: str) -> None:
    SEEN[(test, f"{case.method} {case.path}")][response.status_code] += 1
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    assert "Traceback" not in response.text, where
    if 400 <= response.status_code < 500:
        ctype = response.headers.get("content-type") or [""]
        assert (ctype[0] if isinstance(ctype, list) else ctype).startswith("application/json"), where
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], where
        assert isinstance(error["message"], str) and len(error["message"]) >= 8, where
        assert "field" in error, where


def _served_model_sometimes(case: Any) -> None:
    # A generated model name is almost never the served one: steer half of them to it
    # (chosen by the generated name itself, so Hypothesis still shrinks and replays).
    name = (case.path_parameters or {}).get("name")
    if isinstance(name, str) and len(name) % 2 == 0:
        case.path_parameters["name"] = MODEL_NAME


@schema.parametrize()
@FUZZ
def test_every_route_with_a_valid_key(case: Any, fuzz_service: Any) -> None:
    # Negative mode may generate a broken key header; this test is about the valid one.
    _served_model_sometimes(case)
    case.headers = {**(case.headers or {}), "X-API-Key": TEST_KEY}
    response = case.call(base_url=fuzz_service.url)
    _check(case, response, "valid")
    assert response.status_code != 401, f"valid key refused: {response.text[:200]}"


def _without_valid_key(case: Any, url: str, key: str | None) -> None:
    _served_model_sometimes(case)
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
    case.headers = {**headers, "X-API-Key": key} if key else headers
    response = case.call(base_url=url)
    _check(case, response, "invalid")
    if case.path not in PUBLIC:
        assert not 200 <= response.status_code < 300, f"{case.method} {case.path} served without a valid key"


@schema.parametrize()
@FUZZ
def test_every_route_without_a_key(case: Any, fuzz_service: Any) -> None:
    _without_valid_key(case, fuzz_service.url, None)


@schema.parametrize()
@FUZZ
def test_every_route_with_a_wrong_key(case: Any, fuzz_service: Any) -> None:
    _without_valid_key(case, fuzz_service.url, "wrong-key-not-a-secret")


def test_fuzzing_reached_the_scoring_path_and_the_gates() -> None:
    """Runs after the three above (file order): they were not vacuous."""
    valid = {k[1]: v for k, v in SEEN.items() if k[0] == "valid"}
    invalid = {k[1]: v for k, v in SEEN.items() if k[0] == "invalid"}
    routes = {f"{method.upper()} {path}" for path, item in _openapi()["paths"].items() for method in item}
    assert routes <= set(valid) and routes <= set(invalid)  # plus undocumented methods (405)
    for route in ("POST /v1/score", "POST /v1/score/batch", "POST /v1/feedback", "POST /v2/models/{name}/infer"):
        assert valid[route][422] > 0, (route, valid[route])  # invalid bodies refused by validation
        assert invalid[route][401] > 0, (route, invalid[route])
    # Generated valid requests were served (valid tensors for /v2 infer: test_v2_infer_properties).
    for route in ("POST /v1/score", "POST /v1/score/batch", "GET /v2/models/{name}"):
        assert valid[route][200] > 0, (route, valid[route])
    assert valid["POST /v1/feedback"][202] > 0, valid["POST /v1/feedback"]
    assert valid["POST /v2/models/{name}/infer"][404] > 0 and valid["GET /v2/models/{name}"][404] > 0
