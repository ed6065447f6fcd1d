"""Hot-path cost of the lifecycle observers and the load+verify time of a swap.

Run: PYTHONPATH=. python bench/lifecycle_overhead.py (uses the tests' tiny model builder).
"""
import asyncio, time, tempfile, statistics
from pathlib import Path
import numpy as np
from tests.lifecycle.models import build_model
from app.model import ScoringModel
from app.shadow import ShadowScorer
from app.drift import DriftMonitor
from app.lifecycle import verify_model
from app.features import FEATURE_NAMES

d = Path(tempfile.mkdtemp())
build_model(d / "v1", "v1"); build_model(d / "v2", "v2", bias=12.0)
m = ScoringModel(d / "v1"); m.load()
rows = np.random.default_rng(0).random((20000, len(FEATURE_NAMES))).astype(np.float32)
mon = DriftMonitor.for_model(m, window=5000)
t = time.perf_counter()
for r in rows:
    mon.offer(r, 0.1, "approve", "v1")
drift_us = (time.perf_counter() - t) / len(rows) * 1e6

async def shadow():
    c = ScoringModel(d / "v2"); c.load()
    s = ShadowScorer(c, queue_size=100000)
    t = time.perf_counter()
    for r in rows:
        s.offer(r, 0.1, "approve", "v1")
    per = (time.perf_counter() - t) / len(rows) * 1e6
    s.start(); t = time.perf_counter(); await s.drain(); drain = time.perf_counter() - t
    await s.stop()
    return per, drain
offer_us, drain_s = asyncio.run(shadow())
times = []
for _ in range(20):
    t = time.perf_counter(); c = ScoringModel(d / "v2"); verify_model(c, FEATURE_NAMES); times.append((time.perf_counter() - t) * 1000)
print(f"drift offer (amortised, incl. binning 1 score + 1 feature per 256-row flush): {drift_us:.2f} us/row")
print(f"shadow offer (enqueue): {offer_us:.2f} us/row; candidate scored 20000 queued rows in {drain_s*1000:.0f} ms")
print(f"verify+load of a tiny model (57 features, logistic regression): median {statistics.median(times):.1f} ms")
