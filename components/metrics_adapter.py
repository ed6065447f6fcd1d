"""Helm values of the request-rate metric pipeline the HPA reads (docs/deploy-service.md).

The HPA's pods metric ``fraudstack_requests_per_second`` needs a custom-metrics API.
prometheus-adapter serves it, and it needs a Prometheus to query: a Prometheus server
only (no Alertmanager, node exporter, kube-state-metrics or Pushgateway) that scrapes
nothing but the scoring pods and keeps two hours, because it is only a rate source.
Amazon Managed Prometheus would need SigV4 signing the adapter does not do.

Both releases live in their own namespace, which the program declares itself (the charts'
``create_namespace`` is off) with what the service's namespace has: the restricted Pod
Security Standard, a ResourceQuota and LimitRange sized from the values below, and
default-deny NetworkPolicies with the exact flows the metric needs
(:func:`network_policies`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROMETHEUS_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_RELEASE = "prometheus"
ADAPTER_RELEASE = "prometheus-adapter"
#: The counter the rule turns into a per-pod rate (app/metrics.py REQUEST_LATENCY).
SOURCE_SERIES = "fraudstack_request_seconds_count"
SCRAPE_INTERVAL = "15s"
#: Ports the pods listen on: Prometheus' web/API port, the adapter's secure port (the
#: aggregated custom-metrics API), and the EKS API server's endpoints (control-plane ENIs).
PROMETHEUS_PORT = 9090
ADAPTER_PORT = 6443
API_SERVER_PORT = 443
DNS_PORT = 53


def dns_egress() -> dict[str, Any]:
    """The NetworkPolicy egress rule to the cluster DNS (CoreDNS in kube-system), UDP and TCP."""
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
    }

#: Container requests and limits of every container the two releases run. The quota of the
#: namespace is their sum over the most pods a rollout can have (:data:`ROLLOUT_PODS`).
PROMETHEUS_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "2Gi"},
    # The TSDB lives in a 2Gi emptyDir, which counts against the pod's ephemeral storage.
    "limits": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "3Gi"},
}
RELOAD_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "32Mi", "ephemeral-storage": "64Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
}
ADAPTER_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
    "limits": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
}
ADAPTER_REPLICAS = 2
#: The most pods each release runs at once: Prometheus is replaced (Recreate: one pod,
#: its emptyDir cannot be shared anyway), the adapter surges by one.
ROLLOUT_PODS = {PROMETHEUS_RELEASE: 1, ADAPTER_RELEASE: ADAPTER_REPLICAS + 1}
#: Defaults for a container a chart might add without resources, and its ceiling.
LIMIT_DEFAULTS = {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "128Mi"}

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
    app_selector: Mapping[str, str]
    """Labels that select the scoring pods (what Prometheus may reach on ``container_port``)."""
    control_plane_cidrs: Sequence[str]
    """Where the EKS control plane's network interfaces are (the cluster's private subnets):
    the API server's endpoints, and where its calls to the adapter come from."""


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
        "configmapReload": {"prometheus": {"containerSecurityContext": reload_sc, "resources": _copy(RELOAD_RESOURCES)}},
        "server": {
            "strategy": {"type": "Recreate"},
            "retention": "2h",
            # Two hours of one series family: an emptyDir, no EBS volume to manage.
            "persistentVolume": {"enabled": False},
            "emptyDir": {"sizeLimit": "2Gi"},
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1m"},
            "securityContext": _pod_sc(65534),
            "containerSecurityContext": dict(_CONTAINER_SC),
            "resources": _copy(PROMETHEUS_RESOURCES),
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
        "replicas": ADAPTER_REPLICAS,
        # One extra pod during a rollout, never one fewer: what ROLLOUT_PODS counts on.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "podSecurityContext": _pod_sc(10001),
        "securityContext": {**_CONTAINER_SC, "runAsUser": 10001, "runAsGroup": 10001},
        "resources": _copy(ADAPTER_RESOURCES),
        "nodeSelector": dict(spec.node_selector),
    }


def _copy(resources: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {kind: dict(amounts) for kind, amounts in resources.items()}


# --------------------------------------------------------------------------- the namespace

def release_pod_labels(release: str, chart: str) -> dict[str, str]:
    """The labels both charts put on their pods and select them by (Helm's standard
    ``app.kubernetes.io/name`` = chart name, ``app.kubernetes.io/instance`` = release name)."""
    return {"app.kubernetes.io/name": chart, "app.kubernetes.io/instance": release}


#: The NetworkPolicies of the namespace, in the order they are declared.
POLICY_NAMES = ("default-deny", "allow-prometheus", "allow-prometheus-adapter")
PROMETHEUS_POD = release_pod_labels(PROMETHEUS_RELEASE, "prometheus")
ADAPTER_POD = release_pod_labels(ADAPTER_RELEASE, "prometheus-adapter")


def _cpu_m(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def _mebibytes(value: str) -> int:
    return int(value[:-2]) * (1024 if value.endswith("Gi") else 1)


def _per_pod(*containers: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, int]]:
    """Per pod, by requests/limits and resource: millicores and MiB summed over its containers."""
    out: dict[str, dict[str, int]] = {}
    for kind in ("requests", "limits"):
        out[kind] = {
            "cpu": sum(_cpu_m(c[kind]["cpu"]) for c in containers),
            "memory": sum(_mebibytes(c[kind]["memory"]) for c in containers),
            "ephemeral-storage": sum(_mebibytes(c[kind]["ephemeral-storage"]) for c in containers),
        }
    return out


def quota() -> dict[str, str]:
    """The namespace's ResourceQuota: exactly what both releases need at the peak of a rollout."""
    pods = {
        PROMETHEUS_RELEASE: _per_pod(PROMETHEUS_RESOURCES, RELOAD_RESOURCES),
        ADAPTER_RELEASE: _per_pod(ADAPTER_RESOURCES),
    }
    hard = {"pods": str(sum(ROLLOUT_PODS.values()))}
    for kind in ("requests", "limits"):
        for resource, unit in (("cpu", "m"), ("memory", "Mi"), ("ephemeral-storage", "Mi")):
            total = sum(ROLLOUT_PODS[r] * pods[r][kind][resource] for r in ROLLOUT_PODS)
            hard[f"{kind}.{resource}"] = f"{total}{unit}"
    # The charts' Services are ClusterIP; nothing here may open a node port or a load balancer.
    hard.update({"services.loadbalancers": "0", "services.nodeports": "0"})
    return hard


def limit_range() -> dict[str, Any]:
    """Defaults for a container without resources, and no container above Prometheus' limits."""
    return {
        "limits": [
            {
                "type": "Container",
                "default": dict(LIMIT_DEFAULTS),
                "defaultRequest": dict(LIMIT_DEFAULTS),
                "max": dict(PROMETHEUS_RESOURCES["limits"]),
            }
        ]
    }


def kubernetes_service_block(service_cidr: str) -> str:
    """The ``kubernetes`` Service's ClusterIP as a one-address CIDR: the first address of
    the cluster's Service range.

    The VPC CNI enforces egress on the pod's interface, before kube-proxy translates the
    ClusterIP, and resolves ClusterIPs only of Services with a pod selector; the
    ``kubernetes`` Service has none, so its address is listed as an ipBlock.
    """
    network = ipaddress.ip_network(service_cidr)
    return f"{network[1]}/{network.max_prefixlen}"


def api_server_cidrs(spec: MetricsAdapterSpec, service_cidr: str) -> list[str]:
    """Where a pod's calls to the API server go: the ``kubernetes`` Service's ClusterIP,
    then its endpoints, the control plane's interfaces in the cluster's subnets."""
    return [kubernetes_service_block(service_cidr), *spec.control_plane_cidrs]


def network_policies(spec: MetricsAdapterSpec, api_server: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """NetworkPolicy specs of the monitoring namespace by name: deny both ways, then per release.

    * Prometheus: in from the adapter on 9090 (its queries); out to cluster DNS, the
      scoring pods' port (scrapes) and the API server (pod discovery).
    * prometheus-adapter: in from the API server on 6443 (the aggregation layer serves
      ``custom.metrics.k8s.io`` from it; the control plane's interfaces are in the cluster's
      subnets, there is no pod to select); out to cluster DNS, Prometheus on 9090 and the
      API server (authentication and authorisation delegation, discovery).

    The API server is ``api_server`` (:func:`api_server_cidrs`; its first entry may be an
    Output, unknown until the cluster exists, so only that value waits). The scoring namespace's
    ``allow-ingress-from-alb`` admits this namespace on the service port
    (components/scoring_app_specs.py), the other half of the scrape.
    """
    def tcp(port: int) -> dict[str, Any]:
        return {"protocol": "TCP", "port": port}

    dns = dns_egress()
    to_api_server = [{"ipBlock": {"cidr": cidr}} for cidr in api_server]
    from_control_plane = [{"ipBlock": {"cidr": cidr}} for cidr in spec.control_plane_cidrs]
    return {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-prometheus": {
            "podSelector": {"matchLabels": dict(PROMETHEUS_POD)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": dict(ADAPTER_POD)}}], "ports": [tcp(PROMETHEUS_PORT)]}],
            "egress": [
                dns,
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": spec.app_namespace}},
                            "podSelector": {"matchLabels": dict(spec.app_selector)},
                        }
                    ],
                    "ports": [tcp(spec.container_port)],
                },
                {"to": to_api_server, "ports": [tcp(API_SERVER_PORT)]},
            ],
        },
        "allow-prometheus-adapter": {
            "podSelector": {"matchLabels": dict(ADAPTER_POD)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": from_control_plane, "ports": [tcp(ADAPTER_PORT)]}],
            "egress": [
                dns,
                {"to": [{"podSelector": {"matchLabels": dict(PROMETHEUS_POD)}}], "ports": [tcp(PROMETHEUS_PORT)]},
                {"to": to_api_server, "ports": [tcp(API_SERVER_PORT)]},
            ],
        },
    }

