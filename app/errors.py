"""Errors that carry their HTTP status, and the one place that turns them into JSON.

Every 4xx body has the same shape and names what was wrong::

    {"error": {"code": "validation_error", "message": "...", "field": "amount",
               "details": [{"field": "amount", "message": "...", "type": "greater_than"}]}}

Input values are never echoed (a refused field may hold a card number) and no
stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("fraudstack.errors")


class AppError(Exception):
    """Base class: subclasses set ``status`` and ``code``; ``field`` names the culprit."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details
        self.headers = headers


class MalformedJSON(AppError):
    """The body is not valid JSON."""

    status, code = 400, "malformed_json"


class InvalidRequest(AppError):
    """The body is JSON but does not match the schema."""

    status, code = 422, "validation_error"


class Unauthorized(AppError):
    """Missing or unknown API key, or a bad signature."""

    status, code = 401, "unauthorized"


class ReplayedRequest(AppError):
    """A signed request's nonce was seen before."""

    status, code = 409, "replayed_request"


class NotFound(AppError):
    """Unknown model or resource."""

    status, code = 404, "not_found"


class PayloadTooLarge(AppError):
    """Body above FRAUDSTACK_MAX_BODY_BYTES."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    """Body is not application/json."""

    status, code = 415, "unsupported_media_type"


class RateLimited(AppError):
    """Per-key rate limit exceeded."""

    status, code = 429, "rate_limited"


class NotReady(AppError):
    """The model is not loaded (or failed verification)."""

    status, code = 503, "not_ready"


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    # FastAPI prefixes locations with "body"/"query"; ours come straight from the model.
    parts = [str(p) for p in loc if p not in ("body",)]
    if not parts:
        return "body"
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def from_validation_error(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> AppError:
    """Map a pydantic error to 400 (malformed JSON) or 422 (schema), without echoing inputs."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    if errors and errors[0]["type"] == "json_invalid":
        return MalformedJSON(f"request body is not valid JSON: {errors[0]['msg']}", field="body")
    return _details_error(errors, prefix)


def _details_error(errors: list[dict[str, Any]], prefix: tuple[Any, ...] = ()) -> AppError:
    details = [{"field": _loc_to_field((*prefix, *e["loc"])), "message": e["msg"], "type": e["type"]} for e in errors]
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return InvalidRequest(message, field=first["field"], details=details)


def error_response(exc: AppError) -> Response:
    """Render an ``AppError`` as the JSON error body."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, "field": exc.field}
    if exc.details:
        body["details"] = exc.details
    return Response(orjson.dumps({"error": body}), status_code=exc.status, media_type="application/json",
                    headers=exc.headers)


def internal_error(exc: BaseException) -> Response:
    """Log an unexpected error safely and render the generic 500 body.

    Only the type and where it happened are logged: messages and tracebacks could
    carry card tokens, device ids or addresses, which never go to logs in clear.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-4:]))
    log.error("unhandled %s at %s", type(exc).__name__, where or "?")
    err = AppError("internal error; the incident was logged")
    err.status, err.code = 500, "internal_error"
    return error_response(err)


def install_handlers(app: FastAPI) -> None:
    """Register the error handlers on ``app`` (unexpected errors are caught by ``EdgeMiddleware``)."""

    async def app_error(_: Request, exc: AppError) -> Response:
        return error_response(exc)

    async def request_validation(_: Request, exc: RequestValidationError) -> Response:
        return error_response(_details_error(list(exc.errors())))

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: ("not_found", "path"), 405: ("method_not_allowed", "method")}
        code, field = codes.get(exc.status_code, ("http_error", None))
        message = f"{request.method} {request.url.path}: {exc.detail}"
        err = AppError(message, field=field, headers=getattr(exc, "headers", None))
        err.status, err.code = exc.status_code, code
        return error_response(err)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
