"""A hardened EKS managed node group: its own launch template, private subnets only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.autoscaling import node_template_tags, tag_resource_suffix


@dataclass(frozen=True)
class Taint:
    """A Kubernetes node taint, in the EKS API's spelling of the effect."""

    key: str
    value: str
    effect: str  # NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE


@dataclass(frozen=True)
class NodeGroupArgs:
    """Inputs of :class:`NodeGroup`."""

    cluster_name: pulumi.Input[str]
    """Name of the EKS cluster the nodes join."""
    node_role_arn: pulumi.Input[str]
    """IAM role the nodes run as (shared by all groups of a cluster)."""
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets only: nodes never get a public address."""
    security_group_ids: Sequence[pulumi.Input[str]]
    """Security groups of the node network interfaces."""
    ebs_key_arn: pulumi.Input[str]
    """KMS key that encrypts the root volumes."""
    ami_type: str
    """EKS AMI type, e.g. ``AL2023_x86_64_STANDARD`` or ``AL2023_x86_64_NVIDIA``."""
    instance_types: Sequence[str]
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int
    capacity_type: str = "ON_DEMAND"
    labels: Mapping[str, str] = field(default_factory=dict)
    """Kubernetes labels every node of the group carries."""
    taints: Sequence[Taint] = ()
    """Taints that keep unrelated pods off the group."""
    name_tag: str = ""
    """``Name`` tag of the nodes, volumes and group (default: the logical name)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Required tags; the component adds ``Name``."""
    autoscaler_node_template: bool = True
    """Tag the group's Auto Scaling group with its labels and taints so the
    cluster-autoscaler can scale it up from zero nodes."""


class NodeGroup(pulumi.ComponentResource):
    """A managed node group launched from a template with IMDSv2 only (hop limit 1),
    an encrypted root volume on our key, no public IP and no SSH key."""

    launch_template: aws.ec2.LaunchTemplate
    node_group: aws.eks.NodeGroup

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:NodeGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "Name": args.name_tag or name}

        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"EKS nodes for {name}",
            # Hop limit 1 keeps pods (one hop further) away from the node role's credentials;
            # they get their own through IRSA.
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": args.disk_size_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": args.ebs_key_arn,
                        "delete_on_termination": "true",
                    },
                }
            ],
            # The subnet must not be set here (EKS picks it from the node group); the
            # interface only pins "no public address" and the security groups.
            network_interfaces=[
                {
                    "device_index": 0,
                    "associate_public_ip_address": "false",
                    "delete_on_termination": "true",
                    "security_groups": list(args.security_group_ids),
                }
            ],
            monitoring={"enabled": True},
            tag_specifications=[
                {"resource_type": "instance", "tags": tags},
                {"resource_type": "volume", "tags": tags},
                {"resource_type": "network-interface", "tags": tags},
            ],
            update_default_version=True,
            tags=tags,
            opts=child,
        )

        self.node_group = aws.eks.NodeGroup(
            f"{name}-group",
            cluster_name=args.cluster_name,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            ami_type=args.ami_type,
            capacity_type=args.capacity_type,
            instance_types=list(args.instance_types),
            # No remote_access block: there is no SSH into nodes (use SSM if ever needed).
            launch_template={
                "id": self.launch_template.id,
                "version": self.launch_template.latest_version.apply(str),
            },
            scaling_config={
                "min_size": args.min_size,
                "desired_size": args.desired_size,
                "max_size": args.max_size,
            },
            update_config={"max_unavailable": 1},
            # EKS replaces nodes that report unhealthy (NotReady, GPU errors) by itself.
            node_repair_config={"enabled": True},
            labels=dict(args.labels),
            taints=[{"key": t.key, "value": t.value, "effect": t.effect} for t in args.taints],
            tags=tags,
            # The cluster autoscaler owns desired size once the group exists. Children do not
            # inherit the component's depends_on, and nodes must wait for it (CNI, node role).
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list((opts.depends_on or []) if opts else []),
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

        # EKS does not copy node-group tags to the group's Auto Scaling group
        # (aws/containers-roadmap#608), and the autoscaler reads the node template from
        # the Auto Scaling group's tags when a group has no node to look at.
        self.autoscaling_group_name = self.node_group.resources.apply(lambda r: r[0].autoscaling_groups[0].name)
        self.template_tags: list[aws.autoscaling.Tag] = []
        if args.autoscaler_node_template:
            template = node_template_tags(args.labels, [(t.key, t.value, t.effect) for t in args.taints])
            self.template_tags = [
                aws.autoscaling.Tag(
                    f"{name}-asg-{tag_resource_suffix(key)}",
                    autoscaling_group_name=self.autoscaling_group_name,
                    # Only a description for the autoscaler; EKS labels and taints the nodes.
                    tag={"key": key, "value": value, "propagate_at_launch": False},
                    opts=child,
                )
                for key, value in template.items()
            ]

        self.register_outputs(
            {"launch_template_id": self.launch_template.id, "node_group_arn": self.node_group.arn}
        )
