"""CloudWatch service metrics: the exact PutMetricData the alarms rely on (botocore Stubber)."""

from __future__ import annotations

import time as real_time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from fastapi.testclient import TestClient

from app import cloudwatch
from app.main import create_app

from .conftest import TEST_KEY
from .helpers import txn

H = {"X-API-Key": TEST_KEY}
DIMS = [{"Name": "Environment", "Value": "development"}, {"Name": "Service", "Value": "scoring-api"}]


class _Clock:
    """``time`` for app.security with a scripted perf_counter: each request takes the next duration."""

    def __init__(self, durations: list[float]) -> None:
        self._reads = [x for d in durations for x in (100.0, 100.0 + d)]

    def perf_counter(self) -> float:
        return self._reads.pop(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(real_time, name)


@pytest.fixture()
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    """A real boto3 CloudWatch client behind a Stubber, used by the app's publisher."""
    client = boto3.client("cloudwatch", region_name="eu-west-1", aws_access_key_id="test-key-not-a-secret",
                          aws_secret_access_key="test-key-not-a-secret")
    stubber = Stubber(client)
    monkeypatch.setattr(cloudwatch, "make_client", lambda region: client)
    with stubber:
        yield client, stubber


def _app(make_settings: Any, **overrides: Any) -> Any:
    values: dict[str, Any] = {"cloudwatch_namespace": "fraudstack", "cloudwatch_interval_seconds": 3600, **overrides}
    return create_app(make_settings(**values))


def test_requests_through_the_app_are_published_exactly_once_at_shutdown(make_settings, stubbed, monkeypatch) -> None:
    _, stubber = stubbed
    app = _app(make_settings)
    expected = {"Namespace": "fraudstack", "MetricData": [
        {"MetricName": "Requests", "Dimensions": DIMS, "Value": 4.0, "Unit": "Count", "StorageResolution": 60},
        {"MetricName": "Errors5xx", "Dimensions": DIMS, "Value": 1.0, "Unit": "Count", "StorageResolution": 60},
        # 4.2 ms twice, 120 ms, and the failed 7 ms score: 5 %-wide buckets.
        # Every decision reached the (SQLite) audit database before the flush.
        {"MetricName": "AuditBacklog", "Dimensions": DIMS, "Value": 0.0, "Unit": "Count", "StorageResolution": 60},
        {"MetricName": "ScoringLatency", "Dimensions": DIMS, "Values": [4.14, 7.08, 120.0], "Counts": [2.0, 1.0, 1.0],
         "Unit": "Milliseconds", "StorageResolution": 60},
    ]}
    stubber.add_response("put_metric_data", {}, expected)
    with TestClient(app) as client:
        # Probes and scrapes are not API requests: neither counted nor timed.
        assert client.get("/health/live").status_code == 200
        monkeypatch.setattr("app.security.time", _Clock([0.0042, 0.0042, 0.120, 0.007]))
        assert client.post("/v1/score", json=txn(1), headers=H).status_code == 200
        assert client.post("/v1/score", json=txn(2), headers=H).status_code == 200
        assert client.post("/v1/score/batch", json={"transactions": [txn(3)]}, headers=H).status_code == 200

        async def broken(*_: Any) -> Any:
            raise RuntimeError("model exploded")

        monkeypatch.setattr(app.state.service, "score", broken)
        assert client.post("/v1/score", json=txn(4), headers=H).status_code == 500
        monkeypatch.setattr("app.security.time", real_time)
        _wait_for_backlog(app, 0)
        assert stubber._queue  # noqa: SLF001 - the response is still waiting for the shutdown flush
    stubber.assert_no_pending_responses()


def _wait_for_backlog(app: Any, spooled: int) -> None:
    """Wait until the audit writer's memory queue is empty (it writes every 10 ms here) and
    ``spooled`` records are on disk: the backlog then stays put until the next request."""
    audit = app.state.service.audit
    deadline = real_time.monotonic() + 5
    while (audit.backlog, audit.spool.records) != (spooled, spooled) and real_time.monotonic() < deadline:
        real_time.sleep(0.01)
    assert (audit.backlog, audit.spool.records) == (spooled, spooled)


def test_audit_backlog_is_published_while_the_database_is_down(make_settings, stubbed, monkeypatch) -> None:
    # PostgreSQL (here SQLite) stops answering: decisions go to the spool and the worker
    # reports them as its AuditBacklog, which the service-audit-backlog alarm watches.
    _, stubber = stubbed
    app = _app(make_settings)
    stubber.add_response("put_metric_data", {}, {"Namespace": "fraudstack", "MetricData": [
        {"MetricName": "Requests", "Dimensions": DIMS, "Value": 3.0, "Unit": "Count", "StorageResolution": 60},
        {"MetricName": "Errors5xx", "Dimensions": DIMS, "Value": 0.0, "Unit": "Count", "StorageResolution": 60},
        {"MetricName": "AuditBacklog", "Dimensions": DIMS, "Value": 3.0, "Unit": "Count", "StorageResolution": 60},
        {"MetricName": "ScoringLatency", "Dimensions": DIMS, "Values": [5.03], "Counts": [3.0],
         "Unit": "Milliseconds", "StorageResolution": 60},
    ]})

    async def down(*_: Any) -> None:
        raise ConnectionError("database unreachable")

    with TestClient(app) as client:
        audit = app.state.service.audit
        monkeypatch.setattr(audit.sink, "write", down)
        monkeypatch.setattr("app.security.time", _Clock([0.005, 0.005, 0.005]))
        for i in range(3):
            assert client.post("/v1/score", json=txn(30 + i), headers=H).status_code == 200
        monkeypatch.setattr("app.security.time", real_time)
        _wait_for_backlog(app, 3)
        assert audit.sink_ok is False
    stubber.assert_no_pending_responses()


def test_no_audit_backlog_datum_without_an_audit_writer() -> None:
    data = cloudwatch.metric_data(cloudwatch.Aggregate(), "production", "scoring-api")
    assert [d["MetricName"] for d in data] == ["Requests", "Errors5xx"]
    data = cloudwatch.metric_data(cloudwatch.Aggregate(), "production", "scoring-api", audit_backlog=12)
    assert data[-1] == {"MetricName": "AuditBacklog", "Dimensions": [
        {"Name": "Environment", "Value": "production"}, {"Name": "Service", "Value": "scoring-api"}],
        "Value": 12.0, "Unit": "Count", "StorageResolution": 60}


def test_a_failing_cloudwatch_does_not_touch_responses(make_settings, stubbed, caplog) -> None:
    _, stubber = stubbed
    app = _app(make_settings, cloudwatch_interval_seconds=1)
    failures = cloudwatch.PUBLISH_FAILURES._value.get()  # noqa: SLF001
    for _ in range(3):
        stubber.add_client_error("put_metric_data", service_error_code="Throttling", http_status_code=400)
    with TestClient(app) as client:
        first = client.post("/v1/score", json=txn(10), headers=H)
        deadline = real_time.monotonic() + 5
        while cloudwatch.PUBLISH_FAILURES._value.get() == failures and real_time.monotonic() < deadline:  # noqa: SLF001
            real_time.sleep(0.05)
        second = client.post("/v1/score", json=txn(11), headers=H)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["transaction_id"] == "txn-000011"
    assert cloudwatch.PUBLISH_FAILURES._value.get() >= failures + 2  # noqa: SLF001 - the periodic and the final flush
    messages = [r.getMessage() for r in caplog.records if r.name == "fraudstack.cloudwatch"]
    assert messages and all("ClientError" in m and "txn-" not in m for m in messages)


def test_latency_buckets_stay_within_the_150_values_limit_per_datum() -> None:
    agg = cloudwatch.Aggregate()
    for i in range(1, 20001):  # 0.01 ms .. 200 ms in 10 us steps
        agg.latencies[cloudwatch.bucket_ms(i / 100)] += 1
    data = cloudwatch.metric_data(agg, "production", "scoring-api")
    latency = [d for d in data if d["MetricName"] == "ScoringLatency"]
    assert len(agg.latencies) > 150 and len(latency) == -(-len(agg.latencies) // 150)
    assert all(len(d["Values"]) <= 150 and len(d["Values"]) == len(d["Counts"]) for d in latency)
    assert sum(sum(d["Counts"]) for d in latency) == 20000
    for ms in (0.05, 1.0, 4.2, 37.0, 999.0):
        assert abs(cloudwatch.bucket_ms(ms) - ms) / ms <= 0.026


def test_disabled_without_a_namespace(make_settings, stubbed) -> None:
    before = (cloudwatch.PUBLISHED._value.get(), cloudwatch.PUBLISH_FAILURES._value.get())  # noqa: SLF001
    with TestClient(create_app(make_settings())) as client:
        assert client.post("/v1/score", json=txn(20), headers=H).status_code == 200
    assert (cloudwatch.PUBLISHED._value.get(), cloudwatch.PUBLISH_FAILURES._value.get()) == before  # noqa: SLF001


def test_interval_setting_is_validated_naming_the_variable(monkeypatch) -> None:
    from app.settings import SettingsError, load_settings

    monkeypatch.setenv("FRAUDSTACK_CLOUDWATCH_INTERVAL_SECONDS", "0")
    with pytest.raises(SettingsError, match="FRAUDSTACK_CLOUDWATCH_INTERVAL_SECONDS"):
        load_settings()


def test_names_match_what_the_alarms_and_the_role_declare() -> None:
    from components import alarms, scoring_app_specs

    assert (cloudwatch.LATENCY_METRIC, cloudwatch.REQUESTS_METRIC, cloudwatch.ERRORS_5XX_METRIC,
            cloudwatch.AUDIT_BACKLOG_METRIC) == (
        alarms.LATENCY_METRIC, alarms.REQUESTS_METRIC, alarms.ERRORS_5XX_METRIC, alarms.AUDIT_BACKLOG_METRIC)
    # The Deployment sets this namespace; the IRSA role only allows PutMetricData in it.
    assert scoring_app_specs.METRIC_NAMESPACE == alarms.SERVICE_METRIC_NAMESPACE == "fraudstack"
