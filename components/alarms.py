"""On-call alerting: an encrypted, TLS-only SNS topic, CloudWatch alarms on the data
tier, the nodes and the scoring service, and a dashboard of the same metrics."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

SERVICE_METRIC_NAMESPACE = "fraudstack"
"""CloudWatch namespace the scoring service publishes to (see docs/cluster.md)."""
LATENCY_METRIC = "ScoringLatency"  # milliseconds, one value per scored request
REQUESTS_METRIC = "Requests"  # count of HTTP requests answered
ERRORS_5XX_METRIC = "Errors5xx"  # count of HTTP responses with a 5xx status
AUDIT_BACKLOG_METRIC = "AuditBacklog"  # one worker's audit records not yet in the database, sampled
#: How long the audit backlog must stay high before its alarm fires, whatever the stack's
#: period: longer than a Multi-AZ failover (1-2 minutes, which the spool absorbs), well
#: short of the time a production pod's spool takes to fill at full load (about 6.5
#: minutes, docs/deploy-service.md), past which the kubelet evicts the pod, spool and all.
AUDIT_BACKLOG_WINDOW_SECONDS = 180

# Model drift and quality, published by the service (app.monitoring) as embedded metric format.
SCORE_PSI_METRIC = "ScorePSI"  # PSI of the score against model.json's training reference
FEATURE_PSI_METRIC = "FeaturePSIMax"  # largest PSI among the monitored (top) features
QUALITY_METRICS = {  # band -> (precision metric, recall metric), from /v1/feedback labels
    "decline": ("DeclinePrecision", "DeclineRecall"),
    "review": ("ReviewPrecision", "ReviewRecall"),
}

_GIB = 1024**3
_MIB = 1024**2


@dataclass(frozen=True)
class Thresholds:
    """Alarm thresholds, in the units operators think in (converted for CloudWatch here)."""

    db_cpu_percent: float = 80
    db_free_storage_gib: float = 10
    db_freeable_memory_mib: float = 256
    db_read_latency_ms: float = 20
    db_write_latency_ms: float = 20
    db_connections: int = 400
    cache_engine_cpu_percent: float = 75
    cache_memory_percent: float = 80
    cache_evictions: int = 0
    cache_replication_lag_seconds: float = 1
    node_cpu_percent: float = 80
    node_memory_percent: float = 80
    pod_restarts: int = 3
    service_p99_latency_ms: float = 50
    service_error_rate_percent: float = 1
    service_audit_backlog: int = 10000


@dataclass(frozen=True)
class ModelThresholds:
    """Model drift and quality thresholds (``fraudstack:modelMonitoring``).

    The review band means review-or-decline (everything the model flags), so its recall
    is at least the decline band's.
    """

    score_psi: float = 0.25
    feature_psi: float = 0.25
    decline_precision: float = 0.5
    decline_recall: float = 0.3
    review_precision: float = 0.05
    review_recall: float = 0.6
    evaluation_hours: int = 6


@dataclass(frozen=True)
class AlarmsArgs:
    """Inputs of :class:`Alarms`."""

    name_prefix: str
    """Prefix of alarm and dashboard names, e.g. ``fraudstack-production``."""
    region: str
    account_id: pulumi.Input[str]
    environment: str
    """Value of the service metrics' ``Environment`` dimension."""
    topic_key_arn: pulumi.Input[str]
    """KMS key encrypting the SNS topic (its policy must let CloudWatch use it)."""
    db_instance_id: pulumi.Input[str]
    cache_cluster_ids: Sequence[pulumi.Input[str]]
    """ElastiCache member cluster ids (``<group>-001``...): Redis metrics are per node."""
    cluster_name: pulumi.Input[str]
    service_namespace: str
    """Kubernetes namespace of the scoring service."""
    service_deployment: str
    """Deployment name of the scoring service (the Container Insights ``PodName``)."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    email: str | None = None
    """On-call address subscribed to the topic; AWS mails a confirmation link first."""
    period_seconds: int = 300
    evaluation_periods: int = 3
    partition: str = "aws"
    tags: Mapping[str, str] = field(default_factory=dict)
    model: ModelThresholds | None = None
    """Model drift and quality alarms; None: none."""


@dataclass(frozen=True)
class _Spec:
    """One alarm: a single metric, or a metric-math expression when ``queries`` is set."""

    key: str
    description: str
    comparison: str
    threshold: float
    namespace: str = ""
    metric: str = ""
    dimensions: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    statistic: str | None = "Average"
    extended_statistic: str | None = None
    treat_missing_data: str = "missing"
    queries: Sequence[dict] | None = None
    window_seconds: int | None = None
    """Evaluate over this long (rounded up to whole periods) instead of ``evaluation_periods``."""


def member_cluster_ids(replication_group_id: str, node_count: int) -> list[str]:
    """ElastiCache's names for the nodes of a (cluster-mode disabled) replication group.

    Known before the group exists, so the per-node alarms are declared up front rather
    than inside an ``apply``.
    """
    return [f"{replication_group_id}-{i:03d}" for i in range(1, node_count + 1)]


def topic_policy(topic_arn: str, account_id: str, region: str, partition: str = "aws") -> str:
    """CloudWatch alarms of this account may publish; nobody may publish without TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CloudWatchAlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {
                        "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:*"},
                        "StringEquals": {"aws:SourceAccount": account_id},
                    },
                },
                {
                    "Sid": "OwnAccountManages",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": [
                        "sns:GetTopicAttributes",
                        "sns:SetTopicAttributes",
                        "sns:Subscribe",
                        "sns:ListSubscriptionsByTopic",
                        "sns:Publish",
                    ],
                    "Resource": topic_arn,
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def alarm_specs(args: AlarmsArgs) -> list[_Spec]:
    """Every alarm of the stack, as data (the dashboard shows the same list)."""
    t = args.thresholds
    db = {"DBInstanceIdentifier": args.db_instance_id}
    specs = [
        _Spec("db-cpu", f"Database CPU above {t.db_cpu_percent}%", "GreaterThanThreshold", t.db_cpu_percent,
              "AWS/RDS", "CPUUtilization", db),
        _Spec("db-free-storage", f"Database free storage below {t.db_free_storage_gib} GiB", "LessThanThreshold",
              t.db_free_storage_gib * _GIB, "AWS/RDS", "FreeStorageSpace", db, statistic="Minimum"),
        _Spec("db-freeable-memory", f"Database freeable memory below {t.db_freeable_memory_mib} MiB", "LessThanThreshold",
              t.db_freeable_memory_mib * _MIB, "AWS/RDS", "FreeableMemory", db, statistic="Minimum"),
        _Spec("db-read-latency", f"Database read latency above {t.db_read_latency_ms} ms", "GreaterThanThreshold",
              t.db_read_latency_ms / 1000, "AWS/RDS", "ReadLatency", db),
        _Spec("db-write-latency", f"Database write latency above {t.db_write_latency_ms} ms", "GreaterThanThreshold",
              t.db_write_latency_ms / 1000, "AWS/RDS", "WriteLatency", db),
        _Spec("db-connections", f"Database connections above {t.db_connections}", "GreaterThanThreshold",
              t.db_connections, "AWS/RDS", "DatabaseConnections", db, statistic="Maximum"),
    ]
    for i, cache_id in enumerate(args.cache_cluster_ids, start=1):
        node = {"CacheClusterId": cache_id}
        specs += [
            _Spec(f"cache-{i}-engine-cpu", f"Cache node {i}: Redis engine CPU above {t.cache_engine_cpu_percent}%",
                  "GreaterThanThreshold", t.cache_engine_cpu_percent, "AWS/ElastiCache", "EngineCPUUtilization", node),
            _Spec(f"cache-{i}-memory", f"Cache node {i}: memory above {t.cache_memory_percent}% of maxmemory",
                  "GreaterThanThreshold", t.cache_memory_percent, "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", node),
            _Spec(f"cache-{i}-evictions", f"Cache node {i}: more than {t.cache_evictions} keys evicted (velocity state lost)",
                  "GreaterThanThreshold", t.cache_evictions, "AWS/ElastiCache", "Evictions", node, statistic="Sum",
                  treat_missing_data="notBreaching"),
            # Only replicas publish ReplicationLag, and which node is primary changes on
            # failover, so every node gets the alarm and silence is fine.
            _Spec(f"cache-{i}-replication-lag", f"Cache node {i}: replica lags more than {t.cache_replication_lag_seconds} s",
                  "GreaterThanThreshold", t.cache_replication_lag_seconds, "AWS/ElastiCache", "ReplicationLag", node,
                  statistic="Maximum", treat_missing_data="notBreaching"),
        ]
    cluster = {"ClusterName": args.cluster_name}
    specs += [
        _Spec("nodes-cpu", f"Cluster nodes: average CPU above {t.node_cpu_percent}%", "GreaterThanThreshold",
              t.node_cpu_percent, "ContainerInsights", "node_cpu_utilization", cluster),
        _Spec("nodes-memory", f"Cluster nodes: average memory above {t.node_memory_percent}%", "GreaterThanThreshold",
              t.node_memory_percent, "ContainerInsights", "node_memory_utilization", cluster),
        _Spec("nodes-failed", "Cluster has nodes that are not Ready", "GreaterThanThreshold", 0,
              "ContainerInsights", "cluster_failed_node_count", cluster, statistic="Maximum"),
        _Spec("service-pod-restarts", f"Scoring pods restarted more than {t.pod_restarts} times",
              "GreaterThanThreshold", t.pod_restarts, "ContainerInsights", "pod_number_of_container_restarts",
              {**cluster, "Namespace": args.service_namespace, "PodName": args.service_deployment},
              statistic="Maximum", treat_missing_data="notBreaching"),
    ]
    service = {"Environment": args.environment, "Service": args.service_deployment}
    specs += [
        _Spec("service-p99-latency", f"Scoring p99 latency above {t.service_p99_latency_ms} ms", "GreaterThanThreshold",
              t.service_p99_latency_ms, SERVICE_METRIC_NAMESPACE, LATENCY_METRIC, service,
              statistic=None, extended_statistic="p99"),
        _Spec("service-5xx-rate", f"Scoring 5xx responses above {t.service_error_rate_percent}% of requests",
              "GreaterThanThreshold", t.service_error_rate_percent, statistic=None, treat_missing_data="notBreaching",
              queries=[
                  {"id": "errors", "metric": {"namespace": SERVICE_METRIC_NAMESPACE, "metric_name": ERRORS_5XX_METRIC,
                                              "dimensions": service, "period": args.period_seconds, "stat": "Sum"}},
                  {"id": "requests", "metric": {"namespace": SERVICE_METRIC_NAMESPACE, "metric_name": REQUESTS_METRIC,
                                                "dimensions": service, "period": args.period_seconds, "stat": "Sum"}},
                  {"id": "rate", "expression": "IF(requests > 0, 100 * errors / requests, 0)",
                   "label": "5xx rate (%)", "return_data": True},
              ]),
        # Each worker samples its backlog (memory queue + spool) once a minute; the largest
        # sample of every period above the threshold means PostgreSQL has not kept up for
        # the whole window and a pod deleted now would lose its spool. No data (no pods
        # publishing) is not a backlog.
        _Spec("service-audit-backlog", f"Audit records waiting for the database above {t.service_audit_backlog} in a worker",
              "GreaterThanThreshold", t.service_audit_backlog, SERVICE_METRIC_NAMESPACE, AUDIT_BACKLOG_METRIC, service,
              statistic="Maximum", treat_missing_data="notBreaching", window_seconds=AUDIT_BACKLOG_WINDOW_SECONDS),
    ]
    if args.model is not None:
        specs += model_specs(args.model, service)
    return specs


def model_specs(m: ModelThresholds, service: Mapping[str, pulumi.Input[str]]) -> list[_Spec]:
    """Drift and quality alarms on hourly datapoints (``period`` and ``evaluation`` overridden).

    No data is fine: PSI needs traffic and precision/recall need labels, which arrive
    days after the decision.
    """
    specs = [
        _Spec("model-score-psi", f"Model score distribution drifted: PSI above {m.score_psi}", "GreaterThanThreshold",
              m.score_psi, SERVICE_METRIC_NAMESPACE, SCORE_PSI_METRIC, service, statistic="Maximum",
              treat_missing_data="notBreaching"),
        _Spec("model-feature-psi", f"Model input drifted: a monitored feature's PSI above {m.feature_psi}",
              "GreaterThanThreshold", m.feature_psi, SERVICE_METRIC_NAMESPACE, FEATURE_PSI_METRIC, service,
              statistic="Maximum", treat_missing_data="notBreaching"),
    ]
    for band, (precision, recall) in QUALITY_METRICS.items():
        p_min, r_min = getattr(m, f"{band}_precision"), getattr(m, f"{band}_recall")
        specs += [
            _Spec(f"model-{band}-precision", f"Model {band} band precision below {p_min}", "LessThanThreshold", p_min,
                  SERVICE_METRIC_NAMESPACE, precision, service, statistic="Minimum", treat_missing_data="notBreaching"),
            _Spec(f"model-{band}-recall", f"Model {band} band recall below {r_min}", "LessThanThreshold", r_min,
                  SERVICE_METRIC_NAMESPACE, recall, service, statistic="Minimum", treat_missing_data="notBreaching"),
        ]
    return specs


MODEL_PERIOD_SECONDS = 3600


class Alarms(pulumi.ComponentResource):
    """The alarm topic, its subscription, every alarm (alarm and OK actions on the
    topic) and the dashboard. ``alarms`` maps the alarm key to the resource."""

    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        topic_name = f"{args.name_prefix}-alarms"
        # The policy travels with the topic (its ARN is known from the name), so the topic
        # never exists, even briefly, without the TLS-only deny.
        self.topic = aws.sns.Topic(
            f"{name}-topic",
            name=topic_name,
            kms_master_key_id=args.topic_key_arn,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: topic_policy(
                    f"arn:{args.partition}:sns:{args.region}:{account}:{topic_name}", account, args.region, args.partition
                )
            ),
            tags={**args.tags, "Name": topic_name},
            opts=child,
        )
        if args.email:
            aws.sns.TopicSubscription(
                f"{name}-email", topic=self.topic.arn, protocol="email", endpoint=args.email, opts=child
            )

        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        model_keys = {s.key for s in model_specs(args.model, {})} if args.model is not None else set()
        for spec in alarm_specs(args):
            single = spec.queries is None
            hourly = spec.key in model_keys
            periods = args.model.evaluation_hours if hourly and args.model is not None else args.evaluation_periods
            if spec.window_seconds is not None:
                periods = max(1, math.ceil(spec.window_seconds / args.period_seconds))
            self.alarms[spec.key] = aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}",
                name=f"{args.name_prefix}-{spec.key}",
                alarm_description=f"{spec.description}. Runbook: docs/runbooks.md#{runbook_anchor(spec.key)}",
                comparison_operator=spec.comparison,
                threshold=spec.threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                namespace=spec.namespace if single else None,
                metric_name=spec.metric if single else None,
                dimensions=dict(spec.dimensions) if single else None,
                statistic=spec.statistic if single else None,
                extended_statistic=spec.extended_statistic if single else None,
                period=(MODEL_PERIOD_SECONDS if hourly else args.period_seconds) if single else None,
                metric_queries=list(spec.queries) if not single else None,
                treat_missing_data=spec.treat_missing_data,
                actions_enabled=True,
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                tags={**args.tags, "Name": f"{args.name_prefix}-{spec.key}"},
                opts=child,
            )

        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.name_prefix,
            dashboard_body=pulumi.Output.all(*[a.arn for a in self.alarms.values()]).apply(
                lambda arns: dashboard_body(list(self.alarms), arns, args.region)
            ),
            opts=child,
        )
        self.topic_arn = self.topic.arn
        self.register_outputs(
            {"topic_arn": self.topic.arn, "alarm_names": [a.name for a in self.alarms.values()],
             "dashboard_name": self.dashboard.dashboard_name}
        )


def runbook_anchor(key: str) -> str:
    """The runbooks.md heading of an alarm (per-node cache alarms share one)."""
    return re.sub(r"^cache-\d+-", "cache-n-", key)


def dashboard_body(keys: Sequence[str], alarm_arns: Sequence[str], region: str) -> str:
    """A status row of every alarm, then one graph per alarm (its metric and threshold)."""
    widgets: list[dict] = [
        {
            "type": "alarm",
            "x": 0, "y": 0, "width": 24, "height": 4,
            "properties": {"title": "Alarm status", "alarms": list(alarm_arns)},
        }
    ]
    for i, (key, arn) in enumerate(zip(keys, alarm_arns)):
        widgets.append(
            {
                "type": "metric",
                "x": (i % 3) * 8, "y": 4 + (i // 3) * 6, "width": 8, "height": 6,
                "properties": {"title": key, "region": region, "annotations": {"alarms": [arn]}, "view": "timeSeries"},
            }
        )
    return json.dumps({"widgets": widgets})
