"""The Redis velocity store beyond time-ordered parity (tests/model/test_features.py):
late arrivals and retries exactly as the in-process store, versioned keys, bounded
memory and TTLs, ids that contain the key separator, and the range it accepts."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pandas as pd
import pytest

from app.features import LONGEST_WINDOW_MS, timestamp_ms
from app.velocity import MemoryVelocityStore, RedisVelocityStore

from .conftest import REDIS_URL, dense_stream, records as _records

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SLOT = 2**50  # app.velocity._SLOT: counterparty slots of an entity key


def _arrivals(recs: list[dict], seed: int) -> list[dict]:
    """Time order disturbed the way a real feed is: some transactions arrive late (a few
    positions to days late, some after the 9-day gap of the stream), some twice."""
    rng = np.random.default_rng(seed)
    out = list(recs)
    for i in rng.choice(len(out), size=len(out) // 10, replace=False):
        row = out.pop(int(i))
        out.insert(min(len(out), int(i) + int(rng.choice([1, 5, 40, 400, 900]))), row)
    for i in rng.choice(len(out), size=len(out) // 20, replace=False):
        out.insert(min(len(out), int(i) + int(rng.integers(1, 30))), dict(out[int(i)]))  # a retry
    return out


async def _redis_results(prefix: str, recs: list[dict], batch: int = 0) -> list[dict]:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        store = RedisVelocityStore(client, key_prefix=prefix, timeout=5.0)
        if not batch:
            return [await store.observe(r) for r in recs]
        got = []
        for i in range(0, len(recs), batch):
            got.extend(await store.observe_many(recs[i:i + batch]))
        return got
    finally:
        await client.aclose()


async def _memory_results(recs: list[dict]) -> list[dict]:
    store = MemoryVelocityStore()
    return [await store.observe(r) for r in recs]


@pytest.mark.parametrize("batch", [0, 64])
def test_redis_equals_memory_store_with_late_arrivals_and_retries(redis_prefix, batch):
    recs = _arrivals(_records(dense_stream(1200, seed=11).sort_values("timestamp", kind="stable")), seed=batch)
    times = [timestamp_ms(r["timestamp"]) for r in recs]
    late = sum(t < max(times[:i], default=t) for i, t in enumerate(times))
    very_late = sum(t < max(times[:i], default=t) - LONGEST_WINDOW_MS for i, t in enumerate(times))
    assert late > 100 and very_late > 5  # the test can tell trimmed history from kept
    want = asyncio.run(_memory_results(recs))
    got = asyncio.run(_redis_results(redis_prefix, recs, batch))
    # same floats, not approximately: same arithmetic in the same order
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, f"{len(bad)} differ; first {bad[0]}: {recs[bad[0]]}\n{got[bad[0]]}\n{want[bad[0]]}"


def test_redis_equals_memory_store_before_1970(redis_prefix):
    # times are stored signed: a history in 1969 (negative epoch ms) works as any other
    df = dense_stream(300, seed=12).sort_values("timestamp", kind="stable")
    df["timestamp"] = df["timestamp"] - pd.Timedelta(days=365 * 57)
    recs = _records(df)
    assert timestamp_ms(recs[0]["timestamp"]) < 0
    assert asyncio.run(_redis_results(redis_prefix, recs)) == asyncio.run(_memory_results(recs))


def test_redis_keys_are_versioned_trimmed_and_expire(redis_prefix):
    import redis

    recs = _records(dense_stream(1500, seed=13).sort_values("timestamp", kind="stable"))
    span = timestamp_ms(recs[-1]["timestamp"]) - timestamp_ms(recs[0]["timestamp"])
    assert span > 4 * LONGEST_WINDOW_MS  # long enough for trims to matter
    asyncio.run(_redis_results(redis_prefix, recs))
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{redis_prefix}:*", count=1000))
    assert keys and all(k.decode().startswith(f"{redis_prefix}:v2:") for k in keys)
    ev_keys = [k for k in keys if b":v2:ev:" in k]
    assert {k.split(b":")[-2] for k in ev_keys} == {b"card", b"customer", b"device", b"ip", b"merchant"}
    for key in keys:
        ttl = client.pttl(key)
        if b":v2:res:" in key:
            assert 0 < ttl <= 900_000
        else:  # the longest window plus the hour its refresh waits for, at most
            assert LONGEST_WINDOW_MS - HOUR_MS < ttl <= LONGEST_WINDOW_MS + HOUR_MS, key
    checked = 0
    for key in ev_keys + [k for k in keys if b":v2:pr:" in k]:
        members = client.zrange(key, 0, -1, withscores=True)
        slots: dict[int, list[int]] = {}
        for member, score in members:
            slot = int((-score + 2**48) // SLOT)
            slots.setdefault(slot, []).append(int(-score - slot * SLOT))
            if slot == 0:  # an event: its member holds its time too
                assert struct.unpack(">q", member[8:16])[0] == -score
        newest_event = max(slots[0])
        # trims run on a key's first write of a day: at most a day beyond the window
        assert min(slots[0]) >= newest_event - LONGEST_WINDOW_MS - DAY_MS, key
        for slot, times in slots.items():
            if slot:  # counterparties (slots 3, 4) and their markers (1, 2)
                newest = max(slots.get(slot + 2, times))
                assert newest <= newest_event and min(times) >= newest - LONGEST_WINDOW_MS - DAY_MS, key
        checked += len(members)
    client.close()
    assert checked > 1000


def test_pair_keys_keep_ids_with_colons_apart(redis_prefix):
    base = dict(currency="EUR", card_token="c", merchant_id="m", mcc="5411", merchant_country="DE",
                card_country="DE", channel="online", ip_address=None, ip_country=None, amount=10.0)
    first = dict(base, transaction_id="p1", timestamp="2026-03-01T10:00:00Z", customer_id="a:b", device_id="c")
    second = dict(base, transaction_id="p2", timestamp="2026-03-01T11:00:00Z", customer_id="a", device_id="b:c")
    got = asyncio.run(_redis_results(redis_prefix, [first, second]))
    assert got == asyncio.run(_memory_results([first, second]))
    assert got[1]["customer_device_count_7d"] == 0  # another customer's device, same key text


def test_redis_store_refuses_what_it_cannot_store(redis_prefix):
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    store = RedisVelocityStore(client, key_prefix=redis_prefix)
    txn = dict(transaction_id="x", timestamp=2**49, amount=1.0, card_token="c", customer_id="u",
               merchant_id="m")
    with pytest.raises(ValueError, match="timestamp .* out of range"):
        asyncio.run(store.observe(txn))
    with pytest.raises(ValueError, match="decode_responses"):
        RedisVelocityStore(redis.Redis.from_url(REDIS_URL, decode_responses=True), key_prefix=redis_prefix)
