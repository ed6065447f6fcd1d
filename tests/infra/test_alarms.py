"""The Alarms component: TLS-only encrypted topic, every alarm notifying it, exact thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.alarms import Alarms, AlarmsArgs, Thresholds
from tests.infra.cluster_helpers import ACCOUNT, TAGS, of_type, one, policy
from tools.plan import run_component

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/sns"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:fraudstack-test-alarms"


def _args(**changes) -> AlarmsArgs:
    values = dict(
        name_prefix="fraudstack-test", region="eu-west-1", account_id=ACCOUNT, environment="test", topic_key_arn=KEY,
        db_instance_id="fraudstack-test-audit", cache_cluster_ids=["velocity-001", "velocity-002"],
        cluster_name="fraudstack-test", service_namespace="fraudstack", service_deployment="scoring-api",
        thresholds=Thresholds(db_cpu_percent=70, db_free_storage_gib=20, db_freeable_memory_mib=512, db_read_latency_ms=15,
                              db_write_latency_ms=25, db_connections=300, cache_engine_cpu_percent=60, cache_memory_percent=75,
                              cache_evictions=5, cache_replication_lag_seconds=2, node_cpu_percent=85, node_memory_percent=90,
                              pod_restarts=4, service_p99_latency_ms=40, service_error_rate_percent=0.5,
                              service_audit_backlog=5000),
        email="oncall@example.com", period_seconds=60, evaluation_periods=5, tags=TAGS,
    )
    values.update(changes)
    return AlarmsArgs(**values)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return run_component(lambda: Alarms("alarms", _args()))


def test_topic_encrypted_and_tls_only(records):
    topic = one(records, "aws:sns/topic:Topic", "alarms-topic")["inputs"]
    assert topic["kmsMasterKeyId"] == KEY
    assert topic["name"] == "fraudstack-test-alarms"
    doc = policy(one(records, "aws:sns/topic:Topic", "alarms-topic"))
    assert of_type(records, "aws:sns/topicPolicy:TopicPolicy") == []
    deny = [s for s in doc["Statement"] if s["Effect"] == "Deny"]
    assert deny == [{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish",
                     "Resource": TOPIC, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]
    cw = next(s for s in doc["Statement"] if s["Sid"] == "CloudWatchAlarmsPublish")
    assert cw["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cw["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert all(s["Principal"] != "*" for s in doc["Statement"] if s["Effect"] == "Allow")
    sub = one(records, "aws:sns/topicSubscription:TopicSubscription", "alarms-email")["inputs"]
    assert (sub["protocol"], sub["endpoint"], sub["topic"]) == ("email", "oncall@example.com", TOPIC)


def test_every_alarm_notifies_the_topic(records):
    alarms = of_type(records, ALARM)
    assert len(alarms) == 6 + 4 * 2 + 4 + 3
    for alarm in alarms:
        inputs = alarm["inputs"]
        assert inputs["alarmActions"] == [TOPIC], alarm["name"]
        assert inputs["okActions"] == [TOPIC], alarm["name"]
        assert inputs["actionsEnabled"] is True
        # The audit backlog alarm has its own window (3 minutes: 3 periods of 60 s).
        assert inputs["evaluationPeriods"] == (3 if alarm["name"] == "alarms-service-audit-backlog" else 5)
        assert inputs["datapointsToAlarm"] == inputs["evaluationPeriods"]
        assert inputs["name"] == f"fraudstack-test-{alarm['name'].removeprefix('alarms-')}"
        assert alarm["parent"] == "alarms"


def _alarm(records, key):
    return one(records, ALARM, f"alarms-{key}")["inputs"]


@pytest.mark.parametrize(
    ("key", "namespace", "metric", "comparison", "threshold", "dimensions"),
    [
        ("db-cpu", "AWS/RDS", "CPUUtilization", "GreaterThanThreshold", 70, {"DBInstanceIdentifier": "fraudstack-test-audit"}),
        ("db-free-storage", "AWS/RDS", "FreeStorageSpace", "LessThanThreshold", 20 * 1024**3, {"DBInstanceIdentifier": "fraudstack-test-audit"}),
        ("db-freeable-memory", "AWS/RDS", "FreeableMemory", "LessThanThreshold", 512 * 1024**2, {"DBInstanceIdentifier": "fraudstack-test-audit"}),
        ("db-read-latency", "AWS/RDS", "ReadLatency", "GreaterThanThreshold", 0.015, {"DBInstanceIdentifier": "fraudstack-test-audit"}),
        ("db-write-latency", "AWS/RDS", "WriteLatency", "GreaterThanThreshold", 0.025, {"DBInstanceIdentifier": "fraudstack-test-audit"}),
        ("db-connections", "AWS/RDS", "DatabaseConnections", "GreaterThanThreshold", 300, {"DBInstanceIdentifier": "fraudstack-test-audit"}),
        ("cache-1-engine-cpu", "AWS/ElastiCache", "EngineCPUUtilization", "GreaterThanThreshold", 60, {"CacheClusterId": "velocity-001"}),
        ("cache-2-memory", "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "GreaterThanThreshold", 75, {"CacheClusterId": "velocity-002"}),
        ("cache-1-evictions", "AWS/ElastiCache", "Evictions", "GreaterThanThreshold", 5, {"CacheClusterId": "velocity-001"}),
        ("cache-2-replication-lag", "AWS/ElastiCache", "ReplicationLag", "GreaterThanThreshold", 2, {"CacheClusterId": "velocity-002"}),
        ("nodes-cpu", "ContainerInsights", "node_cpu_utilization", "GreaterThanThreshold", 85, {"ClusterName": "fraudstack-test"}),
        ("nodes-memory", "ContainerInsights", "node_memory_utilization", "GreaterThanThreshold", 90, {"ClusterName": "fraudstack-test"}),
        ("nodes-failed", "ContainerInsights", "cluster_failed_node_count", "GreaterThanThreshold", 0, {"ClusterName": "fraudstack-test"}),
        ("service-pod-restarts", "ContainerInsights", "pod_number_of_container_restarts", "GreaterThanThreshold", 4,
         {"ClusterName": "fraudstack-test", "Namespace": "fraudstack", "PodName": "scoring-api"}),
        ("service-p99-latency", "fraudstack", "ScoringLatency", "GreaterThanThreshold", 40, {"Environment": "test", "Service": "scoring-api"}),
        ("service-audit-backlog", "fraudstack", "AuditBacklog", "GreaterThanThreshold", 5000, {"Environment": "test", "Service": "scoring-api"}),
    ],
)
def test_single_metric_alarms(records, key, namespace, metric, comparison, threshold, dimensions):
    inputs = _alarm(records, key)
    assert (inputs["namespace"], inputs["metricName"], inputs["comparisonOperator"]) == (namespace, metric, comparison)
    assert inputs["threshold"] == pytest.approx(threshold)
    assert inputs["dimensions"] == dimensions
    assert inputs["period"] == 60


def test_descriptions_link_their_runbook(records):
    assert _alarm(records, "cache-2-memory")["alarmDescription"] == (
        "Cache node 2: memory above 75% of maxmemory. Runbook: docs/runbooks.md#cache-n-memory"
    )
    assert _alarm(records, "db-cpu")["alarmDescription"].endswith("docs/runbooks.md#db-cpu")
    runbooks = (Path(__file__).resolve().parents[2] / "docs" / "runbooks.md").read_text()
    headings = {line[3:].replace("\\<n\\>", "n") for line in runbooks.splitlines() if line.startswith("## ")}
    keys = {r["inputs"]["alarmDescription"].rsplit("#", 1)[1] for r in of_type(records, ALARM)}
    assert keys <= headings


def test_latency_is_p99_and_error_rate_is_math(records):
    latency = _alarm(records, "service-p99-latency")
    assert latency["extendedStatistic"] == "p99" and "statistic" not in latency
    rate = _alarm(records, "service-5xx-rate")
    assert rate["threshold"] == 0.5
    assert "metricName" not in rate and "namespace" not in rate
    queries = {q["id"]: q for q in rate["metricQueries"]}
    assert queries["rate"]["expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    assert queries["rate"]["returnData"] is True
    assert queries["errors"]["metric"]["metricName"] == "Errors5xx"
    assert queries["requests"]["metric"]["metricName"] == "Requests"
    assert queries["errors"]["metric"]["namespace"] == "fraudstack"
    assert queries["errors"]["metric"]["stat"] == "Sum"


def test_dashboard_shows_every_alarm(records):
    body = json.loads(one(records, "aws:cloudwatch/dashboard:Dashboard", "alarms-dashboard")["inputs"]["dashboardBody"])
    names = {r["inputs"]["name"] for r in of_type(records, ALARM)}
    arns = {f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{n}" for n in names}
    assert set(body["widgets"][0]["properties"]["alarms"]) == arns
    graphs = [w for w in body["widgets"] if w["type"] == "metric"]
    assert {w["properties"]["annotations"]["alarms"][0] for w in graphs} == arns


def test_no_subscription_without_email():
    records = run_component(lambda: Alarms("alarms", _args(email=None, cache_cluster_ids=["velocity-001"])))
    assert of_type(records, "aws:sns/topicSubscription:TopicSubscription") == []
    assert len(of_type(records, ALARM)) == 6 + 4 + 4 + 3


def test_audit_backlog_alarm_takes_the_largest_worker_sample(records):
    backlog = _alarm(records, "service-audit-backlog")
    assert (backlog["statistic"], backlog["treatMissingData"], backlog["period"]) == ("Maximum", "notBreaching", 60)
    assert backlog["alarmDescription"] == (
        "Audit records waiting for the database above 5000 in a worker. Runbook: docs/runbooks.md#service-audit-backlog")


@pytest.mark.parametrize(("period", "periods"), [(60, 3), (300, 1), (900, 1), (3600, 1)])
def test_audit_backlog_window_is_three_minutes_in_whole_periods(period, periods):
    records = run_component(lambda: Alarms("alarms", _args(period_seconds=period, evaluation_periods=2)))
    backlog = _alarm(records, "service-audit-backlog")
    assert (backlog["period"], backlog["evaluationPeriods"], backlog["datapointsToAlarm"]) == (period, periods, periods)
    assert _alarm(records, "db-cpu")["evaluationPeriods"] == 2
