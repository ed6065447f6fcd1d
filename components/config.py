"""The stack configuration, validated once at the edge of the program.

Every per-environment value lives in ``Pulumi.<stack>.yaml`` under the ``fraudstack:``
namespace. Global values are scalar keys (``fraudstack:environment``,
``fraudstack:region``, ``fraudstack:owner``, ...); each area of the platform has ONE
structured object (``fraudstack:network: {azCount: 3, ...}``) with camelCase keys.

:func:`load_stack_config` reads them all, validates them with pydantic and returns a
frozen :class:`StackConfig`. Any invalid value fails the program with a single line
``fraudstack:<key>: <why>`` (e.g. ``fraudstack:network.azCount: ...``) raised as
``pulumi.RunError``, so ``pulumi preview`` and the offline preview print exactly what to
fix. Components never read config: ``__main__.py`` hands them what they need.

Production invariants are checked here, from the values (``environment: production``
needs at least 3 AZs and a NAT gateway per AZ, ...); the program never looks at the
stack's name. Cross-field rules are registered with :func:`invariant` so each area adds
its own without touching the others.

The AWS region reaches the provider through ``aws:region`` in the stack file (the
default provider reads it under the real CLI); ``fraudstack:region`` must equal it, so the
two can never drift.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from components.cluster_config import (
    AlarmsConfig,
    BedrockConfig,
    ClusterConfig,
    EndpointsConfig,
    RegistryConfig,
    cluster_tier_problems,
)

NAMESPACE = "fraudstack"

#: Retention values CloudWatch Logs accepts (anything else is rejected at deploy time).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)

#: Tags every resource carries; extra tags from config may not redefine them.
REQUIRED_TAG_KEYS = ("environment", "service", "owner", "data-classification", "pci-scope", "Name")

_REGION_RE = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-(north|south|east|west|central|northeast|southeast|northwest|southwest)-[1-9]$")
_ENV_RE = re.compile(r"^[a-z][a-z0-9-]{1,20}$")


class ConfigModel(BaseModel):
    """Base for every config section: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class NatStrategy(str, Enum):
    """How many NAT gateways the VPC gets."""

    SINGLE = "single"  # one shared NAT gateway: cheaper, an AZ outage cuts egress
    PER_AZ = "perAz"  # one per AZ: required in production


class DataClassification(str, Enum):
    """Company data classification levels, used as the ``data-classification`` tag."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class NetworkConfig(ConfigModel):
    """``fraudstack:network``: the VPC and its subnets."""

    az_count: int = Field(3, ge=2, le=6, description="Availability zones to spread subnets over (production: at least 3).")
    vpc_cidr: str = Field("10.0.0.0/16", description="VPC IPv4 CIDR, private (RFC 1918), /16 to /22.")
    nat_strategy: NatStrategy = Field(NatStrategy.PER_AZ, description="`single` or `perAz` NAT gateways (production: `perAz`).")
    private_subnet_prefix: int = Field(19, ge=16, le=28, description="Prefix length of each private (workload) subnet; EKS pods take their IPs from these.")
    public_subnet_prefix: int = Field(24, ge=16, le=28, description="Prefix length of each public subnet (load balancers, NAT gateways).")
    isolated_subnet_prefix: int = Field(24, ge=16, le=28, description="Prefix length of each isolated subnet (databases and caches, no route out).")
    flow_log_retention_days: int = Field(365, description="Retention of the VPC flow log group, a value CloudWatch accepts.")

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a valid IPv4 network CIDR ({exc})") from None
        if net.version != 4:
            raise ValueError("must be an IPv4 CIDR")
        if not net.is_private:
            raise ValueError("must be a private (RFC 1918) range")
        if not 16 <= net.prefixlen <= 22:
            raise ValueError(f"prefix /{net.prefixlen} out of range: AWS allows /16 to /28 and the subnets need at least a /22")
        return str(net)

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)


class StackConfig(ConfigModel):
    """Every per-environment value of the platform, validated."""

    environment: str = Field(description="Environment name (`staging`, `production`, ...); `production` turns on the production invariants.")
    region: str = Field(description="AWS region; must equal `aws:region`.")
    owner: str = Field(min_length=3, max_length=128, description="Owning team or contact, the `owner` tag.")
    service: str = Field("fraudstack", pattern=r"^[a-z][a-z0-9-]{1,40}$", description="Service name, the `service` tag and the prefix of physical names.")
    data_classification: DataClassification = Field(DataClassification.CONFIDENTIAL, description="The `data-classification` tag.")
    pci_scope: bool = Field(True, description="Whether the stack is in PCI DSS scope, the `pci-scope` tag.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags added to every resource.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="VPC, subnets, NAT, flow logs.")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="EKS control plane, access and node groups.")
    endpoints: EndpointsConfig = Field(default_factory=EndpointsConfig, description="Interface VPC endpoints of the private subnets.")
    bedrock: BedrockConfig = Field(default_factory=BedrockConfig, description="Bedrock models the service may invoke.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="ECR repository of the scoring image.")
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig, description="Alarm notifications and thresholds.")

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not _ENV_RE.match(value):
            raise ValueError("must be lowercase letters, digits and dashes, 2-21 characters")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION_RE.match(value):
            raise ValueError("not an AWS region name such as eu-west-1")
        return value

    @property
    def is_production(self) -> bool:
        """True when production invariants apply."""
        return self.environment == "production"


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"{value} is not a retention CloudWatch accepts ({', '.join(map(str, LOG_RETENTION_DAYS))})")
    return value


# --------------------------------------------------------------------------- invariants

Invariant = Callable[[StackConfig], Iterable[tuple[str, str]]]
INVARIANTS: list[Invariant] = []


def invariant(fn: Invariant) -> Invariant:
    """Register a cross-field rule yielding ``(key, why)`` for each problem found."""
    INVARIANTS.append(fn)
    return fn


@invariant
def _production_network(cfg: StackConfig) -> Iterable[tuple[str, str]]:
    if not cfg.is_production:
        return
    if cfg.network.az_count < 3:
        yield "network.azCount", f"production needs at least 3 availability zones, got {cfg.network.az_count}"
    if cfg.network.nat_strategy is not NatStrategy.PER_AZ:
        yield "network.natStrategy", f"production needs one NAT gateway per AZ (perAz), got {cfg.network.nat_strategy.value}"


@invariant
def _subnets_fit(cfg: StackConfig) -> Iterable[tuple[str, str]]:
    from components.subnets import SubnetPlanError, plan_subnets

    net = cfg.network
    vpc_prefix = ipaddress.ip_network(net.vpc_cidr).prefixlen
    for key, prefix in (
        ("privateSubnetPrefix", net.private_subnet_prefix),
        ("publicSubnetPrefix", net.public_subnet_prefix),
        ("isolatedSubnetPrefix", net.isolated_subnet_prefix),
    ):
        if prefix <= vpc_prefix:
            yield f"network.{key}", f"/{prefix} must be smaller than the VPC's /{vpc_prefix}"
            return
    try:
        plan_subnets(net.vpc_cidr, net.az_count, net.private_subnet_prefix, net.public_subnet_prefix, net.isolated_subnet_prefix)
    except SubnetPlanError as exc:
        yield "network.vpcCidr", str(exc)


@invariant
def _extra_tags(cfg: StackConfig) -> Iterable[tuple[str, str]]:
    for key, value in cfg.tags.items():
        if key in REQUIRED_TAG_KEYS:
            yield f"tags.{key}", "is set by the program and may not be overridden"
        elif key.lower().startswith("aws:"):
            yield f"tags.{key}", "the aws: prefix is reserved by AWS"
        elif not 1 <= len(key) <= 128:
            yield f"tags.{key}", "tag keys are 1 to 128 characters"
        elif len(value) > 256:
            yield f"tags.{key}", "tag values are at most 256 characters"


@invariant
def _cluster_tier(cfg: StackConfig) -> Iterable[tuple[str, str]]:
    yield from cluster_tier_problems(cfg.is_production, cfg.cluster, cfg.endpoints, cfg.alarms)


# --------------------------------------------------------------------------- loading


def _field_kind(annotation: Any) -> str:
    """'object' for sections and maps (JSON in the flat config), 'secret' or 'scalar'."""
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    origin = getattr(annotation, "__origin__", None)
    if origin in (dict, list, tuple):
        return "object"
    return "scalar"


def _present_keys() -> set[str]:
    """Every ``fraudstack:*`` key set for this run (explicit config or the CLI's env)."""
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = NAMESPACE + ":"
    return {k[len(prefix):] for k in keys if k.startswith(prefix)}


def _fail(key: str, why: str) -> pulumi.RunError:
    return pulumi.RunError(f"{NAMESPACE}:{key}: {why}")


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; keys are camelCase)"
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = error.get("input")
    if isinstance(value, (str, int, float, bool)) and kind != "value_error":
        msg = f"{msg} (got {value!r})"
    return msg


def _loc_to_key(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


def load_stack_config(cfg: pulumi.Config | None = None) -> StackConfig:
    """Read, validate and return the stack config; raise ``pulumi.RunError`` naming the bad key."""
    cfg = cfg or pulumi.Config(NAMESPACE)
    fields = StackConfig.model_fields
    aliases = {f.alias or n: (n, f) for n, f in fields.items()}

    unknown = sorted(_present_keys() - set(aliases))
    if unknown:
        raise _fail(unknown[0], f"unknown key (known keys: {', '.join(sorted(aliases))})")

    raw: dict[str, Any] = {}
    for alias, (_, field) in aliases.items():
        kind = _field_kind(field.annotation)
        full_key = f"{NAMESPACE}:{alias}"
        if kind == "secret":
            value = runtime_config.get_config(full_key)
            if value is not None and not runtime_config.is_config_secret(full_key):
                raise _fail(alias, "must be set with `pulumi config set --secret`, never in plain text")
        else:
            value = cfg.get(alias)
        if value is None:
            continue
        if kind == "object":
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise _fail(alias, f"must be a structured YAML object ({exc.msg})") from None
        raw[alias] = value

    try:
        result = StackConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(_loc_to_key(first["loc"]), _describe(first)) from None

    for check in INVARIANTS:
        for key, why in check(result):
            raise _fail(key, why)

    aws_region = pulumi.Config("aws").get("region")
    if aws_region != result.region:
        raise pulumi.RunError(
            f"aws:region: must be set in the stack file and equal fraudstack:region ({result.region}), got {aws_region!r}"
        )
    return result


def config_reference() -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every config key, for the README's table."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{field.alias or name}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, key + ".")
                continue
            rows.append((key, _type_name(annotation), _default_text(field), field.description or ""))

    walk(StackConfig, f"{NAMESPACE}:")
    return rows


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if annotation is SecretStr:
        return "secret string"
    if getattr(annotation, "__origin__", None) is Literal:
        return " \\| ".join(f"`{a}`" for a in annotation.__args__)
    return getattr(annotation, "__name__", str(annotation)).replace("dict[str, str]", "map")


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "`{}`" if value == {} else f"`{json.dumps(value)}`"
    value = field.default
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"
