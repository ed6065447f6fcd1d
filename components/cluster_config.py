"""Stack-config sections for the cluster tier: ``fraudstack:cluster``, ``:endpoints``,
``:registry``, ``:alarms`` and ``:bedrock``.

Each section is one pydantic model read from a structured (camelCase) stack-config
value. ``StackConfig`` in ``components/config.py`` holds them as fields, so a bad value
fails once, at the edge, with the dotted key (``fraudstack:cluster.kubernetesVersion``).
Rules that depend on the environment (production must keep the API private, ...) live
in :func:`production_problems` and are called by ``StackConfig``'s own validator.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.autoscaling import AutoscalerConfig

# EKS versions in standard support when this was written; an older one means paying
# for extended support, a newer one does not exist yet. Update with each EKS release.
SUPPORTED_KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34")

# Add-on versions as EKS publishes them (``aws eks describe-addon-versions``).
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
# Bedrock model ids (``anthropic.claude-3-5-haiku-20241022-v1:0``), optionally with a
# cross-region inference-profile prefix (``us.``, ``eu.``, ``apac.``, ``global.``).
_MODEL_ID = re.compile(r"^(?:(us|eu|apac|us-gov|global)\.)?[a-z0-9-]+\.[A-Za-z0-9.:-]+$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


class _Section(BaseModel):
    """camelCase keys in the stack file, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _check_cidrs(values: list[str]) -> list[str]:
    for value in values:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a CIDR block ({exc})") from None
        if net.prefixlen == 0:
            raise ValueError(f"{value!r} opens the API to the whole internet; list your own networks")
    return values


class NodeGroupConfig(_Section):
    """One managed node group: instance types and min/desired/max sizes."""

    instance_types: list[str] = Field(min_length=1, description="EC2 instance types, first preferred.")
    min_size: int = Field(ge=0, description="Minimum nodes.")
    desired_size: int = Field(ge=0, description="Nodes at creation (the autoscaler owns it afterwards).")
    max_size: int = Field(ge=1, description="Maximum nodes.")
    disk_size_gib: int = Field(default=50, ge=20, le=16384, description="Encrypted gp3 root volume size in GiB.")
    capacity_type: Literal["ON_DEMAND", "SPOT"] = Field("ON_DEMAND", description="On-demand or spot capacity.")

    @field_validator("instance_types")
    @classmethod
    def _types(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _INSTANCE_TYPE.match(value):
                raise ValueError(f"{value!r} is not an EC2 instance type like m7i.large")
        return values

    @model_validator(mode="after")
    def _sizes(self) -> NodeGroupConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"sizes must satisfy minSize <= desiredSize <= maxSize "
                f"(got {self.min_size}, {self.desired_size}, {self.max_size})"
            )
        return self


class GpuNodeGroupConfig(NodeGroupConfig):
    """The GPU node group: only GPU instance families are accepted."""

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, values: list[str]) -> list[str]:
        for value in values:
            if value.split(".")[0] not in _GPU_FAMILIES:
                raise ValueError(
                    f"{value!r} is not an NVIDIA GPU instance type (families: {', '.join(_GPU_FAMILIES)})"
                )
        return values


class AddonVersions(_Section):
    """EKS add-on versions, pinned so an upgrade is a reviewed config change."""

    vpc_cni: str = Field("v1.20.4-eksbuild.1", description="vpc-cni add-on version (network policy enforcement is turned on).")
    coredns: str = Field("v1.12.3-eksbuild.1", description="coredns add-on version.")
    kube_proxy: str = Field("v1.34.1-eksbuild.2", description="kube-proxy add-on version; its minor must equal kubernetesVersion.")
    cloudwatch_observability: str = Field("v4.5.0-eksbuild.1", description="amazon-cloudwatch-observability add-on version (Container Insights).")

    @field_validator("vpc_cni", "coredns", "kube_proxy", "cloudwatch_observability")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _ADDON_VERSION.match(value):
            raise ValueError(f"{value!r} is not an EKS add-on version like v1.19.2-eksbuild.1")
        return value


class ClusterConfig(_Section):
    """``fraudstack:cluster``: the EKS control plane, its access and its node groups."""

    kubernetes_version: str = Field("1.34", description="EKS Kubernetes version, one in standard support.")
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="Networks allowed to the public API endpoint; empty turns it off (required in production). Never 0.0.0.0/0.",
    )
    private_access_cidrs: list[str] = Field(
        default_factory=list, description="Networks inside the VPC (VPN, bastion) allowed to the private API endpoint on 443."
    )
    admin_role_arns: list[str] = Field(
        default_factory=list,
        description="IAM role ARNs given cluster admin through access entries; at least one, and the deploying role must be among them.",
    )
    log_retention_days: int = Field(365, description="Retention of control-plane and Container Insights log groups.")
    deletion_protection: bool = Field(True, description="EKS deletion protection (turn off before `pulumi destroy`).")
    cpu_nodes: NodeGroupConfig = Field(
        default_factory=lambda: NodeGroupConfig(instance_types=["m7i.large"], min_size=2, desired_size=2, max_size=6),
        description="CPU node group (AL2023) for the online API.",
    )
    gpu_nodes: GpuNodeGroupConfig = Field(
        default_factory=lambda: GpuNodeGroupConfig(
            instance_types=["g6.xlarge"], min_size=0, desired_size=0, max_size=2, disk_size_gib=100
        ),
        description="GPU node group (AL2023 NVIDIA AMI, tainted nvidia.com/gpu=true:NoSchedule).",
    )
    addons: AddonVersions = Field(default_factory=AddonVersions, description="EKS add-on versions.")
    nvidia_device_plugin_version: str = Field(
        "0.17.4", pattern=r"^\d+\.\d+\.\d+$", description="NVIDIA device plugin Helm chart version."
    )
    cluster_autoscaler_version: str = Field(
        "9.46.6",
        pattern=r"^\d+\.\d+\.\d+$",
        description="cluster-autoscaler Helm chart version (scales the node groups, the GPU group from zero).",
    )
    autoscaler: AutoscalerConfig = Field(
        default_factory=AutoscalerConfig,
        description="cluster-autoscaler image and scale-up/scale-down settings.",
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        # Imported here: components.config imports this module to build StackConfig.
        from components.config import LOG_RETENTION_DAYS

        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"{value} is not a retention CloudWatch accepts ({', '.join(map(str, LOG_RETENTION_DAYS))})")
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _k8s(cls, value: str) -> str:
        if value not in SUPPORTED_KUBERNETES_VERSIONS:
            raise ValueError(
                f"{value!r} is not a Kubernetes version in EKS standard support "
                f"({', '.join(SUPPORTED_KUBERNETES_VERSIONS)})"
            )
        return value

    @field_validator("public_access_cidrs", "private_access_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        return _check_cidrs(values)

    @field_validator("admin_role_arns")
    @classmethod
    def _arns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _ROLE_ARN.match(value):
                raise ValueError(f"{value!r} is not an IAM role ARN")
        return values


class EndpointsConfig(_Section):
    """``fraudstack:endpoints``: which interface endpoints the private subnets get."""

    bedrock_runtime: bool = Field(True, description="bedrock-runtime interface endpoint (required in production).")
    ecr_api: bool = Field(True, description="ecr.api interface endpoint.")
    ecr_dkr: bool = Field(True, description="ecr.dkr interface endpoint.")
    sts: bool = Field(True, description="sts interface endpoint (IRSA token exchange).")
    logs: bool = Field(True, description="CloudWatch Logs interface endpoint.")
    secrets_manager: bool = Field(True, description="Secrets Manager interface endpoint.")
    monitoring: bool = Field(True, description="CloudWatch (monitoring) interface endpoint: the service's PutMetricData for the alarms (its pods may only reach the endpoints on 443).")


class BedrockConfig(_Section):
    """``fraudstack:bedrock``: the only models the service may invoke."""

    model_ids: list[str] = Field(
        default_factory=lambda: ["anthropic.claude-3-5-haiku-20241022-v1:0"],
        min_length=1,
        description="Bedrock model ids (or cross-region inference profile ids) the endpoint policy allows.",
    )

    @field_validator("model_ids")
    @classmethod
    def _ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if "*" in value or not _MODEL_ID.match(value):
                raise ValueError(
                    f"{value!r} is not a Bedrock model id like anthropic.claude-3-5-haiku-20241022-v1:0"
                )
        return values


class RegistryConfig(_Section):
    """``fraudstack:registry``: the scoring image's ECR repository."""

    repository_name: str = Field("fraudstack/scoring", description="ECR repository of the scoring image.")
    keep_last_images: int = Field(30, ge=1, le=10000, description="Lifecycle policy keeps this many most recent images.")
    untagged_expiry_days: int = Field(7, ge=1, description="Untagged images expire after this many days.")

    @field_validator("repository_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _REPOSITORY.match(value) or len(value) > 256:
            raise ValueError(f"{value!r} is not a valid ECR repository name")
        return value


class DatabaseThresholds(_Section):
    """Alarm thresholds for the RDS instance."""

    cpu_percent: float = Field(80, gt=0, le=100, description="Alarm when average CPU is above this.")
    free_storage_gib: float = Field(10, gt=0, description="Alarm when free storage falls below this many GiB.")
    freeable_memory_mib: float = Field(256, gt=0, description="Alarm when freeable memory falls below this many MiB.")
    read_latency_ms: float = Field(20, gt=0, description="Alarm when average read latency is above this.")
    write_latency_ms: float = Field(20, gt=0, description="Alarm when average write latency is above this.")
    connections: int = Field(400, gt=0, description="Alarm when connections exceed this.")


class CacheThresholds(_Section):
    """Alarm thresholds for each ElastiCache node."""

    engine_cpu_percent: float = Field(75, gt=0, le=100, description="Alarm when the Redis engine thread's CPU is above this.")
    memory_percent: float = Field(80, gt=0, le=100, description="Alarm when used memory is above this share of maxmemory.")
    evictions: int = Field(0, ge=0, description="Alarm when more keys than this are evicted in a period (velocity state lost).")
    replication_lag_seconds: float = Field(1, gt=0, description="Alarm when a replica lags the primary by more than this.")


class NodeThresholds(_Section):
    """Alarm thresholds for the cluster's nodes (Container Insights)."""

    cpu_percent: float = Field(80, gt=0, le=100, description="Alarm when average node CPU is above this.")
    memory_percent: float = Field(80, gt=0, le=100, description="Alarm when average node memory is above this.")
    pod_restarts: int = Field(3, ge=1, description="Alarm when the service's containers restart more than this in a period.")


class ServiceThresholds(_Section):
    """Alarm thresholds for the scoring service's own metrics."""

    p99_latency_ms: float = Field(50, gt=0, description="Alarm when p99 scoring latency is above this (the card authorisation budget).")
    error_rate_percent: float = Field(1, gt=0, le=100, description="Alarm when 5xx responses exceed this share of requests.")
    audit_backlog: int = Field(10000, ge=1, description="Alarm when a worker's audit records not yet in PostgreSQL (memory queue + spool, metric AuditBacklog) stay above this for 3 minutes.")
    namespace: str = Field("fraudstack", description="Kubernetes namespace of the scoring service.")
    deployment: str = Field("scoring-api", description="Deployment name of the scoring service (Container Insights PodName).")

    @field_validator("namespace", "deployment")
    @classmethod
    def _k8s_name(cls, value: str) -> str:
        if not _K8S_NAME.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes object name")
        return value


class AlarmsConfig(_Section):
    """``fraudstack:alarms``: where alarms go and when they fire."""

    email: str | None = Field(None, description="On-call address subscribed to the alarm topic (required in production).")
    period_seconds: Literal[60, 300, 900, 3600] = Field(300, description="Alarm evaluation period in seconds.")
    evaluation_periods: int = Field(3, ge=1, le=100, description="Periods a threshold must be breached before alarming.")
    database: DatabaseThresholds = Field(default_factory=DatabaseThresholds, description="Database alarm thresholds.")
    cache: CacheThresholds = Field(default_factory=CacheThresholds, description="Cache alarm thresholds.")
    nodes: NodeThresholds = Field(default_factory=NodeThresholds, description="Node alarm thresholds (Container Insights).")
    service: ServiceThresholds = Field(default_factory=ServiceThresholds, description="Scoring service alarm thresholds.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


def cluster_tier_problems(
    is_production: bool,
    cluster: ClusterConfig,
    endpoints: EndpointsConfig,
    alarms: AlarmsConfig,
) -> list[tuple[str, str]]:
    """Cross-field rules of the cluster tier as ``(dotted key, why)`` pairs.

    Called by ``StackConfig``'s invariants; production rules come from the values'
    ``is_production`` flag, never from the stack's name.
    """
    problems: list[tuple[str, str]] = []
    # kube-proxy must match the control plane's minor version, or node upgrades break.
    proxy = re.match(r"^v(\d+\.\d+)\.", cluster.addons.kube_proxy)
    if proxy and proxy.group(1) != cluster.kubernetes_version:
        problems.append(
            ("cluster.addons.kubeProxy", f"{cluster.addons.kube_proxy} does not match kubernetesVersion {cluster.kubernetes_version}")
        )
    if not cluster.admin_role_arns:
        problems.append(
            ("cluster.adminRoleArns", "list at least one IAM role (the cluster creator is not made admin implicitly)")
        )
    if not is_production:
        return problems
    if cluster.public_access_cidrs:
        problems.append(
            ("cluster.publicAccessCidrs", "must be empty in production (the API endpoint is private only)")
        )
    if cluster.cpu_nodes.min_size < 2:
        problems.append(("cluster.cpuNodes.minSize", "must be at least 2 in production (one node is a single point of failure)"))
    if cluster.gpu_nodes.min_size < 1:
        problems.append(("cluster.gpuNodes.minSize", "must be at least 1 in production (GPU scoring must not wait for a cold node)"))
    if not cluster.deletion_protection:
        problems.append(("cluster.deletionProtection", "must be true in production"))
    if not endpoints.bedrock_runtime:
        problems.append(("endpoints.bedrockRuntime", "must be true in production (Bedrock is reached only privately)"))
    if alarms.email is None:
        problems.append(("alarms.email", "is required in production (alarms must reach someone)"))
    return problems
