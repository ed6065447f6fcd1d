"""Reading Kubernetes objects as the policy server hands them over.

pulumi-kubernetes records a resource's inputs as the object itself in camelCase
(``apiVersion``, ``kind``, ``metadata``, ``spec``; numbers arrive as floats). The policy
server wraps them in read-only proxies that are ``Mapping``/``Sequence`` but not
``dict``/``list`` and raise ``UnknownValueError`` when a value is unknown during
preview. Everything here therefore tests ``Mapping``/``Sequence``, treats absent or
ill-typed optional fields as absent, and lets an unknown value raise unless the caller
asks for :func:`peek`, which turns it into :data:`UNKNOWN`.

One pod-spec extractor (:func:`pod_template`) serves every workload kind, so each
pod-level rule is written once for Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job, CronJob and Pod.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy.proxy import UnknownValueError

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
REPLICASET = "kubernetes:apps/v1:ReplicaSet"
JOB = "kubernetes:batch/v1:Job"
CRONJOB = "kubernetes:batch/v1:CronJob"
POD = "kubernetes:core/v1:Pod"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
HPA_V1 = "kubernetes:autoscaling/v1:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
IAM_ROLE = "aws:iam/role:Role"
ECR_REPOSITORY = "aws:ecr/repository:Repository"

#: Where the pod template sits in each workload kind (``()``: the object is the pod).
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    DEPLOYMENT: ("spec", "template"),
    STATEFULSET: ("spec", "template"),
    DAEMONSET: ("spec", "template"),
    REPLICASET: ("spec", "template"),
    JOB: ("spec", "template"),
    CRONJOB: ("spec", "jobTemplate", "spec", "template"),
    POD: (),
}
POD_TYPES: tuple[str, ...] = tuple(_TEMPLATE_PATHS)
#: Workloads that run for ever (probes, replicas and spreading make sense for them).
LONG_RUNNING_TYPES: tuple[str, ...] = (DEPLOYMENT, STATEFULSET, DAEMONSET, REPLICASET, POD)
#: Workloads that keep N replicas and can be spread, scaled and disruption-budgeted.
REPLICATED_TYPES: tuple[str, ...] = (DEPLOYMENT, STATEFULSET)
#: Namespaced objects of the kinds this project declares.
NAMESPACED_TYPES: tuple[str, ...] = (
    *POD_TYPES, SERVICE, SERVICE_ACCOUNT, CONFIG_MAP, RESOURCE_QUOTA, LIMIT_RANGE, HPA, HPA_V1,
    PDB, NETWORK_POLICY, INGRESS, "kubernetes:core/v1:Secret", ROLE, ROLE_BINDING,
)
#: Every Kubernetes object kind whose labels rules look at.
OBJECT_TYPES: tuple[str, ...] = (*NAMESPACED_TYPES, NAMESPACE, CLUSTER_ROLE, CLUSTER_ROLE_BINDING)


class _Unknown:
    """Marker for a value that is unknown during preview (see :func:`peek`)."""

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN: Any = _Unknown()


def is_map(value: Any) -> bool:
    """A JSON object (dict or the server's read-only proxy of one)."""
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    """A JSON array (list or the server's proxy of one), never a string."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def get(obj: Any, *path: str | int, default: Any = None) -> Any:
    """The value at ``path``, or ``default`` when a step is absent or of the wrong type.

    An unknown value on the way raises ``UnknownValueError`` (the server then reports
    that the policy cannot run during preview)."""
    cur = obj
    for key in path:
        if isinstance(key, int):
            if not is_list(cur) or not -len(cur) <= key < len(cur):
                return default
            cur = cur[key]
        else:
            if not is_map(cur):
                return default
            cur = cur.get(key)
        if cur is None:
            return default
    return cur


def peek(obj: Any, *path: str | int, default: Any = None) -> Any:
    """Like :func:`get` but an unknown value comes back as :data:`UNKNOWN`."""
    try:
        return get(obj, *path, default=default)
    except UnknownValueError:
        return UNKNOWN


def as_map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is an object, else an empty one."""
    return value if is_map(value) else {}


def as_list(value: Any) -> Sequence[Any]:
    """``value`` when it is an array, else an empty one."""
    return value if is_list(value) else ()


def number(value: Any) -> float | None:
    """A JSON number (floats under the mock runtime), or None; booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def text(value: Any) -> str | None:
    """A string value, or None."""
    return value if isinstance(value, str) else None


def fmt(value: float) -> str:
    """A number for a message: ``10001`` rather than ``10001.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


def object_name(props: Mapping[str, Any], logical_name: str) -> str:
    """``metadata.name``, or the Pulumi logical name when the program lets Pulumi auto-name
    the object (the real name is then ``<logical>-<random>``, unknown until created)."""
    name = peek(props, "metadata", "name")
    return name if isinstance(name, str) and name else logical_name


def namespace_of(props: Mapping[str, Any]) -> str | None:
    """``metadata.namespace`` or None when the object does not set one."""
    ns = get(props, "metadata", "namespace")
    return ns if isinstance(ns, str) and ns else None


@dataclass(frozen=True)
class PodTemplate:
    """The pod a workload runs: its labels, annotations and pod spec."""

    labels: Mapping[str, Any]
    annotations: Mapping[str, Any]
    spec: Mapping[str, Any]


def pod_template(resource_type: str, props: Mapping[str, Any]) -> PodTemplate | None:
    """The pod template of any workload kind in :data:`POD_TYPES`, else None."""
    path = _TEMPLATE_PATHS.get(resource_type)
    if path is None:
        return None
    template = get(props, *path) if path else props
    if not is_map(template):
        return None
    return PodTemplate(
        labels=as_map(get(template, "metadata", "labels")),
        annotations=as_map(get(template, "metadata", "annotations")),
        spec=as_map(get(template, "spec")),
    )


@dataclass(frozen=True)
class Container:
    """One container of a pod spec with the list it came from (``containers``,
    ``initContainers`` or ``ephemeralContainers``)."""

    kind: str
    index: int
    body: Mapping[str, Any]

    @property
    def name(self) -> str:
        n = peek(self.body, "name")
        return n if isinstance(n, str) else f"{self.kind}[{self.index}]"

    @property
    def label(self) -> str:
        """How messages name the container."""
        what = {"initContainers": "init container", "ephemeralContainers": "ephemeral container"}
        return f"{what.get(self.kind, 'container')} {self.name!r}"

    def get(self, *path: str | int, default: Any = None) -> Any:
        """:func:`get` inside the container."""
        return get(self.body, *path, default=default)


def containers(spec: Mapping[str, Any], *, kinds: tuple[str, ...] = (
        "initContainers", "containers", "ephemeralContainers")) -> Iterator[Container]:
    """The containers of a pod spec, init and ephemeral ones included by default (Pod
    Security Standards apply to all three)."""
    for kind in kinds:
        for i, body in enumerate(as_list(get(spec, kind))):
            if is_map(body):
                yield Container(kind, i, body)


def effective(pod_spec: Mapping[str, Any], container: Container, key: str) -> Any:
    """A security-context field as the kubelet applies it: the container's value, else
    the pod's."""
    value = container.get("securityContext", key)
    if value is None:
        value = get(pod_spec, "securityContext", key)
    return value


def _match_expression(expr: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    key = get(expr, "key")
    op = get(expr, "operator")
    values = [v for v in as_list(get(expr, "values"))]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    return False


def label_selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """A ``LabelSelector`` (matchLabels + matchExpressions) against pod labels; the empty
    selector matches every pod (NetworkPolicy podSelector, policy/v1 PDB)."""
    selector = as_map(selector)
    for key, value in as_map(get(selector, "matchLabels")).items():
        if labels.get(key) != value:
            return False
    return all(_match_expression(as_map(e), labels) for e in as_list(get(selector, "matchExpressions")))


def map_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A Service-style selector (plain label map); an empty one selects nothing."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


#: An image reference pinned by content: ``...@sha256:<64 hex>``.
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``registry/repo:tag@digest`` -> (``registry/repo``, tag or None, digest or None)."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    if ":" in image.rsplit("/", 1)[-1]:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest


def is_unknown(value: Any) -> bool:
    """True for the :data:`UNKNOWN` marker returned by :func:`peek`."""
    return value is UNKNOWN
