"""The Redis velocity store beyond time-ordered parity (tests/model/test_features.py):
late arrivals and retries exactly as the in-process store, versioned keys, bounded
memory and TTLs, ids that contain the key separator, and the range it accepts."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pandas as pd
import pytest

from app.features import LONGEST_WINDOW_MS, VELOCITY_FEATURES, timestamp_ms
from app.velocity import MemoryVelocityStore, RedisVelocityStore, VelocityUnavailable

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


# ---------------------------------------------------------------------------
# Batches: chunked script calls (observe_matrix / observe_many) against sequential observe.
# ---------------------------------------------------------------------------
def _store_client(kind: str, url: str = REDIS_URL, timeout: float = 5.0):
    if kind == "resp":
        from app.resp import RespClient

        return RespClient(url, timeout=timeout)
    import redis.asyncio as redis

    # (a cancelled redis-py pipeline still reads its replies: its socket timeout is what times out)
    return redis.Redis.from_url(url, socket_timeout=timeout)


def _batches(recs: list[dict], seed: int) -> list[list[dict]]:
    """``recs`` cut into uneven batches (1 to 130 transactions), some repeating a few of
    their own transactions (a retry inside the batch) or of the batch before (a retry
    of a batch that timed out)."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(recs):
        n = int(rng.choice([1, 2, 7, 16, 17, 40, 90, 130]))
        batch = list(recs[i:i + n])
        if len(batch) > 3 and rng.random() < 0.5:
            for j in rng.choice(len(batch), size=3, replace=False):
                batch.insert(int(rng.integers(int(j), len(batch) + 1)), dict(batch[int(j)]))
        if out and rng.random() < 0.3:
            batch[:0] = out[-1][-2:]
        out.append(batch)
        i += n
    return out


def _same_time_burst(timestamp: str) -> list[dict]:
    """60 transactions at one timestamp over few cards, devices and IPs (ties within one
    chunk and across chunks), optional fields absent on some."""
    base = dict(currency="EUR", mcc="5411", merchant_country="DE", card_country="DE", channel="online",
                timestamp=timestamp)
    out = []
    for i in range(60):
        out.append(dict(base, transaction_id=f"burst{i}", amount=float(1 + i % 7),
                        card_token=f"c{i % 4}", customer_id=f"u{i % 3}", merchant_id=f"m{i % 5}",
                        device_id=None if i % 6 == 0 else f"dev-{i % 3}",
                        ip_address=None if i % 4 == 0 else f"ip-{i % 2}",
                        ip_country=None if i % 5 == 0 else ("DE", "NG")[i % 2]))
    return out


@pytest.mark.parametrize("kind", ["redis-py", "resp"])
@pytest.mark.parametrize("chunk", [1, 5, 32])
def test_batches_equal_sequential_observe(redis_prefix, kind, chunk):
    # a replayed stream with late arrivals, retries, ties and absent optional fields,
    # plus a same-time burst in the middle, cut into batches that straddle chunks
    recs = _arrivals(_records(dense_stream(900, seed=21).sort_values("timestamp", kind="stable")), seed=21)
    recs = recs[:300] + _same_time_burst(recs[299]["timestamp"]) + recs[300:]
    batches = _batches(recs, seed=chunk)
    assert sum(len(b) > 2 * chunk for b in batches) >= 2  # batches of several chunks
    flat = [r for b in batches for r in b]
    ids = [r["transaction_id"] for r in flat]
    assert len(ids) - len(set(ids)) > 50  # retries inside and across batches

    async def run():
        client = _store_client(kind)
        try:
            single = RedisVelocityStore(client, key_prefix=redis_prefix + ":single", timeout=5.0)
            want = [await single.observe(r) for r in flat]
            store = RedisVelocityStore(client, key_prefix=redis_prefix + ":batch", timeout=5.0, chunk_size=chunk)
            got, matrices = [], []
            for batch in batches:
                m = await store.observe_matrix(batch)
                assert m.shape == (len(batch), len(VELOCITY_FEATURES)) and m.dtype == np.float64
                matrices.append(m)
                got.extend(dict(zip(VELOCITY_FEATURES, row)) for row in m.tolist())
            # observe_many is the same as dicts; a batch already observed answers the same again
            assert await store.observe_many(batches[-1]) == got[-len(batches[-1]):]
            assert (await store.observe_matrix([])).shape == (0, len(VELOCITY_FEATURES))
            return want, got
        finally:
            await client.aclose()

    want, got = asyncio.run(run())
    # the in-process store agrees too (time order aside, it is the reference definition)
    assert want == asyncio.run(_memory_results(flat))
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, f"{len(bad)} differ; first {bad[0]}: {flat[bad[0]]}\n{got[bad[0]]}\n{want[bad[0]]}"
    burst = [i for i, r in enumerate(flat) if r["transaction_id"].startswith("burst")]
    assert min(got[i]["card_count_7d"] for i in burst) > 0  # the burst saw the history, not each other:
    assert len({got[i]["card_count_7d"] for i in burst if flat[i]["card_token"] == "c0"}) == 1


class _CuttingProxy:
    """TCP proxy to the shared Redis that forwards the first ``limit`` bytes of the first
    connection's requests, then drops that connection (a connection lost mid-batch);
    later connections pass through."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cut = False
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "_CuttingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", 6379)
        budget = None if self.cut else self.limit

        async def down() -> None:
            while data := await up_r.read(65536):
                writer.write(data)
                await writer.drain()

        back = asyncio.ensure_future(down())
        try:
            while data := await reader.read(65536):
                if budget is not None:
                    if len(data) >= budget:
                        up_w.write(data[:budget])
                        await up_w.drain()
                        await asyncio.sleep(0.3)  # let Redis run what it got and answer
                        self.cut = True
                        break
                    budget -= len(data)
                up_w.write(data)
                await up_w.drain()
        finally:
            back.cancel()
            writer.close()
            up_w.close()


@pytest.mark.parametrize("kind", ["redis-py", "resp"])
def test_batch_failing_midway_raises_unavailable_and_a_retry_is_safe(redis_prefix, kind):
    recs = _records(dense_stream(400, seed=22).sort_values("timestamp", kind="stable"))
    first, second = recs[:300], recs[300:]

    async def run():
        client = _store_client(kind)
        try:
            single = RedisVelocityStore(client, key_prefix=redis_prefix + ":single", timeout=5.0)
            want = [await single.observe(r) for r in first + second]
            store = RedisVelocityStore(client, key_prefix=redis_prefix + ":batch", timeout=5.0, chunk_size=16)
            # 1. no answer in time (Redis still runs everything it was sent)
            slow = _store_client(kind, timeout=0.001)
            try:
                with pytest.raises(VelocityUnavailable, match="not answered within|Timeout"):
                    await store.observe_matrix(first, client=slow, timeout=0.001)
            finally:
                await slow.aclose()
            got = (await store.observe_matrix(first)).tolist()  # the retry
            # 2. the connection lost after part of the second batch was sent
            async with _CuttingProxy(limit=40_000) as proxy:  # a chunk of 16 here: ~16 KB
                cut = _store_client(kind, url=f"redis://127.0.0.1:{proxy.port}/2")
                try:
                    with pytest.raises(VelocityUnavailable, match="redis velocity store"):
                        await store.observe_matrix(second, client=cut, timeout=5.0)
                finally:
                    await cut.aclose()
                assert proxy.cut
            partly = await _recorded(client, redis_prefix + ":batch", second)
            got += (await store.observe_matrix(second)).tolist()  # the retry
            return want, got, partly
        finally:
            await client.aclose()

    want, got, partly = asyncio.run(run())
    # the connection was lost midway: some chunks ran, the others never reached Redis
    assert 0 < partly < 100, partly
    # the retries answer exactly what sequential observes did
    assert got == [[w[name] for name in VELOCITY_FEATURES] for w in want]


async def _recorded(client, prefix: str, recs: list[dict]) -> int:
    """How many of ``recs`` have a stored result (were observed) under ``prefix``."""
    keys = [f"{prefix}:v2:res:{r['transaction_id']}" for r in recs]
    if hasattr(client, "execute"):
        return int(await client.execute("EXISTS", *keys))
    return int(await client.exists(*keys))


def test_batch_reply_of_the_wrong_size_is_unavailable(redis_prefix):
    import redis.asyncio as redis

    recs = _records(dense_stream(10, seed=23).sort_values("timestamp", kind="stable"))

    async def run():
        client = redis.Redis.from_url(REDIS_URL)
        try:
            store = RedisVelocityStore(client, key_prefix=redis_prefix, timeout=5.0, chunk_size=4)
            # a result written by another feature version under this prefix
            await client.set(f"{redis_prefix}:v2:res:{recs[5]['transaction_id']}", b"x" * 16)
            with pytest.raises(VelocityUnavailable, match=r"expected 1440 bytes \(4 x 360\), got 1096"):
                await store.observe_matrix(recs)
        finally:
            await client.aclose()

    asyncio.run(run())
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        RedisVelocityStore(object(), key_prefix=redis_prefix, chunk_size=0)


@pytest.mark.parametrize("kind", ["resp", "redis-py"])
def test_preload_puts_both_scripts_in_redis_and_a_dead_redis_is_unavailable(redis_prefix, kind):
    import redis as sync_redis

    from app.velocity import _BATCH_SCRIPT, _SCRIPT
    from app.resp import ScriptRunner

    shas = [ScriptRunner(None, src).sha for src in (_SCRIPT, _BATCH_SCRIPT)]  # type: ignore[arg-type]
    admin = sync_redis.Redis.from_url(REDIS_URL)
    admin.script_flush()  # as after a Redis restart
    assert admin.script_exists(*shas) == [False, False]

    async def run(url: str) -> None:
        client = _store_client(kind, url, timeout=0.5)
        try:
            await RedisVelocityStore(client, key_prefix=redis_prefix).preload(timeout=0.5)
        finally:
            await client.aclose()

    asyncio.run(run(REDIS_URL))
    assert admin.script_exists(*shas) == [True, True]
    with pytest.raises(VelocityUnavailable, match="redis velocity store"):
        asyncio.run(run("redis://127.0.0.1:1/0"))  # nothing listens on port 1
