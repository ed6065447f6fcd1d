"""Kubernetes workload and object rules (catalogue rows K1-K65, X7, X16, X18).

Pod-level rules read every workload kind through the one extractor
:func:`policies.rules.k8s_objects.pod_template`; container-level rules look at init and
ephemeral containers too, as the Pod Security Standards do. Messages name the
container. Rules that need another object (a PDB, an HPA, a Service's pods) live in
:mod:`policies.rules.kubernetes_stack`; the ALB Ingress annotations in
:mod:`policies.rules.kubernetes_ingress`; RBAC in :mod:`policies.rules.kubernetes_rbac`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..model import Param, Rule, with_type
from .k8s_objects import (
    CONFIG_MAP,
    DEPLOYMENT,
    HELM_RELEASE,
    HPA,
    HPA_V1,
    LONG_RUNNING_TYPES,
    NAMESPACE,
    NAMESPACED_TYPES,
    NETWORK_POLICY,
    OBJECT_TYPES,
    PDB,
    POD,
    POD_TYPES,
    REPLICATED_TYPES,
    SERVICE,
    SERVICE_ACCOUNT,
    UNKNOWN,
    Container,
    PodTemplate,
    as_list,
    as_map,
    containers,
    effective,
    fmt,
    get,
    is_list,
    is_map,
    label_selector_matches,
    namespace_of,
    number,
    peek,
    pod_template,
    split_image,
    text,
)

PodCheck = Callable[[PodTemplate, Mapping[str, Any]], Iterable[str]]


def _pod_rule(check: PodCheck) -> Callable[[Mapping[str, Any], Mapping[str, Any], str], Iterator[str]]:
    """Adapt a pod-template check to the model's ``check(props, cfg, resource_type)``: the
    one extractor finds the pod template of whichever workload kind it is given."""

    @with_type
    def run(props: Mapping[str, Any], cfg: Mapping[str, Any], resource_type: str) -> Iterator[str]:
        template = pod_template(resource_type, props)
        if template is not None:
            yield from check(template, cfg)

    run.__doc__ = check.__doc__
    return run


def _k8s_rule(id: str, name: str, refs: tuple[str, ...], severity: str, description: str,
              remediation: str, check, types: tuple[str, ...] = POD_TYPES, **kw: Any) -> Rule:
    return Rule(id=id, name=name, description=description, severity=severity,
                enforcement=kw.pop("enforcement", "mandatory"), resource_types=types,
                references=refs, remediation=remediation, check=check, **kw)


# --------------------------------------------------------------------------- K1-K21
def _privileged(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        if c.get("securityContext", "privileged") is True:
            yield f"{c.label} runs privileged (securityContext.privileged: true)"


def _escalation(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        if c.get("securityContext", "allowPrivilegeEscalation") is not False:
            yield f"{c.label} does not set securityContext.allowPrivilegeEscalation: false"


def _non_root(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        if effective(t.spec, c, "runAsNonRoot") is not True:
            yield f"{c.label} does not set runAsNonRoot: true (pod or container securityContext)"


def _ids(t: PodTemplate, cfg) -> Iterator[str]:
    minimum = cfg["minimumId"]
    for c in containers(t.spec):
        for key, what in (("runAsUser", "UID"), ("runAsGroup", "GID")):
            value = number(effective(t.spec, c, key))
            if value is None:
                yield f"{c.label} sets no {key}: the image decides the {what} (set it >= {minimum})"
            elif value < minimum:
                yield f"{c.label} runs with {key} {fmt(value)} (< {minimum}; host {what}s live below)"
    sc = as_map(get(t.spec, "securityContext"))
    fs_group = number(get(sc, "fsGroup"))
    if fs_group == 0:
        yield "pod securityContext.fsGroup is 0 (root group owns the volumes)"
    for g in as_list(get(sc, "supplementalGroups")):
        if number(g) == 0:
            yield "pod securityContext.supplementalGroups contains 0 (the root group)"


def _read_only_root(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        if c.get("securityContext", "readOnlyRootFilesystem") is not True:
            yield f"{c.label} does not set readOnlyRootFilesystem: true (mount an emptyDir for scratch)"


_ALLOWED_ADD = {"NET_BIND_SERVICE"}


def _capabilities(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        caps = as_map(c.get("securityContext", "capabilities"))
        drop = {str(x).upper() for x in as_list(get(caps, "drop"))}
        if "ALL" not in drop:
            yield f"{c.label} does not drop ALL capabilities"
        added = sorted({str(x).upper().removeprefix("CAP_") for x in as_list(get(caps, "add"))} - _ALLOWED_ADD)
        if added:
            yield f"{c.label} adds capabilities {', '.join(added)} (only NET_BIND_SERVICE may be added)"


_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def _seccomp(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        profile = text(get(as_map(effective(t.spec, c, "seccompProfile")), "type"))
        if profile not in _SECCOMP_OK:
            got = f"seccompProfile {profile}" if profile else "no seccompProfile"
            yield f"{c.label} has {got} (RuntimeDefault or Localhost required)"


def _apparmor(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        profile = text(get(as_map(effective(t.spec, c, "appArmorProfile")), "type"))
        if profile == "Unconfined":
            yield f"{c.label} runs with appArmorProfile Unconfined"
    for key, value in t.annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and value == "unconfined":
            yield f"pod annotation {key} is 'unconfined'"


_SELINUX_TYPES = {"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _selinux(t: PodTemplate, cfg) -> Iterator[str]:
    scopes = [("pod", as_map(get(t.spec, "securityContext", "seLinuxOptions")))]
    scopes += [(c.label, as_map(c.get("securityContext", "seLinuxOptions"))) for c in containers(t.spec)]
    for who, opts in scopes:
        for key in ("user", "role"):
            if get(opts, key):
                yield f"{who} sets seLinuxOptions.{key} (custom SELinux users and roles are not allowed)"
        se_type = get(opts, "type")
        if se_type and se_type not in _SELINUX_TYPES:
            yield f"{who} sets seLinuxOptions.type {se_type!r} (allowed: {', '.join(sorted(_SELINUX_TYPES))})"


def _host_namespaces(t: PodTemplate, cfg) -> Iterator[str]:
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if get(t.spec, key) is True:
            yield f"pod shares the node's namespace ({key}: true)"


def _host_ports(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        for p in as_list(c.get("ports")):
            host_port = number(get(p, "hostPort"))
            if host_port:
                yield f"{c.label} binds hostPort {fmt(host_port)}"


#: Volume types allowed by the restricted Pod Security Standard.
_CORE_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                 "projected", "secret"}


def _volumes(t: PodTemplate, cfg) -> Iterator[str]:
    for i, vol in enumerate(as_list(get(t.spec, "volumes"))):
        vol = as_map(vol)
        name = get(vol, "name") or f"volumes[{i}]"
        kinds = [k for k in vol if k != "name"]
        if "hostPath" in kinds:
            path = get(vol, "hostPath", "path") or "?"
            yield f"volume {name!r} mounts the node's filesystem (hostPath {path})"
            continue
        for kind in kinds:
            if kind not in _CORE_VOLUMES:
                yield f"volume {name!r} is of type {kind} (allowed: {', '.join(sorted(_CORE_VOLUMES))})"


def _proc_mount(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        mount = c.get("securityContext", "procMount")
        if mount is not None and mount != "Default":
            yield f"{c.label} sets procMount {mount!r} (only Default is allowed)"


#: Sysctls the baseline Pod Security Standard allows (namespaced, cannot reach the node).
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
}


def _sysctls(t: PodTemplate, cfg) -> Iterator[str]:
    for s in as_list(get(t.spec, "securityContext", "sysctls")):
        name = get(s, "name")
        if name not in _SAFE_SYSCTLS:
            yield f"pod sets sysctl {name!r}, which is not in the baseline safe set"


def _host_process(t: PodTemplate, cfg) -> Iterator[str]:
    if get(t.spec, "securityContext", "windowsOptions", "hostProcess") is True:
        yield "pod runs as a Windows HostProcess (windowsOptions.hostProcess: true)"
    for c in containers(t.spec):
        if c.get("securityContext", "windowsOptions", "hostProcess") is True:
            yield f"{c.label} runs as a Windows HostProcess (windowsOptions.hostProcess: true)"


_HANDLERS = ("livenessProbe", "readinessProbe", "startupProbe")


def _probe_host(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        handlers = [(h, c.get(h)) for h in _HANDLERS]
        handlers += [(f"lifecycle.{h}", c.get("lifecycle", h)) for h in ("postStart", "preStop")]
        for where, handler in handlers:
            for action in ("httpGet", "tcpSocket"):
                host = get(handler, action, "host")
                if host:
                    yield f"{c.label} {where}.{action}.host is {host!r} (probes must target the pod itself)"


def _security_context_set(t: PodTemplate, cfg) -> Iterator[str]:
    if not as_map(get(t.spec, "securityContext")):
        yield "pod spec has no securityContext"
    for c in containers(t.spec):
        if not as_map(c.get("securityContext")):
            yield f"{c.label} has no securityContext"


# --------------------------------------------------------------------------- K22-K25
@with_type
def _token_automount(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    # Controllers that talk to the API server (the load balancer controller) need the token.
    api_clients = set(cfg["apiClients"])
    if resource_type == SERVICE_ACCOUNT:
        if peek(props, "metadata", "name") in api_clients:
            return
        if get(props, "automountServiceAccountToken") is not False:
            yield "ServiceAccount does not set automountServiceAccountToken: false"
        return
    t = pod_template(resource_type, props)
    if t is not None and get(t.spec, "serviceAccountName") in api_clients:
        return
    if t is not None and get(t.spec, "automountServiceAccountToken") is not False:
        yield ("pod spec does not set automountServiceAccountToken: false (IRSA still works: the EKS "
               "webhook projects its own web-identity token)")


def _dedicated_sa(t: PodTemplate, cfg) -> Iterator[str]:
    sa = get(t.spec, "serviceAccountName") or get(t.spec, "serviceAccount")
    if not sa or sa == "default":
        yield "pod runs as the namespace's default ServiceAccount (set serviceAccountName to a dedicated one)"


def _secret_env(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        for e in as_list(c.get("env")):
            if get(e, "valueFrom", "secretKeyRef") is not None:
                yield f"{c.label} env {get(e, 'name')!r} comes from a Secret (mount it as a file instead)"
        for e in as_list(c.get("envFrom")):
            if get(e, "secretRef") is not None:
                yield f"{c.label} envFrom imports Secret {get(e, 'secretRef', 'name')!r} as environment"


#: Names ending in a credential word (``DB_PASSWORD``, ``REDIS_AUTH_TOKEN``); a name that
#: only contains one (``DB_SECRET_ARN``, ``MAX_TOKENS``) points at or counts something.
_SENSITIVE_NAME = re.compile(
    r"(PASSW(OR)?D|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY(_ID)?|CREDENTIALS?)$", re.I)
_SENSITIVE_VALUE = [
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"://[^/\s:@]*:[^/\s@]+@"), "a URL with an embedded password"),
]


def _credential_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value or value == "[secret]":
        # Unknown and secret values come from other resources or Pulumi secrets, not literals.
        return None
    for pattern, what in _SENSITIVE_VALUE:
        if pattern.search(value):
            return f"holds {what}"
    if value.lower() in ("true", "false") or value.isdigit():
        return None  # a switch or a size, not a credential
    if _SENSITIVE_NAME.search(name) and not value.startswith("arn:"):
        return "looks like a credential given as a literal"
    return None


@with_type
def _credentials(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    if resource_type == CONFIG_MAP:
        for section in ("data", "binaryData"):
            data = as_map(get(props, section))
            for key in data:
                problem = _credential_problem(str(key), peek(data, key))
                if problem:
                    yield f"ConfigMap {section} key {key!r} {problem}"
        return
    t = pod_template(resource_type, props)
    if t is None:
        return
    for c in containers(t.spec):
        for e in as_list(c.get("env")):
            name = str(get(e, "name") or "")
            problem = _credential_problem(name, peek(e, "value"))
            if problem:
                yield f"{c.label} env {name!r} {problem} (read it from Secrets Manager at start-up)"


# --------------------------------------------------------------------------- K26-K35
def _resource_check(section: str, resource: str) -> PodCheck:
    def check(t: PodTemplate, cfg) -> Iterator[str]:
        for c in containers(t.spec, kinds=("initContainers", "containers")):
            if c.get("resources", section, resource) is None:
                yield f"{c.label} sets no {resource} {section[:-1]}"
    check.__doc__ = f"every container sets resources.{section}.{resource}"
    return check


def _ephemeral(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec, kinds=("initContainers", "containers")):
        for section in ("requests", "limits"):
            if c.get("resources", section, "ephemeral-storage") is None:
                yield f"{c.label} sets no ephemeral-storage {section[:-1]}"


def _requests_equal_limits(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec, kinds=("initContainers", "containers")):
        for resource in ("cpu", "memory"):
            req = c.get("resources", "requests", resource)
            lim = c.get("resources", "limits", resource)
            if req is not None and lim is not None and str(req) != str(lim):
                yield f"{c.label} {resource} request {req} differs from its limit {lim}"


def _images(t: PodTemplate) -> Iterator[tuple[Container, str]]:
    for c in containers(t.spec):
        image = c.get("image")
        if isinstance(image, str):
            yield c, image


def _tag_not_latest(t: PodTemplate, cfg) -> Iterator[str]:
    for c, image in _images(t):
        _, tag, digest = split_image(image)
        if tag == "latest":
            yield f"{c.label} image {image!r} uses the mutable 'latest' tag"
        elif tag is None and digest is None:
            yield f"{c.label} image {image!r} has neither tag nor digest (implies 'latest')"


def _pull_policy(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        policy = c.get("imagePullPolicy")
        if policy != "Always":
            yield f"{c.label} imagePullPolicy is {policy or 'unset'} (Always re-checks registry access on every start)"


_ECR = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")


def _trusted_registry(t: PodTemplate, cfg) -> Iterator[str]:
    extra = [str(p) for p in cfg["allowedRegistries"]]
    for c, image in _images(t):
        if _ECR.match(image) or any(image.startswith(p.rstrip("/") + "/") for p in extra):
            continue
        yield f"{c.label} image {image!r} is not from a private ECR registry or an allowed one"


#: Tiller, the Kubernetes dashboard (kubernetes-dashboard chart, kubernetesui/dashboard image) and git-sync.
_RISKY_TOOLS = re.compile(r"((^|/)(tiller|kubernetes-dashboard|git-sync)|(^|/)kubernetesui/dashboard)$")


@with_type
def _risky_tools(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    if resource_type == HELM_RELEASE:
        chart = str(get(props, "chart") or "")
        if _RISKY_TOOLS.search(chart):
            yield f"Helm release installs {chart!r} (Tiller, the dashboard and git-sync are not allowed)"
        return
    t = pod_template(resource_type, props)
    for c, image in _images(t) if t else ():
        name, _, _ = split_image(image)
        if _RISKY_TOOLS.search(name):
            yield f"{c.label} runs {image!r} (Tiller, the dashboard and git-sync are not allowed)"


# --------------------------------------------------------------------------- K36-K38
def _probe_check(probe: str, what: str) -> PodCheck:
    def check(t: PodTemplate, cfg) -> Iterator[str]:
        for c in containers(t.spec, kinds=("containers",)):
            if not as_map(c.get(probe)):
                yield f"{c.label} has no {probe} ({what})"
    return check


def _probe_key(probe: Any) -> str:
    body = {k: probe[k] for k in probe if k in ("httpGet", "tcpSocket", "exec", "grpc")}
    return json.dumps(_plain(body), sort_keys=True)


def _plain(value: Any) -> Any:
    """Proxies to plain JSON values (for comparing probe actions)."""
    if is_map(value):
        return {k: _plain(value[k]) for k in value}
    if is_list(value):
        return [_plain(v) for v in value]
    return value


def _distinct_probes(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec, kinds=("containers",)):
        live, ready = as_map(c.get("livenessProbe")), as_map(c.get("readinessProbe"))
        if live and ready and _probe_key(live) == _probe_key(ready):
            yield (f"{c.label} liveness and readiness probes are identical (a slow dependency "
                   "would then restart pods instead of taking them out of rotation)")


# --------------------------------------------------------------------------- K39, K40, K59, K60
def _not_default_ns(props: Mapping[str, Any], cfg) -> Iterator[str]:
    ns = namespace_of(props)
    if ns is None:
        yield "metadata.namespace is not set (the object lands in the provider's default namespace)"
    elif ns == "default":
        yield "object is in the 'default' namespace"


def _not_kube_system(props: Mapping[str, Any], cfg) -> Iterator[str]:
    if namespace_of(props) == "kube-system":
        name = peek(props, "metadata", "name")
        if name not in cfg["allowedNames"]:
            yield f"object {name or '(auto-named)'!r} is in kube-system (reserved for cluster components)"


#: Deprecated or removed API versions pulumi-kubernetes still offers, by type token.
DEPRECATED_TYPES: dict[str, str] = {
    "kubernetes:apps/v1beta1:Deployment": "apps/v1", "kubernetes:apps/v1beta1:StatefulSet": "apps/v1",
    "kubernetes:apps/v1beta2:DaemonSet": "apps/v1", "kubernetes:apps/v1beta2:Deployment": "apps/v1",
    "kubernetes:apps/v1beta2:ReplicaSet": "apps/v1", "kubernetes:apps/v1beta2:StatefulSet": "apps/v1",
    "kubernetes:autoscaling/v2beta1:HorizontalPodAutoscaler": "autoscaling/v2",
    "kubernetes:autoscaling/v2beta2:HorizontalPodAutoscaler": "autoscaling/v2",
    "kubernetes:batch/v1beta1:CronJob": "batch/v1", "kubernetes:batch/v2alpha1:CronJob": "batch/v1",
    "kubernetes:extensions/v1beta1:DaemonSet": "apps/v1", "kubernetes:extensions/v1beta1:Deployment": "apps/v1",
    "kubernetes:extensions/v1beta1:Ingress": "networking.k8s.io/v1",
    "kubernetes:extensions/v1beta1:NetworkPolicy": "networking.k8s.io/v1",
    "kubernetes:extensions/v1beta1:PodSecurityPolicy": "Pod Security Admission labels",
    "kubernetes:extensions/v1beta1:ReplicaSet": "apps/v1",
    "kubernetes:networking.k8s.io/v1beta1:Ingress": "networking.k8s.io/v1",
    "kubernetes:policy/v1beta1:PodDisruptionBudget": "policy/v1",
    "kubernetes:policy/v1beta1:PodSecurityPolicy": "Pod Security Admission labels",
}


@with_type
def _stable_api(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    replacement = DEPRECATED_TYPES.get(resource_type)
    if replacement:
        _, api, kind = resource_type.split(":")
        yield f"{kind} uses the deprecated API {api} (use {replacement})"


_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_problem(key: str, value: Any) -> str | None:
    """Why a label key/value pair is invalid for the API server, or None."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        return f"label key {key!r} has an invalid prefix"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return f"label key {key!r} is invalid (<= 63 alphanumerics, '-', '_', '.')"
    if not isinstance(value, str):
        return f"label {key!r} value {value!r} is not a string"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return f"label {key!r} value {value!r} is invalid (<= 63 alphanumerics, '-', '_', '.')"
    return None


@with_type
def _valid_labels(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    sets = [("metadata.labels", as_map(get(props, "metadata", "labels")))]
    t = pod_template(resource_type, props) if resource_type != POD else None
    if t is not None:
        sets.append(("pod template labels", t.labels))
    for where, labels in sets:
        for key in labels:
            value = peek(labels, key)
            if value is UNKNOWN:
                continue
            problem = label_problem(str(key), value)
            if problem:
                yield f"{where}: {problem}"


# --------------------------------------------------------------------------- K44-K47, K53, K61-K64
@with_type
def _rolling_update(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    key = "strategy" if resource_type == DEPLOYMENT else "updateStrategy"
    strategy = get(props, "spec", key, "type")
    if strategy not in (None, "RollingUpdate"):
        yield f"spec.{key}.type is {strategy} (RollingUpdate keeps the service up during a roll-out)"


def _anti_affinity(t: PodTemplate, cfg) -> Iterator[str]:
    hostname = "kubernetes.io/hostname"
    anti = as_map(get(t.spec, "affinity", "podAntiAffinity"))
    terms = list(as_list(get(anti, "requiredDuringSchedulingIgnoredDuringExecution")))
    terms += [get(w, "podAffinityTerm") for w in as_list(get(anti, "preferredDuringSchedulingIgnoredDuringExecution"))]
    if any(get(term, "topologyKey") == hostname for term in terms):
        return
    if any(get(s, "topologyKey") == hostname for s in as_list(get(t.spec, "topologySpreadConstraints"))):
        return
    yield ("pod has no podAntiAffinity or topologySpreadConstraint on kubernetes.io/hostname "
           "(all replicas may land on one node)")


def _zone_spread(t: PodTemplate, cfg) -> Iterator[str]:
    zone = "topology.kubernetes.io/zone"
    if not any(get(s, "topologyKey") == zone for s in as_list(get(t.spec, "topologySpreadConstraints"))):
        yield "pod has no topologySpreadConstraint on topology.kubernetes.io/zone (one zone outage takes all replicas)"


@with_type
def _selector_matches_template(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    t = pod_template(resource_type, props)
    selector = get(props, "spec", "selector")
    if t is None:
        return
    if not is_map(selector) or not (as_map(get(selector, "matchLabels")) or as_list(get(selector, "matchExpressions"))):
        yield "spec.selector is missing or empty"
    elif not label_selector_matches(selector, t.labels):
        yield "spec.selector does not match the pod template's labels"


def _duplicate_env(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        seen: set[str] = set()
        for e in as_list(c.get("env")):
            name = get(e, "name")
            if name in seen:
                yield f"{c.label} defines env {name!r} more than once (the last one silently wins)"
            seen.add(name)


def _ports_valid(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec, kinds=("containers",)):
        names: set[str] = set()
        numbers: set[tuple[float, str]] = set()
        for p in as_list(c.get("ports")):
            port = number(get(p, "containerPort"))
            proto = get(p, "protocol") or "TCP"
            if port is None or not 1 <= port <= 65535:
                yield f"{c.label} has an invalid containerPort {get(p, 'containerPort')!r}"
            elif (port, proto) in numbers:
                yield f"{c.label} declares containerPort {fmt(port)}/{proto} twice"
            else:
                numbers.add((port, proto))
            name = get(p, "name")
            if name is not None:
                if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(name)) or len(str(name)) > 15:
                    yield f"{c.label} port name {name!r} is not a valid IANA service name (<= 15 chars)"
                elif name in names:
                    yield f"{c.label} declares port name {name!r} twice"
                names.add(name)


def _privileged_ports(t: PodTemplate, cfg) -> Iterator[str]:
    for c in containers(t.spec):
        for p in as_list(c.get("ports")):
            port = number(get(p, "containerPort"))
            if port is not None and 0 < port < 1024:
                yield f"{c.label} listens on privileged port {fmt(port)} (< 1024 needs NET_BIND_SERVICE)"


def _host_aliases(t: PodTemplate, cfg) -> Iterator[str]:
    if as_list(get(t.spec, "hostAliases")):
        yield "pod spec sets hostAliases (it overrides DNS inside the pod)"


# --------------------------------------------------------------------------- HPA, PDB, Service
def _hpa_min(props: Mapping[str, Any], cfg) -> Iterator[str]:
    minimum = number(get(props, "spec", "minReplicas"))
    if minimum is None:
        yield "spec.minReplicas is not set (defaults to 1: a single pod during quiet hours)"
    elif minimum < 2:
        yield f"spec.minReplicas is {fmt(minimum)} (< 2)"


def _pdb_policy(props: Mapping[str, Any], cfg) -> Iterator[str]:
    spec = as_map(get(props, "spec"))
    if get(spec, "minAvailable") is None and get(spec, "maxUnavailable") is None:
        yield "PodDisruptionBudget sets neither minAvailable nor maxUnavailable"


def _no_node_port(props: Mapping[str, Any], cfg) -> Iterator[str]:
    if get(props, "spec", "type") == "NodePort":
        yield "Service is of type NodePort (opens a port on every node)"


def _no_external_ips(props: Mapping[str, Any], cfg) -> Iterator[str]:
    ips = as_list(get(props, "spec", "externalIPs"))
    if ips:
        yield f"Service sets externalIPs {', '.join(map(str, ips))} (CVE-2020-8554 traffic interception)"


# --------------------------------------------------------------------------- X7, X16, X18
_GPU = "nvidia.com/gpu"


def _gpu(t: PodTemplate, cfg) -> Iterator[str]:
    app = list(containers(t.spec, kinds=("containers",)))
    asks = [c for c in app if any(c.get("resources", s, _GPU) is not None for s in ("limits", "requests"))]
    tolerates = any(get(tol, "key") == _GPU and get(tol, "effect") in (None, "", "NoSchedule")
                    for tol in as_list(get(t.spec, "tolerations")))
    # The GPU node group is labelled for it; a selector naming a GPU is a GPU workload too.
    selects_gpu = any(_GPU in str(k) or "gpu" in str(v).lower()
                      for k, v in as_map(get(t.spec, "nodeSelector")).items())
    if not (asks or tolerates or selects_gpu):
        return
    if not tolerates:
        yield f"GPU workload does not tolerate the {_GPU}=NoSchedule taint of the GPU node group"
    if not any(c.get("resources", "limits", _GPU) is not None for c in app):
        yield f"GPU workload sets no {_GPU} limit on any container (it would get no GPU)"


_PSS = "pod-security.kubernetes.io/"


def _namespace_pss(props: Mapping[str, Any], cfg) -> Iterator[str]:
    labels = as_map(get(props, "metadata", "labels"))
    enforce = labels.get(_PSS + "enforce")
    if enforce != "restricted":
        yield f"Namespace label {_PSS}enforce is {enforce or 'unset'} (restricted required)"
    for mode in ("audit", "warn"):
        value = labels.get(_PSS + mode)
        if value is not None and value != "restricted":
            yield f"Namespace label {_PSS}{mode} is {value} (weaker than enforce=restricted)"


_CIDR_ANY = {"0.0.0.0/0", "::/0"}


def _port_spec(p: Any) -> str:
    return f"{get(p, 'port')}/{get(p, 'protocol') or 'TCP'}"


def _selects_pods(peer: Any) -> bool:
    """A peer naming specific pods: a podSelector with labels or expressions (with or without a
    namespaceSelector) and no ipBlock. Traffic to it stays in the cluster, and the
    destination's own NetworkPolicies must admit it too."""
    selector = as_map(get(peer, "podSelector"))
    return get(peer, "ipBlock") is None and bool(as_map(get(selector, "matchLabels")) or as_list(get(selector, "matchExpressions")))


def _egress_allowlist(props: Mapping[str, Any], cfg) -> Iterator[str]:
    allowed = {str(a).upper() for a in cfg["allowedEgress"]}
    dns = {a for a in allowed if a.startswith("53/")}
    for i, rule in enumerate(as_list(get(props, "spec", "egress"))):
        ports = as_list(get(rule, "ports"))
        peers = as_list(get(rule, "to"))
        if not ports:
            yield f"egress[{i}] allows every port (list the ports: {', '.join(sorted(allowed))})"
            continue
        # Pod-to-pod traffic (a scrape of the service port, a query to Prometheus) may use
        # the destination's own port; anything that can leave the cluster may not.
        to_pods_only = bool(peers) and all(_selects_pods(peer) for peer in peers)
        non_dns = False
        for p in ports:
            port = get(p, "port")
            if port is None:
                yield f"egress[{i}] allows every {get(p, 'protocol') or 'TCP'} port"
                continue
            spec = (f"{fmt(port)}/{get(p, 'protocol') or 'TCP'}".upper() if number(port) is not None
                    else _port_spec(p).upper())
            if get(p, "endPort") is not None:
                yield f"egress[{i}] allows a port range {spec}-{fmt(get(p, 'endPort'))}"
            elif spec not in allowed and not to_pods_only:
                yield (f"egress[{i}] allows {spec}, not in the allow-list {', '.join(sorted(allowed))} "
                       "(other ports only towards pods named by a podSelector)")
            non_dns = non_dns or spec not in dns
        if non_dns:
            if not peers:
                yield f"egress[{i}] allows {', '.join(_port_spec(p) for p in ports)} to any destination"
            for peer in peers:
                cidr = get(peer, "ipBlock", "cidr")
                if cidr in _CIDR_ANY:
                    yield f"egress[{i}] allows {', '.join(_port_spec(p) for p in ports)} to {cidr}"


RULES: list[Rule] = [
    _k8s_rule("k8s-no-privileged-containers", "No privileged containers", ("K1",), "critical",
              "No container runs privileged: a privileged container is root on the node.",
              "Remove securityContext.privileged or set it to false.", _pod_rule(_privileged)),
    _k8s_rule("k8s-no-privilege-escalation", "No privilege escalation", ("K2",), "high",
              "Every container sets allowPrivilegeEscalation: false (no setuid gain of privileges).",
              "Set securityContext.allowPrivilegeEscalation: false on every container.", _pod_rule(_escalation)),
    _k8s_rule("k8s-run-as-non-root", "Run as non-root", ("K3",), "high",
              "Every container runs with runAsNonRoot: true, so the kubelet refuses a root user.",
              "Set securityContext.runAsNonRoot: true on the pod (or every container).", _pod_rule(_non_root)),
    _k8s_rule("k8s-high-uid-gid", "High, non-root UID and GID", ("K4", "K5", "K6"), "medium",
              "Every container runs with runAsUser and runAsGroup >= minimumId (10000): never root, and "
              "above the host's users; fsGroup and supplementalGroups never name the root group.",
              "Set runAsUser/runAsGroup (e.g. 10001) and fsGroup (e.g. 10001) in the pod securityContext.",
              _pod_rule(_ids),
              params=(Param("minimumId", "integer", 10000, "lowest UID/GID a container may run as", minimum=1),)),
    _k8s_rule("k8s-read-only-root-filesystem", "Read-only root filesystem", ("K7",), "medium",
              "Every container has a read-only root filesystem, so a compromise cannot alter binaries.",
              "Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir at /tmp.",
              _pod_rule(_read_only_root)),
    _k8s_rule("k8s-drop-all-capabilities", "Drop all capabilities", ("K8", "K9"), "high",
              "Every container drops ALL Linux capabilities and adds back at most NET_BIND_SERVICE "
              "(never SYS_ADMIN, NET_RAW, SYS_MODULE, ...).",
              "Set securityContext.capabilities: {drop: [ALL]} and remove any add entries.",
              _pod_rule(_capabilities)),
    _k8s_rule("k8s-seccomp-runtime-default", "Seccomp profile RuntimeDefault", ("K10",), "medium",
              "Every container runs under the RuntimeDefault (or a Localhost) seccomp profile.",
              "Set securityContext.seccompProfile: {type: RuntimeDefault} in the pod securityContext.",
              _pod_rule(_seccomp)),
    _k8s_rule("k8s-apparmor-not-unconfined", "AppArmor not unconfined", ("K11",), "medium",
              "No container opts out of AppArmor (appArmorProfile Unconfined or the legacy annotation).",
              "Remove the Unconfined AppArmor profile; leave the runtime default.", _pod_rule(_apparmor)),
    _k8s_rule("k8s-no-custom-selinux", "No custom SELinux options", ("K12",), "medium",
              "No pod or container sets a custom SELinux user or role, or a type outside the container types.",
              "Remove seLinuxOptions.user/role; use only container_t-family types.", _pod_rule(_selinux)),
    _k8s_rule("k8s-no-host-namespaces", "No host namespaces", ("K13",), "critical",
              "No pod shares the node's network, PID or IPC namespace.",
              "Remove hostNetwork, hostPID and hostIPC (or set them to false).", _pod_rule(_host_namespaces)),
    _k8s_rule("k8s-no-host-ports", "No host ports", ("K14",), "high",
              "No container binds a hostPort (it bypasses NetworkPolicies and pins pods to nodes).",
              "Remove ports[].hostPort; expose the pod through a Service.", _pod_rule(_host_ports)),
    _k8s_rule("k8s-restricted-volume-types", "Restricted volume types only", ("K15", "K16"), "high",
              "Pods use only the volume types of the restricted Pod Security Standard; never hostPath "
              "(docker.sock, the subPath escapes).",
              "Replace hostPath and other volume types by emptyDir, configMap, secret, projected, "
              "persistentVolumeClaim, csi, downwardAPI or ephemeral.", _pod_rule(_volumes)),
    _k8s_rule("k8s-default-proc-mount", "Default /proc mount", ("K17",), "medium",
              "No container unmasks /proc (procMount other than Default).",
              "Remove securityContext.procMount.", _pod_rule(_proc_mount)),
    _k8s_rule("k8s-safe-sysctls", "Safe sysctls only", ("K18",), "medium",
              "Pods set only the sysctls the baseline Pod Security Standard lists as namespaced and safe.",
              "Remove the sysctl or set it on the node group instead.", _pod_rule(_sysctls)),
    _k8s_rule("k8s-no-windows-host-process", "No Windows HostProcess", ("K19",), "critical",
              "No pod or container runs as a Windows HostProcess (full node access).",
              "Remove windowsOptions.hostProcess.", _pod_rule(_host_process)),
    _k8s_rule("k8s-no-probe-host", "Probes and hooks target the pod", ("K20",), "medium",
              "No probe or lifecycle hook sets httpGet/tcpSocket host (it would let the kubelet reach "
              "arbitrary addresses).",
              "Remove the host field; probes then target the pod IP.", _pod_rule(_probe_host)),
    _k8s_rule("k8s-security-context-set", "Security context set", ("K21",), "medium",
              "The pod and every container declare a securityContext.",
              "Add a pod securityContext and a container securityContext to every container.",
              _pod_rule(_security_context_set)),
    _k8s_rule("k8s-no-service-account-token-automount", "No automounted API token", ("K22",), "medium",
              "Pods and ServiceAccounts set automountServiceAccountToken: false: the scoring service "
              "never calls the Kubernetes API (IRSA's web-identity token is projected separately); only "
              "the controllers listed in apiClients keep the token.",
              "Set automountServiceAccountToken: false on the pod spec and the ServiceAccount.",
              _token_automount, types=(*POD_TYPES, SERVICE_ACCOUNT),
              params=(Param("apiClients", "array", ["aws-load-balancer-controller"],
                            "ServiceAccounts of controllers that call the Kubernetes API (token allowed)"),)),
    _k8s_rule("k8s-dedicated-service-account", "Dedicated service account", ("K23",), "medium",
              "Pods run as a dedicated ServiceAccount, never the namespace's default one.",
              "Create a ServiceAccount for the workload and set serviceAccountName.",
              _pod_rule(_dedicated_sa)),
    _k8s_rule("k8s-secrets-not-in-env", "Secrets not in environment", ("K24",), "medium",
              "No environment variable is filled from a Kubernetes Secret (environments leak into logs "
              "and crash dumps); the service reads Secrets Manager at start-up.",
              "Read the secret from Secrets Manager through the pod's IAM role, or mount it as a file.",
              _pod_rule(_secret_env)),
    _k8s_rule("k8s-no-credentials-in-env", "No credentials in literals", ("K25",), "critical",
              "No env literal or ConfigMap value holds a credential (a password-like name with a literal "
              "value, an AWS access key, a private key, a URL with a password).",
              "Store the credential in Secrets Manager and pass its ARN instead.",
              _credentials, types=(*POD_TYPES, CONFIG_MAP)),
    _k8s_rule("k8s-cpu-requests", "CPU requests", ("K26",), "medium",
              "Every container requests CPU, so the scheduler and the HPA can reason about it.",
              "Set resources.requests.cpu from the stack config.", _pod_rule(_resource_check("requests", "cpu"))),
    _k8s_rule("k8s-cpu-limits", "CPU limits", ("K27",), "medium",
              "Every container has a CPU limit, so one pod cannot starve its neighbours.",
              "Set resources.limits.cpu from the stack config.", _pod_rule(_resource_check("limits", "cpu"))),
    _k8s_rule("k8s-memory-requests", "Memory requests", ("K28",), "medium",
              "Every container requests memory.",
              "Set resources.requests.memory from the stack config.",
              _pod_rule(_resource_check("requests", "memory"))),
    _k8s_rule("k8s-memory-limits", "Memory limits", ("K29",), "medium",
              "Every container has a memory limit (no node-wide OOM from one pod).",
              "Set resources.limits.memory from the stack config.", _pod_rule(_resource_check("limits", "memory"))),
    _k8s_rule("k8s-ephemeral-storage-limits", "Ephemeral storage request and limit", ("K30",), "low",
              "Every container requests and limits ephemeral-storage (emptyDir and logs count against it).",
              "Set resources.requests and limits ephemeral-storage.", _pod_rule(_ephemeral)),
    _k8s_rule("k8s-requests-equal-limits", "Requests equal limits", ("K31",), "low",
              "CPU and memory requests equal the limits (Guaranteed QoS: no eviction under node pressure).",
              "Set requests equal to limits.", _pod_rule(_requests_equal_limits), enforcement="advisory",
              advisory_reason="kube-score lists it as optional: a burstable CPU limit is a deliberate "
                              "cost/latency trade-off the stack config may make."),
    _k8s_rule("k8s-image-tag-not-latest", "Image tag pinned", ("K32",), "high",
              "Every image names a tag or digest, and never the mutable 'latest' tag.",
              "Use the immutable release tag or the digest from the stack config.", _pod_rule(_tag_not_latest)),
    _k8s_rule("k8s-image-pull-policy-always", "Image pull policy Always", ("K34",), "low",
              "Every container sets imagePullPolicy: Always, so registry access is checked on every start "
              "and a cached image cannot be reused by another tenant's pod.",
              "Set imagePullPolicy: Always.", _pod_rule(_pull_policy)),
    _k8s_rule("k8s-trusted-registry", "Trusted registry only", ("K35",), "high",
              "Every image comes from a private ECR registry (or a registry listed in allowedRegistries).",
              "Push the image to the stack's ECR repository and reference it there.",
              _pod_rule(_trusted_registry),
              params=(Param("allowedRegistries", "array", [], "extra registry prefixes allowed besides ECR"),)),
    _k8s_rule("k8s-liveness-probe", "Liveness probe", ("K36",), "medium",
              "Every long-running container has a liveness probe.",
              "Add a livenessProbe on the service's liveness route.", _pod_rule(_probe_check(
                  "livenessProbe", "a hung process is never restarted")), types=LONG_RUNNING_TYPES),
    _k8s_rule("k8s-readiness-probe", "Readiness probe", ("K37",), "medium",
              "Every long-running container has a readiness probe.",
              "Add a readinessProbe on the service's readiness route.", _pod_rule(_probe_check(
                  "readinessProbe", "traffic reaches pods before they can serve")), types=LONG_RUNNING_TYPES),
    _k8s_rule("k8s-distinct-probes", "Liveness differs from readiness", ("K38",), "medium",
              "Liveness and readiness probes differ: readiness may check dependencies, liveness must not.",
              "Point the liveness probe at a route that checks only the process.",
              _pod_rule(_distinct_probes), types=LONG_RUNNING_TYPES),
    _k8s_rule("k8s-not-default-namespace", "Not the default namespace", ("K39",), "medium",
              "Every namespaced object names its namespace, and it is not 'default'.",
              "Set metadata.namespace to the application's namespace.", _not_default_ns, types=NAMESPACED_TYPES),
    _k8s_rule("k8s-not-kube-system", "Not kube-system", ("K40",), "high",
              "Application objects stay out of kube-system (cluster components only, listed in allowedNames).",
              "Move the object to the application's namespace.", _not_kube_system, types=NAMESPACED_TYPES,
              params=(Param("allowedNames", "array", ["aws-load-balancer-controller"],
                            "object names allowed in kube-system (cluster add-ons)"),)),
    _k8s_rule("k8s-rolling-update", "Rolling update strategy", ("K45",), "medium",
              "Deployments and StatefulSets update by rolling update, never by recreating every pod.",
              "Remove strategy.type: Recreate (RollingUpdate with maxSurge is the default).",
              _rolling_update, types=REPLICATED_TYPES),
    _k8s_rule("k8s-host-anti-affinity", "Replicas on distinct nodes", ("K46",), "medium",
              "Replicas are kept apart per node (podAntiAffinity or a topology spread on kubernetes.io/hostname).",
              "Add a topologySpreadConstraint (or podAntiAffinity) on kubernetes.io/hostname.",
              _pod_rule(_anti_affinity), types=REPLICATED_TYPES),
    _k8s_rule("k8s-zone-spread", "Replicas spread over zones", ("K47",), "medium",
              "Replicas are spread over availability zones.",
              "Add a topologySpreadConstraint on topology.kubernetes.io/zone.",
              _pod_rule(_zone_spread), types=REPLICATED_TYPES),
    _k8s_rule("k8s-pdb-has-policy", "PDB sets a policy", ("K49",), "low",
              "Every PodDisruptionBudget sets minAvailable or maxUnavailable.",
              "Set spec.maxUnavailable: 1.", _pdb_policy, types=(PDB,)),
    _k8s_rule("k8s-hpa-min-replicas", "HPA keeps two replicas", ("K51",), "medium",
              "Every HorizontalPodAutoscaler keeps at least two replicas.",
              "Set spec.minReplicas >= 2.", _hpa_min, types=(HPA, HPA_V1)),
    _k8s_rule("k8s-selector-matches-template", "Selector matches the pod template", ("K53",), "high",
              "A workload's selector is set and matches its own pod template's labels.",
              "Use the same labels in spec.selector.matchLabels and spec.template.metadata.labels.",
              _selector_matches_template, types=tuple(t for t in POD_TYPES if t not in (
                  "kubernetes:core/v1:Pod", "kubernetes:batch/v1:CronJob", "kubernetes:batch/v1:Job"))),
    _k8s_rule("k8s-no-nodeport-service", "No NodePort services", ("K55",), "medium",
              "No Service is of type NodePort (the ALB reaches pods by IP).",
              "Use type ClusterIP behind the Ingress.", _no_node_port, types=(SERVICE,)),
    _k8s_rule("k8s-no-external-ips", "No Service externalIPs", ("K56",), "high",
              "No Service sets externalIPs (CVE-2020-8554: intercepting cluster traffic).",
              "Remove spec.externalIPs.", _no_external_ips, types=(SERVICE,)),
    _k8s_rule("k8s-stable-api-version", "Stable API versions", ("K59",), "medium",
              "Objects use the stable API versions, not deprecated or removed beta ones.",
              "Switch to the stable type (e.g. apps/v1, networking.k8s.io/v1, policy/v1, autoscaling/v2).",
              _stable_api, types=tuple(DEPRECATED_TYPES)),
    _k8s_rule("k8s-valid-labels", "Valid label values", ("K60",), "low",
              "Labels are valid for the API server (it rejects the whole object otherwise).",
              "Use <= 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric.",
              _valid_labels, types=OBJECT_TYPES),
    _k8s_rule("k8s-no-duplicate-env", "No duplicate environment keys", ("K61",), "low",
              "No container defines the same environment variable twice.",
              "Remove the duplicate entry.", _pod_rule(_duplicate_env)),
    _k8s_rule("k8s-container-ports-valid", "Container ports valid", ("K62",), "low",
              "Container ports are in range, unique, and named with valid IANA service names.",
              "Fix the port number or name.", _pod_rule(_ports_valid)),
    _k8s_rule("k8s-no-privileged-ports", "No privileged ports", ("K63",), "medium",
              "No container listens below port 1024 (that needs NET_BIND_SERVICE; the service uses 8080).",
              "Listen on a port >= 1024 and map it in the Service.", _pod_rule(_privileged_ports)),
    _k8s_rule("k8s-no-host-aliases", "No hostAliases", ("K64",), "low",
              "No pod rewrites its /etc/hosts through hostAliases.",
              "Remove spec.hostAliases; use DNS.", _pod_rule(_host_aliases)),
    _k8s_rule("k8s-no-risky-tools", "No Tiller, dashboard or git-sync", ("K65",), "high",
              "No workload or Helm release runs Tiller, the Kubernetes dashboard or git-sync.",
              "Remove the component; deploy through Pulumi.", _risky_tools, types=(*POD_TYPES, HELM_RELEASE)),
    _k8s_rule("k8s-gpu-toleration-and-limit", "GPU workloads tolerate the taint and set a limit", ("X7",),
              "medium",
              "A workload meant for the GPU node group tolerates nvidia.com/gpu=NoSchedule and sets an "
              "nvidia.com/gpu limit, so it lands on (and only on) GPU nodes with a GPU allocated.",
              "Add a toleration {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule} and "
              "resources.limits['nvidia.com/gpu']: 1.", _pod_rule(_gpu)),
    _k8s_rule("k8s-namespace-restricted-pss", "Namespace enforces restricted PSS", ("X16",), "high",
              "Every Namespace is labelled pod-security.kubernetes.io/enforce=restricted (audit and warn, "
              "when set, also restricted), so the API server itself refuses unhardened pods.",
              "Label the namespace pod-security.kubernetes.io/{enforce,audit,warn}: restricted.",
              _namespace_pss, types=(NAMESPACE,)),
    _k8s_rule("k8s-networkpolicy-egress-allowlist", "NetworkPolicy egress allow-list", ("X18",), "high",
              "NetworkPolicy egress rules allow only DNS, PostgreSQL (5432), Redis (6379) and HTTPS (443), "
              "every non-DNS rule to named destinations (never 0.0.0.0/0). Another single port is allowed "
              "only towards pods named by a podSelector (in-cluster traffic the destination's NetworkPolicies "
              "must also admit, such as a Prometheus scrape), never towards an ipBlock.",
              "List explicit ports and destination peers (the VPC CIDR or endpoint subnets) in each egress rule; "
              "for a port outside the allow-list, name the destination pods with a podSelector.",
              _egress_allowlist, types=(NETWORK_POLICY,),
              params=(Param("allowedEgress", "array", ["53/UDP", "53/TCP", "443/TCP", "5432/TCP", "6379/TCP"],
                            "port/protocol pairs egress may allow"),)),
]
