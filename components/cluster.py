"""The EKS cluster: a private control plane, access entries, IRSA, CPU and GPU node
groups, add-ons and the NVIDIA device plugin, all from ``pulumi_aws`` resources."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.autoscaling import AutoscalerConfig, autoscaler_extra_args, cluster_autoscaler_policy
from components.nodegroup import NodeGroup, NodeGroupArgs, Taint

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
"""All five control-plane log types: an audit trail of the API is a PCI requirement."""

GPU_TAINT = Taint(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")
CPU_LABELS = {"fraudstack.io/node-pool": "cpu"}
# ``nvidia.com/gpu.present`` is what the device plugin chart's default affinity selects.
GPU_LABELS = {"fraudstack.io/node-pool": "gpu", "nvidia.com/gpu.present": "true"}
CPU_AMI_TYPE = "AL2023_x86_64_STANDARD"
GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"
NVIDIA_CHART_REPO = "https://nvidia.github.io/k8s-device-plugin"
AUTOSCALER_CHART_REPO = "https://kubernetes.github.io/autoscaler"
# Container Insights writes to these; we create them first so they are encrypted and expire.
CONTAINER_INSIGHTS_LOG_GROUPS = ("application", "dataplane", "host", "performance")
ADMIN_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class NodeGroupSpec:
    """Size and instance types of one node group."""

    instance_types: Sequence[str]
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int = 50
    capacity_type: str = "ON_DEMAND"


@dataclass(frozen=True)
class AddonVersionsSpec:
    """Pinned versions of the EKS add-ons."""

    vpc_cni: str
    coredns: str
    kube_proxy: str
    cloudwatch_observability: str


@dataclass(frozen=True)
class ClusterArgs:
    """Inputs of :class:`Cluster`."""

    cluster_name: str
    """EKS cluster name; also names its log groups, so it is fixed rather than auto-named."""
    kubernetes_version: str
    region: str
    """Region of the stack (the kubeconfig's ``aws eks get-token`` needs it)."""
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    """Traffic to anything inside the VPC (DNS, data tier, endpoints) is allowed out."""
    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Control-plane network interfaces and nodes live here, never in public subnets."""
    secrets_key_arn: pulumi.Input[str]
    """KMS key for Kubernetes Secrets envelope encryption."""
    ebs_key_arn: pulumi.Input[str]
    """KMS key for the nodes' root volumes."""
    logs_key_arn: pulumi.Input[str]
    """KMS key for control-plane and Container Insights log groups."""
    admin_role_arns: Sequence[str]
    """IAM roles granted cluster admin through access entries (the deployer must be one)."""
    cpu_nodes: NodeGroupSpec
    gpu_nodes: NodeGroupSpec
    addon_versions: AddonVersionsSpec
    nvidia_device_plugin_version: str
    cluster_autoscaler_version: str | None = None
    """cluster-autoscaler chart version; None leaves the groups at their configured sizes."""
    autoscaler: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    """Image and scale-up/scale-down behaviour of the cluster-autoscaler."""
    public_access_cidrs: Sequence[str] = ()
    """Networks allowed to the public API endpoint; empty turns the public endpoint off."""
    private_access_cidrs: Sequence[str] = ()
    """Networks inside the VPC (VPN, bastion) allowed to the private API endpoint."""
    log_retention_days: int = 365
    deletion_protection: bool = True
    partition: str = "aws"
    tags: Mapping[str, str] = field(default_factory=dict)
    """Required tags; every child adds its own ``Name``."""


def _assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ],
        }
    )


def irsa_trust_policy(oidc_provider_arn: str, oidc_issuer_url: str, namespace: str, service_account: str) -> str:
    """Trust policy letting exactly one Kubernetes service account assume a role."""
    issuer = oidc_issuer_url.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def service_account_role(
    name: str,
    namespace: str,
    service_account: str,
    policy_json: pulumi.Input[str] | None = None,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer_url: pulumi.Input[str],
    managed_policy_arns: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    parent: pulumi.Resource | None = None,
) -> aws.iam.Role:
    """An IAM role for one Kubernetes service account (IRSA).

    The trust is pinned to ``system:serviceaccount:<namespace>:<service_account>`` and
    the ``sts.amazonaws.com`` audience. ``policy_json`` becomes the role's inline
    policy; ``managed_policy_arns`` are attached as they are.
    """
    opts = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        name,
        assume_role_policy=pulumi.Output.all(oidc_provider_arn, oidc_issuer_url).apply(
            lambda v: irsa_trust_policy(v[0], v[1], namespace, service_account)
        ),
        description=f"IRSA role for {namespace}/{service_account}",
        tags={**(tags or {}), "Name": name},
        opts=opts,
    )
    if policy_json is not None:
        aws.iam.RolePolicy(f"{name}-policy", role=role.name, policy=policy_json, opts=opts)
    for arn in managed_policy_arns:
        aws.iam.RolePolicyAttachment(
            f"{name}-{arn.rsplit('/', 1)[-1].lower()}", role=role.name, policy_arn=arn, opts=opts
        )
    return role


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no static credentials)."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
            "interactiveMode": "Never",
        }
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "users": [{"name": cluster_name, "user": user}],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
        }
    )


class Cluster(pulumi.ComponentResource):
    """A private EKS cluster with CPU and GPU managed node groups.

    Attributes for other components: ``cluster_name``, ``endpoint``,
    ``node_security_group`` (what the data tier and the VPC endpoints admit),
    ``oidc_provider_arn``/``oidc_issuer_url`` (behind :meth:`service_account_role`),
    ``kubeconfig`` and ``k8s_provider`` (for every Kubernetes object).
    """

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:Cluster", name, None, opts)
        self._args = args
        self._base = name
        child = pulumi.ResourceOptions(parent=self)
        p = args.partition

        def tags(suffix: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{args.cluster_name}-{suffix}" if suffix else args.cluster_name}

        def managed(policy: str) -> str:
            return f"arn:{p}:iam::aws:policy/{policy}"

        # --- IAM role of the control plane: only the policy EKS itself needs.
        self.cluster_role = aws.iam.Role(
            f"{name}-cluster-role",
            assume_role_policy=_assume_role_policy("eks.amazonaws.com"),
            description=f"EKS control plane of {args.cluster_name}",
            tags=tags("cluster"),
            opts=child,
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-eks",
            role=self.cluster_role.name,
            policy_arn=managed("AmazonEKSClusterPolicy"),
            opts=child,
        )

        # EKS envelope-encrypts Secrets as the cluster role: it needs these on our key only.
        cluster_kms = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=self.cluster_role.name,
            policy=pulumi.Output.from_input(args.secrets_key_arn).apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                                "Resource": arn,
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )

        # --- Control-plane log group, created first so it is encrypted and expires
        # (EKS would otherwise create it unencrypted and keep logs forever).
        self.control_plane_logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            tags=tags("control-plane"),
            opts=child,
        )

        # --- Security groups. Standalone rules only (no inline blocks), so nothing fights
        # over them; creating a group without rules drops AWS's default allow-all egress.
        self.control_plane_security_group = aws.ec2.SecurityGroup(
            f"{name}-control-plane-sg",
            vpc_id=args.vpc_id,
            description=f"EKS API of {args.cluster_name}: 443 from nodes and listed operator networks",
            tags=tags("control-plane"),
            opts=child,
        )
        self.node_security_group = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=args.vpc_id,
            description=f"EKS nodes of {args.cluster_name}; the data tier admits this group",
            tags=tags("nodes"),
            opts=child,
        )
        cp_sg, node_sg = self.control_plane_security_group.id, self.node_security_group.id

        def ingress(suffix: str, sg, desc: str, proto: str, ports: tuple[int, int] | None = None, **src):
            return aws.vpc.SecurityGroupIngressRule(
                f"{name}-{suffix}",
                security_group_id=sg,
                description=desc,
                ip_protocol=proto,
                from_port=ports[0] if ports else None,
                to_port=ports[1] if ports else None,
                tags=tags(suffix),
                opts=child,
                **src,
            )

        def egress(suffix: str, sg, desc: str, proto: str, ports: tuple[int, int] | None = None, **dst):
            return aws.vpc.SecurityGroupEgressRule(
                f"{name}-{suffix}",
                security_group_id=sg,
                description=desc,
                ip_protocol=proto,
                from_port=ports[0] if ports else None,
                to_port=ports[1] if ports else None,
                tags=tags(suffix),
                opts=child,
                **dst,
            )

        ingress("api-from-nodes", cp_sg, "Kubernetes API from nodes", "tcp", (443, 443), referenced_security_group_id=node_sg)
        for i, cidr in enumerate(args.private_access_cidrs):
            ingress(f"api-from-operators-{i}", cp_sg, f"Kubernetes API from operator network {cidr}", "tcp", (443, 443), cidr_ipv4=cidr)
        # kubelet, webhooks and extension API servers run on the nodes.
        egress("api-to-nodes-https", cp_sg, "Webhooks on nodes", "tcp", (443, 443), referenced_security_group_id=node_sg)
        egress("api-to-nodes", cp_sg, "kubelet, webhooks and extension APIs on nodes", "tcp", (1025, 65535), referenced_security_group_id=node_sg)
        ingress("nodes-from-nodes", node_sg, "Pod-to-pod and node-to-node traffic", "-1", referenced_security_group_id=node_sg)
        ingress("nodes-from-api-https", node_sg, "Webhooks from the control plane", "tcp", (443, 443), referenced_security_group_id=cp_sg)
        ingress("nodes-from-api", node_sg, "kubelet, webhooks and extension APIs from the control plane", "tcp", (1025, 65535), referenced_security_group_id=cp_sg)
        egress("nodes-to-vpc", node_sg, "Anything inside the VPC: DNS, data tier, VPC endpoints, control plane", "-1", cidr_ipv4=args.vpc_cidr)
        # Image registries outside AWS (the NVIDIA device plugin's nvcr.io) and AWS APIs
        # without an interface endpoint are only reachable through the NAT gateways.
        egress("nodes-to-https", node_sg, "HTTPS through the NAT gateways", "tcp", (443, 443), cidr_ipv4="0.0.0.0/0")

        # --- The cluster.
        vpc_config: dict = {
            "subnet_ids": args.private_subnet_ids,
            "security_group_ids": [cp_sg],
            "endpoint_private_access": True,
            "endpoint_public_access": bool(args.public_access_cidrs),
        }
        if args.public_access_cidrs:
            vpc_config["public_access_cidrs"] = list(args.public_access_cidrs)
        self.cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=self.cluster_role.arn,
            vpc_config=vpc_config,
            enabled_cluster_log_types=list(LOG_TYPES),
            encryption_config={"resources": ["secrets"], "provider": {"key_arn": args.secrets_key_arn}},
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": False,
            },
            kubernetes_network_config={"ip_family": "ipv4"},
            # Standard support only: extended support silently costs six times as much.
            upgrade_policy={"support_type": "STANDARD"},
            deletion_protection=args.deletion_protection,
            tags=tags(""),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_policy, cluster_kms, self.control_plane_logs]),
        )
        self.cluster_name = self.cluster.name
        self.endpoint = self.cluster.endpoint
        # EKS picks the Service range when none is given (172.20.0.0/16 or 10.100.0.0/16,
        # whichever the VPC does not overlap); NetworkPolicies towards the API server's
        # ClusterIP need it (components/metrics_adapter.py).
        self.service_ipv4_cidr = self.cluster.kubernetes_network_config.apply(
            lambda c: c.service_ipv4_cidr if c is not None else None
        )

        # --- Admin access through access entries (no aws-auth ConfigMap, no implicit creator).
        self.admin_associations = []
        for i, role_arn in enumerate(args.admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{i}-entry",
                cluster_name=self.cluster.name,
                principal_arn=role_arn,
                type="STANDARD",
                tags=tags(f"admin-{i}"),
                opts=child,
            )
            self.admin_associations.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-admin-{i}-policy",
                    cluster_name=self.cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=ADMIN_ACCESS_POLICY,
                    access_scope={"type": "cluster"},
                    opts=child,
                )
            )

        # --- IRSA: one OIDC provider; roles per service account. IAM trusts the EKS
        # issuer's CA chain, so no thumbprint is pinned.
        self.oidc_issuer_url = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags("oidc"),
            opts=child,
        )
        self.oidc_provider_arn = self.oidc_provider.arn

        # --- Node role: worker and image-pull policies only; the CNI gets its own role.
        self.node_role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=_assume_role_policy("ec2.amazonaws.com"),
            description=f"EKS nodes of {args.cluster_name}",
            tags=tags("node"),
            opts=child,
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy.lower()}",
                role=self.node_role.name,
                policy_arn=managed(policy),
                opts=child,
            )
            for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")
        ]
        self.cni_role = self.service_account_role(
            f"{name}-vpc-cni", "kube-system", "aws-node", managed_policy_arns=[managed("AmazonEKS_CNI_Policy")]
        )
        self.cloudwatch_agent_role = self.service_account_role(
            f"{name}-cloudwatch-agent",
            "amazon-cloudwatch",
            "cloudwatch-agent",
            managed_policy_arns=[managed("CloudWatchAgentServerPolicy")],
        )

        # --- Add-ons the nodes need before they can become Ready.
        versions = args.addon_versions
        vpc_cni = self._addon(
            "vpc-cni",
            versions.vpc_cni,
            # Without the network policy agent, Kubernetes NetworkPolicies are accepted and ignored.
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            service_account_role_arn=self.cni_role.arn,
        )
        kube_proxy = self._addon("kube-proxy", versions.kube_proxy)

        # --- Node groups (private subnets, hardened launch templates).
        node_sgs = [node_sg]
        common = dict(
            cluster_name=self.cluster.name,
            node_role_arn=self.node_role.arn,
            subnet_ids=args.private_subnet_ids,
            security_group_ids=node_sgs,
            ebs_key_arn=args.ebs_key_arn,
        )
        ng_opts = pulumi.ResourceOptions(parent=self, depends_on=[*node_policies, vpc_cni, kube_proxy])
        self.cpu_nodes = NodeGroup(
            f"{name}-cpu",
            NodeGroupArgs(
                **common,
                ami_type=CPU_AMI_TYPE,
                instance_types=list(args.cpu_nodes.instance_types),
                min_size=args.cpu_nodes.min_size,
                desired_size=args.cpu_nodes.desired_size,
                max_size=args.cpu_nodes.max_size,
                disk_size_gib=args.cpu_nodes.disk_size_gib,
                capacity_type=args.cpu_nodes.capacity_type,
                labels=CPU_LABELS,
                name_tag=f"{args.cluster_name}-cpu",
                tags=args.tags,
            ),
            opts=ng_opts,
        )
        self.gpu_nodes = NodeGroup(
            f"{name}-gpu",
            NodeGroupArgs(
                **common,
                ami_type=GPU_AMI_TYPE,
                instance_types=list(args.gpu_nodes.instance_types),
                min_size=args.gpu_nodes.min_size,
                desired_size=args.gpu_nodes.desired_size,
                max_size=args.gpu_nodes.max_size,
                disk_size_gib=args.gpu_nodes.disk_size_gib,
                capacity_type=args.gpu_nodes.capacity_type,
                labels=GPU_LABELS,
                taints=[GPU_TAINT],
                name_tag=f"{args.cluster_name}-gpu",
                # The cluster autoscaler needs these to scale a group up from zero nodes.
                tags={
                    **args.tags,
                    "k8s.io/cluster-autoscaler/node-template/label/fraudstack.io/node-pool": "gpu",
                    "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu": "true:NoSchedule",
                },
            ),
            opts=ng_opts,
        )
        after_nodes = [self.cpu_nodes, self.gpu_nodes]

        # --- Add-ons that run as pods on the nodes.
        self._addon("coredns", versions.coredns, depends_on=after_nodes)
        insights_logs = [
            aws.cloudwatch.LogGroup(
                f"{name}-insights-{kind}",
                name=f"/aws/containerinsights/{args.cluster_name}/{kind}",
                retention_in_days=args.log_retention_days,
                kms_key_id=args.logs_key_arn,
                tags=tags(f"insights-{kind}"),
                opts=child,
            )
            for kind in CONTAINER_INSIGHTS_LOG_GROUPS
        ]
        self._addon(
            "amazon-cloudwatch-observability",
            versions.cloudwatch_observability,
            service_account_role_arn=self.cloudwatch_agent_role.arn,
            depends_on=[*after_nodes, *insights_logs],
        )

        # --- Kubernetes provider from the cluster's outputs, and the NVIDIA device plugin.
        self.kubeconfig = pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
        ).apply(lambda v: kubeconfig(v[0], v[1], v[2], args.region))
        self.k8s_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.admin_associations),
        )
        self.nvidia_device_plugin = k8s.helm.v3.Release(
            f"{name}-nvidia-device-plugin",
            name="nvidia-device-plugin",
            chart="nvidia-device-plugin",
            version=args.nvidia_device_plugin_version,
            namespace="kube-system",
            repository_opts={"repo": NVIDIA_CHART_REPO},
            values={
                "nodeSelector": {"fraudstack.io/node-pool": "gpu"},
                "tolerations": [
                    {"key": GPU_TAINT.key, "operator": "Equal", "value": GPU_TAINT.value, "effect": "NoSchedule"}
                ],
                "priorityClassName": "system-node-critical",
            },
            opts=pulumi.ResourceOptions(parent=self, provider=self.k8s_provider, depends_on=[self.gpu_nodes]),
        )

        # --- cluster-autoscaler: without it min/max sizes are only bounds, and a group
        # at zero (the staging GPU group) never grows. It reads the group's labels and
        # taints from the EKS API (DescribeNodegroup) to scale up from zero.
        self.cluster_autoscaler = None
        if args.cluster_autoscaler_version:
            autoscaler_role = self.service_account_role(
                f"{name}-autoscaler",
                "kube-system",
                "cluster-autoscaler",
                pulumi.Output.all(self.cluster.name, self.cluster.arn).apply(
                    lambda v: cluster_autoscaler_policy(v[0], v[1])
                ),
            )
            self.cluster_autoscaler = k8s.helm.v3.Release(
                f"{name}-cluster-autoscaler",
                name="cluster-autoscaler",
                chart="cluster-autoscaler",
                version=args.cluster_autoscaler_version,
                namespace="kube-system",
                repository_opts={"repo": AUTOSCALER_CHART_REPO},
                values={
                    "autoDiscovery": {"clusterName": self.cluster.name},
                    "awsRegion": args.region,
                    "rbac": {
                        "serviceAccount": {
                            "name": "cluster-autoscaler",
                            "annotations": {"eks.amazonaws.com/role-arn": autoscaler_role.arn},
                        }
                    },
                    "nodeSelector": CPU_LABELS,
                    "image": {"tag": args.autoscaler.image_tag},
                    "extraArgs": autoscaler_extra_args(args.autoscaler),
                    # One replica with leader election; evicting it mid-decision would stall
                    # scaling, and it must outrank the workloads it makes room for.
                    "replicaCount": 1,
                    "priorityClassName": "system-cluster-critical",
                    "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "300Mi"},
                        "limits": {"memory": "600Mi"},
                    },
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containerSecurityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                },
                opts=pulumi.ResourceOptions(
                    parent=self, provider=self.k8s_provider, depends_on=[self.cpu_nodes, self.gpu_nodes]
                ),
            )

        self.register_outputs(
            {
                "cluster_name": self.cluster.name,
                "endpoint": self.cluster.endpoint,
                "node_security_group_id": self.node_security_group.id,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer_url": self.oidc_issuer_url,
                "service_ipv4_cidr": self.service_ipv4_cidr,
            }
        )

    def _addon(self, addon: str, version: str, depends_on: Sequence[pulumi.Resource] = (), **kwargs) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{self._base}-addon-{addon}",
            cluster_name=self.cluster.name,
            addon_name=addon,
            addon_version=version,
            # EKS installs self-managed copies of the first three; take them over.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="PRESERVE",
            tags={**self._args.tags, "Name": f"{self._args.cluster_name}-{addon}"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            **kwargs,
        )

    def service_account_role(
        self,
        name: str,
        namespace: str,
        service_account: str,
        policy_json: pulumi.Input[str] | None = None,
        *,
        managed_policy_arns: Sequence[str] = (),
        parent: pulumi.Resource | None = None,
    ) -> aws.iam.Role:
        """An IRSA role for ``namespace/service_account`` on this cluster (see the module function)."""
        return service_account_role(
            name,
            namespace,
            service_account,
            policy_json,
            oidc_provider_arn=self.oidc_provider_arn,
            oidc_issuer_url=self.oidc_issuer_url,
            managed_policy_arns=managed_policy_arns,
            tags=self._args.tags,
            parent=parent or self,
        )
