"""Kubernetes rules through the engine: the hardened fixture passes every one of them, and
each mutation of one property makes exactly the rule it targets fire (plus, where named,
the rules the same fact necessarily breaks too)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from policies.engine import evaluate, load_config
from tests.policies import k8s_fixtures as fx
from tests.policies.helpers import Case

K8S_RULES = fx.K8S_RULES
BY_ID = {r.id: r for r in K8S_RULES}
A = "alb.ingress.kubernetes.io/"


def run(stack: dict[str, dict] | list[dict], config: dict | None = None) -> list[dict]:
    resources = list(stack.values()) if isinstance(stack, dict) else stack
    return evaluate(resources, config, rules=K8S_RULES)


@dataclass
class Mutation:
    """One change to the hardened stack, the rule it must trip and the resources named."""

    rule: str
    id: str
    mutate: Callable[[dict], object]
    violating: list[str]
    also: tuple[str, ...] = ()  # rules the same change necessarily breaks too (documented per case)


def _set(path_fn, key, value):
    def mutate(s):
        path_fn(s)[key] = value
    return mutate


def _del(path_fn, key):
    def mutate(s):
        del path_fn(s)[key]
    return mutate


def _csc(s):
    return fx.app(s)["securityContext"]


def _psc(s):
    return fx.pod(s)["securityContext"]


def _inputs(name):
    return lambda s: s[name]["inputs"]


def _spec(name):
    return lambda s: s[name]["inputs"]["spec"]


def _lb_attr(drop: str, add: str = ""):
    def mutate(s):
        key = A + "load-balancer-attributes"
        pairs = [p for p in fx.annotations(s)[key].split(",") if not p.startswith(drop)]
        fx.annotations(s)[key] = ",".join(pairs + ([add] if add else []))
    return mutate


def _add(resource: dict):
    def mutate(s):
        s[resource["name"]] = resource
    return mutate


def _remove(name: str):
    return lambda s: s.pop(name)


def _unselect_job(s):
    s["default-deny"]["inputs"]["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "scoring"}}
    for labels in (s["scoring-migrate"]["inputs"]["spec"]["template"]["metadata"]["labels"],
                   s["scoring-migrate"]["inputs"]["metadata"]["labels"]):
        labels["app.kubernetes.io/part-of"] = "fraudstack-batch"


def _immutable_repo_tag(mutability: str):
    """Run a release tag of the stack's ECR repository with the given tag mutability."""
    def mutate(s):
        s["scoring-repo"] = fx.plan_resource(fx.ECR_REPO, "scoring-repo", {
            "name": "fraudstack/scoring", "imageTagMutability": mutability})
        fx.app(s)["image"] = fx.IMAGE.split("@")[0] + ":1.4.2"
    return mutate


def _env(*entries):
    return lambda s: fx.app(s)["env"].extend(entries)


MUTATIONS = [
    Mutation("k8s-no-privileged-containers", "privileged", _set(_csc, "privileged", True), ["scoring"]),
    Mutation("k8s-no-privilege-escalation", "escalation", _set(_csc, "allowPrivilegeEscalation", True), ["scoring"]),
    Mutation("k8s-no-privilege-escalation", "job-unset", lambda s: fx.app(s, "scoring-migrate")["securityContext"]
             .pop("allowPrivilegeEscalation"), ["scoring-migrate"]),
    Mutation("k8s-run-as-non-root", "false", _set(_csc, "runAsNonRoot", False), ["scoring"]),
    Mutation("k8s-high-uid-gid", "uid-1000", _set(_csc, "runAsUser", 1000.0), ["scoring"]),
    Mutation("k8s-high-uid-gid", "root-gid", _set(_psc, "fsGroup", 0.0), ["scoring"]),
    Mutation("k8s-read-only-root-filesystem", "writable", _set(_csc, "readOnlyRootFilesystem", False), ["scoring"]),
    Mutation("k8s-drop-all-capabilities", "sys-admin", lambda s: _csc(s)["capabilities"].update(add=["SYS_ADMIN"]),
             ["scoring"]),
    Mutation("k8s-drop-all-capabilities", "no-drop", _set(_csc, "capabilities", {"drop": ["NET_RAW"]}), ["scoring"]),
    Mutation("k8s-seccomp-runtime-default", "unconfined", _set(_csc, "seccompProfile", {"type": "Unconfined"}),
             ["scoring"]),
    Mutation("k8s-apparmor-not-unconfined", "unconfined", _set(_csc, "appArmorProfile", {"type": "Unconfined"}),
             ["scoring"]),
    Mutation("k8s-no-custom-selinux", "user", _set(_csc, "seLinuxOptions", {"user": "system_u"}), ["scoring"]),
    Mutation("k8s-no-host-namespaces", "host-network", lambda s: fx.pod(s).update(hostNetwork=True), ["scoring"]),
    Mutation("k8s-no-host-ports", "host-port", lambda s: fx.app(s)["ports"][0].update(hostPort=8080.0), ["scoring"]),
    Mutation("k8s-restricted-volume-types", "host-path", lambda s: fx.pod(s)["volumes"].append(
        {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}), ["scoring"]),
    Mutation("k8s-restricted-volume-types", "nfs", lambda s: fx.pod(s)["volumes"].append(
        {"name": "share", "nfs": {"server": "10.20.0.9", "path": "/"}}), ["scoring"]),
    Mutation("k8s-default-proc-mount", "unmasked", _set(_csc, "procMount", "Unmasked"), ["scoring"]),
    Mutation("k8s-safe-sysctls", "msgmax", _set(_psc, "sysctls", [{"name": "kernel.msgmax", "value": "65536"}]),
             ["scoring"]),
    Mutation("k8s-no-windows-host-process", "host-process", _set(_csc, "windowsOptions", {"hostProcess": True}),
             ["scoring"]),
    Mutation("k8s-no-probe-host", "liveness-host", lambda s: fx.app(s)["livenessProbe"]["httpGet"].update(
        host="169.254.169.254"), ["scoring"]),
    # The container context repeats every pod-level field, so only the pod context goes missing.
    Mutation("k8s-security-context-set", "no-pod-context", lambda s: fx.pod(s).pop("securityContext"), ["scoring"]),
    Mutation("k8s-no-service-account-token-automount", "pod", lambda s: fx.pod(s).update(
        automountServiceAccountToken=True), ["scoring"]),
    Mutation("k8s-no-service-account-token-automount", "service-account",
             _set(_inputs("scoring-sa"), "automountServiceAccountToken", True), ["scoring-sa"]),
    Mutation("k8s-dedicated-service-account", "default", lambda s: fx.pod(s).update(serviceAccountName="default"),
             ["scoring"]),
    Mutation("k8s-secrets-not-in-env", "secret-key-ref", _env(
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}), ["scoring"]),
    Mutation("k8s-no-credentials-in-env", "password-literal", _env(
        {"name": "DB_PASSWORD", "value": "test-key-not-a-secret"}), ["scoring"]),
    Mutation("k8s-no-credentials-in-env", "access-key", _env(
        {"name": "BOOT", "value": "AKIA" + "ABCDEFGHIJKLMNOP"}), ["scoring"]),
    Mutation("k8s-no-credentials-in-env", "config-map-url", lambda s: s["scoring-config"]["inputs"]["data"].update(
        DATABASE_URL="postgresql://app:test-key-not-a-secret@db:5432/audit"), ["scoring-config"]),
    Mutation("k8s-cpu-requests", "missing", lambda s: fx.app(s)["resources"]["requests"].pop("cpu"), ["scoring"]),
    Mutation("k8s-cpu-limits", "missing", lambda s: fx.app(s)["resources"]["limits"].pop("cpu"), ["scoring"]),
    Mutation("k8s-memory-requests", "missing", lambda s: fx.app(s)["resources"]["requests"].pop("memory"),
             ["scoring"]),
    Mutation("k8s-memory-limits", "missing", lambda s: fx.app(s, "scoring-migrate")["resources"]["limits"]
             .pop("memory"), ["scoring-migrate"]),
    Mutation("k8s-ephemeral-storage-limits", "missing", lambda s: fx.app(s)["resources"]["limits"]
             .pop("ephemeral-storage"), ["scoring"]),
    Mutation("k8s-requests-equal-limits", "burstable-cpu", lambda s: fx.app(s)["resources"]["requests"]
             .update(cpu="500m"), ["scoring"]),
    Mutation("k8s-image-tag-not-latest", "latest", _set(fx.app, "image", fx.IMAGE.replace("@", ":latest@")),
             ["scoring"]),
    Mutation("k8s-image-pinned", "tag-only", _set(fx.app, "image", fx.IMAGE.split("@")[0] + ":1.4.2"), ["scoring"]),
    Mutation("k8s-image-pinned", "mutable-repository", _immutable_repo_tag("MUTABLE"), ["scoring"]),
    Mutation("k8s-image-pull-policy-always", "if-not-present", _set(fx.app, "imagePullPolicy", "IfNotPresent"),
             ["scoring"]),
    Mutation("k8s-trusted-registry", "docker-hub", _set(fx.app, "image", "docker.io/library/scoring@" + fx.DIGEST),
             ["scoring"]),
    Mutation("k8s-liveness-probe", "missing", _del(fx.app, "livenessProbe"), ["scoring"]),
    Mutation("k8s-readiness-probe", "missing", _del(fx.app, "readinessProbe"), ["scoring"]),
    Mutation("k8s-distinct-probes", "identical", lambda s: fx.app(s).update(
        readinessProbe=dict(fx.app(s)["livenessProbe"])), ["scoring"]),
    Mutation("k8s-not-default-namespace", "default", lambda s: s["scoring-config"]["inputs"]["metadata"].update(
        namespace="default"), ["scoring-config"]),
    Mutation("k8s-not-default-namespace", "unset", lambda s: s["scoring-config"]["inputs"]["metadata"].pop(
        "namespace"), ["scoring-config"]),
    Mutation("k8s-not-kube-system", "kube-system", lambda s: s["scoring-config"]["inputs"]["metadata"].update(
        namespace="kube-system"), ["scoring-config"]),
    # A pod no NetworkPolicy selects means its namespace has no default-deny policy either
    # (that one selects every pod): narrow the deny-all and take the Job out of the allow list.
    Mutation("k8s-pods-selected-by-networkpolicy", "unselected-job", _unselect_job, ["scoring-migrate"],
             also=("k8s-namespace-default-deny",)),
    Mutation("k8s-networkpolicy-targets-pods", "typo", lambda s: s["allow-alb"]["inputs"]["spec"].update(
        podSelector={"matchLabels": {"app.kubernetes.io/name": "scorng"}}), ["allow-alb"]),
    Mutation("k8s-namespace-default-deny", "ingress-only", lambda s: s["default-deny"]["inputs"]["spec"].update(
        policyTypes=["Ingress"]), ["scoring-ns"]),
    Mutation("k8s-replicas", "no-hpa", _remove("scoring-hpa"), ["scoring"]),
    Mutation("k8s-rolling-update", "recreate", _set(_spec("scoring"), "strategy", {"type": "Recreate"}), ["scoring"]),
    Mutation("k8s-host-anti-affinity", "zone-only", lambda s: fx.pod(s)["topologySpreadConstraints"].pop(1),
             ["scoring"]),
    Mutation("k8s-zone-spread", "host-only", lambda s: fx.pod(s)["topologySpreadConstraints"].pop(0), ["scoring"]),
    Mutation("k8s-pdb-covers-workload", "no-pdb", _remove("scoring-pdb"), ["scoring"]),
    Mutation("k8s-pdb-has-policy", "no-policy", _del(_spec("scoring-pdb"), "maxUnavailable"), ["scoring-pdb"]),
    Mutation("k8s-hpa-target-exists", "ghost", _add(fx.k8s(fx.HPA, "ghost-hpa", metadata=fx.meta("ghost"), spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ghost"},
        "minReplicas": 2.0, "maxReplicas": 4.0})), ["ghost-hpa"]),
    Mutation("k8s-hpa-min-replicas", "one", _set(_spec("scoring-hpa"), "minReplicas", 1.0), ["scoring-hpa"]),
    Mutation("k8s-hpa-target-no-replicas", "replicas", _set(_spec("scoring"), "replicas", 3.0), ["scoring"]),
    Mutation("k8s-selector-matches-template", "mismatch", _set(_spec("scoring"), "selector", {
        "matchLabels": {"app.kubernetes.io/name": "scoring-v2"}}), ["scoring"]),
    Mutation("k8s-service-targets-pods", "typo", _set(_spec("scoring-svc"), "selector", {
        "app.kubernetes.io/name": "scorng"}), ["scoring-svc"]),
    Mutation("k8s-no-nodeport-service", "node-port", _set(_spec("scoring-svc"), "type", "NodePort"), ["scoring-svc"]),
    Mutation("k8s-no-external-ips", "external-ips", _set(_spec("scoring-svc"), "externalIPs", ["203.0.113.7"]),
             ["scoring-svc"]),
    Mutation("k8s-ingress-backend-exists", "wrong-service", lambda s: fx.ingress_paths(s)[-1][
        "backend"]["service"].update(name="scoring-v2"), ["scoring-ingress"]),
    Mutation("k8s-ingress-backend-exists", "wrong-port", lambda s: fx.ingress_paths(s)[-1][
        "backend"]["service"].update(port={"number": 8443.0}), ["scoring-ingress"]),
    # An action path without its annotation is neither a Service nor an action; the admin
    # routes it was meant to answer then fall through to "/".
    Mutation("k8s-ingress-backend-exists", "action-without-annotation", lambda s: fx.annotations(s).pop(
        A + "actions.block-admin"), ["scoring-ingress"], also=("k8s-ingress-admin-blocked",)),
    Mutation("k8s-stable-api-version", "v1beta1-ingress", lambda s: s["scoring-ingress"].update(
        type="kubernetes:networking.k8s.io/v1beta1:Ingress",
        inputs={**s["scoring-ingress"]["inputs"], "apiVersion": "networking.k8s.io/v1beta1"}), ["scoring-ingress"]),
    Mutation("k8s-valid-labels", "space", lambda s: s["scoring"]["inputs"]["metadata"]["labels"].update(
        team="risk engineering"), ["scoring"]),
    Mutation("k8s-no-duplicate-env", "twice", _env({"name": "AWS_REGION", "value": "us-east-1"}), ["scoring"]),
    Mutation("k8s-container-ports-valid", "duplicate-name", lambda s: fx.app(s)["ports"].append(
        {"name": "http", "containerPort": 9090.0}), ["scoring"]),
    Mutation("k8s-no-privileged-ports", "port-80", lambda s: fx.app(s)["ports"][0].update(containerPort=80.0),
             ["scoring"]),
    Mutation("k8s-no-host-aliases", "aliases", lambda s: fx.pod(s).update(
        hostAliases=[{"ip": "10.20.0.9", "hostnames": ["db"]}]), ["scoring"]),
    Mutation("k8s-no-risky-tools", "dashboard-chart", _set(_inputs("lb-controller"), "chart", "kubernetes-dashboard"),
             ["lb-controller"]),
    Mutation("k8s-no-risky-tools", "git-sync-sidecar", lambda s: fx.pod(s)["containers"].append(
        {**fx.app_container(), "name": "sync", "ports": [],
         "image": f"{fx.ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/git-sync@{fx.DIGEST}"}), ["scoring"]),
    Mutation("k8s-namespace-resource-quota", "missing", _remove("scoring-quota"), ["scoring-ns"]),
    Mutation("k8s-namespace-limit-range", "missing", _remove("scoring-limits"), ["scoring-ns"]),
    Mutation("k8s-gpu-toleration-and-limit", "toleration-no-limit", lambda s: fx.pod(s).update(tolerations=[
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]), ["scoring"]),
    Mutation("k8s-gpu-toleration-and-limit", "limit-no-toleration", lambda s: fx.app(s)["resources"]["limits"]
             .update({"nvidia.com/gpu": "1"}), ["scoring"]),
    Mutation("k8s-namespace-restricted-pss", "baseline", lambda s: s["scoring-ns"]["inputs"]["metadata"]["labels"]
             .update({"pod-security.kubernetes.io/enforce": "baseline"}), ["scoring-ns"]),
    Mutation("k8s-networkpolicy-egress-allowlist", "ssh", lambda s: s["allow-egress"]["inputs"]["spec"]["egress"]
             .append({"to": [{"ipBlock": {"cidr": fx.VPC_CIDR}}], "ports": [{"port": 22.0, "protocol": "TCP"}]}),
             ["allow-egress"]),
    Mutation("k8s-networkpolicy-egress-allowlist", "https-anywhere", lambda s: s["allow-egress"]["inputs"]["spec"][
        "egress"][3].update(to=[{"ipBlock": {"cidr": "0.0.0.0/0"}}]), ["allow-egress"]),
    Mutation("k8s-networkpolicy-egress-allowlist", "all-ports", lambda s: s["allow-egress"]["inputs"]["spec"][
        "egress"][1].pop("ports"), ["allow-egress"]),
    Mutation("k8s-pdb-allows-drain", "max-unavailable-0", _set(_spec("scoring-pdb"), "maxUnavailable", 0.0),
             ["scoring-pdb"]),
    Mutation("k8s-pdb-allows-drain", "min-available-all", lambda s: s["scoring-pdb"]["inputs"]["spec"].update(
        maxUnavailable=None, minAvailable=3.0) or s["scoring-pdb"]["inputs"]["spec"].pop("maxUnavailable"),
        ["scoring-pdb"]),
    Mutation("k8s-pdb-allows-drain", "min-available-100pct", lambda s: s["scoring-pdb"]["inputs"]["spec"].update(
        minAvailable="100%") or s["scoring-pdb"]["inputs"]["spec"].pop("maxUnavailable"), ["scoring-pdb"]),
    Mutation("k8s-irsa-role-trust", "other-sa", _set(_inputs("scoring-irsa"), "assumeRolePolicy",
                                                     fx.trust_policy(subject="system:serviceaccount:scoring:*")),
             ["scoring-sa"]),
    Mutation("k8s-irsa-role-trust", "no-aud", _set(_inputs("scoring-irsa"), "assumeRolePolicy",
                                                   fx.trust_policy(aud="")), ["scoring-sa"]),
    Mutation("k8s-irsa-role-trust", "unknown-role", lambda s: s["scoring-sa"]["inputs"]["metadata"]["annotations"]
             .update({"eks.amazonaws.com/role-arn": f"arn:aws:iam::{fx.ACCOUNT}:role/someone-else"}), ["scoring-sa"]),
    Mutation("k8s-rbac-least-privilege", "wildcard", lambda s: s["scoring-config-reader"]["inputs"]["rules"][0]
             .update(verbs=["*"]), ["scoring-config-reader"]),
    Mutation("k8s-rbac-least-privilege", "read-secrets", lambda s: s["scoring-config-reader"]["inputs"]["rules"]
             .append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}), ["scoring-config-reader"]),
    Mutation("k8s-rbac-least-privilege", "exec", lambda s: s["scoring-config-reader"]["inputs"]["rules"]
             .append({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}), ["scoring-config-reader"]),
    Mutation("k8s-rbac-least-privilege", "cluster-admin", lambda s: s["scoring-config-reader-binding"]["inputs"][
        "roleRef"].update(kind="ClusterRole", name="cluster-admin"), ["scoring-config-reader-binding"]),
    Mutation("k8s-rbac-least-privilege", "default-sa", lambda s: s["scoring-config-reader-binding"]["inputs"][
        "subjects"][0].update(name="default"), ["scoring-config-reader-binding"]),
    Mutation("k8s-rbac-least-privilege", "anonymous", lambda s: s["scoring-config-reader-binding"]["inputs"][
        "subjects"].append({"kind": "Group", "name": "system:unauthenticated"}), ["scoring-config-reader-binding"]),
    Mutation("k8s-no-nginx-snippets", "server-snippet", lambda s: fx.annotations(s).update(
        {"nginx.ingress.kubernetes.io/server-snippet": "location /x { return 200; }"}), ["scoring-ingress"]),
    # ALB (Ingress annotations)
    Mutation("k8s-alb-https-listener", "no-certificate", lambda s: fx.annotations(s).pop(A + "certificate-arn"),
             ["scoring-ingress"]),
    Mutation("k8s-alb-http-redirect", "no-redirect", lambda s: fx.annotations(s).pop(A + "ssl-redirect"),
             ["scoring-ingress"]),
    Mutation("k8s-alb-tls12-policy", "tls10", lambda s: fx.annotations(s).update(
        {A + "ssl-policy": "ELBSecurityPolicy-2016-08"}), ["scoring-ingress"]),
    Mutation("k8s-alb-tls12-policy", "unset", lambda s: fx.annotations(s).pop(A + "ssl-policy"), ["scoring-ingress"]),
    Mutation("k8s-alb-drop-invalid-headers", "off", _lb_attr("routing.http.drop_invalid_header_fields"),
             ["scoring-ingress"]),
    Mutation("k8s-alb-access-logs", "off", _lb_attr("access_logs.s3.enabled", "access_logs.s3.enabled=false"),
             ["scoring-ingress"]),
    Mutation("k8s-alb-deletion-protection", "off", _lb_attr("deletion_protection"), ["scoring-ingress"]),
    Mutation("k8s-alb-desync-mitigation", "monitor", _lb_attr("routing.http.desync_mitigation_mode",
                                                              "routing.http.desync_mitigation_mode=monitor"),
             ["scoring-ingress"]),
    Mutation("k8s-alb-health-check", "unset", lambda s: fx.annotations(s).pop(A + "healthcheck-path"),
             ["scoring-ingress"]),
    Mutation("k8s-alb-internal-scheme", "internet-facing", lambda s: fx.annotations(s).update(
        {A + "scheme": "internet-facing", A + "wafv2-acl-arn": fx.WAF}), ["scoring-ingress"]),
    # Internet-facing is itself the advisory finding of k8s-alb-internal-scheme.
    Mutation("k8s-alb-waf-when-internet-facing", "no-waf", lambda s: fx.annotations(s).update(
        {A + "scheme": "internet-facing"}), ["scoring-ingress"], also=("k8s-alb-internal-scheme",)),
    # Admin routes (X21)
    Mutation("k8s-ingress-admin-blocked", "no-block", lambda s: fx.ingress_paths(s).pop(0), ["scoring-ingress"]),
    Mutation("k8s-ingress-admin-blocked", "block-after-root", lambda s: fx.ingress_paths(s).reverse(),
             ["scoring-ingress"]),
    Mutation("k8s-ingress-admin-blocked", "answers-200", lambda s: fx.annotations(s).update(
        {A + "actions.block-admin": json.dumps({**fx.BLOCK_ADMIN, "fixedResponseConfig": {
            **fx.BLOCK_ADMIN["fixedResponseConfig"], "statusCode": "200"}})}), ["scoring-ingress"]),
    Mutation("k8s-ingress-admin-blocked", "forward-action", lambda s: fx.annotations(s).update(
        {A + "actions.block-admin": json.dumps({"type": "forward", "forwardConfig": {"targetGroups": [
            {"serviceName": "scoring", "servicePort": "80"}]}})}), ["scoring-ingress"]),
    # Exact /admin leaves /admin/model/reload to "/".
    Mutation("k8s-ingress-admin-blocked", "exact-only", lambda s: fx.ingress_paths(s)[0].update(pathType="Exact"),
             ["scoring-ingress"]),
    # A condition makes the 404 apply to some requests only (here: one header value).
    Mutation("k8s-ingress-admin-blocked", "narrowed", lambda s: fx.annotations(s).update(
        {A + "conditions.block-admin": json.dumps([{"field": "http-header", "httpHeaderConfig": {
            "httpHeaderName": "X-Block", "values": ["yes"]}}])}), ["scoring-ingress"]),
]


def _mutated(m: Mutation) -> dict[str, dict]:
    stack = fx.hardened()
    m.mutate(stack)
    return stack


#: The cases the pack-wide coverage test counts: each rule complies on the hardened
#: stack and is violated by its mutations.
CASES = [Case(r.id, list(fx.hardened().values())) for r in K8S_RULES] + [
    Case(m.rule, list(_mutated(m).values()), list(m.violating), id=m.id) for m in MUTATIONS]


def test_hardened_stack_passes_every_kubernetes_rule():
    assert run(fx.hardened()) == []


def test_gpu_variant_passes_every_kubernetes_rule():
    assert run(fx.gpu_variant()) == []


def test_a_tag_of_an_immutable_ecr_repository_counts_as_pinned():
    assert run(_mutated(Mutation("k8s-image-pinned", "immutable", _immutable_repo_tag("IMMUTABLE"), []))) == []


def test_every_kubernetes_rule_has_a_mutation():
    assert sorted({r.id for r in K8S_RULES} - {m.rule for m in MUTATIONS}) == []


@pytest.mark.parametrize("m", MUTATIONS, ids=lambda m: f"{m.rule}-{m.id}")
def test_mutation_violates_exactly_its_rule(m: Mutation):
    found = run(_mutated(m))
    assert not [v for v in found if v["message"].startswith("can't run policy")], found
    assert sorted({v["policy"] for v in found}) == sorted({m.rule, *m.also}), found
    mine = [v for v in found if v["policy"] == m.rule]
    assert sorted({v["name"] for v in mine}) == sorted(m.violating), mine
    rule = BY_ID[m.rule]
    assert {(v["enforcement"], v["severity"]) for v in mine} == {(rule.enforcement, rule.severity)}


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_hardened_kubernetes_objects_pass_the_whole_pack(stack):
    """No AWS or platform-wide rule objects to the hardened objects either (the pack as the
    CLI runs it, with the stack's policy config)."""
    assert evaluate(list(fx.hardened().values()), load_config(stack)) == []
