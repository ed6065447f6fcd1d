"""Hot swap of the served model: concurrency, refusal of bad models, admin key, SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.lifecycle import LocalModelStore
from app.model import file_sha256

from ..service.helpers import txn
from .conftest import ADMIN_KEY, CLIENT_KEY
from .models import build_model

ADMIN = {"X-Admin-Key": ADMIN_KEY}
CLIENT = {"X-API-Key": CLIENT_KEY}


async def _with_client(app: Any, body: Any) -> Any:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await body(client)


def _owner(score: float) -> str:
    # v1 scores the example transaction far below 0.5, v2 scores everything above 0.99.
    return "v2" if score > 0.99 else ("v1" if score < 0.5 else "neither")


def test_swap_under_concurrent_requests_fails_and_mixes_nothing(make_app: Any) -> None:
    app = make_app()

    async def body(client: httpx.AsyncClient) -> tuple[list[httpx.Response], httpx.Response]:
        async def one(i: int) -> httpx.Response:
            return await client.post("/v1/score", json=txn(i), headers=CLIENT)

        first = [asyncio.create_task(one(i)) for i in range(150)]
        await asyncio.sleep(0)  # the first wave is in flight when the reload starts
        reload = asyncio.create_task(client.post("/admin/model/reload", json={"version": "v2"}, headers=ADMIN))
        second = []
        while not reload.done():
            second.append(asyncio.create_task(one(1000 + len(second))))
            await asyncio.sleep(0.001)
        third = [asyncio.create_task(one(5000 + i)) for i in range(50)]
        return list(await asyncio.gather(*first, *second, *third)), await reload

    responses, reload = asyncio.run(_with_client(app, body))
    assert reload.status_code == 200, reload.text
    assert reload.json() == {"swapped": True, "version": "v2", "previous": "v1", "message": "swapped"}
    assert [r.status_code for r in responses if r.status_code != 200] == []
    seen = {"v1": 0, "v2": 0}
    for r in responses:
        data = r.json()
        assert _owner(data["score"]) == data["model_version"], data
        # the decision follows the thresholds of the model that produced the score
        assert data["decision"] == ("decline" if data["model_version"] == "v2" else "approve"), data
        seen[data["model_version"]] += 1
    assert seen["v1"] >= 150 and seen["v2"] >= 50, seen
    assert all(r.json()["model_version"] == "v2" for r in responses[-50:])


def _ready_and_metrics(client: httpx.AsyncClient) -> Any:
    async def get() -> tuple[dict[str, Any], str]:
        ready = await client.get("/health/ready")
        metrics = await client.get("/metrics")
        return ready.json(), metrics.text
    return get()


def test_ready_and_metrics_name_the_active_version_after_a_swap(make_app: Any, model_dirs: dict[str, Path]) -> None:
    app = make_app()

    async def body(client: httpx.AsyncClient) -> Any:
        before = await _ready_and_metrics(client)
        swap = await client.post("/admin/model/reload", json={"version": "v2"}, headers=ADMIN)
        after = await _ready_and_metrics(client)
        return before, swap, after

    (ready1, metrics1), swap, (ready2, metrics2) = asyncio.run(_with_client(app, body))
    sha1, sha2 = (file_sha256(model_dirs[v] / "model.onnx") for v in ("v1", "v2"))
    assert ready1["model"]["version"] == "v1" and ready1["model"]["sha256"] == sha1
    assert f'fraudstack_model_info{{sha256="{sha1[:12]}",version="v1"}} 1.0' in metrics1
    assert swap.status_code == 200
    assert ready2["status"] == "ready" and ready2["model"]["version"] == "v2" and ready2["model"]["sha256"] == sha2
    assert f'fraudstack_model_info{{sha256="{sha2[:12]}",version="v2"}} 1.0' in metrics2
    assert 'version="v1"' not in metrics2.split("fraudstack_model_info", 1)[1].split("# HELP", 1)[0]
    assert 'fraudstack_model_reloads_total{result="swapped"}' in metrics2


def _tamper(store: LocalModelStore, version: str) -> None:
    onnx = store.root / "models" / version / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")


@pytest.mark.parametrize("breakage, reason", [
    ("tampered", "SHA-256"),
    ("features", "features differ"),
    ("parity", "parity check failed"),
    ("missing", "does not exist"),
])
def test_a_bad_model_is_refused_and_the_old_one_keeps_serving(make_app: Any, store: LocalModelStore, tmp_path: Path,
                                                              breakage: str, reason: str) -> None:
    from app.features import FEATURE_NAMES

    if breakage == "tampered":
        store.upload("v3", build_model(tmp_path / "v3", "v3", bias=12.0))
        _tamper(store, "v3")
    elif breakage == "features":
        store.upload("v3", build_model(tmp_path / "v3", "v3", features=list(reversed(FEATURE_NAMES))))
    elif breakage == "parity":
        d = build_model(tmp_path / "v3", "v3")
        import json

        meta = json.loads((d / "model.json").read_text())
        meta["parity"]["probabilities"][0] += 0.01
        (d / "model.json").write_text(json.dumps(meta))
        store.upload("v3", d)
    app = make_app()

    async def body(client: httpx.AsyncClient) -> Any:
        refused = await client.post("/admin/model/reload", json={"version": "v3"}, headers=ADMIN)
        scored = await client.post("/v1/score", json=txn(1), headers=CLIENT)
        ready = await client.get("/health/ready")
        return refused, scored, ready

    refused, scored, ready = asyncio.run(_with_client(app, body))
    assert refused.status_code == 409
    assert refused.json()["swapped"] is False and refused.json()["version"] == "v1"
    assert refused.json()["message"].startswith("refused: ") and reason in refused.json()["message"]
    assert scored.status_code == 200 and scored.json()["model_version"] == "v1"
    assert ready.status_code == 200 and ready.json()["model"]["version"] == "v1"


def test_tampered_active_model_at_start_up_is_not_ready(make_app: Any, store: LocalModelStore) -> None:
    _tamper(store, "v1")
    app = make_app()

    async def body(client: httpx.AsyncClient) -> Any:
        return await client.get("/health/ready"), await client.post("/v1/score", json=txn(1), headers=CLIENT)

    ready, scored = asyncio.run(_with_client(app, body))
    assert ready.status_code == 503 and "SHA-256" in ready.json()["model"]["error"]
    assert scored.status_code == 503 and scored.json()["error"]["code"] == "not_ready"


@pytest.mark.parametrize("headers, env, status, code", [
    ({}, {}, 401, "unauthorized"),
    ({"X-Admin-Key": "wrong-test-key-not-a-secret"}, {}, 401, "unauthorized"),
    ({"X-Admin-Key": CLIENT_KEY, "X-API-Key": CLIENT_KEY}, {}, 401, "unauthorized"),
    (ADMIN, {"FRAUDSTACK_ADMIN_KEY_HASH": None}, 403, "forbidden"),
])
def test_admin_route_needs_its_own_key(make_app: Any, headers: dict[str, str], env: dict[str, Any], status: int,
                                       code: str) -> None:
    app = make_app(**env)

    async def body(client: httpx.AsyncClient) -> Any:
        return await client.post("/admin/model/reload", json={"version": "v2"}, headers=headers), await client.get("/health/ready")

    refused, ready = asyncio.run(_with_client(app, body))
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["code"] == code and refused.json()["error"]["field"] == "X-Admin-Key"
    assert ready.json()["model"]["version"] == "v1"


@pytest.mark.parametrize("path", ["/%61dmin/model/reload", "/admin%2Fmodel/reload", "/admin/model/re%6Coad"])
def test_admin_route_answers_only_its_literal_path(make_app: Any, path: str) -> None:
    # The ALB's /admin rule may not decode percent-escapes, uvicorn does: an encoded
    # spelling must get the 404 of an unknown route, even with the right key.
    app = make_app()

    async def body(client: httpx.AsyncClient) -> Any:
        raw = httpx.URL("http://test").copy_with(raw_path=path.encode())
        return (await client.post(raw, json={"version": "v2"}, headers=ADMIN),
                await client.post("/admin/model/reload", json={"version": "v2"}, headers=ADMIN))

    refused, literal = asyncio.run(_with_client(app, body))
    assert refused.status_code == 404, refused.text
    assert refused.json() == {"error": {"code": "not_found", "message": f"POST {path}: Not Found", "field": "path"}}
    assert literal.status_code == 200 and literal.json()["version"] == "v2"


def test_bad_reload_body_names_the_field(make_app: Any) -> None:
    app = make_app()

    async def body(client: httpx.AsyncClient) -> Any:
        return (await client.post("/admin/model/reload", content=b"{not json", headers=ADMIN),
                await client.post("/admin/model/reload", json={"version": "../etc"}, headers=ADMIN))

    malformed, bad_version = asyncio.run(_with_client(app, body))
    assert (malformed.status_code, malformed.json()["error"]["field"]) == (422, "body")
    assert (bad_version.status_code, bad_version.json()["error"]["field"]) == (422, "version")


def test_sighup_reloads_the_version_the_active_pointer_names(make_app: Any, store: LocalModelStore,
                                                               model_dirs: dict[str, Path]) -> None:
    app = make_app()

    async def body(client: httpx.AsyncClient) -> Any:
        before = (await client.get("/health/ready")).json()["model"]["version"]
        store.write_pointer("active", "v2", file_sha256(model_dirs["v2"] / "model.onnx"))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (await client.get("/health/ready")).json()["model"]["version"] == "v2":
                break
        after = await client.post("/v1/score", json=txn(1), headers=CLIENT)
        return before, after

    before, after = asyncio.run(_with_client(app, body))
    assert before == "v1"
    assert after.json()["model_version"] == "v2" and after.json()["score"] > 0.99


def test_every_worker_follows_the_active_pointer(make_app: Any, store: LocalModelStore, model_dirs: dict[str, Path],
                                                 tmp_path: Path) -> None:
    """Roll forward by moving the pointer; a bad target is refused once and not retried; roll back."""
    store.upload("v3", build_model(tmp_path / "v3", "v3", bias=12.0))
    _tamper(store, "v3")
    app = make_app(FRAUDSTACK_MODEL_POLL_SECONDS="0.05")

    async def wait_for(client: httpx.AsyncClient, version: str) -> str:
        for _ in range(200):
            current = (await client.get("/health/ready")).json()["model"]["version"]
            if current == version:
                break
            await asyncio.sleep(0.01)
        return current

    async def body(client: httpx.AsyncClient) -> Any:
        manager = app.state.model_manager
        seen = [await wait_for(client, "v1")]
        store.write_pointer("active", "v2", file_sha256(model_dirs["v2"] / "model.onnx"))
        seen.append(await wait_for(client, "v2"))
        from prometheus_client import REGISTRY

        before = REGISTRY.get_sample_value("fraudstack_model_reloads_total", {"result": "refused"}) or 0.0
        store.write_pointer("active", "v3", "0" * 64)
        await asyncio.sleep(0.3)  # about six polls
        refusals = (REGISTRY.get_sample_value("fraudstack_model_reloads_total", {"result": "refused"}) or 0.0) - before
        seen.append((await client.get("/health/ready")).json()["model"]["version"])
        refused = manager._refused
        store.write_pointer("active", "v1", file_sha256(model_dirs["v1"] / "model.onnx"))
        seen.append(await wait_for(client, "v1"))
        return seen, refused, manager.last_error, refusals

    seen, refused, last_error, refusals = asyncio.run(_with_client(app, body))
    # downloads kept: the serving version and the one before it; the refused one was deleted
    cache = tmp_path / "data" / "models"
    assert sorted(d.name.split("-")[0] for d in cache.iterdir()) == ["v1", "v2"]
    assert refusals == 1  # refused once, not retried until the pointer moves
    assert seen == ["v1", "v2", "v2", "v1"]
    assert refused == "v3"
    assert last_error is None


def test_an_empty_store_serves_the_configured_model_until_a_version_is_promoted(
        model_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new stack's bucket has no pointer yet: the image's model serves, the poll then follows the pointer."""
    from app.main import create_app
    from app.settings import Settings

    empty = LocalModelStore(tmp_path / "empty-store")
    empty.upload("v2", model_dirs["v2"])
    monkeypatch.setenv("FRAUDSTACK_MODEL_STORE", str(empty.root))
    monkeypatch.setenv("FRAUDSTACK_MODEL_POLL_SECONDS", "0.05")
    app = create_app(Settings(environment="development", api_keys=[CLIENT_KEY], model_dir=model_dirs["v1"],
                              data_dir=tmp_path / "data", audit_flush_ms=10))

    async def body(client: httpx.AsyncClient) -> Any:
        ready = await client.get("/health/ready")
        first = (ready.status_code, ready.json()["model"]["version"])
        empty.write_pointer("active", "v2", file_sha256(model_dirs["v2"] / "model.onnx"))
        for _ in range(200):
            now = (await client.get("/health/ready")).json()["model"]["version"]
            if now == "v2":
                break
            await asyncio.sleep(0.01)
        return first, now

    assert asyncio.run(_with_client(app, body)) == ((200, "v1"), "v2")
