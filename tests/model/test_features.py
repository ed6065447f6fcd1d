"""Feature definitions: online/offline parity, point-in-time correctness, raw features."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from app.features import (
    FEATURE_NAMES,
    N_FEATURES,
    SECONDS_SINCE_CAP,
    VELOCITY_FEATURES,
    offline_features,
    vectorize,
)
from app.velocity import MemoryVelocityStore, RedisVelocityStore, VelocityUnavailable

from .conftest import REDIS_URL, dense_stream, records as _records


async def _replay(store, recs: list[dict]) -> np.ndarray:
    return np.stack([vectorize(r, await store.observe(r)) for r in recs])


def _assert_parity(online: np.ndarray, offline: np.ndarray) -> None:
    assert online.shape == offline.shape == (len(offline), N_FEATURES)
    bad = ~np.isclose(online, offline, rtol=2e-6, atol=1e-4)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise AssertionError(f"{bad.sum()} mismatches; first row {row} feature "
                             f"{FEATURE_NAMES[col]}: online {online[row, col]} offline {offline[row, col]}")


def test_feature_names_are_unique_and_ordered():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == N_FEATURES
    assert FEATURE_NAMES[:2] == ("amount", "log_amount")
    assert FEATURE_NAMES[-1] == "card_amount_ratio_7d"
    assert set(VELOCITY_FEATURES) < set(FEATURE_NAMES)


def test_stream_has_ties_and_missing_values(stream):
    # the parity tests below are only meaningful if the stream stresses these cases
    assert stream.duplicated(["timestamp", "card_token"]).sum() > 20
    assert stream["device_id"].isna().sum() > 100
    gaps = stream["timestamp"].sort_values().diff().max()
    assert gaps > pd.Timedelta(days=7)


def test_memory_store_matches_offline(stream):
    offline = offline_features(stream)
    ordered = stream.sort_values("timestamp", kind="stable")
    online = asyncio.run(_replay(MemoryVelocityStore(), _records(ordered)))
    _assert_parity(online, offline[ordered.index.to_numpy()])


def _client(kind: str):
    """The store's Redis client: redis-py's, or app.resp's pipelined one (what the service uses)."""
    if kind == "resp":
        from app.resp import RespClient

        return RespClient(REDIS_URL, timeout=2.0)
    import redis.asyncio as redis

    return redis.Redis.from_url(REDIS_URL)


@pytest.mark.parametrize("kind", ["redis-py", "resp"])
def test_redis_store_matches_offline(stream, redis_prefix, kind):
    offline = offline_features(stream)
    # reverse order within equal timestamps: ties must not see each other either way
    ordered = stream.iloc[::-1].sort_values("timestamp", kind="stable")

    async def run():
        client = _client(kind)
        try:
            store = RedisVelocityStore(client, key_prefix=redis_prefix, timeout=2.0)
            return await _replay(store, _records(ordered))
        finally:
            await client.aclose()

    online = asyncio.run(run())
    _assert_parity(online, offline[ordered.index.to_numpy()])


@pytest.mark.parametrize("kind", ["redis-py", "resp"])
def test_redis_observe_many_matches_offline(stream, redis_prefix, kind):
    offline = offline_features(stream)
    ordered = stream.iloc[::-1].sort_values("timestamp", kind="stable")
    recs = _records(ordered)

    async def run():
        client = _client(kind)
        try:
            store = RedisVelocityStore(client, key_prefix=redis_prefix, timeout=2.0)
            got = []
            # uneven batches so that ties and windows straddle batch boundaries
            for start in range(0, len(recs), 97):
                chunk = recs[start:start + 97]
                got.extend(await store.observe_many(chunk + chunk[:3]))  # in-batch retries
                assert got[-3:] == got[-3 - len(chunk):-len(chunk)]
                del got[-3:]
            assert await store.observe_many([]) == []
            return np.stack([vectorize(r, v) for r, v in zip(recs, got)])
        finally:
            await client.aclose()

    _assert_parity(asyncio.run(run()), offline[ordered.index.to_numpy()])


def test_redis_observe_many_validates_before_sending_and_reports_outage(redis_prefix):
    import redis.asyncio as redis

    recs = _records(dense_stream(20, seed=4).sort_values("timestamp"))
    bad = dict(recs[5])
    del bad["amount"]

    async def run():
        client = redis.Redis.from_url(REDIS_URL)
        try:
            store = RedisVelocityStore(client, key_prefix=redis_prefix, timeout=2.0)
            with pytest.raises(ValueError, match="missing field 'amount'"):
                await store.observe_many(recs[:5] + [bad])
            assert [k async for k in client.scan_iter(match=f"{redis_prefix}:*")] == []
        finally:
            await client.aclose()
        down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            with pytest.raises(VelocityUnavailable, match="redis velocity store"):
                await RedisVelocityStore(down, key_prefix="fraudstack-test:down", timeout=0.5).observe_many(recs)
        finally:
            await down.aclose()

    asyncio.run(run())


def test_redis_store_is_idempotent_and_sets_ttls(redis_prefix):
    import redis.asyncio as redis

    recs = _records(dense_stream(60, seed=5).sort_values("timestamp"))

    async def run():
        client = redis.Redis.from_url(REDIS_URL)
        try:
            store = RedisVelocityStore(client, key_prefix=redis_prefix, timeout=2.0, result_ttl=60)
            first = [await store.observe(r) for r in recs]
            again = [await store.observe(r) for r in recs]  # retries: same answers, no double count
            nxt = dict(recs[-1], transaction_id="new-one")
            after = await store.observe(nxt)
            ttls = [await client.pttl(k) async for k in client.scan_iter(match=f"{redis_prefix}:*")]
            res_ttls = [await client.pttl(k) async for k in client.scan_iter(match=f"{redis_prefix}:v2:res:*")]
            assert len(res_ttls) == len(recs) + 1 and all(0 < t <= 60_000 for t in res_ttls)
            return first, again, after, ttls
        finally:
            await client.aclose()

    first, again, after, ttls = asyncio.run(run())
    assert first == again
    mem = MemoryVelocityStore()

    async def mem_run():
        for r in recs:
            await mem.observe(r)
        return await mem.observe(dict(recs[-1], transaction_id="new-one"))

    assert after == asyncio.run(mem_run())
    assert after["card_count_7d"] >= 1
    # data keys: the longest window plus the hour their TTL refresh is gated on
    assert ttls and all(0 < t <= 604_800_000 + 3_600_000 for t in ttls)


def test_memory_store_is_idempotent():
    recs = _records(dense_stream(50, seed=9).sort_values("timestamp"))
    store = MemoryVelocityStore()

    async def run():
        a = [await store.observe(r) for r in recs]
        b = [await store.observe(r) for r in recs]
        return a, b

    a, b = asyncio.run(run())
    assert a == b


def test_redis_unavailable_raises_clear_error():
    import redis.asyncio as redis

    async def run():
        client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        store = RedisVelocityStore(client, key_prefix="fraudstack-test:down", timeout=0.5)
        try:
            with pytest.raises(VelocityUnavailable, match="redis velocity store"):
                await store.observe(_records(dense_stream(10))[0])
        finally:
            await client.aclose()

    asyncio.run(run())
    assert RedisVelocityStore.defaults()["card_seconds_since_prev"] == SECONDS_SINCE_CAP
    with pytest.raises(ValueError, match="result_ttl"):
        RedisVelocityStore(redis.Redis.from_url(REDIS_URL), key_prefix="x", result_ttl=0)


def test_no_future_leakage(stream):
    base = offline_features(stream)
    order = stream.sort_values("timestamp", kind="stable").index.to_numpy()
    cut_row = order[len(order) // 3]
    cut_t = stream.loc[cut_row, "timestamp"]
    later = stream["timestamp"] > cut_t
    changed = stream.copy()
    rng = np.random.default_rng(0)
    # change everything about later transactions, and add new later ones
    changed.loc[later, "amount"] = changed.loc[later, "amount"] * 7 + 1
    changed.loc[later, "card_token"] = rng.choice(["c1", "c2", "zz"], later.sum())
    changed.loc[later, "merchant_id"] = "m-other"
    extra = changed[later].copy()
    extra["transaction_id"] = extra["transaction_id"] + "-x"
    changed = pd.concat([changed, extra], ignore_index=True)
    after = offline_features(changed)
    early = np.flatnonzero(~later.to_numpy())
    np.testing.assert_array_equal(after[early], base[early])
    # and later rows did change (the test can fail)
    assert not np.array_equal(after[np.flatnonzero(later.to_numpy())], base[later.to_numpy()])


def test_equal_timestamps_do_not_see_each_other():
    t = "2026-03-01T10:00:00Z"
    rows = [dict(transaction_id=f"x{i}", timestamp=t, amount=10.0 * (i + 1), currency="EUR",
                 card_token="c", customer_id="u", merchant_id=f"m{i}", mcc="5411",
                 merchant_country="DE", card_country="DE", channel="card_present",
                 device_id=None, ip_address=None, ip_country=None) for i in range(3)]
    rows.append(dict(rows[0], transaction_id="x3", timestamp="2026-03-01T10:00:01Z"))
    X = offline_features(pd.DataFrame(rows))
    i = FEATURE_NAMES.index
    assert X[:3, i("card_count_1h")].tolist() == [0, 0, 0]
    assert X[3, i("card_count_1h")] == 3
    assert X[3, i("card_amount_1h")] == 60
    assert X[3, i("card_distinct_merchants_1h")] == 3
    assert X[3, i("card_seconds_since_prev")] == 1
    assert X[0, i("card_seconds_since_prev")] == SECONDS_SINCE_CAP
    assert X[3, i("card_amount_ratio_7d")] == pytest.approx(0.5)


def test_window_edges():
    def row(k, ts, amount=1.0):
        return dict(transaction_id=f"w{k}", timestamp=ts, amount=amount, currency="EUR",
                    card_token="c", customer_id="u", merchant_id="m", mcc="5411",
                    merchant_country="DE", card_country="DE", channel="online",
                    device_id="d", ip_address="1.2.3.4", ip_country="DE")
    rows = [row(0, "2026-03-01T10:00:00Z", 5.0), row(1, "2026-03-01T11:00:00Z"),
            row(2, "2026-03-01T11:00:00.001Z"), row(3, "2026-03-08T11:00:00.001Z")]
    X = offline_features(pd.DataFrame(rows))
    i = FEATURE_NAMES.index
    # [t - 1h, t): exactly 1 h earlier is inside, 1 h + 1 ms earlier is outside
    assert X[1, i("card_count_1h")] == 1
    assert X[2, i("card_count_1h")] == 1 and X[2, i("card_amount_1h")] == 1.0
    assert X[3, i("card_count_7d")] == 1  # only row 2, exactly 7 d earlier
    assert X[3, i("customer_device_count_7d")] == 1
    assert X[3, i("card_seconds_since_prev")] == SECONDS_SINCE_CAP


def test_raw_features_online_equal_offline(stream):
    offline = offline_features(stream)[:, :12]
    from app.features import raw_features
    online = np.array([raw_features(r) for r in _records(stream)], dtype=np.float32)
    np.testing.assert_array_equal(online, offline)
    i = FEATURE_NAMES.index
    mcc = stream["mcc"].to_numpy()
    assert set(offline[mcc == "7995", i("mcc_group")]) == {10}
    assert set(offline[mcc == "12", i("mcc_group")]) == {0}
    assert set(offline[mcc == "6011", i("mcc_high_risk")]) == {1}


def test_vectorize_with_no_velocity_uses_defaults():
    txn = dict(transaction_id="a", timestamp="2026-03-02T13:30:00+00:00", amount="12.50",
               currency="EUR", card_token="c", customer_id="u", merchant_id="m", mcc="5816",
               merchant_country="DE", card_country="FR", channel="online", device_id="d",
               ip_address="10.0.0.1", ip_country="NG")
    v = vectorize(txn, {})
    i = FEATURE_NAMES.index
    assert v.dtype == np.float32 and v.shape == (N_FEATURES,)
    assert v[i("hour")] == 13 and v[i("weekday")] == 0  # 2026-03-02 is a Monday
    assert v[i("card_merchant_country_mismatch")] == 1
    assert v[i("ip_card_country_mismatch")] == 1
    assert v[i("card_seconds_since_prev")] == SECONDS_SINCE_CAP
    assert v[i("card_amount_ratio_7d")] == 1.0


def test_offline_rejects_missing_columns(stream):
    with pytest.raises(ValueError, match="card_token"):
        offline_features(stream.drop(columns=["card_token"]))


def _varied_transactions() -> list[dict]:
    """Transactions that exercise every raw feature's branches: absent optional fields
    (None, '', NaN), odd MCCs, equal and mismatched countries, edge amounts and times."""
    recs = _records(dense_stream(300, seed=9))
    rng = np.random.default_rng(9)
    amounts = [1e-4, 0.01, 0.5, 1.0, 999999999.9999, 1e15, 123.456789, 3.4e38 * 2]
    stamps = ["1969-12-31T23:59:59.999+00:00", "1970-01-01T00:00:00Z", "2026-03-01T23:59:59.999Z",
              "9999-12-31T23:59:59.999+00:00", "0001-01-01T00:00:00+00:00", "2026-11-22T07:00:00.0005+02:00"]
    for i, r in enumerate(recs):
        if i % 7 == 0:
            r["amount"] = amounts[i // 7 % len(amounts)]
        if i % 11 == 0:
            r["timestamp"] = stamps[i // 11 % len(stamps)]
        if i % 13 == 0:
            r["device_id"], r["ip_address"], r["ip_country"] = "", float("nan"), None
        if i % 17 == 0:
            r["ip_country"] = r["card_country"]
        if i % 19 == 0:
            r["mcc"] = ["abc", "-1", "10000", None, "0000"][i // 19 % 5]
        if i % 23 == 0:
            r.pop("device_id")
            r.pop("ip_country")
        r["amount"] = str(r["amount"]) if rng.random() < 0.2 else r["amount"]
    return recs


def test_vectorize_many_equals_vectorize_row_by_row():
    from app.features import raw_features, velocity_defaults, velocity_values, vectorize_many

    recs = _varied_transactions()
    stream = asyncio.run(_memory_observe(recs))  # real histories
    rng = np.random.default_rng(5)
    velocities = []
    for i, v in enumerate(stream):
        if i % 5 == 0:
            v = {}  # degraded: the defaults
        elif i % 5 == 1:  # values a float32 cannot hold exactly, sums of 0 with counts
            v = dict(v, card_amount_7d=float(rng.lognormal(5, 3)), card_count_7d=float(rng.integers(0, 40)),
                     card_seconds_since_prev=float(rng.random() * 1e6))
        elif i % 5 == 2:
            v = dict(v, card_amount_7d=0.0, card_count_7d=3.0)
        velocities.append(v)
    matrix = np.array([velocity_values(v) for v in velocities])
    with np.errstate(over="ignore"):  # the amount beyond float32's range: inf both ways
        want = np.stack([vectorize(r, v) for r, v in zip(recs, velocities)])
        got = vectorize_many(recs, matrix)
        given = vectorize_many(recs, matrix, [raw_features(r) for r in recs])
    assert got.dtype == np.float32 and got.shape == (len(recs), N_FEATURES)
    # the same bits, row by row (inf and NaN included)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.array_equal(given.view(np.uint32), want.view(np.uint32))
    # the cases are there: degraded rows, ratios of both kinds, float32 rounding of amounts
    i = FEATURE_NAMES.index
    assert (want[::5, i("card_seconds_since_prev")] == velocity_defaults()["card_seconds_since_prev"]).all()
    assert len(set(want[:, i("card_amount_ratio_7d")].tolist())) > 50
    assert (want[:, i("has_device")] == 0).sum() > 20 and np.isinf(want[:, i("amount")]).any()
    assert vectorize_many([], np.zeros((0, len(VELOCITY_FEATURES)))).shape == (0, N_FEATURES)
    with pytest.raises(ValueError, match=r"velocity must have shape \(3, 45\)"):
        vectorize_many(recs[:3], matrix[:2])
    with pytest.raises(ValueError, match="2 raw feature rows for 3 transactions"):
        vectorize_many(recs[:3], matrix[:3], [raw_features(r) for r in recs[:2]])


async def _memory_observe(recs: list[dict]) -> list[dict]:
    store = MemoryVelocityStore()
    return [await store.observe(r) for r in recs]
