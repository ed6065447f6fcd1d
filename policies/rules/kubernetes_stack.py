"""Kubernetes rules that need more than one object (K41-K44, K48, K50, K52, K54, K57,
K66, K67, X3, X19).

Objects are matched the way the API server would: by namespace and ``metadata.name``
(the Pulumi logical name when the program lets Pulumi auto-name the object), and pods by
label selectors against the workloads' pod templates. An object without
``metadata.namespace`` is matched with other objects without one (they share the
provider's default namespace).

Helm releases (``kubernetes:helm.sh/v3:Release``) reach the pack as one resource: the
chart's rendered objects are not in the plan. What the pack does know is Helm's standard
labelling: a release's pods carry ``app.kubernetes.io/instance: <release name>`` and
``app.kubernetes.io/name: <chart name or values.nameOverride>`` (:func:`chart_pods`).
K42 counts a NetworkPolicy as selecting pods when it selects those labels (or every pod)
in the release's namespace, and a release's namespace is a namespace in use for K43, K66
and K67. Rules about the pods' own specs (K41, K44, K48, ...) cannot see chart pods.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError

from ..model import Rule, Stack
from .kubernetes_ingress import ACTION_PORT as ALB_ACTION_PORT
from .kubernetes_ingress import PREFIX as ALB_PREFIX
from .kubernetes_ingress import alb_annotations
from .k8s_objects import (
    DIGEST,
    ECR_REPOSITORY,
    HELM_RELEASE,
    HPA,
    HPA_V1,
    IAM_ROLE,
    INGRESS,
    LIMIT_RANGE,
    NAMESPACE,
    NETWORK_POLICY,
    PDB,
    POD_TYPES,
    REPLICATED_TYPES,
    RESOURCE_QUOTA,
    SERVICE,
    SERVICE_ACCOUNT,
    UNKNOWN,
    PodTemplate,
    as_list,
    as_map,
    containers,
    fmt,
    get,
    is_map,
    label_selector_matches,
    map_selector_matches,
    namespace_of,
    number,
    object_name,
    peek,
    pod_template,
    split_image,
)

Finding = tuple[PolicyResource | None, str]


@dataclass(frozen=True)
class Obj:
    """A Kubernetes object of the stack with its API name and namespace."""

    resource: PolicyResource
    name: str
    namespace: str | None

    @property
    def props(self) -> Mapping[str, Any]:
        return self.resource.props

    @property
    def ref(self) -> str:
        """How messages name it: ``namespace/name``."""
        return f"{self.namespace or '(default namespace)'}/{self.name}"


@dataclass(frozen=True)
class Workload(Obj):
    """A workload and the pod template it runs."""

    template: PodTemplate
    kind: str


def objects(stack: Stack, *types: str) -> list[Obj]:
    """The stack's objects of the given types."""
    return [Obj(r, object_name(r.props, r.name), namespace_of(r.props)) for r in stack.of_type(*types)]


def workloads(stack: Stack, types: tuple[str, ...] = POD_TYPES) -> list[Workload]:
    """Every workload of the stack with its pod template."""
    out = []
    for r in stack.of_type(*types):
        t = pod_template(r.resource_type, r.props)
        if t is not None:
            out.append(Workload(r, object_name(r.props, r.name), namespace_of(r.props), t,
                                r.resource_type.rsplit(":", 1)[-1]))
    return out


@dataclass(frozen=True)
class ChartPods:
    """The pods of a Helm release as far as the pack can know them: Helm's standard labels."""

    resource: PolicyResource
    release: str
    namespace: str | None
    labels: Mapping[str, str]


def chart_pods(stack: Stack) -> list[ChartPods]:
    """One entry per Helm release whose name and chart are known (an auto-named release's
    ``app.kubernetes.io/instance`` is unknown until it exists, so it is left out)."""
    out = []
    for r in stack.of_type(HELM_RELEASE):
        release, chart, ns = peek(r.props, "name"), peek(r.props, "chart"), peek(r.props, "namespace")
        if not (isinstance(release, str) and release and isinstance(chart, str) and chart):
            continue
        override = peek(r.props, "values", "nameOverride")
        name = override if isinstance(override, str) and override else chart.rstrip("/").rsplit("/", 1)[-1]
        out.append(ChartPods(r, release, ns if isinstance(ns, str) and ns else None,
                             {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": release}))
    return out


def _hpa_targets(stack: Stack) -> dict[tuple[str | None, str, str], Obj]:
    """(namespace, kind, name) of every HPA scale target -> the HPA."""
    out = {}
    for hpa in objects(stack, HPA, HPA_V1):
        ref = as_map(get(hpa.props, "spec", "scaleTargetRef"))
        out[(hpa.namespace, str(get(ref, "kind")), str(get(ref, "name")))] = hpa
    return out


def _replicas(w: Workload, hpas: Mapping[tuple[str | None, str, str], Obj]) -> float:
    """The fewest pods a workload runs: the HPA's minReplicas when scaled, else spec.replicas."""
    hpa = hpas.get((w.namespace, w.kind, w.name))
    if hpa is not None:
        return number(get(hpa.props, "spec", "minReplicas")) or 1
    replicas = number(get(w.props, "spec", "replicas"))
    return 1 if replicas is None else replicas


# --------------------------------------------------------------------------- K41-K43
def _is_deny_all(np: Obj, direction: str) -> bool:
    """A NetworkPolicy selecting every pod that denies all traffic in one direction."""
    spec = as_map(get(np.props, "spec"))
    if as_map(get(spec, "podSelector")) and (as_map(get(spec, "podSelector", "matchLabels"))
                                             or as_list(get(spec, "podSelector", "matchExpressions"))):
        return False
    types = [str(t) for t in as_list(get(spec, "policyTypes"))]
    if not types:
        # The API server's defaulting: Ingress always, Egress when egress rules exist.
        types = ["Ingress"] + (["Egress"] if get(spec, "egress") is not None else [])
    return direction in types and not as_list(get(spec, direction.lower()))


def _pods_selected(stack: Stack, cfg) -> Iterator[Finding]:
    policies = objects(stack, NETWORK_POLICY)
    for w in workloads(stack):
        if not any(np.namespace == w.namespace and label_selector_matches(get(np.props, "spec", "podSelector"), w.template.labels)
                   for np in policies):
            yield w.resource, f"{w.kind} {w.ref}: no NetworkPolicy selects its pods (they accept and send anything)"


def _np_targets(stack: Stack, cfg) -> Iterator[Finding]:
    loads = [(w.namespace, w.template.labels) for w in workloads(stack)]
    loads += [(c.namespace, c.labels) for c in chart_pods(stack)]
    for np in objects(stack, NETWORK_POLICY):
        selector = get(np.props, "spec", "podSelector")
        if not any(ns == np.namespace and label_selector_matches(selector, pod_labels) for ns, pod_labels in loads):
            yield np.resource, (f"NetworkPolicy {np.ref} selects no pod of the stack (a typo leaves pods open; "
                                "a Helm release's pods are known by app.kubernetes.io/instance and /name only)")


def _namespaces_in_use(stack: Stack) -> list[tuple[str | None, PolicyResource]]:
    """Namespaces the stack declares, runs workloads in or installs Helm releases into
    (kube-system excluded: cluster-owned)."""
    seen: dict[str | None, PolicyResource] = {}
    for ns in objects(stack, NAMESPACE):
        seen.setdefault(ns.name, ns.resource)
    for w in workloads(stack):
        seen.setdefault(w.namespace, w.resource)
    for c in chart_pods(stack):
        seen.setdefault(c.namespace, c.resource)
    return [(n, r) for n, r in seen.items() if n != "kube-system"]


def _default_deny(stack: Stack, cfg) -> Iterator[Finding]:
    policies = objects(stack, NETWORK_POLICY)
    for ns, resource in _namespaces_in_use(stack):
        missing = [d for d in ("Ingress", "Egress")
                   if not any(np.namespace == ns and _is_deny_all(np, d) for np in policies)]
        if missing:
            yield resource, (f"namespace {ns or '(default)'} has no default-deny NetworkPolicy for "
                             f"{' and '.join(missing).lower()} (podSelector {{}} with no rules)")


# --------------------------------------------------------------------------- K44, K48, K50, K52
def _replicas_rule(stack: Stack, cfg) -> Iterator[Finding]:
    hpas = _hpa_targets(stack)
    for w in workloads(stack, REPLICATED_TYPES):
        if (w.namespace, w.kind, w.name) in hpas:
            continue  # the HPA's minReplicas decides (k8s-hpa-min-replicas)
        replicas = _replicas(w, hpas)
        if replicas < 2:
            yield w.resource, f"{w.kind} {w.ref} runs {fmt(replicas)} replica(s) and no HPA (>= 2 needed)"


def _pdb_covers(stack: Stack, cfg) -> Iterator[Finding]:
    pdbs = objects(stack, PDB)
    for w in workloads(stack, REPLICATED_TYPES):
        if not any(p.namespace == w.namespace and label_selector_matches(get(p.props, "spec", "selector"), w.template.labels)
                   for p in pdbs):
            yield w.resource, f"{w.kind} {w.ref} has no PodDisruptionBudget (a node drain may evict every replica)"


def _hpa_target_exists(stack: Stack, cfg) -> Iterator[Finding]:
    names = {(w.namespace, w.kind, w.name) for w in workloads(stack)}
    for hpa in objects(stack, HPA, HPA_V1):
        ref = as_map(get(hpa.props, "spec", "scaleTargetRef"))
        kind, name = get(ref, "kind"), get(ref, "name")
        if not kind or not name:
            yield hpa.resource, f"HorizontalPodAutoscaler {hpa.ref} has no scaleTargetRef kind and name"
        elif (hpa.namespace, kind, name) not in names:
            yield hpa.resource, f"HorizontalPodAutoscaler {hpa.ref} targets {kind} {name!r}, which the stack does not declare"


def _hpa_no_replicas(stack: Stack, cfg) -> Iterator[Finding]:
    hpas = _hpa_targets(stack)
    for w in workloads(stack, REPLICATED_TYPES):
        if (w.namespace, w.kind, w.name) in hpas and get(w.props, "spec", "replicas") is not None:
            yield w.resource, (f"{w.kind} {w.ref} sets spec.replicas although an HPA scales it "
                               "(every deployment resets the replica count)")


# --------------------------------------------------------------------------- K54, K57
def _service_targets(stack: Stack, cfg) -> Iterator[Finding]:
    loads = workloads(stack)
    for svc in objects(stack, SERVICE):
        if get(svc.props, "spec", "type") == "ExternalName":
            continue
        selector = as_map(get(svc.props, "spec", "selector"))
        if not selector:
            yield svc.resource, f"Service {svc.ref} has no selector"
        elif not any(w.namespace == svc.namespace and map_selector_matches(selector, w.template.labels) for w in loads):
            labels = ", ".join(f"{k}={v}" for k, v in selector.items())
            yield svc.resource, f"Service {svc.ref} selects no pod of the stack ({labels})"


def _backends(ingress: Obj) -> Iterator[Mapping[str, Any]]:
    default = get(ingress.props, "spec", "defaultBackend", "service")
    if is_map(default):
        yield default
    for rule in as_list(get(ingress.props, "spec", "rules")):
        for path in as_list(get(rule, "http", "paths")):
            backend = get(path, "backend", "service")
            if is_map(backend):
                yield backend


def _ingress_backends(stack: Stack, cfg) -> Iterator[Finding]:
    services = {(s.namespace, s.name): s for s in objects(stack, SERVICE)}
    for ing in objects(stack, INGRESS):
        alb = alb_annotations(ing.props)
        for backend in _backends(ing):
            name = get(backend, "name")
            if alb is not None and get(backend, "port", "name") == ALB_ACTION_PORT:
                # An AWS Load Balancer Controller action (fixed response, redirect, ...),
                # defined by an annotation named after the backend, not a Service.
                if peek(alb, f"{ALB_PREFIX}actions.{name}") is None:
                    yield ing.resource, (f"Ingress {ing.ref} routes to ALB action {name!r} (port {ALB_ACTION_PORT}), "
                                         f"which has no {ALB_PREFIX}actions.{name} annotation")
                continue
            svc = services.get((ing.namespace, name))
            if svc is None:
                yield ing.resource, f"Ingress {ing.ref} routes to Service {name!r}, which the stack does not declare"
                continue
            ports = as_list(get(svc.props, "spec", "ports"))
            number_, port_name = number(get(backend, "port", "number")), get(backend, "port", "name")
            if number_ is not None and not any(number(get(p, "port")) == number_ for p in ports):
                yield ing.resource, f"Ingress {ing.ref} routes to port {fmt(number_)} of Service {name!r}, which has no such port"
            elif port_name is not None and not any(get(p, "name") == port_name for p in ports):
                yield ing.resource, f"Ingress {ing.ref} routes to port {port_name!r} of Service {name!r}, which has no such port"


# --------------------------------------------------------------------------- K66, K67
def _namespace_has(kind_type: str, what: str):
    def check(stack: Stack, cfg) -> Iterator[Finding]:
        have = {o.namespace for o in objects(stack, kind_type)}
        for ns, resource in _namespaces_in_use(stack):
            if ns not in have:
                yield resource, f"namespace {ns or '(default)'} has no {what}"
    return check


# --------------------------------------------------------------------------- X19
def _drain_allowed(pdb: Obj, pods: float) -> str | None:
    spec = as_map(get(pdb.props, "spec"))
    max_unavailable, min_available = get(spec, "maxUnavailable"), get(spec, "minAvailable")
    if max_unavailable is not None:
        if isinstance(max_unavailable, str):
            pct = _percent(max_unavailable)
            if pct is None or pct <= 0:
                return f"maxUnavailable {max_unavailable!r} lets no pod be evicted"
        elif (number(max_unavailable) or 0) < 1:
            return f"maxUnavailable {fmt(number(max_unavailable) or 0)} lets no pod be evicted"
        return None
    if min_available is None:
        return None  # k8s-pdb-has-policy reports it
    if isinstance(min_available, str):
        pct = _percent(min_available)
        needed = math.ceil((pct if pct is not None else 100) * pods / 100)
    else:
        needed = number(min_available) or 0
    if needed >= pods:
        return (f"minAvailable {min_available if isinstance(min_available, str) else fmt(needed)} keeps all "
                f"{fmt(pods)} pod(s): no eviction is ever allowed")
    return None


def _percent(value: str) -> float | None:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)%\s*", value)
    return float(m.group(1)) if m else None


def _pdb_allows_drain(stack: Stack, cfg) -> Iterator[Finding]:
    hpas = _hpa_targets(stack)
    loads = workloads(stack, REPLICATED_TYPES)
    for pdb in objects(stack, PDB):
        selector = get(pdb.props, "spec", "selector")
        matched = [w for w in loads if w.namespace == pdb.namespace and label_selector_matches(selector, w.template.labels)]
        if not matched:
            continue  # a PDB over no pod blocks nothing (k8s-pdb-covers-workload sees the gap)
        problem = _drain_allowed(pdb, sum(_replicas(w, hpas) for w in matched))
        if problem:
            yield pdb.resource, f"PodDisruptionBudget {pdb.ref} blocks node drains: {problem}"


# --------------------------------------------------------------------------- K33
_ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/(?P<repo>[^:@]+)$")


def _immutable_repositories(stack: Stack) -> set[str]:
    """Names of the stack's ECR repositories whose tags cannot be overwritten."""
    out = set()
    for repo in stack.of_type(ECR_REPOSITORY):
        if not str(peek(repo.props, "imageTagMutability") or "MUTABLE").startswith("IMMUTABLE"):
            continue
        name = peek(repo.props, "name")
        out.add(name if isinstance(name, str) else repo.name)
        url = peek(repo.props, "repositoryUrl")  # an output, when the plan records outputs
        if isinstance(url, str) and "/" in url:
            out.add(url.split("/", 1)[1])
    return out


def _pinned_images(stack: Stack, cfg) -> Iterator[Finding]:
    immutable = _immutable_repositories(stack)
    for w in workloads(stack):
        for c in containers(w.template.spec):
            image = c.get("image")
            if not isinstance(image, str) or DIGEST.search(image):
                continue
            name, tag, _ = split_image(image)
            m = _ECR_IMAGE.match(name)
            if tag and tag != "latest" and m and m.group("repo") in immutable:
                continue
            yield w.resource, (f"{w.kind} {w.ref} {c.label} image {image!r} is neither pinned by sha256 digest "
                               "nor a tag of an IMMUTABLE ECR repository of the stack (the tag can be re-pushed)")


# --------------------------------------------------------------------------- X3
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/(?:.*/)?([^/]+)$")
_ANNOTATION = "eks.amazonaws.com/role-arn"


def _role_named(role: PolicyResource, arn: str) -> bool:
    """Whether ``arn`` is this role's ARN (by the role's arn, name, name prefix or auto-name)."""
    if peek(role.props, "arn") == arn:
        return True
    m = _ROLE_ARN.match(arn)
    if not m:
        return False
    role_name = m.group(1)
    name = peek(role.props, "name")
    if isinstance(name, str):
        return name == role_name
    prefix = peek(role.props, "namePrefix")
    if isinstance(prefix, str):
        return role_name.startswith(prefix)
    # Auto-named: Pulumi appends a dash and seven random hex characters to the logical name.
    return role_name == role.name or re.fullmatch(re.escape(role.name) + r"-[0-9a-f]{7}", role_name) is not None


def _trust(role: PolicyResource) -> Any:
    doc = get(role.props, "assumeRolePolicy")
    if isinstance(doc, str):
        try:
            return json.loads(doc)
        except ValueError:
            return None
    return doc


def _web_identity_statements(doc: Any) -> list[Mapping[str, Any]]:
    stmts = get(doc, "Statement")
    stmts = [stmts] if is_map(stmts) else as_list(stmts)
    out = []
    for s in stmts:
        actions = get(s, "Action")
        actions = [actions] if isinstance(actions, str) else [str(a) for a in as_list(actions)]
        if get(s, "Effect") == "Allow" and any(a in ("sts:AssumeRoleWithWebIdentity", "sts:*", "*") for a in actions):
            out.append(s)
    return out


def _condition_values(stmt: Mapping[str, Any], suffix: str) -> dict[str, list[str]]:
    """operator -> values of every condition key ending in ``suffix`` (``:sub``/``:aud``)."""
    out: dict[str, list[str]] = {}
    for op, block in as_map(get(stmt, "Condition")).items():
        for key, values in as_map(block).items():
            if str(key).endswith(suffix):
                vals = [values] if isinstance(values, str) else [str(v) for v in as_list(values)]
                out.setdefault(str(op), []).extend(vals)
    return out


def _trust_problems(role: PolicyResource, subject: str) -> list[str]:
    doc = _trust(role)
    stmts = _web_identity_statements(doc)
    if not stmts:
        return [f"role {role.name!r} has no Allow sts:AssumeRoleWithWebIdentity statement"]
    problems = []
    for i, s in enumerate(stmts):
        sub, aud = _condition_values(s, ":sub"), _condition_values(s, ":aud")
        if sub != {"StringEquals": [subject]}:
            problems.append(f"role {role.name!r} statement {i} does not pin :sub to exactly {subject} "
                            f"(StringEquals), it has {sub or 'no :sub condition'}")
        if aud != {"StringEquals": ["sts.amazonaws.com"]}:
            problems.append(f"role {role.name!r} statement {i} does not pin :aud to sts.amazonaws.com, "
                            f"it has {aud or 'no :aud condition'}")
    return problems


def _trusting(roles: list[PolicyResource], subject: str) -> list[PolicyResource]:
    """The roles whose trust names ``subject``. When none does but some trust policy is
    unknown during preview, the answer is unknown too: that error propagates."""
    found, unknown = [], None
    for role in roles:
        try:
            doc = _trust(role)
        except UnknownValueError as e:
            unknown = e
            continue
        if any(subject in _condition_values(s, ":sub").get("StringEquals", []) for s in _web_identity_statements(doc)):
            found.append(role)
    if not found and unknown is not None:
        raise unknown
    return found


def _irsa(stack: Stack, cfg) -> Iterator[Finding]:
    roles = stack.of_type(IAM_ROLE)
    for sa in objects(stack, SERVICE_ACCOUNT):
        annotations = as_map(get(sa.props, "metadata", "annotations"))
        arn = peek(annotations, _ANNOTATION)
        if arn is None:
            continue
        subject = f"system:serviceaccount:{sa.namespace or 'default'}:{sa.name}"
        if arn is UNKNOWN:
            # The ARN is computed during preview: find the role through the annotation's
            # dependency (the policy server passes them), else as the one role trusting this SA.
            deps = [*((sa.resource.property_dependencies or {}).get("metadata") or []),
                    *(sa.resource.dependencies or [])]
            matched = [d for d in deps if getattr(d, "resource_type", None) == IAM_ROLE]
            if not matched:
                matched = _trusting(roles, subject)
            shown = "(computed during preview)"
        else:
            matched = [r for r in roles if _role_named(r, str(arn))]
            shown = str(arn)
        matched = list({r.urn: r for r in matched}.values())
        if len(matched) != 1:
            what = "no IAM role of the stack" if not matched else f"{len(matched)} IAM roles"
            yield sa.resource, f"ServiceAccount {sa.ref}: {_ANNOTATION} {shown} matches {what}"
            continue
        for problem in _trust_problems(matched[0], subject):
            yield sa.resource, f"ServiceAccount {sa.ref}: {problem}"


def _stack_rule(id: str, name: str, refs: tuple[str, ...], severity: str, description: str,
                remediation: str, check, types: tuple[str, ...], **kw: Any) -> Rule:
    return Rule(id=id, name=name, description=description, severity=severity,
                enforcement=kw.pop("enforcement", "mandatory"), resource_types=types, references=refs,
                remediation=remediation, check=check, stack=True, **kw)


RULES: list[Rule] = [
    _stack_rule("k8s-pods-selected-by-networkpolicy", "Every pod selected by a NetworkPolicy", ("K41",), "high",
                "Every workload's pods are selected by at least one NetworkPolicy of their namespace (the pods a "
                "Helm release renders are not visible to the pack; K43 covers their namespace).",
                "Add a default-deny NetworkPolicy (podSelector {}) plus the allow rules the pods need.",
                _pods_selected, (*POD_TYPES, NETWORK_POLICY)),
    _stack_rule("k8s-networkpolicy-targets-pods", "NetworkPolicy selects pods", ("K42",), "low",
                "Every NetworkPolicy selects at least one pod of the stack (a selector typo protects nothing); a "
                "Helm release's pods count by Helm's standard labels app.kubernetes.io/instance and /name only.",
                "Fix spec.podSelector to match the workload's pod labels (for a Helm release's pods: "
                "app.kubernetes.io/instance and app.kubernetes.io/name).", _np_targets,
                (*POD_TYPES, NETWORK_POLICY, HELM_RELEASE)),
    _stack_rule("k8s-namespace-default-deny", "Default-deny NetworkPolicy per namespace", ("K43",), "high",
                "Every namespace the stack uses (declares, runs workloads in or installs a Helm release into; "
                "kube-system excepted) has NetworkPolicies denying all ingress and all egress by default, so only "
                "the listed flows are open.",
                "Add a NetworkPolicy with podSelector {} and policyTypes [Ingress, Egress] and no rules.",
                _default_deny, (NAMESPACE, *POD_TYPES, NETWORK_POLICY, HELM_RELEASE)),
    _stack_rule("k8s-replicas", "At least two replicas", ("K44",), "medium",
                "A Deployment or StatefulSet not scaled by an HPA runs at least two replicas.",
                "Add an HPA with minReplicas >= 2 or set spec.replicas >= 2.", _replicas_rule,
                (*REPLICATED_TYPES, HPA, HPA_V1)),
    _stack_rule("k8s-pdb-covers-workload", "Workload covered by a PDB", ("K48",), "medium",
                "Every Deployment and StatefulSet is selected by a PodDisruptionBudget.",
                "Add a PodDisruptionBudget with the workload's selector and maxUnavailable: 1.", _pdb_covers,
                (*REPLICATED_TYPES, PDB)),
    _stack_rule("k8s-hpa-target-exists", "HPA target exists", ("K50",), "medium",
                "Every HorizontalPodAutoscaler targets a workload the stack declares in its namespace.",
                "Point scaleTargetRef at the Deployment's kind and metadata.name.", _hpa_target_exists,
                (HPA, HPA_V1, *POD_TYPES)),
    _stack_rule("k8s-hpa-target-no-replicas", "HPA-scaled workload sets no replicas", ("K52",), "medium",
                "A workload scaled by an HPA leaves spec.replicas unset (else each deployment resets the scale).",
                "Remove spec.replicas from the Deployment.", _hpa_no_replicas, (HPA, HPA_V1, *REPLICATED_TYPES)),
    _stack_rule("k8s-service-targets-pods", "Service selects pods", ("K54",), "medium",
                "Every Service's selector matches the pods of a workload in its namespace.",
                "Use the workload's pod labels as the Service selector.", _service_targets, (SERVICE, *POD_TYPES)),
    _stack_rule("k8s-ingress-backend-exists", "Ingress backend exists", ("K57",), "medium",
                "Every Ingress backend names a Service (and port) the stack declares in the Ingress's namespace, "
                "or, on an ALB Ingress, an action annotation (port use-annotation).",
                "Point the backend at the Service's metadata.name and one of its ports, or annotate "
                "alb.ingress.kubernetes.io/actions.<name> for an ALB action.", _ingress_backends,
                (INGRESS, SERVICE)),
    _stack_rule("k8s-namespace-resource-quota", "Namespace has a ResourceQuota", ("K66",), "medium",
                "Every namespace the stack uses, Helm releases' included, has a ResourceQuota (a runaway HPA or a "
                "leak cannot take the cluster).",
                "Add a ResourceQuota to the namespace.", _namespace_has(RESOURCE_QUOTA, "ResourceQuota"),
                (NAMESPACE, RESOURCE_QUOTA, *POD_TYPES, HELM_RELEASE)),
    _stack_rule("k8s-namespace-limit-range", "Namespace has a LimitRange", ("K67",), "low",
                "Every namespace the stack uses, Helm releases' included, has a LimitRange (defaults for "
                "containers that set no resources).",
                "Add a LimitRange to the namespace.", _namespace_has(LIMIT_RANGE, "LimitRange"),
                (NAMESPACE, LIMIT_RANGE, *POD_TYPES, HELM_RELEASE)),
    _stack_rule("k8s-pdb-allows-drain", "PDB never blocks a node drain", ("X19",), "medium",
                "Every PodDisruptionBudget allows at least one eviction at the workload's minimum scale "
                "(maxUnavailable >= 1, or minAvailable below the replica count), so node upgrades can drain.",
                "Use spec.maxUnavailable: 1.", _pdb_allows_drain, (PDB, HPA, HPA_V1, *REPLICATED_TYPES)),
    _stack_rule("k8s-image-pinned", "Image pinned by digest or immutable tag", ("K33",), "high",
                "Every image is pinned by sha256 digest, or is a tag of an ECR repository of the stack with "
                "IMMUTABLE tag mutability, so what runs is exactly what was scanned and released.",
                "Reference the image as <repo>@sha256:<digest>, or set imageTagMutability IMMUTABLE on its "
                "ECR repository.", _pinned_images, (*POD_TYPES, ECR_REPOSITORY)),
    _stack_rule("k8s-irsa-role-trust", "Service account role trusts exactly that service account", ("X3",),
                "critical",
                "A ServiceAccount's eks.amazonaws.com/role-arn names an IAM role of the stack whose trust policy "
                "pins the OIDC :sub to system:serviceaccount:<namespace>:<name> and :aud to sts.amazonaws.com "
                "(StringEquals), so no other pod can assume it.",
                "Build the role's trust with StringEquals on <issuer>:sub and <issuer>:aud and annotate the "
                "ServiceAccount with that role's ARN.", _irsa, (SERVICE_ACCOUNT, IAM_ROLE)),
]
