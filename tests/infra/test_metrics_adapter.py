"""The HPA's request-rate metric pipeline (Prometheus server + prometheus-adapter) under mocks."""

from __future__ import annotations

import pulumi
import pytest

from tests.infra.conftest import load_config
from tests.infra.scoring_app_helpers import STACKS, inputs, plan, preview

REPO = {"repo": "https://prometheus-community.github.io/helm-charts"}
CPU_NODES = {"fraudstack.io/node-pool": "cpu"}
CONTAINER_SC = {
    "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}
PROMETHEUS_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "2Gi"},
                        "limits": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "3Gi"}}
RELOAD_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi", "ephemeral-storage": "64Mi"},
                    "limits": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "64Mi"}}
ADAPTER_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
                     "limits": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "256Mi"}}
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": "prometheus"}
ADAPTER_POD = {"app.kubernetes.io/name": "prometheus-adapter", "app.kubernetes.io/instance": "prometheus-adapter"}
PRIVATE = {"staging": ["10.20.0.0/19", "10.20.32.0/19"], "production": ["10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19"]}
RULE = {
    "seriesQuery": 'fraudstack_request_seconds_count{namespace="fraudstack",pod!=""}',
    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
    "name": {"matches": "^fraudstack_request_seconds_count$", "as": "fraudstack_requests_per_second"},
    "metricsQuery": "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
}


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_release_is_a_hardened_server_scraping_only_the_scoring_pods(stack):
    release = inputs(plan(stack), "app-prometheus")
    assert (release["name"], release["chart"], release["version"], release["namespace"]) == (
        "prometheus", "prometheus", "25.27.0", "monitoring")
    # The namespace is the program's own (app-monitoring-namespace), not Helm's.
    assert release["repositoryOpts"] == REPO and release["createNamespace"] is False
    assert release["values"] == {
        "alertmanager": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "configmapReload": {"prometheus": {"containerSecurityContext": CONTAINER_SC, "resources": RELOAD_RESOURCES}},
        "server": {
            "strategy": {"type": "Recreate"},
            "retention": "2h",
            "persistentVolume": {"enabled": False},
            "emptyDir": {"sizeLimit": "2Gi"},
            "global": {"scrape_interval": "15s", "evaluation_interval": "1m"},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containerSecurityContext": CONTAINER_SC,
            "resources": PROMETHEUS_RESOURCES,
            "nodeSelector": CPU_NODES,
            "automountServiceAccountToken": True,
        },
        "serverFiles": {"prometheus.yml": {"scrape_configs": [{
            "job_name": "fraudstack-scoring",
            "scrape_interval": "15s",
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": ["fraudstack"]}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": "scoring-api", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": "8080", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ],
        }]}},
    }


@pytest.mark.parametrize("stack", STACKS)
def test_adapter_serves_the_metric_the_hpa_reads_from_that_prometheus(stack):
    p = plan(stack)
    release = inputs(p, "app-prometheus-adapter")
    assert (release["name"], release["chart"], release["version"], release["namespace"]) == (
        "prometheus-adapter", "prometheus-adapter", "4.11.0", "monitoring")
    assert release["repositoryOpts"] == REPO and release["createNamespace"] is False
    assert release["values"] == {
        "prometheus": {"url": "http://prometheus-server.monitoring.svc", "port": 80},
        "rules": {"default": False, "custom": [RULE]},
        "replicas": 2,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                               "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {**CONTAINER_SC, "runAsUser": 10001, "runAsGroup": 10001},
        "resources": ADAPTER_RESOURCES,
        "nodeSelector": CPU_NODES,
    }
    pods_metric = next(m for m in inputs(p, "app-hpa")["spec"]["metrics"] if m["type"] == "Pods")
    assert pods_metric["pods"]["metric"]["name"] == RULE["name"]["as"]
    # The service's default deny admits the scraper's namespace on the metrics port.
    ingress = inputs(p, "app-netpol-allow-ingress-from-alb")["spec"]["ingress"][1]
    assert ingress == {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                       "ports": [{"protocol": "TCP", "port": 8080}]}
    # The adapter waits for its Prometheus.
    adapter = next(r for r in p["resources"] if r["name"] == "app-prometheus-adapter")
    assert "app-prometheus" in adapter["dependencies"]


def test_the_rule_reads_the_counter_the_service_exports():
    from app.metrics import REQUEST_LATENCY

    assert f"{REQUEST_LATENCY._name}_count" == "fraudstack_request_seconds_count"  # noqa: SLF001


@pytest.mark.parametrize("stack", STACKS)
def test_preview_stays_at_zero_mandatory_violations(stack):
    code, p, _ = preview(stack)
    mandatory = [v for v in p["violations"] if v["enforcement"] == "mandatory"]
    assert (code, mandatory) == (0, [])


def test_versions_and_namespace_come_from_config():
    p = plan("staging", {"fraudstack:app": {"prometheusVersion": "25.28.0", "prometheusAdapterVersion": "4.12.0",
                                            "monitoringNamespace": "metrics"}})
    assert inputs(p, "app-prometheus")["version"] == "25.28.0"
    adapter = inputs(p, "app-prometheus-adapter")
    assert (adapter["version"], adapter["namespace"]) == ("4.12.0", "metrics")
    assert adapter["values"]["prometheus"]["url"] == "http://prometheus-server.metrics.svc"


BAD = [
    ({"prometheusVersion": "latest"}, "fraudstack:app.prometheusVersion: 'latest' is not a chart version x.y.z"),
    ({"prometheusAdapterVersion": "4.11"}, "fraudstack:app.prometheusAdapterVersion: '4.11' is not a chart version x.y.z"),
    ({"monitoringNamespace": "Monitoring"},
     "fraudstack:app.monitoringNamespace: 'Monitoring' is not a DNS label (lowercase letters, digits, dashes, at most 63)"),
    ({"monitoringNamespace": "fraudstack"},
     "fraudstack:app.monitoringNamespace: 'fraudstack' is the service's namespace; Prometheus gets its own"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m.split(":")[1].split(" ")[0] for _, m in BAD])
def test_bad_values_name_the_key(change, message):
    with pytest.raises(pulumi.RunError) as err:
        load_config("production", {"fraudstack:app": change})
    assert str(err.value).startswith(message)


# --------------------------------------------------------------------------- the monitoring namespace


@pytest.mark.parametrize("stack", STACKS)
def test_monitoring_namespace_is_declared_restricted_with_quota_and_limits(stack):
    p = plan(stack)
    assert inputs(p, "app-monitoring-namespace")["metadata"] == {"name": "monitoring", "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit-version": "latest", "pod-security.kubernetes.io/warn-version": "latest",
        "app.kubernetes.io/part-of": "fraudstack"}}
    meta = {"namespace": "monitoring", "labels": {"app.kubernetes.io/part-of": "fraudstack"}}
    quota = inputs(p, "app-monitoring-quota")
    assert quota["metadata"] == {"name": "quota", **meta}
    # Peak of a rollout: Prometheus (Recreate: 1 pod, server + config reloader) and the
    # adapter (2 replicas + a surge of 1), from the values' requests and limits.
    assert quota["spec"] == {"hard": {
        "pods": "4",
        "requests.cpu": f"{100 + 10 + 3 * 50}m", "limits.cpu": f"{500 + 100 + 3 * 250}m",
        "requests.memory": f"{256 + 32 + 3 * 128}Mi", "limits.memory": f"{512 + 64 + 3 * 256}Mi",
        "requests.ephemeral-storage": f"{2048 + 64 + 3 * 64}Mi", "limits.ephemeral-storage": f"{3072 + 64 + 3 * 256}Mi",
        "services.loadbalancers": "0", "services.nodeports": "0",
    }}
    limits = inputs(p, "app-monitoring-limits")
    assert limits["metadata"] == {"name": "limits", **meta}
    assert limits["spec"] == {"limits": [{
        "type": "Container",
        "default": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "128Mi"},
        "defaultRequest": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "128Mi"},
        "max": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "3Gi"},
    }]}


@pytest.mark.parametrize("stack", STACKS)
def test_monitoring_network_policies_deny_all_then_allow_exactly_the_metric_flows(stack):
    p = plan(stack)
    dns = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    # The kubernetes Service's ClusterIP (first address of the cluster's Service range:
    # the CNI sees it before kube-proxy translates it) and its endpoints, the control
    # plane's interfaces in the private subnets.
    api_server = {"to": [{"ipBlock": {"cidr": c}} for c in ["172.20.0.1/32", *PRIVATE[stack]]],
                  "ports": [{"protocol": "TCP", "port": 443}]}
    names = sorted(r["name"] for r in p["resources"] if r["name"].startswith("app-monitoring-netpol-"))
    assert names == ["app-monitoring-netpol-allow-prometheus", "app-monitoring-netpol-allow-prometheus-adapter",
                     "app-monitoring-netpol-default-deny"]
    for name in names:
        assert inputs(p, name)["metadata"] == {"name": name.removeprefix("app-monitoring-netpol-"),
                                               "namespace": "monitoring", "labels": {"app.kubernetes.io/part-of": "fraudstack"}}
    assert inputs(p, "app-monitoring-netpol-default-deny")["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert inputs(p, "app-monitoring-netpol-allow-prometheus")["spec"] == {
        "podSelector": {"matchLabels": PROMETHEUS_POD},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": ADAPTER_POD}}], "ports": [{"protocol": "TCP", "port": 9090}]}],
        "egress": [
            dns,
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "fraudstack"}},
                     "podSelector": {"matchLabels": {"app.kubernetes.io/name": "scoring-api", "app.kubernetes.io/component": "api"}}}],
             "ports": [{"protocol": "TCP", "port": 8080}]},
            api_server,
        ],
    }
    assert inputs(p, "app-monitoring-netpol-allow-prometheus-adapter")["spec"] == {
        "podSelector": {"matchLabels": ADAPTER_POD},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": c}} for c in PRIVATE[stack]], "ports": [{"protocol": "TCP", "port": 6443}]}],
        "egress": [
            dns,
            {"to": [{"podSelector": {"matchLabels": PROMETHEUS_POD}}], "ports": [{"protocol": "TCP", "port": 9090}]},
            api_server,
        ],
    }


@pytest.mark.parametrize("stack", STACKS)
def test_charts_install_only_after_their_namespace_guards(stack):
    p = plan(stack)
    by_name = {r["name"]: r for r in p["resources"]}
    guards = {"app-monitoring-namespace", "app-monitoring-quota", "app-monitoring-limits",
              "app-monitoring-netpol-default-deny", "app-monitoring-netpol-allow-prometheus",
              "app-monitoring-netpol-allow-prometheus-adapter"}
    for release in ("app-prometheus", "app-prometheus-adapter"):
        assert guards <= set(by_name[release]["dependencies"]), release
    for guard in guards - {"app-monitoring-namespace"}:
        assert "app-monitoring-namespace" in by_name[guard]["dependencies"], guard


def test_the_policies_select_the_labels_the_charts_give_their_pods():
    """The chart templates label pods with Helm's standard pair (prometheus 25.x
    `prometheus.common.matchLabels`, prometheus-adapter 4.x `selectorLabels`): release name
    as instance, chart name as name. The adapter's URL names the same release."""
    from components.metrics_adapter import ADAPTER_POD as adapter, PROMETHEUS_POD as prometheus, release_pod_labels

    assert prometheus == release_pod_labels("prometheus", "prometheus") == PROMETHEUS_POD
    assert adapter == release_pod_labels("prometheus-adapter", "prometheus-adapter") == ADAPTER_POD
    for name, chart in (("app-prometheus", "prometheus"), ("app-prometheus-adapter", "prometheus-adapter")):
        release = inputs(plan("production"), name)
        assert (release["name"], release["chart"]) == ((prometheus if chart == "prometheus" else adapter)["app.kubernetes.io/instance"], chart)
        assert "nameOverride" not in release["values"] and "fullnameOverride" not in release["values"]


def test_api_server_addresses_follow_the_service_range():
    from components.metrics_adapter import MetricsAdapterSpec, api_server_cidrs

    spec = MetricsAdapterSpec("monitoring", "fraudstack", "scoring-api", 8080, "m", {}, {}, ("10.0.0.0/19",))
    assert api_server_cidrs(spec, "172.20.0.0/16") == ["172.20.0.1/32", "10.0.0.0/19"]
    assert api_server_cidrs(spec, "10.100.0.0/16") == ["10.100.0.1/32", "10.0.0.0/19"]


def test_another_monitoring_namespace_moves_every_guard():
    p = plan("staging", {"fraudstack:app": {"monitoringNamespace": "metrics"}})
    assert inputs(p, "app-monitoring-namespace")["metadata"]["name"] == "metrics"
    for name in ("app-monitoring-quota", "app-monitoring-limits", "app-monitoring-netpol-default-deny",
                 "app-monitoring-netpol-allow-prometheus", "app-monitoring-netpol-allow-prometheus-adapter"):
        assert inputs(p, name)["metadata"]["namespace"] == "metrics", name
    scrapers = inputs(p, "app-netpol-allow-ingress-from-alb")["spec"]["ingress"][1]["from"]
    assert scrapers == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "metrics"}}}]
