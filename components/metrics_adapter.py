"""Helm values of the request-rate metric pipeline the HPA reads (docs/deploy-service.md).

The HPA's pods metric ``fraudstack_requests_per_second`` needs a custom-metrics API.
prometheus-adapter serves it, and it needs a Prometheus to query: a Prometheus server
only (no Alertmanager, node exporter, kube-state-metrics or Pushgateway) that scrapes
nothing but the scoring pods and keeps two hours, because it is only a rate source.
Amazon Managed Prometheus would need SigV4 signing the adapter does not do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROMETHEUS_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_RELEASE = "prometheus"
ADAPTER_RELEASE = "prometheus-adapter"
#: The counter the rule turns into a per-pod rate (app/metrics.py REQUEST_LATENCY).
SOURCE_SERIES = "fraudstack_request_seconds_count"
SCRAPE_INTERVAL = "15s"

_CONTAINER_SC = {
    "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class MetricsAdapterSpec:
    """What the two releases need to know about the service and the cluster."""

    monitoring_namespace: str
    """Namespace of both releases (must be allowed to scrape: it is added to the scrapers)."""
    app_namespace: str
    """Namespace of the scoring pods."""
    app_name: str
    """``app.kubernetes.io/name`` of the scoring pods."""
    container_port: int
    """Port serving ``/metrics``."""
    metric_name: str
    """Pods metric the HPA reads."""
    node_selector: Mapping[str, str]
    """Node labels of the CPU node group."""


def _pod_sc(uid: int) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def adapter_rule(spec: MetricsAdapterSpec) -> dict[str, Any]:
    """The prometheus-adapter rule exposing the request counter as a per-pod rate."""
    return {
        "seriesQuery": f'{SOURCE_SERIES}{{namespace="{spec.app_namespace}",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{SOURCE_SERIES}$", "as": spec.metric_name},
        "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
    }


def scrape_config(spec: MetricsAdapterSpec) -> dict[str, Any]:
    """Scrape the scoring pods' service port, labelling samples with namespace and pod."""
    return {
        "job_name": "fraudstack-scoring",
        "scrape_interval": SCRAPE_INTERVAL,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [spec.app_namespace]}}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": spec.app_name, "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(spec.container_port), "action": "keep"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


def prometheus_values(spec: MetricsAdapterSpec) -> dict[str, Any]:
    """Values of the ``prometheus`` chart: the server only, hardened, scraping the scoring pods."""
    reload_sc = dict(_CONTAINER_SC)
    return {
        "alertmanager": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "configmapReload": {"prometheus": {"containerSecurityContext": reload_sc}},
        "server": {
            "retention": "2h",
            # Two hours of one series family: an emptyDir, no EBS volume to manage.
            "persistentVolume": {"enabled": False},
            "emptyDir": {"sizeLimit": "2Gi"},
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1m"},
            "securityContext": _pod_sc(65534),
            "containerSecurityContext": dict(_CONTAINER_SC),
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
            "nodeSelector": dict(spec.node_selector),
            "automountServiceAccountToken": True,  # service discovery reads the API
        },
        # Replaces the chart's default jobs (API server, nodes, cAdvisor, ...): one job.
        "serverFiles": {"prometheus.yml": {"scrape_configs": [scrape_config(spec)]}},
    }


def adapter_values(spec: MetricsAdapterSpec) -> dict[str, Any]:
    """Values of the ``prometheus-adapter`` chart: the one custom rule, hardened, two replicas."""
    return {
        "prometheus": {"url": f"http://{PROMETHEUS_RELEASE}-server.{spec.monitoring_namespace}.svc", "port": 80},
        "rules": {"default": False, "custom": [adapter_rule(spec)]},
        "replicas": 2,
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "podSecurityContext": _pod_sc(10001),
        "securityContext": {**_CONTAINER_SC, "runAsUser": 10001, "runAsGroup": 10001},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}},
        "nodeSelector": dict(spec.node_selector),
    }

