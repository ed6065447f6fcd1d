"""HTTP routes (thin): parse, authenticate, call ``Service``, render JSON.

Bodies are read once and validated with ``model_validate_json`` (pydantic-core
parses and validates in one pass), which also lets the signature check see the
exact bytes that were sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator

import numpy as np
import orjson
from fastapi import FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from pydantic import ValidationError
from starlette.responses import Response

from app import cloudwatch, lifecycle, metrics
from app.errors import InvalidRequest, NotFound, NotReady, UnsupportedMediaType, from_validation_error, install_handlers
from app.schemas import BatchRequest, BatchResponse, Feedback, FeedbackResponse, InferRequest, ScoreResponse, Transaction
from app.security import EdgeMiddleware, HotPath
from app.service import Service
from app.settings import Settings, load_settings

log = logging.getLogger("fraudstack.api")

_JSON = "application/json"


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=_JSON)


def _body_schema(model: type) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


async def _read(request: Request) -> bytes:
    ctype = request.headers.get("content-type")
    if ctype is not None and not ctype.split(";", 1)[0].strip().lower().endswith(("/json", "+json")):
        raise UnsupportedMediaType(f"Content-Type must be application/json (got {ctype[:60]})", field="Content-Type")
    return await request.body()


def _parse(model: Any, body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise InvalidRequest(f"{name}: must be true or false", field=name)


ModelName = Annotated[str, Path(description="Model name (FRAUDSTACK_MODEL_NAME)", max_length=64)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app; dependencies start in the lifespan (once per worker)."""
    settings = settings or load_settings()
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await models.start()  # model from the store, then Service.start (app.lifecycle)
        # Everything loaded so far (numpy, pandas, onnxruntime, the model, ~130,000 objects)
        # lives as long as the process: freezing it keeps the collector from walking it
        # again. A full collection over them took 84 ms, a stall every request of that
        # moment waits for; frozen, well under a millisecond (python -m bench.probe --only gc).
        gc.freeze()
        publisher = cloudwatch.from_settings(
            settings, audit_backlog=lambda: service.audit.backlog if service.audit is not None else None)
        if publisher is not None:
            publisher.start()
        lag = asyncio.create_task(metrics.watch_loop_lag(), name="loop-lag")
        try:
            yield
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag
            if publisher is not None:
                await publisher.stop()
            await models.stop()

    app = FastAPI(title="fraudstack scoring service", version="1.0.0", lifespan=lifespan,
                  description="Real-time fraud scoring: ONNX model, Redis velocity features, PostgreSQL audit trail. "
                              "Send your key in the X-API-Key header.")
    app.state.service = service
    install_handlers(app)
    models = lifecycle.install(app, service)

    def _check_model(name: str) -> None:
        if name != settings.model_name:
            raise NotFound(f"unknown model; this server serves {settings.model_name!r}", field="name")

    @app.post("/v1/score", response_model=ScoreResponse, tags=["scoring"], openapi_extra=_body_schema(Transaction),
              summary="Score one transaction")
    async def score(request: Request,
                    narrative: Annotated[bool, Query(description="For review decisions, wait (bounded by the Bedrock timeout) for a Bedrock narrative instead of the template.")] = False) -> Response:
        body = await _read(request)
        key_id = await service.authenticate(request.headers, body)
        txn = _parse(Transaction, body)
        return _json(await service.score(txn, body, key_id, narrative))

    @app.post("/v1/score/batch", response_model=BatchResponse, tags=["scoring"], openapi_extra=_body_schema(BatchRequest),
              summary="Score many transactions as one model batch")
    async def score_batch(request: Request,
                          reasons: Annotated[bool, Query(description="Compute per-feature reasons (one extra model row per feature that differs from its reference value).")] = True) -> Response:
        body = await _read(request)
        key_id = await service.authenticate(request.headers, body)
        batch = _parse(BatchRequest, body)
        return _json(await service.score_batch(batch.transactions, body, key_id, reasons))

    @app.post("/v1/feedback", response_model=FeedbackResponse, status_code=202, tags=["scoring"],
              openapi_extra=_body_schema(Feedback), summary="Report the confirmed outcome of a transaction")
    async def feedback(request: Request) -> Response:
        body = await _read(request)
        key_id = await service.authenticate(request.headers, body)
        fb = _parse(Feedback, body)
        service.feedback(fb, body, key_id)
        return _json({"transaction_id": fb.transaction_id, "outcome": fb.outcome, "accepted": True}, 202)

    # ---------------------------------------------------------------- Open Inference Protocol (V2)
    def _model_metadata() -> dict[str, Any]:
        m = service.model
        return {"name": settings.model_name, "versions": [m.version], "platform": "onnxruntime",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, m.n_features]}],
                "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
                "parameters": {"features": m.features}}

    @app.get("/v2", tags=["open-inference"], summary="Server metadata")
    async def v2_server() -> Response:
        return _json({"name": "fraudstack", "version": app.version, "extensions": []})

    @app.get("/v2/health/live", tags=["open-inference"])
    async def v2_live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["open-inference"])
    async def v2_ready() -> Response:
        ready = service.model_error is None
        return _json({"ready": ready}, 200 if ready else 503)

    @app.get("/v2/models/{name}", tags=["open-inference"], summary="Model metadata")
    async def v2_model(request: Request, name: ModelName) -> Response:
        service.keyring.identify(request.headers.get("x-api-key"))
        _check_model(name)
        if service.model_error is not None:
            raise NotReady(f"model not ready: {service.model_error}", field="model")
        return _json(_model_metadata())

    @app.get("/v2/models/{name}/ready", tags=["open-inference"])
    async def v2_model_ready(name: ModelName) -> Response:
        _check_model(name)
        ready = service.model_error is None
        return _json({"name": name, "ready": ready}, 200 if ready else 503)

    @app.post("/v2/models/{name}/infer", tags=["open-inference"], openapi_extra=_body_schema(InferRequest),
              summary="Raw feature vectors in, probabilities out")
    async def v2_infer(request: Request, name: ModelName) -> Response:
        body = await _read(request)
        key_id = await service.authenticate(request.headers, body)
        del key_id
        _check_model(name)
        req = _parse(InferRequest, body)
        tensor = req.inputs[0]
        f = service.model.n_features
        if service.model_error is not None:
            raise NotReady(f"model not ready: {service.model_error}", field="model")
        if len(tensor.shape) != 2 or tensor.shape[1] != f or tensor.shape[0] < 1:
            raise InvalidRequest(f"inputs[0].shape must be [N, {f}] (got {tensor.shape})", field="inputs[0].shape")
        if tensor.shape[0] > settings.max_batch_size:
            raise InvalidRequest(f"inputs[0].shape: at most {settings.max_batch_size} rows", field="inputs[0].shape")
        try:
            with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
                x = np.asarray(tensor.data, dtype=np.float32)
        except (TypeError, ValueError):
            raise InvalidRequest("inputs[0].data must hold numbers only", field="inputs[0].data") from None
        if x.size != tensor.shape[0] * f:
            raise InvalidRequest(f"inputs[0].data has {x.size} values; shape {tensor.shape} needs {tensor.shape[0] * f}",
                                 field="inputs[0].data")
        if np.isinf(x).any():  # NaN is allowed: the model reads it as "missing"
            raise InvalidRequest("inputs[0].data must not hold infinities", field="inputs[0].data")
        probs = await service.infer(x.reshape(tensor.shape[0], f))
        out: dict[str, Any] = {"model_name": name, "model_version": service.model.version,
                               "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [int(probs.shape[0]), 2],
                                            "data": probs.reshape(-1).tolist()}]}
        if req.id is not None:
            out["id"] = req.id
        return _json(out)

    # ---------------------------------------------------------------- operations
    @app.get("/health/live", tags=["operations"], summary="Process is alive")
    async def live() -> Response:
        return _json({"status": "alive"})

    @app.get("/health/ready", tags=["operations"], summary="Model loaded and verified; dependency states")
    async def ready() -> Response:
        ok, details = await service.readiness()
        return _json({"status": "ready" if ok else "not ready", **details}, 200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        if service.audit is not None:
            metrics.AUDIT_BACKLOG.set(service.audit.backlog)
            metrics.AUDIT_SINK_UP.set(1 if service.audit.sink_ok else 0)
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        from pydantic.json_schema import models_json_schema

        _, top = models_json_schema([(m, "validation") for m in (Transaction, BatchRequest, Feedback, InferRequest)],
                                    ref_template="#/components/schemas/{model}")
        components.update(top.get("$defs", {}))
        schema["components"]["securitySchemes"] = {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        schema["security"] = [{"ApiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)

    # The hot routes, served without the framework's per-request layers (HotPath).
    async def fast_score(request: Request) -> Response:
        return await score(request, _flag(request, "narrative", False))

    async def fast_batch(request: Request) -> Response:
        return await score_batch(request, _flag(request, "reasons", True))

    async def fast_infer(request: Request) -> Response:
        return await v2_infer(request, request.path_params["name"])

    return HotPath(app, {"/v1/score": fast_score, "/v1/score/batch": fast_batch}, fast_infer,  # type: ignore[return-value]
                   settings.max_body_bytes)


__all__ = ["create_app"]
