"""Authentication, request signing, rate limits, body limits and security headers.

* API keys are kept only as SHA-256 digests and compared in constant time
  (``hmac.compare_digest`` against every stored digest, no early exit).
* Optional HMAC-SHA256 body signatures: ``X-Signature`` over
  ``<X-Timestamp>.<X-Nonce>.<body>``, a timestamp window, and nonces remembered
  for that window (Redis ``SET NX``; per process when Redis is down) so a
  captured request cannot be replayed.
* Per-key rate limits shared by all workers through Redis. To keep Redis off the
  per-request path, a worker leases tokens in chunks (``INCRBY chunk``) for the
  current one-second window and spends them locally; when Redis is down it falls
  back to an in-process limit.
* A pure ASGI middleware refuses bodies above the limit (413) before they are
  read and adds security headers to every response; ``HotPath`` does the same for
  the scoring routes, which it serves in front of the framework.
* ``fingerprint`` hashes card, device and IP values for logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from typing import Any, Awaitable, Callable

from app import cloudwatch, metrics
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app.errors import AppError, PayloadTooLarge, RateLimited, ReplayedRequest, Unauthorized, error_response, internal_error
from app.settings import hash_api_key

log = logging.getLogger("fraudstack.security")


def fingerprint(value: object) -> str:
    """Short, stable digest of a sensitive value, for logs (never the value itself)."""
    if value is None:
        return "-"
    return hashlib.sha256(str(value).encode()).hexdigest()[:12]


class RedisGuard:
    """Circuit breaker for Redis, shared by velocity, rate limits and nonces.

    A refused or dropped connection opens it at once; timeouts and other errors open
    it after ``threshold`` in a row (an overloaded event loop makes single calls look
    slow, and one slow call must not switch velocity off for everyone). While open,
    callers skip Redis for ``retry_seconds`` instead of waiting on timeouts.
    """

    def __init__(self, client: Any, retry_seconds: float, threshold: int = 3) -> None:
        self.client = client
        self.retry_seconds = retry_seconds
        self.threshold = threshold
        self._failures = 0
        self._down_until = 0.0

    @property
    def usable(self) -> bool:
        """A client exists and the breaker is closed (or its open period is over)."""
        return self.client is not None and time.monotonic() >= self._down_until

    def failed(self, exc: BaseException | None = None) -> None:
        """Record a failed Redis call."""
        metrics.VELOCITY_ERRORS.inc()
        self._failures += 1
        if self._failures >= self.threshold or _connection_lost(exc):
            self._down_until = time.monotonic() + self.retry_seconds

    def succeeded(self) -> None:
        """Record a successful Redis call."""
        self._failures = 0


def _connection_lost(exc: BaseException | None) -> bool:
    import redis.exceptions

    seen = exc.__cause__ if exc is not None and exc.__cause__ is not None else exc
    if seen is None or isinstance(seen, (TimeoutError, redis.exceptions.TimeoutError)):
        return False
    return isinstance(seen, (OSError, redis.exceptions.ConnectionError))


class KeyRing:
    """Digests of the accepted client keys; ``identify`` maps a presented key to its id."""

    def __init__(self, digests: list[str]) -> None:
        self._digests = [(d.encode(), "key-" + d[:8]) for d in dict.fromkeys(digests)]

    def __len__(self) -> int:
        return len(self._digests)

    def identify(self, presented: str | None) -> str:
        """The key id for ``presented``; raises ``Unauthorized`` naming the header."""
        if not presented:
            raise Unauthorized("missing API key: send it in the X-API-Key header", field="X-API-Key")
        candidate = hash_api_key(presented).encode()
        found = None
        for digest, key_id in self._digests:
            if hmac.compare_digest(candidate, digest):
                found = key_id
        if found is None:
            raise Unauthorized("unknown API key", field="X-API-Key")
        return found


class NonceStore:
    """Remembers nonces for the signature window: Redis when usable, else this process."""

    def __init__(self, guard: RedisGuard, prefix: str, ttl_seconds: int) -> None:
        self.guard, self.prefix, self.ttl = guard, prefix, ttl_seconds
        self._local: dict[str, float] = {}

    async def first_use(self, nonce: str) -> bool:
        """True the first time ``nonce`` is presented within the window."""
        now = time.monotonic()
        if len(self._local) > 100_000:
            self._local = {k: v for k, v in self._local.items() if v > now}
        if self._local.get(nonce, 0) > now:
            return False
        self._local[nonce] = now + self.ttl
        if self.guard.usable:
            try:
                fresh = bool(await self.guard.client.set(f"{self.prefix}nonce:{nonce}", 1, nx=True, ex=self.ttl))
            except Exception as exc:
                self.guard.failed(exc)
            else:
                self.guard.succeeded()
                return fresh
        return True


_NONCE = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")


class SignatureVerifier:
    """Checks X-Timestamp, X-Nonce and X-Signature against the shared secret."""

    def __init__(self, secret: str, window_seconds: int, nonces: NonceStore) -> None:
        self._secret = secret.encode()
        self.window = window_seconds
        self.nonces = nonces

    def sign(self, body: bytes, timestamp: int, nonce: str) -> str:
        """Signature a client must send (also used by tests and the benchmark)."""
        return hmac.new(self._secret, f"{timestamp}.{nonce}.".encode() + body, hashlib.sha256).hexdigest()

    async def verify(self, headers: Any, body: bytes) -> None:
        """Raise ``Unauthorized``/``ReplayedRequest`` naming the header at fault."""
        ts_raw, nonce, sig = headers.get("x-timestamp"), headers.get("x-nonce"), headers.get("x-signature")
        for name, value in (("X-Timestamp", ts_raw), ("X-Nonce", nonce), ("X-Signature", sig)):
            if not value:
                raise Unauthorized(f"missing {name} header: this service requires signed requests", field=name)
        try:
            ts = int(ts_raw)
        except ValueError:
            raise Unauthorized("X-Timestamp must be Unix seconds", field="X-Timestamp") from None
        if abs(time.time() - ts) > self.window:
            raise Unauthorized(f"X-Timestamp is outside the {self.window} s window", field="X-Timestamp")
        if not _NONCE.match(nonce):
            raise Unauthorized("X-Nonce must be 8-128 characters of [A-Za-z0-9_-]", field="X-Nonce")
        sig = sig.removeprefix("sha256=")
        if not hmac.compare_digest(self.sign(body, ts, nonce).encode(), sig.strip().lower().encode()):
            raise Unauthorized("X-Signature does not match the body", field="X-Signature")
        if not await self.nonces.first_use(nonce):
            raise ReplayedRequest("X-Nonce was already used: request replayed", field="X-Nonce")


class RateLimiter:
    """Per-key requests per second, shared through Redis by leasing tokens in chunks."""

    def __init__(self, guard: RedisGuard, prefix: str, per_second: int, chunk: int | None = None) -> None:
        self.guard, self.prefix, self.limit = guard, prefix, per_second
        # 1% of the limit per lease: at most workers x chunk requests of slack per second.
        self.chunk = chunk or max(1, per_second // 100)
        self._leases: dict[str, list[int]] = {}  # key id -> [window, tokens left]
        self._local_used: dict[str, list[int]] = {}  # fallback: key id -> [window, used]

    async def check(self, key_id: str) -> None:
        """Raise ``RateLimited`` when ``key_id`` has used its requests for this second."""
        if self.limit <= 0:
            return
        window = int(time.time())
        lease = self._leases.get(key_id)
        if lease is None or lease[0] != window:
            lease = self._leases[key_id] = [window, 0]
        if lease[1] > 0:
            lease[1] -= 1
            return
        if lease[1] < 0:  # this window is exhausted, known without asking Redis again
            raise self._refusal(window)
        granted = await self._lease(key_id, window)
        if granted <= 0:
            lease[1] = -1
            raise self._refusal(window)
        lease[1] = granted - 1

    async def _lease(self, key_id: str, window: int) -> int:
        if self.guard.usable:
            key = f"{self.prefix}rl:{key_id}:{window}"
            try:
                async with self.guard.client.pipeline(transaction=False) as pipe:
                    pipe.incrby(key, self.chunk)
                    pipe.expire(key, 2)
                    used, _ = await pipe.execute()
            except Exception as exc:
                self.guard.failed(exc)
            else:
                self.guard.succeeded()
                return max(0, min(self.chunk, self.limit - (int(used) - self.chunk)))
        # In-process fallback: this worker alone may use the whole limit.
        local = self._local_used.get(key_id)
        if local is None or local[0] != window:
            local = self._local_used[key_id] = [window, 0]
        grant = max(0, min(self.chunk, self.limit - local[1]))
        local[1] += grant
        return grant

    @staticmethod
    def _refusal(window: int) -> RateLimited:
        retry = max(0.0, window + 1 - time.time())
        return RateLimited("rate limit for this API key exceeded; retry after the Retry-After header", field="X-API-Key",
                           headers={"Retry-After": str(max(1, round(retry)))})


_BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_STRICT_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# Swagger UI and ReDoc load their scripts and styles from a CDN.
_DOCS_CSP = (b"content-security-policy",
             b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
             b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
             b"frame-ancestors 'none'")
_DOCS_PATHS = ("/docs", "/redoc")
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


_API_HEADERS = _BASE_HEADERS + [_STRICT_CSP]
_DOCS_HEADERS = _BASE_HEADERS + [_DOCS_CSP]


def edge_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The security headers every response to ``path`` carries."""
    return _DOCS_HEADERS if path.startswith(_DOCS_PATHS) else _API_HEADERS


def record_request(route: str, status: int, elapsed: float) -> None:
    """Per-route latency histogram and the CloudWatch request figures of one response."""
    metrics.REQUEST_LATENCY.labels(route, _STATUS_CLASS.get(status // 100, "5xx")).observe(elapsed)
    cloudwatch.record(route, status, elapsed)


def declared_too_large(scope: dict[str, Any], limit: int) -> bool:
    """Whether the request's Content-Length already exceeds ``limit`` (checked before reading)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value) > limit
            except ValueError:
                return False
    return False


def limited_receive(receive: Any, limit: int) -> Any:
    """``receive`` that raises ``PayloadTooLarge`` once more than ``limit`` body bytes arrived
    (chunked uploads carry no Content-Length to check up front)."""
    seen = 0

    async def counted() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body exceeds {limit} bytes", field="body")
        return message

    return counted


def too_large_response(limit: int, path: str) -> Response:
    """413 for a declared body above ``limit``; the connection is closed (the body is never read)."""
    response = error_response(PayloadTooLarge(f"request body exceeds {limit} bytes (FRAUDSTACK_MAX_BODY_BYTES)", field="body"))
    response.raw_headers.extend(edge_headers(path))
    response.raw_headers.append((b"connection", b"close"))
    return response


class EdgeMiddleware:
    """Body size limit (413 before reading) and security headers, as plain ASGI (no per-request task)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = edge_headers(scope["path"])
        if declared_too_large(scope, self.max):
            await too_large_response(self.max, scope["path"])(scope, receive, send)
            return

        status = 500

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", ())) + extra
            await send(message)

        start = time.perf_counter()
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send_with_headers(message)

        try:
            await self.app(scope, limited_receive(receive, self.max), tracked_send)
        except Exception as exc:
            # Handled here rather than by Starlette's ServerErrorMiddleware, which would
            # re-raise and let the server log the full message and traceback.
            if started:
                internal_error(exc)
                return
            status = 500
            await internal_error(exc)(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            record_request(getattr(route, "path", "unmatched"), status, time.perf_counter() - start)


Handler = Any  # async (Request) -> Response


class HotPath:
    """The three scoring routes served as plain ASGI in front of the framework.

    Same handlers, same errors, headers, body limit and metrics as through the full
    stack (EdgeMiddleware, exception handlers, router), without its per-request layers,
    which cost about 90 µs of worker CPU per request (``python -m bench.probe``). Every
    other request, and every other method on these paths, goes to the FastAPI app, which
    also keeps these routes for the OpenAPI document. Attribute access (``state``,
    ``openapi``, ...) is the FastAPI app's.
    """

    def __init__(self, app: Any, exact: dict[str, Handler], infer: Handler, max_body_bytes: int) -> None:
        self.app = app
        self._exact = exact
        self._infer = infer
        self._max = max_body_bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def _match(self, path: str) -> tuple[str, Handler, dict[str, str] | None] | None:
        handler = self._exact.get(path)
        if handler is not None:
            return path, handler, None
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            name = path[len("/v2/models/"):-len("/infer")]
            if name and "/" not in name:
                return "/v2/models/{name}/infer", self._infer, {"name": name}
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = self._match(scope["path"])
            if match is not None:
                await self._serve(match, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, match: tuple[str, Handler, dict[str, str] | None], scope: dict[str, Any], receive: Any,
                     send: Any) -> None:
        route, handler, params = match
        start = time.perf_counter()
        if declared_too_large(scope, self._max):
            response = too_large_response(self._max, scope["path"])
        else:
            if params is not None:
                scope["path_params"] = params
            try:
                response = await handler(Request(scope, limited_receive(receive, self._max)))
            except AppError as exc:
                response = error_response(exc)
            except ClientDisconnect:
                return  # nobody left to answer
            except Exception as exc:  # never a trace to the client; logged without values
                response = internal_error(exc)
            response.raw_headers.extend(edge_headers(route))
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})
        record_request(route, response.status_code, time.perf_counter() - start)
