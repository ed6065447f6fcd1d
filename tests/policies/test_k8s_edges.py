"""Kubernetes rules on the edges: values unknown during preview, objects without optional
fields, every workload kind, policy config, selectors, percentages and Ingress classes."""
from __future__ import annotations

import json

import pytest
from pulumi_policy import PolicyResource, PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policies.engine import evaluate, load_config
from policies.model import Stack
from tests.policies import k8s_fixtures as fx

A = "alb.ingress.kubernetes.io/"
CANT_RUN = "can't run policy"


def run(stack, config=None, rules=None):
    resources = list(stack.values()) if isinstance(stack, dict) else stack
    return evaluate(resources, config, rules=rules or fx.K8S_RULES)


def policies(found):
    return sorted({v["policy"] for v in found})


def test_values_unknown_during_preview_stop_only_the_rules_that_read_them():
    s = fx.hardened()
    fx.app(s)["image"] = UNKNOWN_STRING_VALUE  # built from the ECR repository's URL
    fx.app(s)["env"].append({"name": "DB_HOST", "value": UNKNOWN_STRING_VALUE})
    s["scoring-sa"]["inputs"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = UNKNOWN_STRING_VALUE
    fx.annotations(s)[A + "certificate-arn"] = UNKNOWN_STRING_VALUE
    fx.annotations(s)[A + "wafv2-acl-arn"] = UNKNOWN_STRING_VALUE
    found = run(s)
    assert all(v["message"].startswith(CANT_RUN) and v["enforcement"] == "advisory" for v in found), found
    assert [(v["policy"], v["name"]) for v in found] == [
        ("k8s-image-tag-not-latest", "scoring"), ("k8s-trusted-registry", "scoring"),
        ("k8s-no-risky-tools", "scoring"), ("k8s-image-pinned", "fraudstack-stack")]
    assert ".spec.template.spec.containers.0.image" in found[0]["message"]


def test_unknown_role_arn_without_a_trusting_role_is_a_violation():
    s = fx.hardened()
    s["scoring-sa"]["inputs"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = UNKNOWN_STRING_VALUE
    s["scoring-irsa"]["inputs"]["assumeRolePolicy"] = fx.trust_policy(subject="system:serviceaccount:other:app")
    found = run(s, rules=[r for r in fx.K8S_RULES if r.id == "k8s-irsa-role-trust"])
    assert [(v["name"], v["message"]) for v in found] == [(
        "scoring-sa", "ServiceAccount scoring/scoring: eks.amazonaws.com/role-arn (computed during preview) "
                      "matches no IAM role of the stack")]


def _policy_resource(r: dict, deps=(), prop_deps=None) -> PolicyResource:
    opts = PolicyResourceOptions(False, [], None, [], None, [], None)
    return PolicyResource(r["type"], unknown_checking_proxy(r["inputs"]), f"urn:{r['name']}", r["name"], opts,
                          None, None, list(deps), dict(prop_deps or {}))


def test_unknown_role_arn_follows_the_annotation_dependency_the_server_passes():
    s = fx.hardened()
    s["scoring-sa"]["inputs"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = UNKNOWN_STRING_VALUE
    other = fx.plan_resource(fx.ROLE, "other-irsa", {"name": "other", "assumeRolePolicy": fx.trust_policy(
        subject="system:serviceaccount:scoring:*")})
    roles = {n: _policy_resource(s[n]) for n in ("scoring-irsa",)}
    roles["other-irsa"] = _policy_resource(other)
    rule = next(r for r in fx.K8S_RULES if r.id == "k8s-irsa-role-trust")
    for dep, expected in (("scoring-irsa", []), ("other-irsa", ["scoring-sa"])):
        sa = _policy_resource(s["scoring-sa"], prop_deps={"metadata": [roles[dep]]})
        found = list(rule.check(Stack([sa, *roles.values()]), rule.defaults()))
        assert [r.name for r, _ in found] == expected, found


ALL_TYPES = [fx.NAMESPACE, fx.DEPLOYMENT, fx.JOB, fx.SERVICE, fx.SERVICE_ACCOUNT, fx.CONFIG_MAP, fx.HPA, fx.PDB,
             fx.NETWORK_POLICY, fx.INGRESS, fx.QUOTA, fx.LIMITS, "kubernetes:apps/v1:StatefulSet",
             "kubernetes:apps/v1:DaemonSet", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod"]


def test_objects_without_optional_fields_are_judged_not_crashed_on():
    bare = [fx.k8s(t, t.rsplit(":", 1)[-1].lower()) for t in ALL_TYPES]
    bare.append(fx.plan_resource(fx.HELM, "release", {}))
    bare.append(fx.plan_resource(fx.ROLE, "role", {}))
    found = run(bare)  # a crash would raise "Validation failed"
    assert not [v for v in found if v["message"].startswith(CANT_RUN)]
    by_name = {}
    for v in found:
        by_name.setdefault(v["name"], set()).add(v["policy"])
    assert sorted(by_name["namespace"]) == ["k8s-namespace-default-deny", "k8s-namespace-limit-range",
                                            "k8s-namespace-resource-quota", "k8s-namespace-restricted-pss"]
    assert sorted(by_name["ingress"]) == sorted(r.id for r in fx.K8S_RULES if r.id.startswith("k8s-alb-") and r.id not in (
        "k8s-alb-internal-scheme", "k8s-alb-waf-when-internet-facing")) + ["k8s-not-default-namespace"]
    assert "release" not in by_name and "role" not in by_name


def test_minimal_deployment_fails_exactly_the_hardening_rules():
    mini = fx.k8s(fx.DEPLOYMENT, "mini", metadata={"name": "mini", "namespace": "scoring"}, spec={
        "selector": {"matchLabels": {"app": "mini"}},
        "template": {"metadata": {"labels": {"app": "mini"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}})
    assert policies(run([mini])) == [
        "k8s-cpu-limits", "k8s-cpu-requests", "k8s-dedicated-service-account", "k8s-drop-all-capabilities",
        "k8s-ephemeral-storage-limits", "k8s-high-uid-gid", "k8s-host-anti-affinity", "k8s-image-pinned",
        "k8s-image-pull-policy-always", "k8s-image-tag-not-latest", "k8s-liveness-probe", "k8s-memory-limits",
        "k8s-memory-requests", "k8s-namespace-default-deny", "k8s-namespace-limit-range",
        "k8s-namespace-resource-quota", "k8s-no-privilege-escalation", "k8s-no-service-account-token-automount",
        "k8s-pdb-covers-workload", "k8s-pods-selected-by-networkpolicy", "k8s-read-only-root-filesystem",
        "k8s-readiness-probe", "k8s-replicas", "k8s-run-as-non-root", "k8s-seccomp-runtime-default",
        "k8s-security-context-set", "k8s-trusted-registry", "k8s-zone-spread"]


def _workload(rtype: str, pod: dict) -> dict:
    template = {"metadata": {"labels": dict(fx.APP_LABELS)}, "spec": pod}
    spec = {
        "kubernetes:apps/v1:StatefulSet": {"selector": {"matchLabels": dict(fx.APP_LABELS)}, "template": template},
        "kubernetes:apps/v1:DaemonSet": {"selector": {"matchLabels": dict(fx.APP_LABELS)}, "template": template},
        "kubernetes:batch/v1:CronJob": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
    }.get(rtype)
    if rtype == "kubernetes:core/v1:Pod":
        return fx.k8s(rtype, "w", metadata=fx.meta("w"), spec=pod)
    return fx.k8s(rtype, "w", metadata=fx.meta("w"), spec=spec)


@pytest.mark.parametrize("rtype", ["kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
                                   "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod"])
def test_the_pod_extractor_serves_every_workload_kind(rtype):
    pod = fx.pod(fx.hardened())
    pod_rules = [r for r in fx.K8S_RULES if not r.stack and fx.DEPLOYMENT in r.resource_types]
    assert run([_workload(rtype, pod)], rules=pod_rules) == []
    pod["containers"][0]["securityContext"]["privileged"] = True
    pod["initContainers"] = [{**fx.app_container(), "name": "init", "livenessProbe": None}]
    pod["initContainers"][0]["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["NET_RAW"]}
    found = run([_workload(rtype, pod)], rules=pod_rules)
    assert [(v["policy"], v["message"]) for v in found] == [
        ("k8s-no-privileged-containers", "container 'scoring' runs privileged (securityContext.privileged: true)"),
        ("k8s-drop-all-capabilities", "init container 'init' adds capabilities NET_RAW "
                                      "(only NET_BIND_SERVICE may be added)")]


def test_min_id_comes_from_policy_config():
    config = {"k8s-high-uid-gid": {"minimumId": 20000}}
    found = run(fx.hardened(), config)
    assert {(v["policy"], v["name"]) for v in found} == {("k8s-high-uid-gid", "scoring"),
                                                       ("k8s-high-uid-gid", "scoring-migrate")}
    assert "runAsUser 10001 (< 20000" in found[0]["message"]


def test_allowed_registries_come_from_policy_config():
    s = fx.hardened()
    fx.app(s)["image"] = "ghcr.io/fraudstack/scoring@" + fx.DIGEST
    assert policies(run(s)) == ["k8s-trusted-registry"]
    assert run(s, {"k8s-trusted-registry": {"allowedRegistries": ["ghcr.io/fraudstack"]}}) == []
    assert policies(run(s, {"k8s-trusted-registry": {"allowedRegistries": ["ghcr.io/fraud"]}})) == [
        "k8s-trusted-registry"]


def test_egress_allow_list_and_kube_system_names_come_from_policy_config():
    s = fx.hardened()
    s["allow-egress"]["inputs"]["spec"]["egress"].append(
        {"to": [{"ipBlock": {"cidr": fx.VPC_CIDR}}], "ports": [{"port": 9092.0, "protocol": "TCP"}]})
    s["scoring-config"]["inputs"]["metadata"]["namespace"] = "kube-system"
    assert policies(run(s)) == ["k8s-networkpolicy-egress-allowlist", "k8s-not-kube-system"]
    config = {"k8s-networkpolicy-egress-allowlist": {"allowedEgress": ["53/UDP", "53/TCP", "443/TCP", "5432/TCP",
                                                                        "6379/TCP", "9092/TCP"]},
              "k8s-not-kube-system": {"allowedNames": ["scoring-config"]}}
    assert run(s, config) == []


def test_label_selector_expressions_and_percentages():
    s = fx.hardened()
    s["scoring-pdb"]["inputs"]["spec"] = {"minAvailable": "50%", "selector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["scoring", "scoring-canary"]}]}}
    assert run(s) == []  # 50% of the HPA's 3 replicas keeps 2: one may go
    s["scoring-pdb"]["inputs"]["spec"]["minAvailable"] = "67%"
    assert [(v["policy"], v["message"]) for v in run(s)] == [(
        "k8s-pdb-allows-drain", "PodDisruptionBudget scoring/scoring blocks node drains: minAvailable 67% keeps "
                                "all 3 pod(s): no eviction is ever allowed")]
    s["scoring-pdb"]["inputs"]["spec"]["selector"]["matchExpressions"][0]["operator"] = "NotIn"
    assert policies(run(s)) == ["k8s-pdb-covers-workload"]


def test_ingress_of_another_class_is_not_judged_as_an_alb():
    s = fx.hardened()
    s["scoring-ingress"]["inputs"]["metadata"]["annotations"] = {}
    assert "k8s-alb-https-listener" in policies(run(s))
    s["scoring-ingress"]["inputs"]["spec"]["ingressClassName"] = "nginx"
    # ALB actions mean nothing to another controller: there the block path names a missing Service.
    assert [(v["policy"], v["message"]) for v in run(s)] == [("k8s-ingress-backend-exists", (
        "Ingress scoring/scoring routes to Service 'block-admin', which the stack does not declare"))]
    fx.ingress_paths(s).pop(0)
    assert run(s) == []


def test_https_only_listeners_need_no_redirect_and_bad_listen_ports_are_named():
    s = fx.hardened()
    fx.annotations(s)[A + "listen-ports"] = '[{"HTTPS": 443}]'
    del fx.annotations(s)[A + "ssl-redirect"]
    assert run(s) == []
    fx.annotations(s)[A + "listen-ports"] = "443"
    assert [(v["policy"], v["message"]) for v in run(s)] == [(
        "k8s-alb-https-listener", "annotation alb.ingress.kubernetes.io/listen-ports is not a JSON list like "
                                  "[{\"HTTPS\": 443}]: '443'")]


def test_internet_facing_alb_with_waf_is_advisory_only():
    s = fx.hardened()
    fx.annotations(s).update({A + "scheme": "internet-facing", A + "wafv2-acl-arn": fx.WAF})
    assert [(v["policy"], v["enforcement"]) for v in run(s)] == [("k8s-alb-internal-scheme", "advisory")]


ADMIN_RULE = "k8s-ingress-admin-blocked"


def _admin_findings(s, config=None):
    return [(v["policy"], v["message"]) for v in run(s, config) if v["policy"] == ADMIN_RULE]


def _root(name="scoring"):
    return {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"number": 80.0}}}}


FIX = ("put a Prefix path /admin before it in the same rule, backend {service: {name: <action>, port: {name: "
       "use-annotation}}}, and annotation alb.ingress.kubernetes.io/actions.<action> of type fixed-response")


def test_admin_block_message_names_the_forwarding_path_and_the_order():
    s = fx.hardened()
    fx.ingress_paths(s).pop(0)
    assert _admin_findings(s) == [(ADMIN_RULE, (
        f"path / (Prefix) forwards /admin to 'scoring' with no earlier rule answering /admin with a 4xx: {FIX}"))]
    # "/" before "/admin": controllers since v2.4.3 sort the longer Prefix first, older ones do not.
    s = fx.hardened()
    fx.ingress_paths(s).reverse()
    assert _admin_findings(s) == [(ADMIN_RULE, (
        "path / (Prefix) forwards /admin to 'scoring' with no earlier rule answering /admin with a 4xx in manifest "
        f"order (controllers before v2.4.3): {FIX}"))]


@pytest.mark.parametrize("paths, where", [
    # ImplementationSpecific paths come after every Prefix path since v2.4.3: "/" wins.
    ([fx.admin_path("/admin*", "ImplementationSpecific"), _root()], "path / (Prefix)"),
    # Exact paths come first since v2.4.3, ahead of the Prefix /admin block.
    ([fx.admin_path(), {"path": "/admin/model/reload", "pathType": "Exact",
                        "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}],
     "path /admin/model/reload (Exact)"),
], ids=["wildcard-block", "exact-admin-route"])
def test_admin_block_that_only_the_manifest_order_keeps_first(paths, where):
    s = fx.hardened()
    fx.ingress_paths(s)[:] = paths
    assert [m.split(" forwards ")[0] for _, m in _admin_findings(s)] == [where]
    assert [m.split(" a 4xx ")[1].split(":")[0] for _, m in _admin_findings(s)] == [
        "in the controller's order since v2.4.3 (Exact, then Prefix longest first, then ImplementationSpecific)"]


@pytest.mark.parametrize("paths", [
    # The controller turns Prefix /admin/ into /admin and /admin/*, as it does /admin.
    [fx.admin_path("/admin/"), _root()],
    # An ALB wildcard pattern covering the prefix, ahead of an ImplementationSpecific "/*".
    [fx.admin_path("/admin*", "ImplementationSpecific"),
     {"path": "/*", "pathType": "ImplementationSpecific",
      "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}],
    # Only /v1 is published: nothing reaches /admin, nothing to block.
    [{"path": "/v1", "pathType": "Prefix", "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}],
    # Prefix /administration is another segment than /admin.
    [{"path": "/administration", "pathType": "Prefix",
      "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}],
    # So is every match of /administration*.
    [{"path": "/administration*", "pathType": "ImplementationSpecific",
      "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}],
], ids=["trailing-slash", "wildcard", "v1-only", "other-segment", "other-segment-wildcard"])
def test_admin_block_compliant_shapes(paths):
    s = fx.hardened()
    fx.ingress_paths(s)[:] = paths
    assert _admin_findings(s) == []


@pytest.mark.parametrize("paths, where", [
    # A path under /admin reaches an admin route as surely as "/".
    ([{"path": "/admin/model", "pathType": "Prefix",
       "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}], "path /admin/model (Prefix)"),
    ([{"path": "/admin/model/reload", "pathType": "Exact",
       "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}], "path /admin/model/reload (Exact)"),
    # A wildcard whose literal start is a prefix of /admin/.
    ([{"path": "/adm*", "pathType": "ImplementationSpecific",
       "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}], "path /adm* (ImplementationSpecific)"),
    # A wildcard under /admin/.
    ([{"path": "/admin/*/reload", "pathType": "ImplementationSpecific",
       "backend": {"service": {"name": "scoring", "port": {"number": 80.0}}}}],
     "path /admin/*/reload (ImplementationSpecific)"),
], ids=["prefix-under-admin", "exact-admin-route", "wildcard", "wildcard-under-admin"])
def test_admin_block_violating_shapes(paths, where):
    s = fx.hardened()
    fx.ingress_paths(s)[:] = paths
    assert [m.split(" forwards ")[0] for _, m in _admin_findings(s)] == [where]


def test_admin_block_on_one_host_does_not_cover_a_rule_for_every_host():
    s = fx.hardened()
    spec = s["scoring-ingress"]["inputs"]["spec"]
    spec["rules"] = [{"host": "score.example.com", "http": {"paths": [fx.admin_path(), _root()]}},
                     {"http": {"paths": [_root()]}}]
    assert [m.split(" forwards ")[0] for _, m in _admin_findings(s)] == ["path / (Prefix)"]
    # A host-less block first covers every host's rules.
    spec["rules"] = [{"http": {"paths": [fx.admin_path()]}},
                     {"host": "score.example.com", "http": {"paths": [_root()]}}]
    assert _admin_findings(s) == []


def test_admin_block_default_backend():
    s = fx.hardened()
    spec = s["scoring-ingress"]["inputs"]["spec"]
    spec["rules"] = [{"http": {"paths": [fx.admin_path()]}}]
    spec["defaultBackend"] = {"service": {"name": "scoring", "port": {"number": 80.0}}}
    assert _admin_findings(s) == []
    del spec["rules"]
    assert [m.split(" forwards ")[0] for _, m in _admin_findings(s)] == ["the default backend"]


def test_admin_block_prefixes_come_from_the_policy_config():
    s = fx.hardened()
    config = {ADMIN_RULE: {"adminPathPrefixes": ["/admin", "/internal"]}}
    assert [m.split(" with ")[0] for _, m in _admin_findings(s, config)] == ["path / (Prefix) forwards /internal to 'scoring'"]
    fx.ingress_paths(s).insert(1, fx.admin_path("/internal"))
    assert _admin_findings(s, config) == []


def test_admin_block_is_not_judged_on_another_ingress_class():
    s = fx.hardened()
    fx.ingress_paths(s).pop(0)
    s["scoring-ingress"]["inputs"]["spec"]["ingressClassName"] = "nginx"
    assert _admin_findings(s) == []


def test_trust_with_string_like_subject_is_rejected():
    s = fx.hardened()
    doc = json.loads(fx.trust_policy())
    cond = doc["Statement"][0]["Condition"]
    cond["StringLike"] = {k: v for k, v in cond["StringEquals"].items() if k.endswith(":sub")}
    cond["StringEquals"] = {k: v for k, v in cond["StringEquals"].items() if k.endswith(":aud")}
    s["scoring-irsa"]["inputs"]["assumeRolePolicy"] = json.dumps(doc)
    found = run(s)
    assert [(v["policy"], v["name"]) for v in found] == [("k8s-irsa-role-trust", "scoring-sa")]
    assert "does not pin :sub to exactly system:serviceaccount:scoring:scoring (StringEquals)" in found[0]["message"]


def test_auto_named_role_matches_its_arn():
    s = fx.hardened()
    del s["scoring-irsa"]["inputs"]["name"]
    s["scoring-sa"]["inputs"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = (
        f"arn:aws:iam::{fx.ACCOUNT}:role/scoring-irsa-1a2b3c4")
    assert run(s) == []


def test_unknown_load_balancer_attributes_cannot_be_judged_during_preview():
    s = fx.hardened()
    fx.annotations(s)[A + "load-balancer-attributes"] = UNKNOWN_STRING_VALUE  # names the log bucket output
    found = run(s)
    assert all(v["message"].startswith(CANT_RUN) and v["enforcement"] == "advisory" for v in found)
    assert policies(found) == ["k8s-alb-access-logs", "k8s-alb-deletion-protection", "k8s-alb-desync-mitigation",
                               "k8s-alb-drop-invalid-headers"]


def test_names_that_only_mention_a_credential_are_not_credentials():
    s = fx.hardened()
    fx.app(s)["env"].extend([{"name": "BEDROCK_MAX_TOKENS", "value": "512"},
                             {"name": "REDIS_AUTH_TOKEN_SECRET_ARN", "value": "arn:aws:secretsmanager:x"},
                             {"name": "REQUIRE_API_KEY", "value": "true"},
                             {"name": "TOKEN_ISSUER", "value": "fraudstack"}])
    assert run(s) == []
    fx.app(s)["env"].append({"name": "REDIS_AUTH_TOKEN", "value": "test-key-not-a-secret"})
    assert [(v["policy"], v["message"]) for v in run(s)] == [(
        "k8s-no-credentials-in-env", "container 'scoring' env 'REDIS_AUTH_TOKEN' looks like a credential given "
                                     "as a literal (read it from Secrets Manager at start-up)")]


def test_egress_rule_without_a_port_number_opens_every_port_of_its_protocol():
    s = fx.hardened()
    s["allow-egress"]["inputs"]["spec"]["egress"][1]["ports"] = [{"protocol": "TCP"}]
    assert [v["message"] for v in run(s)] == ["egress[1] allows every TCP port"]


def test_alb_deletion_protection_is_mandatory_in_production_and_advisory_in_staging():
    s = fx.hardened()
    key = A + "load-balancer-attributes"
    fx.annotations(s)[key] = fx.annotations(s)[key].replace("deletion_protection.enabled=true", "deletion_protection.enabled=false")
    for stack, level in (("production", "mandatory"), ("staging", "advisory")):
        ids = {r.id for r in fx.K8S_RULES}
        found = run(s, {k: v for k, v in load_config(stack).items() if k in ids})
        assert [(v["policy"], v["enforcement"]) for v in found] == [("k8s-alb-deletion-protection", level)]


@pytest.mark.parametrize("image,risky", [
    ("docker.io/kubernetesui/dashboard:v2.7.0", True), ("registry.k8s.io/git-sync/git-sync:v4.2.1", True),
    ("gcr.io/kubernetes-helm/tiller:v2.16.0", True), (fx.IMAGE.replace("fraudstack/scoring", "ops/dashboard"), False),
])
def test_risky_tool_images(image, risky):
    s = fx.hardened()
    fx.app(s)["image"] = image
    found = [v for v in run(s) if v["policy"] == "k8s-no-risky-tools"]
    assert [v["name"] for v in found] == (["scoring"] if risky else [])


def test_redis_url_with_password_and_no_user_is_a_credential():
    s = fx.hardened()
    fx.app(s)["env"].append({"name": "REDIS_URL", "value": "rediss://:test-key-not-a-secret@cache:6379/0"})
    assert [v["message"] for v in run(s)] == [
        "container 'scoring' env 'REDIS_URL' holds a URL with an embedded password (read it from Secrets Manager at start-up)"]


def test_unknown_role_arn_and_unknown_trust_cannot_be_judged_during_preview():
    s = fx.hardened()
    s["scoring-sa"]["inputs"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = UNKNOWN_STRING_VALUE
    s["scoring-irsa"]["inputs"]["assumeRolePolicy"] = UNKNOWN_STRING_VALUE  # names the OIDC provider output
    found = run(s, rules=[r for r in fx.K8S_RULES if r.id == "k8s-irsa-role-trust"])
    assert [(v["enforcement"], v["message"][:55]) for v in found] == [
        ("advisory", "can't run policy 'k8s-irsa-role-trust' from policy pack")]
    assert "assumeRolePolicy" in found[0]["message"]


def test_known_role_arn_with_unknown_trust_cannot_be_judged_during_preview():
    s = fx.hardened()
    s["scoring-irsa"]["inputs"]["assumeRolePolicy"] = UNKNOWN_STRING_VALUE
    found = run(s, rules=[r for r in fx.K8S_RULES if r.id == "k8s-irsa-role-trust"])
    assert [v["enforcement"] for v in found] == ["advisory"] and found[0]["message"].startswith(CANT_RUN)


def test_the_load_balancer_controller_service_account_keeps_its_api_token():
    controller = fx.k8s(fx.SERVICE_ACCOUNT, "lbc-sa", metadata={
        "name": "aws-load-balancer-controller", "namespace": "kube-system"})
    other = fx.k8s(fx.SERVICE_ACCOUNT, "other-sa", metadata={"name": "reporter", "namespace": "kube-system"})
    rules = [r for r in fx.K8S_RULES if r.id in ("k8s-no-service-account-token-automount", "k8s-not-kube-system")]
    assert [(v["policy"], v["name"]) for v in run([controller, other], rules=rules)] == [
        ("k8s-no-service-account-token-automount", "other-sa"), ("k8s-not-kube-system", "other-sa")]


def test_unknown_role_arn_follows_the_plan_dependency_through_the_engine():
    s = fx.hardened()
    s["scoring-sa"]["inputs"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = UNKNOWN_STRING_VALUE
    s["scoring-sa"]["dependencies"] = ["scoring-ns", "other-irsa"]
    s["other-irsa"] = fx.plan_resource(fx.ROLE, "other-irsa", {"name": "other", "assumeRolePolicy": fx.trust_policy(
        subject="system:serviceaccount:batch:reporter")})
    rules = [r for r in fx.K8S_RULES if r.id == "k8s-irsa-role-trust"]
    found = run(s, rules=rules)
    assert [(v["name"], v["message"]) for v in found] == [(
        "scoring-sa", "ServiceAccount scoring/scoring: role 'other-irsa' statement 0 does not pin :sub to exactly "
                      "system:serviceaccount:scoring:scoring (StringEquals), it has {'StringEquals': "
                      "['system:serviceaccount:batch:reporter']}")]
    s["scoring-sa"]["dependencies"] = ["scoring-ns", "scoring-irsa"]
    assert run(s, rules=rules) == []


# --------------------------------------------------------------------------- Helm releases' pods

MON = "monitoring"
RESTRICTED = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "audit", "warn")}


def _mon_meta(name):
    return {"name": name, "namespace": MON, "labels": {"app.kubernetes.io/part-of": "fraudstack"}}


def with_monitoring(s, *, guards=True, instance="prometheus"):
    """The scoring stack plus a Prometheus release in its own guarded namespace, the way
    components/scoring_app.py declares it; ``instance`` is what the policy selects."""
    s["prom"] = fx.res(fx.HELM, "prom", parent="scoring-app", name="prometheus", chart="prometheus",
                       namespace=MON, version="25.27.0", values={"server": {}})
    s["prom-allow"] = fx.k8s(fx.NETWORK_POLICY, "prom-allow", metadata=_mon_meta("allow-prometheus"), spec={
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": instance}},
        "policyTypes": ["Ingress", "Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": fx.NS}},
                            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "scoring"}}}],
                    "ports": [{"port": 8080.0, "protocol": "TCP"}]}]})
    if guards:
        s["mon-ns"] = fx.k8s(fx.NAMESPACE, "mon-ns", metadata={"name": MON, "labels": dict(RESTRICTED)})
        s["mon-quota"] = fx.k8s(fx.QUOTA, "mon-quota", metadata=_mon_meta("quota"), spec={"hard": {"pods": "4"}})
        s["mon-limits"] = fx.k8s(fx.LIMITS, "mon-limits", metadata=_mon_meta("limits"), spec={"limits": [
            {"type": "Container", "default": {"cpu": "100m"}, "defaultRequest": {"cpu": "100m"}}]})
        s["mon-deny"] = fx.k8s(fx.NETWORK_POLICY, "mon-deny", metadata=_mon_meta("default-deny"), spec={
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    return s


def test_policies_selecting_a_releases_pods_by_helm_labels_select_pods():
    # K42 sees the release's pods by app.kubernetes.io/instance and /name; the default deny
    # ({} selects every pod) counts too; the scrape on 8080 goes to named pods (X18).
    assert run(with_monitoring(fx.hardened())) == []


def test_a_typo_in_the_release_name_selects_nothing():
    found = run(with_monitoring(fx.hardened(), instance="promethues"))
    assert [(v["policy"], v["name"]) for v in found] == [("k8s-networkpolicy-targets-pods", "prom-allow")]
    assert found[0]["message"].startswith("NetworkPolicy monitoring/allow-prometheus selects no pod of the stack")


def test_a_policy_naming_labels_the_pack_cannot_see_is_reported():
    """Chart-specific labels (component: server) are invisible to the pack: select by
    Helm's instance and name labels."""
    s = with_monitoring(fx.hardened())
    s["prom-allow"]["inputs"]["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] = "server"
    assert [(v["policy"], v["name"]) for v in run(s)] == [("k8s-networkpolicy-targets-pods", "prom-allow")]


def test_name_override_and_repository_prefixes_name_the_chart():
    s = with_monitoring(fx.hardened())
    s["prom"]["inputs"].update(chart="prometheus-community/prometheus")
    assert run(s) == []
    s["prom"]["inputs"]["values"]["nameOverride"] = "metrics"
    assert policies(run(s)) == ["k8s-networkpolicy-targets-pods"]
    s["prom-allow"]["inputs"]["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] = "metrics"
    assert run(s) == []


def test_an_auto_named_release_has_no_known_pods():
    s = with_monitoring(fx.hardened())
    del s["prom"]["inputs"]["name"]
    # Its pods' instance label is only known once Pulumi has named it.
    assert policies(run(s)) == ["k8s-networkpolicy-targets-pods"]


def test_a_release_namespace_without_guards_is_a_namespace_in_use():
    s = with_monitoring(fx.hardened(), guards=False)
    found = run(s)
    assert sorted((v["policy"], v["name"]) for v in found) == [
        ("k8s-namespace-default-deny", "prom"), ("k8s-namespace-limit-range", "prom"),
        ("k8s-namespace-resource-quota", "prom")]
    by_policy = {v["policy"]: v["message"] for v in found}
    assert by_policy["k8s-namespace-default-deny"] == (
        "namespace monitoring has no default-deny NetworkPolicy for ingress and egress (podSelector {} with no rules)")
    # kube-system stays the cluster's: the controller's release there needs none of it.
    assert s["lb-controller"]["inputs"]["namespace"] == "kube-system"


def test_other_ports_are_allowed_only_towards_named_pods():
    s = with_monitoring(fx.hardened())
    rule = s["prom-allow"]["inputs"]["spec"]["egress"][0]
    for peer, allowed in [
        ({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "scoring"}}}, True),
        ({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]}}, True),
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": fx.NS}}}, False),  # any pod there
        ({"podSelector": {}}, False),  # every pod of the namespace
        ({"ipBlock": {"cidr": fx.VPC_CIDR}}, False),  # can leave the cluster
    ]:
        rule["to"] = [peer]
        found = run(s)
        assert (found == []) is allowed, (peer, found)
        if not allowed:
            assert [(v["policy"], v["message"]) for v in found] == [(
                "k8s-networkpolicy-egress-allowlist",
                "egress[0] allows 8080/TCP, not in the allow-list 443/TCP, 53/TCP, 53/UDP, 5432/TCP, 6379/TCP "
                "(other ports only towards pods named by a podSelector)")]
    # One peer that may leave the cluster spoils the rule.
    rule["to"] = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "scoring"}}}, {"ipBlock": {"cidr": fx.VPC_CIDR}}]
    assert policies(run(s)) == ["k8s-networkpolicy-egress-allowlist"]
    # A port range is never allowed, even towards pods.
    rule["to"] = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "scoring"}}}]
    rule["ports"] = [{"port": 8080.0, "endPort": 8090.0, "protocol": "TCP"}]
    assert policies(run(s)) == ["k8s-networkpolicy-egress-allowlist"]
