"""CloudWatch service metrics for the platform's alarms (components/alarms.py).

Publishes, in namespace ``FRAUDSTACK_CLOUDWATCH_NAMESPACE`` with dimensions
``Environment`` and ``Service``:

* ``ScoringLatency`` (Milliseconds): one value per scoring request, as ``Values``/``Counts``
  arrays so CloudWatch can compute the p99 the alarm watches;
* ``Requests`` and ``Errors5xx`` (Count): API requests answered, and those with a 5xx;
* ``AuditBacklog`` (Count): the worker's audit records not yet in the database (queued in
  memory plus spooled on disk) when the period is sent. It stays near 0 while PostgreSQL
  keeps up; a value that stays high means the database is down or slower than the
  traffic and the spool, which a deleted pod loses, is filling (alarm
  ``service-audit-backlog``).

The request path only adds to an in-memory aggregate (:func:`record`); a task of the
lifespan flushes it every ``FRAUDSTACK_CLOUDWATCH_INTERVAL_SECONDS`` with one
``PutMetricData`` call made in a worker thread, and once more at shutdown. Latencies
are put in logarithmic buckets 5 % wide (a p99 within 2.5 %), which keeps a minute of
traffic to a few hundred distinct values; they are sent 150 per datum (the API's limit).
A failed call is logged (error type only) and counted, never raised into a request.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any, Callable

from prometheus_client import Counter

log = logging.getLogger("fraudstack.cloudwatch")

LATENCY_METRIC = "ScoringLatency"
REQUESTS_METRIC = "Requests"
ERRORS_5XX_METRIC = "Errors5xx"
AUDIT_BACKLOG_METRIC = "AuditBacklog"
MAX_VALUES_PER_DATUM = 150
#: Routes whose time is ``ScoringLatency`` (the alarm is about scoring, not probes).
SCORING_ROUTES = frozenset({"/v1/score", "/v1/score/batch", "/v2/models/{name}/infer"})
#: Routes that are not API requests: probes and scrapes would dilute the 5xx rate.
_NOT_COUNTED = frozenset({"/health/live", "/health/ready", "/metrics", "/v2/health/live", "/v2/health/ready"})

_GROWTH = 1.05
_LOG_GROWTH = math.log(_GROWTH)
_MIN_MS = 0.01

PUBLISH_FAILURES = Counter("fraudstack_cloudwatch_publish_failures_total",
                           "PutMetricData calls that failed (the period's data is dropped)")
PUBLISHED = Counter("fraudstack_cloudwatch_publishes_total", "PutMetricData calls that succeeded")


def bucket_ms(ms: float) -> float:
    """Representative of the 5 %-wide logarithmic bucket holding ``ms`` (3 significant digits)."""
    index = math.floor(math.log(max(ms, _MIN_MS) / _MIN_MS) / _LOG_GROWTH)
    # Geometric middle of [lower, lower * 1.05): at most 2.5 % from any value inside.
    value = _MIN_MS * _GROWTH ** (index + 0.5)
    return float(f"{value:.3g}")


@dataclass
class Aggregate:
    """What the requests of one period added up to."""

    latencies: Tally[float] = field(default_factory=Tally)
    requests: int = 0
    errors_5xx: int = 0


_current = Aggregate()
_enabled = False


def record(route: str, status: int, seconds: float) -> None:
    """Add one answered request (called by the edge middleware; O(1), no I/O)."""
    if not _enabled or route in _NOT_COUNTED:
        return
    agg = _current
    agg.requests += 1
    if status >= 500:
        agg.errors_5xx += 1
    if route in SCORING_ROUTES:
        agg.latencies[bucket_ms(seconds * 1000.0)] += 1


def _take() -> Aggregate:
    global _current
    taken, _current = _current, Aggregate()
    return taken


def metric_data(agg: Aggregate, environment: str, service: str, audit_backlog: int | None = None) -> list[dict[str, Any]]:
    """``MetricData`` of one ``PutMetricData`` call for a period's aggregate (and the audit
    backlog at sending time; None: the worker has no audit writer, nothing is sent)."""
    dims = [{"Name": "Environment", "Value": environment}, {"Name": "Service", "Value": service}]
    data: list[dict[str, Any]] = [
        {"MetricName": REQUESTS_METRIC, "Dimensions": dims, "Value": float(agg.requests), "Unit": "Count", "StorageResolution": 60},
        {"MetricName": ERRORS_5XX_METRIC, "Dimensions": dims, "Value": float(agg.errors_5xx), "Unit": "Count", "StorageResolution": 60},
    ]
    if audit_backlog is not None:
        # A sample, not a sum: every worker sends its own, the alarm takes the Maximum.
        data.append({"MetricName": AUDIT_BACKLOG_METRIC, "Dimensions": dims, "Value": float(audit_backlog),
                     "Unit": "Count", "StorageResolution": 60})
    items = sorted(agg.latencies.items())
    for i in range(0, len(items), MAX_VALUES_PER_DATUM):
        chunk = items[i:i + MAX_VALUES_PER_DATUM]
        data.append({"MetricName": LATENCY_METRIC, "Dimensions": dims, "Values": [v for v, _ in chunk],
                     "Counts": [float(c) for _, c in chunk], "Unit": "Milliseconds", "StorageResolution": 60})
    return data


def make_client(region: str | None) -> Any:
    """The boto3 CloudWatch client (credentials from the IRSA role in the cluster)."""
    import boto3

    return boto3.client("cloudwatch", region_name=region)


class Publisher:
    """Flushes the aggregate to CloudWatch periodically and at :meth:`stop`."""

    def __init__(self, namespace: str, environment: str, service: str, interval_seconds: float,
                 client_factory: Callable[[], Any], audit_backlog: Callable[[], int | None] | None = None) -> None:
        self.namespace = namespace
        self.environment = environment
        self.service = service
        self.interval = interval_seconds
        self._client_factory = client_factory
        self._audit_backlog = audit_backlog
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin aggregating and start the periodic flush on the running loop."""
        global _enabled
        _take()
        _enabled = True
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cloudwatch-publisher")

    async def stop(self) -> None:
        """Stop the periodic flush and send what is left."""
        global _enabled
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
        _enabled = False

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> bool:
        """Send the aggregate gathered since the last flush; False (logged, counted) on failure."""
        agg = _take()
        backlog = self._audit_backlog() if self._audit_backlog is not None else None
        data = metric_data(agg, self.environment, self.service, backlog)
        try:
            await asyncio.to_thread(self._put, data)
        except Exception as exc:  # noqa: BLE001 - any failure must stay out of the requests
            PUBLISH_FAILURES.inc()
            # The type only: messages of some SDK errors echo the request.
            log.warning("CloudWatch PutMetricData failed (%s); %d requests of this period not published",
                        type(exc).__name__, agg.requests)
            return False
        PUBLISHED.inc()
        return True

    def _put(self, data: list[dict[str, Any]]) -> None:
        if self._client is None:
            self._client = self._client_factory()
        self._client.put_metric_data(Namespace=self.namespace, MetricData=data)


def from_settings(settings: Any, audit_backlog: Callable[[], int | None] | None = None) -> Publisher | None:
    """The publisher the settings ask for, or None when ``FRAUDSTACK_CLOUDWATCH_NAMESPACE`` is unset.

    ``audit_backlog`` reads the worker's audit backlog at each flush (``AuditBacklog``).
    """
    if not settings.cloudwatch_namespace:
        return None
    region = settings.aws_region
    return Publisher(settings.cloudwatch_namespace, settings.environment.value, settings.cloudwatch_service,
                     settings.cloudwatch_interval_seconds, lambda: make_client(region), audit_backlog)
