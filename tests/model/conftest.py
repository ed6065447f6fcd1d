"""Fixtures for the model-pipeline tests: small streams and a private Redis namespace."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pytest

REDIS_URL = "redis://127.0.0.1:6379/2"  # database 2 is this area's; never flushed


def dense_stream(n: int = 1500, seed: int = 3) -> pd.DataFrame:
    """A stream built to stress the window rules: few entities, many equal timestamps
    (minute resolution), missing devices/IPs, gaps longer than 7 d, out-of-order rows."""
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2026-03-01T00:00:00Z").value // 1_000_000
    # bursts within minutes, normal spacing over hours, one 9-day gap
    minutes = np.cumsum(rng.choice([0, 0, 1, 2, 30, 240], size=n))
    minutes[n // 2:] += 9 * 24 * 60
    t = base + minutes * 60_000
    online = rng.random(n) < 0.6
    device = np.where(online & (rng.random(n) < 0.9),
                      np.char.add("dev-", rng.integers(0, 12, n).astype(str)), None)
    ip = np.where(online & (rng.random(n) < 0.9), np.char.add("ip-", rng.integers(0, 8, n).astype(str)), None)
    df = pd.DataFrame({
        "transaction_id": [f"t{i}" for i in range(n)],
        "timestamp": pd.to_datetime(t, unit="ms", utc=True),
        "amount": np.round(rng.lognormal(3, 1.2, n), 2) + 0.01,
        "currency": "EUR",
        "card_token": np.char.add("c", rng.integers(0, 25, n).astype(str)),
        "customer_id": np.char.add("u", rng.integers(0, 15, n).astype(str)),
        "merchant_id": np.char.add("m", rng.integers(0, 10, n).astype(str)),
        "mcc": rng.choice(["5411", "5816", "7995", "6011", "3000", "0000", "12"], n),
        "merchant_country": rng.choice(["DE", "FR", "US"], n),
        "card_country": rng.choice(["DE", "FR"], n),
        "channel": np.where(online, "online", "card_present"),
        "device_id": device,
        "ip_address": ip,
        "ip_country": np.where(ip != None, rng.choice(["DE", "FR", "NG"], n), None),  # noqa: E711
    })
    # shuffle rows: offline results must not depend on row order
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture
def stream() -> pd.DataFrame:
    return dense_stream()


@pytest.fixture
def redis_prefix():
    """A unique key prefix in Redis database 2; its keys are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:  # the shared Redis is part of this machine's test setup
        pytest.fail(f"Redis at {REDIS_URL} is required for the velocity tests: {exc}")
    prefix = f"fraudstack-test:{uuid.uuid4().hex}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    client.close()


@pytest.fixture(autouse=True, scope="session")
def _one_openmp_thread():
    """Tree fitting with all OpenMP threads on a busy shared machine is several
    times slower than with one (threads spin waiting for a core)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """The demo model, built once for this area's tests: (directory, seconds the build took)."""
    from app.training.demo import build_demo_model

    out = tmp_path_factory.mktemp("demo")
    started = time.perf_counter()
    build_demo_model(out)
    return out, time.perf_counter() - started


def records(df: pd.DataFrame) -> list[dict]:
    """Rows of a transaction frame as the service's dicts: ISO timestamps, None for missing."""
    recs = df.to_dict("records")
    for r in recs:
        r["timestamp"] = r["timestamp"].isoformat()
        for k, v in list(r.items()):
            if isinstance(v, float) and np.isnan(v):
                r[k] = None
    return recs
