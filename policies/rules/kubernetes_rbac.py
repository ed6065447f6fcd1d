"""RBAC hygiene (catalogue row K68, 'C': applies when the stack declares RBAC objects).

The scoring service never calls the Kubernetes API, so the stack declares no Role or
binding today; the add-ons' RBAC ships inside their Helm releases. This rule guards the
day someone adds one: no wildcard, no reading Secrets, no privilege-escalation verbs,
no pod exec/attach, no cluster-admin and no binding to anonymous, every authenticated
user or a namespace's default ServiceAccount.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..model import Rule, with_type
from .k8s_objects import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING, as_list, get

_READ = {"get", "list", "watch", "*"}
#: Verbs that hand out more than the role holds.
_ESCALATING = {"escalate", "bind", "impersonate"}
#: Sub-resources that open a shell or a tunnel into a pod or node.
_SHELL = {"pods/exec", "pods/attach", "pods/portforward", "nodes/proxy"}
_PUBLIC_GROUPS = {"system:anonymous", "system:unauthenticated", "system:authenticated"}


def _strings(value: Any) -> set[str]:
    return {str(v) for v in as_list(value)}


def _role_problems(props: Mapping[str, Any]) -> Iterator[str]:
    for i, rule in enumerate(as_list(get(props, "rules"))):
        verbs, resources = _strings(get(rule, "verbs")), _strings(get(rule, "resources"))
        groups = _strings(get(rule, "apiGroups"))
        where = f"rules[{i}]"
        if "*" in verbs or "*" in resources or "*" in groups:
            yield f"{where} uses a wildcard (verbs {sorted(verbs)}, resources {sorted(resources)}, apiGroups {sorted(groups)})"
        if "secrets" in resources and verbs & _READ:
            yield f"{where} can read Secrets ({', '.join(sorted(verbs & _READ))})"
        if verbs & _ESCALATING:
            yield f"{where} grants {', '.join(sorted(verbs & _ESCALATING))} (privilege escalation)"
        if resources & _SHELL and verbs & {"create", "get", "*"}:
            yield f"{where} opens {', '.join(sorted(resources & _SHELL))}"
    if get(props, "aggregationRule") is not None:
        yield "aggregationRule pulls in permissions from every matching ClusterRole"


def _binding_problems(props: Mapping[str, Any]) -> Iterator[str]:
    if get(props, "roleRef", "name") == "cluster-admin":
        yield "binds cluster-admin"
    for s in as_list(get(props, "subjects")):
        kind, name = get(s, "kind"), get(s, "name")
        if kind in ("Group", "User") and name in _PUBLIC_GROUPS:
            yield f"binds {kind} {name} (anyone who reaches the API server)"
        if kind == "ServiceAccount" and name == "default":
            yield f"binds the default ServiceAccount of {get(s, 'namespace') or 'its namespace'} (every pod there gets it)"


@with_type
def _rbac(props: Mapping[str, Any], cfg, resource_type: str) -> Iterator[str]:
    if resource_type in (ROLE, CLUSTER_ROLE):
        yield from _role_problems(props)
    else:
        yield from _binding_problems(props)


RULES: list[Rule] = [
    Rule(id="k8s-rbac-least-privilege", name="RBAC least privilege", severity="high", enforcement="mandatory",
         description="Roles and bindings grant no wildcard, no Secret reads, no escalate/bind/impersonate, no "
                     "pod exec/attach/port-forward or node proxy, never cluster-admin, and never to anonymous, "
                     "all authenticated users or a default ServiceAccount.",
         resource_types=(ROLE, CLUSTER_ROLE, ROLE_BINDING, CLUSTER_ROLE_BINDING), references=("K68",),
         remediation="List the exact apiGroups, resources and verbs the workload needs and bind them to its "
                     "dedicated ServiceAccount.", check=_rbac),
]
