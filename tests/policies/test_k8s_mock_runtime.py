"""The hardened fixture is what pulumi-kubernetes really records.

Each fixture object is declared through the pulumi-kubernetes (and pulumi-aws) classes
with the snake_case arguments a program writes, under the SDK's mock runtime; the
recorded inputs must equal the fixture exactly (camelCase, floats, apiVersion and kind
added by the SDK), and the recorded stack must pass every Kubernetes rule.
"""
from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from policies.engine import evaluate
from tests.policies import k8s_fixtures as fx

CLASSES = {
    fx.NAMESPACE: k8s.core.v1.Namespace, fx.DEPLOYMENT: k8s.apps.v1.Deployment, fx.JOB: k8s.batch.v1.Job,
    fx.SERVICE: k8s.core.v1.Service, fx.SERVICE_ACCOUNT: k8s.core.v1.ServiceAccount,
    fx.CONFIG_MAP: k8s.core.v1.ConfigMap, fx.HPA: k8s.autoscaling.v2.HorizontalPodAutoscaler,
    fx.PDB: k8s.policy.v1.PodDisruptionBudget, fx.NETWORK_POLICY: k8s.networking.v1.NetworkPolicy,
    fx.INGRESS: k8s.networking.v1.Ingress, fx.QUOTA: k8s.core.v1.ResourceQuota,
    fx.LIMITS: k8s.core.v1.LimitRange, fx.RBAC_ROLE: k8s.rbac.v1.Role, fx.RBAC_BINDING: k8s.rbac.v1.RoleBinding, fx.HELM: k8s.helm.v3.Release, fx.ROLE: aws.iam.Role,
}
_CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")


def snake(value: Any, key: str = "") -> Any:
    """camelCase fixture -> the snake_case arguments a program passes (Helm values and
    free-form maps keep their keys)."""
    if isinstance(value, dict) and key != "values":
        return {(re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), k) if _CAMEL.match(k) else k): snake(v, k)
                for k, v in value.items()}
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    """Records each resource's inputs as the engine would receive them."""

    def __init__(self) -> None:
        self.recorded: dict[str, tuple[str, dict]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.recorded[args.name] = (args.typ, args.inputs)
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise NotImplementedError(f"unexpected invoke {args.token}")


def test_fixture_matches_what_pulumi_kubernetes_records_and_passes():
    stack = fx.hardened()
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="fraudstack", stack="test", preview=False)

    @pulumi.runtime.test
    def program():
        for name, r in stack.items():
            args = {k: v for k, v in r["inputs"].items() if k not in ("apiVersion", "kind")}
            CLASSES[r["type"]](name, **snake(args))

    program()
    assert sorted(mocks.recorded) == sorted(stack)
    recorded = []
    for name, r in stack.items():
        rtype, inputs = mocks.recorded[name]
        if rtype == fx.HELM:
            assert inputs.pop("compat") == "true"  # the v3 Release adds it itself
        assert (rtype, inputs) == (r["type"], r["inputs"]), name
        recorded.append({**r, "inputs": inputs})
    assert evaluate(recorded, None, rules=fx.K8S_RULES) == []
