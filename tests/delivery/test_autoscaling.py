"""Node autoscaling: the Cluster Autoscaler's release, its IAM role and the node-template
tags that let the GPU group scale up from zero, for both stacks under the mock runtime."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.autoscaling import (
    AutoscalerConfig,
    autoscaler_extra_args,
    cluster_autoscaler_policy,
    node_template_tags,
    tag_resource_suffix,
)
from components.config import load_stack_config
from tests.delivery.helpers import doc, of_type, one
from tools.plan import stack_config

RELEASE = "kubernetes:helm.sh/v3:Release"
ASG_TAG = "aws:autoscaling/tag:Tag"
ROLE = "aws:iam/role:Role"
TEMPLATE = "k8s.io/cluster-autoscaler/node-template"


def load(stack: str, overrides: dict) -> object:
    flat, secrets = stack_config(stack, overrides)
    pulumi.runtime.set_all_config(flat, secrets)
    return load_stack_config()


# --------------------------------------------------------------------------- pure functions


def test_policy_resizes_only_this_clusters_tagged_groups():
    statements = json.loads(cluster_autoscaler_policy("c1", "arn:aws:eks:eu-west-1:111122223333:cluster/c1"))["Statement"]
    assert [s["Sid"] for s in statements] == ["ResizeOwnGroupsOnly", "Describe", "ReadOwnNodeGroups"]
    resize, describe, read = statements
    assert resize["Action"] == ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert resize["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/k8s.io/cluster-autoscaler/c1": "owned",
            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
        }
    }
    # Nothing but reads is unconditioned.
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in describe["Action"])
    assert read == {
        "Sid": "ReadOwnNodeGroups",
        "Effect": "Allow",
        "Action": "eks:DescribeNodegroup",
        "Resource": "arn:aws:eks:eu-west-1:111122223333:nodegroup/c1/*/*",
    }


def test_node_template_tags_spell_labels_and_taints_as_the_autoscaler_reads_them():
    tags = node_template_tags({"fraudstack.io/node-pool": "gpu"}, [("nvidia.com/gpu", "true", "NO_SCHEDULE"), ("x", "y", "NO_EXECUTE")])
    assert tags == {
        f"{TEMPLATE}/label/fraudstack.io/node-pool": "gpu",
        f"{TEMPLATE}/taint/nvidia.com/gpu": "true:NoSchedule",
        f"{TEMPLATE}/taint/x": "y:NoExecute",
    }
    assert tag_resource_suffix(f"{TEMPLATE}/taint/nvidia.com/gpu") == "taint-nvidia-com-gpu"


def test_extra_args_turn_config_into_flags():
    args = autoscaler_extra_args(
        AutoscalerConfig(scale_down_unneeded_minutes=7, scale_down_utilization_threshold=0.6, scan_interval_seconds=20)
    )
    assert args == {
        "expander": "least-waste",
        "balance-similar-node-groups": "true",
        "scan-interval": "20s",
        "scale-down-enabled": "true",
        "scale-down-unneeded-time": "7m",
        "scale-down-delay-after-add": "10m",
        "scale-down-utilization-threshold": "0.6",
        "max-node-provision-time": "15m",
        "skip-nodes-with-local-storage": "false",
        "skip-nodes-with-system-pods": "true",
    }


@pytest.mark.parametrize(
    ("change", "key", "why"),
    [
        ({"imageTag": "v1.33.2"}, "cluster.autoscaler.imageTag", "is for Kubernetes 1.33; the cluster runs 1.34"),
        ({"imageTag": "latest"}, "cluster.autoscaler.imageTag", "not a cluster-autoscaler release tag"),
        ({"scaleDownUtilizationThreshold": 1.5}, "cluster.autoscaler.scaleDownUtilizationThreshold", "less than 1"),
        ({"scaleDownUnneededMinutes": 0}, "cluster.autoscaler.scaleDownUnneededMinutes", "greater than or equal to 1"),
        ({"expander": "cheapest"}, "cluster.autoscaler.expander", "least-waste"),
        ({"scaleDown": 1}, "cluster.autoscaler.scaleDown", "unknown key"),
    ],
)
def test_bad_autoscaler_config_names_the_key(change, key, why):
    with pytest.raises(pulumi.RunError) as err:
        load("staging", {"fraudstack:cluster": {"autoscaler": change}})
    assert str(err.value).startswith(f"fraudstack:{key}: ")
    assert why in str(err.value)


def test_stack_files_set_the_autoscaler():
    assert load("production", {}).cluster.autoscaler == AutoscalerConfig()
    # Staging returns idle nodes sooner.
    assert load("staging", {}).cluster.autoscaler == AutoscalerConfig(
        scale_down_unneeded_minutes=5, scale_down_delay_after_add_minutes=5
    )


# --------------------------------------------------------------------------- the program


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_release_values(plans, stack):
    plan = plans[stack]
    release = one(plan, RELEASE, "eks-cluster-autoscaler")
    assert release["parent"] == "eks" and release["provider"] == "eks-k8s"
    inputs = release["inputs"]
    assert (inputs["chart"], inputs["version"], inputs["namespace"]) == ("cluster-autoscaler", "9.46.6", "kube-system")
    values = inputs["values"]
    sa = values["rbac"]["serviceAccount"]
    assert sa["name"] == "cluster-autoscaler"
    assert sa["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::123456789012:role/eks-autoscaler")
    assert values["autoDiscovery"] == {"clusterName": f"fraudstack-{stack}"}
    assert values["awsRegion"] == "eu-west-1"
    assert values["image"] == {"tag": "v1.34.0"}
    assert values["nodeSelector"] == {"fraudstack.io/node-pool": "cpu"}
    assert values["extraArgs"]["scale-down-unneeded-time"] == {"staging": "5m", "production": "10m"}[stack]
    assert values["extraArgs"]["skip-nodes-with-local-storage"] == "false"
    assert values["extraArgs"]["expander"] == "least-waste"
    assert values["priorityClassName"] == "system-cluster-critical"
    assert values["podAnnotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert values["containerSecurityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert values["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_role_is_trusted_by_the_service_account_only_and_scoped_to_the_cluster(plans, stack):
    plan = plans[stack]
    trust = doc(one(plan, ROLE, "eks-autoscaler"), "assumeRolePolicy")
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert sorted(statement["Condition"]["StringEquals"].values()) == [
        "sts.amazonaws.com", "system:serviceaccount:kube-system:cluster-autoscaler"
    ]
    policies = [r for r in of_type(plan, "aws:iam/rolePolicy:RolePolicy") if r["name"] == "eks-autoscaler-policy"]
    assert len(policies) == 1
    statements = {s["Sid"]: s for s in doc(policies[0], "policy")["Statement"]}
    assert statements["ResizeOwnGroupsOnly"]["Condition"]["StringEquals"] == {
        f"aws:ResourceTag/k8s.io/cluster-autoscaler/fraudstack-{stack}": "owned",
        "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
    }
    assert statements["ReadOwnNodeGroups"]["Resource"] == f"arn:aws:eks:eu-west-1:123456789012:nodegroup/fraudstack-{stack}/*/*"
    # No managed policy widens it.
    attached = [r for r in of_type(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r["name"].startswith("eks-autoscaler")]
    assert attached == []


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_gpu_group_can_scale_from_zero(plans, stack):
    plan = plans[stack]
    tags = {r["name"]: r for r in of_type(plan, ASG_TAG)}
    gpu = {r["inputs"]["tag"]["key"]: r for name, r in tags.items() if name.startswith("eks-gpu-asg-")}
    assert {k: r["inputs"]["tag"]["value"] for k, r in gpu.items()} == {
        f"{TEMPLATE}/label/fraudstack.io/node-pool": "gpu",
        f"{TEMPLATE}/label/nvidia.com/gpu.present": "true",
        f"{TEMPLATE}/taint/nvidia.com/gpu": "true:NoSchedule",
    }
    assert {r["inputs"]["tag"]["propagateAtLaunch"] for r in gpu.values()} == {False}
    assert {r["parent"] for r in gpu.values()} == {"eks-gpu"}
    # All on the GPU group's own Auto Scaling group, none on the CPU group's.
    (gpu_asg,) = {r["inputs"]["autoscalingGroupName"] for r in gpu.values()}
    cpu_asgs = {r["inputs"]["autoscalingGroupName"] for n, r in tags.items() if n.startswith("eks-cpu-asg-")}
    assert gpu_asg.startswith("eks-eks-gpu-group-") and len(cpu_asgs) == 1 and gpu_asg not in cpu_asgs
    # The node template agrees with what EKS puts on the nodes.
    group = one(plan, "aws:eks/nodeGroup:NodeGroup", "eks-gpu-group")["inputs"]
    assert group["labels"] == {"fraudstack.io/node-pool": "gpu", "nvidia.com/gpu.present": "true"}
    assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


def test_staging_gpu_group_starts_at_zero_and_production_keeps_one_warm(plans):
    sizes = {
        stack: one(plans[stack], "aws:eks/nodeGroup:NodeGroup", "eks-gpu-group")["inputs"]["scalingConfig"]
        for stack in ("staging", "production")
    }
    assert sizes["staging"] == {"minSize": 0, "desiredSize": 0, "maxSize": 1}
    assert sizes["production"] == {"minSize": 1, "desiredSize": 1, "maxSize": 4}
    cpu = one(plans["production"], "aws:eks/nodeGroup:NodeGroup", "eks-cpu-group")["inputs"]["scalingConfig"]
    assert cpu == {"minSize": 3, "desiredSize": 3, "maxSize": 12}


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_policy_pack_passes(plans, stack):
    mandatory = [v for v in plans[stack]["violations"] if v["enforcement"] == "mandatory"]
    assert mandatory == []
    touched = {"eks-cluster-autoscaler", "eks-autoscaler", "eks-autoscaler-policy"} | {
        r["name"] for r in of_type(plans[stack], ASG_TAG)
    }
    assert [v for v in plans[stack]["violations"] if v["name"] in touched] == []


# --------------------------------------------------------------------------- workloads the autoscaler serves


def _pod_fits_template(pod_spec: dict, template: dict[str, str]) -> bool:
    """Would a node built from these node-template tags accept this pod (selector and taints)?"""
    labels = {k.removeprefix(f"{TEMPLATE}/label/"): v for k, v in template.items() if "/label/" in k}
    taints = {k.removeprefix(f"{TEMPLATE}/taint/"): v for k, v in template.items() if "/taint/" in k}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    tolerated = {(t["key"], f"{t.get('value', '')}:{t['effect']}") for t in pod_spec.get("tolerations") or []}
    return all((key, value) in tolerated for key, value in taints.items())


def _templates(plan: dict, group: str) -> dict[str, str]:
    return {
        r["inputs"]["tag"]["key"]: r["inputs"]["tag"]["value"]
        for r in of_type(plan, ASG_TAG) if r["name"].startswith(f"eks-{group}-asg-")
    }


def test_a_pending_gpu_scoring_pod_fits_the_empty_gpu_group():
    """Staging with the GPU variant on: the GPU group is at zero nodes, so only its
    node template can tell the autoscaler that a new node would take the pod."""
    from tools.plan import run_program

    plan = run_program("staging", {"fraudstack:app": {"gpu": True, "maxReplicas": 2, "gpuImage": "2026.11.0-gpu"},
                                   "fraudstack:cluster": {"gpuNodes": {"maxSize": 2}}})
    group = one(plan, "aws:eks/nodeGroup:NodeGroup", "eks-gpu-group")["inputs"]["scalingConfig"]
    assert group["minSize"] == 0 and group["maxSize"] == 2
    (deployment,) = of_type(plan, "kubernetes:apps/v1:Deployment")
    pod = deployment["inputs"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert _pod_fits_template(pod, _templates(plan, "gpu"))
    assert not _pod_fits_template(pod, _templates(plan, "cpu"))
    hpa = one(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "app-hpa")["inputs"]["spec"]
    assert hpa["maxReplicas"] <= group["maxSize"]  # one GPU node per replica
    # The migration Job never waits for (or holds) a GPU node.
    (job,) = of_type(plan, "kubernetes:batch/v1:Job")
    job_pod = job["inputs"]["spec"]["template"]["spec"]
    assert _pod_fits_template(job_pod, _templates(plan, "cpu"))
    assert not _pod_fits_template(job_pod, _templates(plan, "gpu"))


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_cpu_scoring_pods_request_cpu_and_stay_off_the_gpu_group(plans, stack):
    """The HPA adds pods; pods that do not fit make the autoscaler add CPU nodes, which it
    can only do for pods with requests that a CPU node satisfies."""
    (deployment,) = of_type(plans[stack], "kubernetes:apps/v1:Deployment")
    pod = deployment["inputs"]["spec"]["template"]["spec"]
    requests = pod["containers"][0]["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert "nvidia.com/gpu" not in requests
    assert _pod_fits_template(pod, _templates(plans[stack], "cpu"))
    assert not _pod_fits_template(pod, _templates(plans[stack], "gpu"))  # the GPU taint keeps it off
    hpa = one(plans[stack], "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "app-hpa")["inputs"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["inputs"]["metadata"]["name"]
