"""Prometheus metrics (prometheus-client).

With several workers, ``python -m app serve`` sets PROMETHEUS_MULTIPROC_DIR so
that /metrics aggregates all worker processes.
"""

from __future__ import annotations

import asyncio
import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUEST_LATENCY = Histogram(
    "fraudstack_request_seconds", "Request latency by route and status class", ["route", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
DECISIONS = Counter("fraudstack_decisions_total", "Decisions by outcome", ["decision"])
SCORES = Histogram("fraudstack_score", "Distribution of fraud scores",
                   buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0))
DEGRADED = Counter("fraudstack_degraded_scores_total", "Scores computed without velocity features")
VELOCITY_ERRORS = Counter("fraudstack_velocity_errors_total", "Velocity store failures and timeouts (any Redis call when Redis is configured)")
AUDIT_BACKLOG = Gauge("fraudstack_audit_backlog", "Audit records not yet in the database (memory + spool)",
                      multiprocess_mode="livesum")
AUDIT_SINK_UP = Gauge("fraudstack_audit_sink_up", "1 when the audit database accepts writes", multiprocess_mode="min")
MODEL_INFO = Gauge("fraudstack_model_info", "Loaded model (value 1)", ["version", "sha256"], multiprocess_mode="max")
NARRATIVES = Counter("fraudstack_narratives_total", "Review narratives by source", ["source"])
LOOP_LAG = Histogram(
    "fraudstack_event_loop_lag_seconds",
    "How late the worker's event loop woke a timer (sampled every 0.1 s): a stall delays every request in flight",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
REJECTED = Counter("fraudstack_rejected_requests_total", "Refused requests by error code", ["code"])


async def watch_loop_lag(period: float = 0.1) -> None:
    """Observe ``LOOP_LAG`` every ``period`` seconds until cancelled.

    Tail latency at a steady rate comes from moments when the loop runs nothing else:
    a long callback, a garbage collection, or the process not getting the CPU. Velocity
    calls time out (scored degraded) when such a stall outlasts the Redis timeout. The
    histogram tells them apart from a slow dependency. ``time.perf_counter``, not
    ``loop.time()``: uvloop's clock has millisecond steps.
    """
    while True:
        start = time.perf_counter()
        await asyncio.sleep(period)
        LOOP_LAG.observe(max(0.0, time.perf_counter() - start - period))


def render() -> tuple[bytes, str]:
    """Exposition text of all metrics (all workers in multiprocess mode)."""
    if _MULTIPROC:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
