"""``fraudstack:app``: how the scoring service runs on the cluster.

Validated once by :func:`components.config.load_stack_config`; the cross-section rules
(names shared with the alarms, GPU replicas fitting the GPU node group) are in
:func:`app_problems`, registered there as an invariant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

_DNS_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# Docker's tag grammar; "latest" and other moving tags are refused below.
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_MOVING_TAGS = ("latest", "main", "master", "stable", "dev", "edge", "nightly")
_CPU_RE = re.compile(r"^([1-9][0-9]{0,2}m|[1-9][0-9]{0,3}m|[0-9]+(\.[0-9]{1,3})?)$")
_BYTES_RE = re.compile(r"^[1-9][0-9]{0,5}(Mi|Gi)$")
_ACM_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_HOST_RE = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CHART_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")

#: ALB security policies that refuse TLS 1.0 and 1.1 (the controller's default accepts them).
TLS12_POLICIES = (
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
)
#: Values S3 lifecycle and the alarms accept for access-log retention.
ACCESS_LOG_RETENTION_MIN_DAYS = 90


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Scheme(str, Enum):
    """Where the load balancer is reachable from."""

    INTERNAL = "internal"  # the VPC and networks routed to it (VPN, peering, Transit Gateway)
    INTERNET_FACING = "internet-facing"  # public; a WAF web ACL is attached


def _bytes(value: str) -> int:
    number, unit = int(value[:-2]), value[-2:]
    return number * (1024 if unit == "Gi" else 1)


def cpu_millicores(value: str) -> int:
    """A Kubernetes CPU quantity (``500m``, ``1``, ``1.5``) in millicores."""
    return int(value[:-1]) if value.endswith("m") else round(float(value) * 1000)


class ResourcesConfig(_Model):
    """Per-pod container resources; requests equal limits (Guaranteed QoS: never throttled below its share, evicted last)."""

    cpu: str = Field("1", description="CPU request and limit, a Kubernetes quantity (`500m`, `1`, `2`).")
    memory: str = Field("1Gi", description="Memory request and limit (`Mi` or `Gi`).")
    ephemeral_storage: str = Field("1Gi", description="Ephemeral storage request and limit (`Mi` or `Gi`): temp files and the audit spool.")

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        if not _CPU_RE.match(value) or cpu_millicores(value) < 100:
            raise ValueError(f"{value!r} is not a CPU quantity of at least 100m (e.g. 500m, 1, 2)")
        return value

    @field_validator("memory", "ephemeral_storage")
    @classmethod
    def _bytes(cls, value: str) -> str:
        if not _BYTES_RE.match(value) or _bytes(value) < 256:
            raise ValueError(f"{value!r} is not a quantity of at least 256Mi in Mi or Gi (e.g. 512Mi, 2Gi)")
        return value

    def mebibytes(self, field: str) -> int:
        """A byte quantity of this section in MiB."""
        return _bytes(getattr(self, field))


class AppConfig(_Model):
    """``fraudstack:app``: the scoring service's Kubernetes deployment and load balancer."""

    namespace: str = Field("fraudstack", description="Kubernetes namespace of the service (must equal alarms.service.namespace).")
    name: str = Field("scoring-api", description="Name of the Deployment, Service, HPA and service account (must equal alarms.service.deployment).")
    image: str | None = Field(None, description="Image in the stack's ECR repository: an immutable tag (`2026.11.0`) or a digest (`sha256:<64 hex>`). Required.")
    workers: int = Field(1, ge=1, le=16, description="Uvicorn worker processes per pod (one per CPU is typical).")
    log_level: str = Field("INFO", description="The service's log level (FRAUDSTACK_LOG_LEVEL).")
    gpu: bool = Field(False, description="Schedule the service on the GPU node group (one GPU per pod; ONNX Runtime's CUDA provider when the image has it).")
    gpu_image: str | None = Field(None, description="With `gpu`: the GPU image (`app/Dockerfile` target `runtime-gpu`, onnxruntime-gpu) in the stack's ECR repository, a tag or a digest like `image`, built from the same commit. The Deployment runs it; the migration Job keeps `image` on a CPU node. Required with `gpu: true`.")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="Container requests and limits.")
    min_replicas: int = Field(3, ge=2, le=100, description="HPA lower bound (at least 2: one pod must survive a node drain).")
    max_replicas: int = Field(12, ge=2, le=500, description="HPA upper bound.")
    cpu_target_percent: int = Field(60, ge=10, le=95, description="HPA target: average CPU utilisation of the requests.")
    requests_per_second_target: int = Field(1000, ge=1, le=100000, description="HPA target: scoring requests per second per pod (pods metric `fraudstack_requests_per_second`, served by the prometheus-adapter release).")
    signed_requests: bool = Field(True, description="Require every request to carry an HMAC signature made with the `hmac-signing-key` secret (FRAUDSTACK_HMAC_SECRET).")
    metrics_scrapers: tuple[str, ...] = Field(default_factory=tuple, description="Namespaces whose pods may scrape `/metrics` on the service port (Prometheus feeding the request-rate metric); empty: none.")
    scheme: Scheme = Field(Scheme.INTERNAL, description="`internal` or `internet-facing` load balancer (internet-facing gets a WAF web ACL).")
    certificate_arn: str | None = Field(None, description="ACM certificate of the HTTPS listener. Required.")
    hostname: str | None = Field(None, description="Host name the Ingress answers for (the certificate must cover it). Unset: any host.")
    ssl_policy: str = Field("ELBSecurityPolicy-TLS13-1-2-2021-06", description="ALB TLS policy (TLS 1.2 or newer only).")
    waf_rate_limit: int = Field(2000, ge=100, le=2_000_000_000, description="Requests per 5 minutes one client IP may send before the WAF blocks it (internet-facing only).")
    access_log_retention_days: int = Field(365, ge=ACCESS_LOG_RETENTION_MIN_DAYS, le=3653, description="Days the ALB access logs are kept in S3 (PCI DSS 10.5.1: at least 365 in production).")
    lb_controller_version: str = Field("1.14.0", description="Helm chart version of the AWS Load Balancer Controller.")
    monitoring_namespace: str = Field("monitoring", description="Namespace of the Prometheus server and prometheus-adapter serving the HPA's request-rate metric (always allowed to scrape the service).")
    prometheus_version: str = Field("25.27.0", description="Helm chart version of `prometheus` (prometheus-community; server only).")
    prometheus_adapter_version: str = Field("4.11.0", description="Helm chart version of `prometheus-adapter` (prometheus-community).")

    @field_validator("namespace", "name", "monitoring_namespace")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _DNS_LABEL_RE.match(value):
            raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits, dashes, at most 63)")
        if value in ("default", "kube-system", "kube-public", "kube-node-lease"):
            raise ValueError(f"{value!r} is reserved; the service gets its own namespace")
        return value

    @field_validator("metrics_scrapers")
    @classmethod
    def _scrapers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ns in value:
            if not _DNS_LABEL_RE.match(ns):
                raise ValueError(f"{ns!r} is not a namespace name")
        if len(set(value)) != len(value):
            raise ValueError("lists a namespace twice")
        return value

    @field_validator("image", "gpu_image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("sha256:"):
            if not _DIGEST_RE.match(value):
                raise ValueError(f"{value!r} is not a digest sha256:<64 lowercase hex>")
            return value
        if ":" in value or "/" in value or "@" in value:
            raise ValueError(f"{value!r}: give only the tag or the digest; the repository comes from the stack")
        if not _TAG_RE.match(value):
            raise ValueError(f"{value!r} is not an image tag")
        if value.lower() in _MOVING_TAGS:
            raise ValueError(f"{value!r} is a moving tag; use a release tag or a digest")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"{value!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()

    @field_validator("certificate_arn")
    @classmethod
    def _cert(cls, value: str | None) -> str | None:
        if value is not None and not _ACM_ARN_RE.match(value):
            raise ValueError(f"{value!r} is not an ACM certificate ARN")
        return value

    @field_validator("hostname")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_RE.match(value):
            raise ValueError(f"{value!r} is not a lowercase DNS name")
        return value

    @field_validator("ssl_policy")
    @classmethod
    def _tls(cls, value: str) -> str:
        if value not in TLS12_POLICIES:
            raise ValueError(f"{value!r} is not a TLS 1.2+ ALB policy ({', '.join(TLS12_POLICIES)})")
        return value

    @field_validator("lb_controller_version", "prometheus_version", "prometheus_adapter_version")
    @classmethod
    def _chart(cls, value: str) -> str:
        if not _CHART_VERSION_RE.match(value):
            raise ValueError(f"{value!r} is not a chart version x.y.z")
        return value

    @property
    def deployment_image(self) -> str | None:
        """The image the scoring Deployment runs: the GPU build when ``gpu`` is on."""
        return self.gpu_image if self.gpu else self.image

    @property
    def image_is_digest(self) -> bool:
        """True when the image is pinned by digest rather than by (immutable) tag."""
        return bool(self.image and self.image.startswith("sha256:"))


def app_problems(
    is_production: bool, app: AppConfig, alarm_namespace: str, alarm_deployment: str, gpu_max_nodes: int
) -> Iterable[tuple[str, str]]:
    """``(key, why)`` for each rule spanning ``app`` and the other sections."""
    if app.image is None:
        yield "app.image", "is required: the tag or digest of the scoring image in the stack's ECR repository"
    if app.gpu and app.gpu_image is None:
        yield "app.gpuImage", (
            "is required with app.gpu: the tag or digest of the GPU image (docker build --target runtime-gpu) "
            "in the stack's ECR repository"
        )
    if app.gpu_image is not None and app.gpu_image == app.image:
        yield "app.gpuImage", f"{app.gpu_image!r} is app.image, the CPU build; the GPU Deployment needs the runtime-gpu build"
    if app.certificate_arn is None:
        yield "app.certificateArn", "is required: the ALB serves HTTPS only"
    if app.max_replicas < app.min_replicas:
        yield "app.maxReplicas", f"{app.max_replicas} is below minReplicas ({app.min_replicas})"
    if app.namespace != alarm_namespace:
        yield "app.namespace", f"{app.namespace!r} differs from alarms.service.namespace ({alarm_namespace!r}); the alarms would watch nothing"
    if app.name != alarm_deployment:
        yield "app.name", f"{app.name!r} differs from alarms.service.deployment ({alarm_deployment!r}); the alarms would watch nothing"
    if app.resources.mebibytes("ephemeral_storage") < 768:
        yield "app.resources.ephemeralStorage", (
            f"{app.resources.ephemeral_storage} leaves no room for the audit spool: at least 768Mi "
            "(256Mi /tmp, 256Mi logs, the rest the spool)"
        )
    if app.monitoring_namespace == app.namespace:
        yield "app.monitoringNamespace", f"{app.monitoring_namespace!r} is the service's namespace; Prometheus gets its own (the service's default-deny policies would block its API access)"
    if app.gpu and app.max_replicas > gpu_max_nodes:
        yield "app.maxReplicas", (
            f"with gpu each replica takes a GPU node, and cluster.gpuNodes.maxSize is {gpu_max_nodes}; "
            f"lower maxReplicas to {gpu_max_nodes} or grow the GPU group"
        )
    if is_production and app.access_log_retention_days < 365:
        yield "app.accessLogRetentionDays", f"production keeps load balancer logs at least 365 days, got {app.access_log_retention_days}"
