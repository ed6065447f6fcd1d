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
    assert release["repositoryOpts"] == REPO and release["createNamespace"] is True
    assert release["values"] == {
        "alertmanager": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "configmapReload": {"prometheus": {"containerSecurityContext": CONTAINER_SC}},
        "server": {
            "retention": "2h",
            "persistentVolume": {"enabled": False},
            "emptyDir": {"sizeLimit": "2Gi"},
            "global": {"scrape_interval": "15s", "evaluation_interval": "1m"},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containerSecurityContext": CONTAINER_SC,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
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
    assert release["repositoryOpts"] == REPO
    assert release["values"] == {
        "prometheus": {"url": "http://prometheus-server.monitoring.svc", "port": 80},
        "rules": {"default": False, "custom": [RULE]},
        "replicas": 2,
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                               "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {**CONTAINER_SC, "runAsUser": 10001, "runAsGroup": 10001},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}},
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
