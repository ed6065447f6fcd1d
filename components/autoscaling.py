"""Node autoscaling with the Kubernetes Cluster Autoscaler: its settings, its IAM policy,
its Helm values and the node-template tags that let it scale a group up from zero.

Pure functions and one config section; :class:`components.cluster.Cluster` installs the
autoscaler with them. Why the Cluster Autoscaler rather than Karpenter: see
``docs/delivery.md`` (managed node groups stay the unit of capacity, the launch templates
and IMDS/encryption settings the policy pack checks stay in force, and every permission
is conditioned on this cluster's node-group tags).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

TEMPLATE_PREFIX = "k8s.io/cluster-autoscaler/node-template"
"""Tag prefix the autoscaler reads to build a node of a group that has no nodes yet."""

_IMAGE_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


class AutoscalerConfig(BaseModel):
    """``fraudstack:cluster.autoscaler``: how the Cluster Autoscaler grows and shrinks the node groups."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    image_tag: str = Field(
        "v1.34.0",
        description="cluster-autoscaler image tag; its minor must equal cluster.kubernetesVersion.",
    )
    expander: Literal["least-waste", "priority", "most-pods", "random", "price"] = Field(
        "least-waste", description="Which group grows when several could host the pending pods."
    )
    scan_interval_seconds: int = Field(10, ge=5, le=60, description="How often pending pods and idle nodes are checked.")
    scale_down_unneeded_minutes: int = Field(
        10, ge=1, le=1440, description="A node under the utilisation threshold this long is removed (an idle GPU node too)."
    )
    scale_down_delay_after_add_minutes: int = Field(
        10, ge=0, le=1440, description="No scale-down this long after a scale-up (avoids flapping behind the HPA)."
    )
    scale_down_utilization_threshold: float = Field(
        0.5, gt=0, lt=1, description="Requests / allocatable below which a node counts as unneeded."
    )
    max_node_provision_minutes: int = Field(
        15, ge=5, le=60, description="A node not ready after this long is given up and another group tried."
    )

    @field_validator("image_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not _IMAGE_TAG.match(value):
            raise ValueError(f"{value!r} is not a cluster-autoscaler release tag like v1.34.0")
        return value


def autoscaler_problems(kubernetes_version: str, autoscaler: AutoscalerConfig) -> Iterable[tuple[str, str]]:
    """The autoscaler supports exactly one Kubernetes minor: its own."""
    m = _IMAGE_TAG.match(autoscaler.image_tag)
    if m and f"{m[1]}.{m[2]}" != kubernetes_version:
        yield (
            "cluster.autoscaler.imageTag",
            f"{autoscaler.image_tag} is for Kubernetes {m[1]}.{m[2]}; the cluster runs {kubernetes_version}",
        )


def cluster_autoscaler_policy(cluster_name: str, cluster_arn: str) -> str:
    """What cluster-autoscaler needs: resize only this cluster's groups, describe the rest.

    EKS tags the Auto Scaling group of every managed node group with
    ``k8s.io/cluster-autoscaler/<cluster>=owned`` and ``k8s.io/cluster-autoscaler/enabled=true``;
    the two write actions are allowed only on groups carrying both.
    """
    nodegroups = cluster_arn.replace(":cluster/", ":nodegroup/", 1) + "/*/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ResizeOwnGroupsOnly",
                    "Effect": "Allow",
                    "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned",
                            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
                        }
                    },
                },
                {
                    # Describe calls cannot be scoped to a resource.
                    "Sid": "Describe",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                    ],
                    "Resource": "*",
                },
                {
                    # Labels and taints of an empty managed group, for scale-from-zero.
                    "Sid": "ReadOwnNodeGroups",
                    "Effect": "Allow",
                    "Action": "eks:DescribeNodegroup",
                    "Resource": nodegroups,
                },
            ],
        }
    )


def autoscaler_extra_args(settings: AutoscalerConfig) -> dict[str, str]:
    """Command-line flags of the autoscaler (the chart's ``extraArgs``)."""
    return {
        "expander": settings.expander,
        # The CPU group lists two similar instance types; keep zones balanced.
        "balance-similar-node-groups": "true",
        "scan-interval": f"{settings.scan_interval_seconds}s",
        "scale-down-enabled": "true",
        "scale-down-unneeded-time": f"{settings.scale_down_unneeded_minutes}m",
        "scale-down-delay-after-add": f"{settings.scale_down_delay_after_add_minutes}m",
        "scale-down-utilization-threshold": str(settings.scale_down_utilization_threshold),
        "max-node-provision-time": f"{settings.max_node_provision_minutes}m",
        # The scoring pods mount an emptyDir for /tmp; with the default (true) no node
        # running one would ever be removed, so nodes would only ever grow.
        "skip-nodes-with-local-storage": "false",
        "skip-nodes-with-system-pods": "true",
    }


def node_template_tags(labels: Mapping[str, str], taints: Sequence[tuple[str, str, str]]) -> dict[str, str]:
    """Auto Scaling group tags describing a group's nodes to the autoscaler.

    ``taints`` are ``(key, value, effect)`` in the EKS API's spelling (``NO_SCHEDULE``).
    With them the autoscaler knows, while a group has zero nodes, that a new node would
    carry these labels and taints, so a pending pod that tolerates the taint and selects
    the label makes the group grow.
    """
    tags = {f"{TEMPLATE_PREFIX}/label/{k}": v for k, v in labels.items()}
    for key, value, effect in taints:
        tags[f"{TEMPLATE_PREFIX}/taint/{key}"] = f"{value}:{_EFFECTS[effect]}"
    return tags


def tag_resource_suffix(tag_key: str) -> str:
    """A stable, kebab-case logical-name suffix for one node-template tag."""
    rest = tag_key.removeprefix(f"{TEMPLATE_PREFIX}/")
    return re.sub(r"[^a-z0-9]+", "-", rest.lower()).strip("-")
