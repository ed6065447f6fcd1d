"""API keys, signatures, nonces and rate limits (Redis database 1, own prefix)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from app.errors import RateLimited, ReplayedRequest, Unauthorized
from app.security import KeyRing, NonceStore, RateLimiter, RedisGuard, SignatureVerifier, fingerprint
from app.settings import hash_api_key

from .conftest import SHARED_REDIS


def test_keyring_identifies_by_digest() -> None:
    ring = KeyRing([hash_api_key("alpha-key-not-a-secret"), hash_api_key("beta-key-not-a-secret")])
    assert ring.identify("beta-key-not-a-secret") == "key-" + hash_api_key("beta-key-not-a-secret")[:8]
    with pytest.raises(Unauthorized) as info:
        ring.identify("gamma")
    assert (info.value.status, info.value.field, info.value.message) == (401, "X-API-Key", "unknown API key")
    with pytest.raises(Unauthorized) as info:
        ring.identify(None)
    assert info.value.field == "X-API-Key" and "missing" in info.value.message


def test_fingerprint_hides_values() -> None:
    assert fingerprint("203.0.113.7") == fingerprint("203.0.113.7") != "203.0.113.7"
    assert len(fingerprint("dev_7c1e")) == 12 and fingerprint(None) == "-"


def _verifier(guard: RedisGuard, prefix: str, window: int = 300) -> SignatureVerifier:
    return SignatureVerifier("s" * 40, window, NonceStore(guard, prefix, window))


async def _sign_and_verify(v: SignatureVerifier, body: bytes, ts: int, nonce: str, tamper: bytes | None = None) -> None:
    headers = {"x-timestamp": str(ts), "x-nonce": nonce, "x-signature": v.sign(body, ts, nonce)}
    await v.verify(headers, tamper if tamper is not None else body)


def test_signature_window_tamper_and_replay(redis_prefix: str) -> None:
    async def scenario() -> None:
        client = aioredis.from_url(SHARED_REDIS)
        v = _verifier(RedisGuard(client, 1.0), redis_prefix)
        now = int(time.time())
        await _sign_and_verify(v, b'{"a":1}', now, "nonce-0001")
        with pytest.raises(ReplayedRequest) as info:
            await _sign_and_verify(v, b'{"a":1}', now, "nonce-0001")
        assert (info.value.status, info.value.field) == (409, "X-Nonce")
        # Another worker (fresh process memory) sees the nonce in Redis.
        other = _verifier(RedisGuard(client, 1.0), redis_prefix)
        with pytest.raises(ReplayedRequest):
            await _sign_and_verify(other, b'{"a":1}', now, "nonce-0001")
        with pytest.raises(Unauthorized) as info:
            await _sign_and_verify(v, b'{"a":1}', now, "nonce-0002", tamper=b'{"a":2}')
        assert info.value.field == "X-Signature"
        with pytest.raises(Unauthorized) as info:
            await _sign_and_verify(v, b"{}", now - 301, "nonce-0003")
        assert info.value.field == "X-Timestamp"
        with pytest.raises(Unauthorized) as info:
            await v.verify({"x-timestamp": str(now), "x-signature": "00"}, b"{}")
        assert info.value.field == "X-Nonce"
        assert await client.exists(f"{redis_prefix}nonce:nonce-0001") == 1
        await client.aclose()

    asyncio.run(scenario())


def test_nonces_fall_back_to_process_memory_without_redis() -> None:
    async def scenario() -> None:
        client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.1)
        v = _verifier(RedisGuard(client, 60.0), "x:")
        now = int(time.time())
        await _sign_and_verify(v, b"{}", now, "nonce-down-1")
        with pytest.raises(ReplayedRequest):
            await _sign_and_verify(v, b"{}", now, "nonce-down-1")
        await client.aclose()

    asyncio.run(scenario())


def test_rate_limit_is_shared_through_redis(redis_prefix: str) -> None:
    async def scenario() -> list[int]:
        client = aioredis.from_url(SHARED_REDIS)
        # Two limiters = two workers sharing one key's budget of 10/s (chunk 2).
        a = RateLimiter(RedisGuard(client, 1.0), redis_prefix, 10, chunk=2)
        b = RateLimiter(RedisGuard(client, 1.0), redis_prefix, 10, chunk=2)
        while time.time() % 1 > 0.5:  # stay inside one one-second window
            await asyncio.sleep(0.05)
        allowed = [0, 0]
        for i in range(30):
            try:
                await (a if i % 2 else b).check("key-1")
                allowed[i % 2] += 1
            except RateLimited as exc:
                assert exc.status == 429 and exc.headers and "Retry-After" in exc.headers
        await a.check("key-2")  # other keys have their own budget
        await client.aclose()
        return allowed

    allowed = asyncio.run(scenario())
    assert sum(allowed) == 10


def test_rate_limit_falls_back_in_process() -> None:
    async def scenario() -> int:
        client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.1)
        limiter = RateLimiter(RedisGuard(client, 60.0), "x:", 5)
        while time.time() % 1 > 0.5:
            await asyncio.sleep(0.05)
        ok = 0
        for _ in range(8):
            try:
                await limiter.check("key-1")
                ok += 1
            except RateLimited:
                pass
        await client.aclose()
        return ok

    assert asyncio.run(scenario()) == 5


def test_redis_guard_opens_at_once_on_lost_connections_and_after_repeated_timeouts() -> None:
    import redis.exceptions

    from app.velocity import VelocityUnavailable

    guard = RedisGuard(object(), retry_seconds=60.0, threshold=3)
    for _ in range(2):
        guard.failed(VelocityUnavailable("no answer within 0.025s"))
    assert guard.usable  # two slow calls in a row are not an outage
    guard.succeeded()
    guard.failed(TimeoutError())
    guard.failed(redis.exceptions.TimeoutError())
    assert guard.usable
    guard.failed(redis.exceptions.TimeoutError())
    assert not guard.usable  # the third in a row is
    lost = RedisGuard(object(), retry_seconds=60.0, threshold=3)
    try:
        raise VelocityUnavailable("redis velocity store: ConnectionError") from redis.exceptions.ConnectionError("refused")
    except VelocityUnavailable as exc:
        lost.failed(exc)
    assert not lost.usable
