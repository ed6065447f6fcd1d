"""A fully hardened Kubernetes deployment of the scoring service, as plan resources.

``hardened()`` returns the objects issue 8 asks for (restricted namespace with quota and
limits, IRSA service account and its role, Deployment, migration Job, Service, HPA, PDB,
default-deny and allow NetworkPolicies, ALB Ingress, the controller's Helm release), in
the camelCase shape pulumi-kubernetes records. It passes every Kubernetes rule; the
tests mutate one property at a time and expect exactly one rule to fire.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from policies.rules import kubernetes, kubernetes_ingress, kubernetes_rbac, kubernetes_stack
from tests.policies.helpers import res

#: Every rule of the Kubernetes half of the pack.
K8S_RULES = [*kubernetes.RULES, *kubernetes_ingress.RULES, *kubernetes_rbac.RULES, *kubernetes_stack.RULES]

NS = "scoring"
ACCOUNT = "123456789012"
ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scoring-irsa"
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/fraudstack/scoring@{DIGEST}"
CERT = f"arn:aws:acm:eu-west-1:{ACCOUNT}:certificate/00000000-0000-0000-0000-000000000000"
WAF = f"arn:aws:wafv2:eu-west-1:{ACCOUNT}:regional/webacl/scoring/00000000-0000-0000-0000-000000000000"
APP_LABELS = {"app.kubernetes.io/name": "scoring", "app.kubernetes.io/part-of": "fraudstack"}
JOB_LABELS = {"app.kubernetes.io/name": "scoring-migrate", "app.kubernetes.io/part-of": "fraudstack"}
VPC_CIDR = "10.20.0.0/16"
TAGS = {"environment": "production", "service": "fraudstack", "owner": "payments-platform",
        "data-classification": "confidential", "pci-scope": "in-scope"}

NAMESPACE = "kubernetes:core/v1:Namespace"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMITS = "kubernetes:core/v1:LimitRange"
HELM = "kubernetes:helm.sh/v3:Release"
ROLE = "aws:iam/role:Role"
ECR_REPO = "aws:ecr/repository:Repository"
RBAC_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
RBAC_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"


def plan_resource(rtype: str, logical: str, inputs: dict, parent: str = "scoring-app") -> dict:
    """One plan resource (inputs given as a dict: an input may be called ``name``)."""
    out = res(rtype, logical, parent=parent)
    out["inputs"] = inputs
    return out


def meta(name: str, labels: dict | None = None, **extra: Any) -> dict:
    """Object metadata in the scoring namespace."""
    out = {"name": name, "namespace": NS, "labels": dict(labels or APP_LABELS)}
    out.update(extra)
    return out


def k8s(rtype: str, logical: str, **inputs: Any) -> dict:
    """A Kubernetes plan resource with apiVersion and kind filled in from the type token."""
    _, group_version, kind = rtype.split(":")
    group, version = group_version.split("/")
    api = version if group == "core" else f"{group}/{version}"
    return res(rtype, logical, parent="scoring-app", apiVersion=api, kind=kind, **inputs)


def container_security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "runAsUser": 10001.0, "runAsGroup": 10001.0,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def pod_security_context() -> dict:
    return {"runAsNonRoot": True, "runAsUser": 10001.0, "runAsGroup": 10001.0, "fsGroup": 10001.0,
            "seccompProfile": {"type": "RuntimeDefault"}}


def resources() -> dict:
    amounts = {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def app_container() -> dict:
    return {
        "name": "scoring", "image": IMAGE, "imagePullPolicy": "Always",
        "ports": [{"name": "http", "containerPort": 8080.0, "protocol": "TCP"}],
        "env": [{"name": "AWS_REGION", "value": "eu-west-1"},
                {"name": "DB_SECRET_ARN", "value": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:db-AbCdEf"},
                {"name": "REDIS_HOST", "value": "master.scoring.abc123.euw1.cache.amazonaws.com"}],
        "resources": resources(),
        "securityContext": container_security_context(),
        "startupProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "failureThreshold": 30.0},
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 10.0},
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, "periodSeconds": 5.0},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def pod_spec(container: dict) -> dict:
    return {
        "serviceAccountName": "scoring", "automountServiceAccountToken": False,
        "securityContext": pod_security_context(), "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }


def trust_policy(subject: str = f"system:serviceaccount:{NS}:scoring", aud: str = "sts.amazonaws.com") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"},
        "Condition": {"StringEquals": {f"{ISSUER}:sub": subject, f"{ISSUER}:aud": aud}}}]})


def alb_annotations() -> dict:
    p = "alb.ingress.kubernetes.io/"
    return {
        p + "scheme": "internal", p + "target-type": "ip",
        p + "listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]', p + "ssl-redirect": "443",
        p + "ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06", p + "certificate-arn": CERT,
        p + "load-balancer-attributes": ("deletion_protection.enabled=true,"
                                         "routing.http.drop_invalid_header_fields.enabled=true,"
                                         "routing.http.desync_mitigation_mode=strictest,"
                                         "access_logs.s3.enabled=true,access_logs.s3.bucket=scoring-alb-logs"),
        p + "healthcheck-path": "/health/ready",
        p + "actions.block-admin": json.dumps(BLOCK_ADMIN),
    }


#: The ALB action answering the service's admin routes (k8s-ingress-admin-blocked).
BLOCK_ADMIN = {"type": "fixed-response", "fixedResponseConfig": {
    "contentType": "application/json", "statusCode": "404", "messageBody": "{}"}}


def admin_path(prefix: str = "/admin", path_type: str = "Prefix", action: str = "block-admin") -> dict:
    """An Ingress path sending ``prefix`` to an ALB action (port ``use-annotation``)."""
    return {"path": prefix, "pathType": path_type,
            "backend": {"service": {"name": action, "port": {"name": "use-annotation"}}}}


def _spread() -> list[dict]:
    return [{"maxSkew": 1.0, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": dict(APP_LABELS)}}
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")]


def hardened() -> dict[str, dict]:
    """Plan resources by logical name; every Kubernetes rule passes on them."""
    deployment_pod = pod_spec(app_container())
    deployment_pod["topologySpreadConstraints"] = _spread()
    job_container = app_container()
    job_container.update(name="migrate", command=["python", "-m", "app.migrate"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        del job_container[probe]
    del job_container["ports"]
    job_pod = pod_spec(job_container)
    job_pod["restartPolicy"] = "Never"
    dns = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
           "ports": [{"port": 53.0, "protocol": "UDP"}, {"port": 53.0, "protocol": "TCP"}]}
    vpc = [{"ipBlock": {"cidr": VPC_CIDR}}]
    items = [
        k8s(NAMESPACE, "scoring-ns", metadata={"name": NS, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/warn": "restricted"}}),
        k8s(QUOTA, "scoring-quota", metadata=meta("scoring-quota"),
            spec={"hard": {"requests.cpu": "40", "limits.cpu": "40", "requests.memory": "80Gi",
                           "limits.memory": "80Gi", "pods": "60"}}),
        k8s(LIMITS, "scoring-limits", metadata=meta("scoring-limits"),
            spec={"limits": [{"type": "Container", "default": {"cpu": "1", "memory": "1Gi"},
                              "defaultRequest": {"cpu": "1", "memory": "1Gi"}}]}),
        plan_resource(ROLE, "scoring-irsa", {"name": "scoring-irsa", "assumeRolePolicy": trust_policy(),
                                             "tags": dict(TAGS, Name="scoring-irsa")}),
        k8s(SERVICE_ACCOUNT, "scoring-sa", automountServiceAccountToken=False,
            metadata=meta("scoring", annotations={"eks.amazonaws.com/role-arn": ROLE_ARN})),
        k8s(CONFIG_MAP, "scoring-config", metadata=meta("scoring-config"),
            data={"LOG_LEVEL": "info", "MODEL_DIR": "/models/current"}),
        k8s(RBAC_ROLE, "scoring-config-reader", metadata=meta("scoring-config-reader"), rules=[
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["scoring-config"], "verbs": ["get"]}]),
        k8s(RBAC_BINDING, "scoring-config-reader-binding", metadata=meta("scoring-config-reader"),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scoring-config-reader"},
            subjects=[{"kind": "ServiceAccount", "name": "scoring", "namespace": NS}]),
        k8s(DEPLOYMENT, "scoring", metadata=meta("scoring"), spec={
            "selector": {"matchLabels": dict(APP_LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0.0}},
            "template": {"metadata": {"labels": dict(APP_LABELS)}, "spec": deployment_pod}}),
        k8s(JOB, "scoring-migrate", metadata=meta("scoring-migrate", JOB_LABELS), spec={
            "backoffLimit": 3.0, "template": {"metadata": {"labels": dict(JOB_LABELS)}, "spec": job_pod}}),
        k8s(SERVICE, "scoring-svc", metadata=meta("scoring"), spec={
            "type": "ClusterIP", "selector": dict(APP_LABELS),
            "ports": [{"name": "http", "port": 80.0, "targetPort": "http", "protocol": "TCP"}]}),
        k8s(HPA, "scoring-hpa", metadata=meta("scoring"), spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scoring"},
            "minReplicas": 3.0, "maxReplicas": 12.0,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 60.0}}}]}),
        k8s(PDB, "scoring-pdb", metadata=meta("scoring"), spec={
            "maxUnavailable": 1.0, "selector": {"matchLabels": dict(APP_LABELS)}}),
        k8s(NETWORK_POLICY, "default-deny", metadata=meta("default-deny"), spec={
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        k8s(NETWORK_POLICY, "allow-alb", metadata=meta("allow-alb"), spec={
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "scoring"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": vpc, "ports": [{"port": 8080.0, "protocol": "TCP"}]}]}),
        k8s(NETWORK_POLICY, "allow-egress", metadata=meta("allow-egress"), spec={
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "fraudstack"}}, "policyTypes": ["Egress"],
            "egress": [dns,
                       {"to": vpc, "ports": [{"port": 5432.0, "protocol": "TCP"}]},
                       {"to": vpc, "ports": [{"port": 6379.0, "protocol": "TCP"}]},
                       {"to": vpc, "ports": [{"port": 443.0, "protocol": "TCP"}]}]}),
        k8s(INGRESS, "scoring-ingress", metadata=meta("scoring", annotations=alb_annotations()), spec={
            "ingressClassName": "alb",
            "rules": [{"http": {"paths": [admin_path(), {"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": "scoring", "port": {"number": 80.0}}}}]}}]}),
        res(HELM, "lb-controller", parent="cluster", chart="aws-load-balancer-controller", namespace="kube-system",
            version="1.14.0", repositoryOpts={"repo": "https://aws.github.io/eks-charts"},
            values={"clusterName": "fraudstack-production"}),
    ]
    return {r["name"]: r for r in items}


def gpu_variant() -> dict[str, dict]:
    """The hardened stack with the Deployment scheduled on the GPU node group."""
    stack = hardened()
    pod = stack["scoring"]["inputs"]["spec"]["template"]["spec"]
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pod["nodeSelector"] = {"fraudstack.io/node-group": "gpu"}
    pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    return stack


def pod(stack: dict[str, dict], name: str = "scoring") -> dict:
    """The pod spec of a workload in a fixture stack."""
    return stack[name]["inputs"]["spec"]["template"]["spec"]


def app(stack: dict[str, dict], name: str = "scoring") -> dict:
    """The first container of a workload."""
    return pod(stack, name)["containers"][0]


def annotations(stack: dict[str, dict]) -> dict:
    return stack["scoring-ingress"]["inputs"]["metadata"]["annotations"]


def ingress_paths(stack: dict[str, dict]) -> list:
    """The hardened Ingress's paths: the admin block, then ``/`` to the service."""
    return stack["scoring-ingress"]["inputs"]["spec"]["rules"][0]["http"]["paths"]


def copy_of(stack: dict[str, dict]) -> dict[str, dict]:
    return copy.deepcopy(stack)
