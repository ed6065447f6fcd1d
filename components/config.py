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

from components.app_config import AppConfig, app_problems
from components.cluster_config import (
    AlarmsConfig,
    BedrockConfig,
    ClusterConfig,
    EndpointsConfig,
    RegistryConfig,
    cluster_tier_problems,
)
from components.lifecycle_config import ModelMonitoringConfig, ModelStoreConfig

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


# --------------------------------------------------------------------------- data tier

#: Instance class families RDS PostgreSQL offers that we accept (Graviton and current
#: Intel generations; ``db.t*`` are burstable and refused in production).
DB_INSTANCE_FAMILIES = ("t3", "t4g", "m5", "m6g", "m6i", "m7g", "m7i", "r5", "r6g", "r6i", "r7g", "r7i", "x2g")
#: ElastiCache node families we accept (``cache.t*`` burstable, refused in production).
CACHE_NODE_FAMILIES = ("t3", "t4g", "m5", "m6g", "m7g", "r5", "r6g", "r7g")
_SIZES = r"(micro|small|medium|large|xlarge|[1-9][0-9]?xlarge)"
_DB_CLASS_RE = re.compile(rf"^db\.([a-z0-9]+)\.{_SIZES}$")
_CACHE_NODE_RE = re.compile(rf"^cache\.([a-z0-9]+)\.{_SIZES}$")
#: PostgreSQL majors RDS supports in standard support (older majors cost extended support).
POSTGRES_MAJORS = (15, 16, 17, 18)
#: RDS CA certificates that are current (rds-ca-2019 expired in 2024).
RDS_CA_CERTIFICATES = ("rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1")
_DAILY_WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_WEEKLY_WINDOW_RE = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):([0-5]\d)-(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):([0-5]\d)$"
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_IAM_ROLE_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_CLIENT_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}$")


def _daily_minutes(window: str) -> tuple[int, int]:
    m = _DAILY_WINDOW_RE.match(window)
    if not m:
        raise ValueError(f"{window!r} is not a UTC window hh:mm-hh:mm")
    start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
    length = (end - start) % 1440
    if length < 30:
        raise ValueError(f"{window!r} must last at least 30 minutes")
    return start, length


def _weekly_minutes(window: str) -> tuple[int, int]:
    m = _WEEKLY_WINDOW_RE.match(window)
    if not m:
        raise ValueError(f"{window!r} is not a UTC window ddd:hh:mm-ddd:hh:mm (e.g. sun:04:30-sun:05:30)")
    start = _DAYS.index(m[1]) * 1440 + int(m[2]) * 60 + int(m[3])
    end = _DAYS.index(m[4]) * 1440 + int(m[5]) * 60 + int(m[6])
    length = (end - start) % (7 * 1440)
    if length < 60:
        raise ValueError(f"{window!r} must last at least 60 minutes")
    return start, length


def windows_overlap(daily: str, weekly: str) -> bool:
    """Whether a daily window (backups, snapshots) overlaps a weekly maintenance window."""
    d_start, d_len = _daily_minutes(daily)
    w_start, w_len = _weekly_minutes(weekly)
    week = 7 * 1440
    for day in range(8):  # a daily window starting late on sunday runs into monday
        s = (day * 1440 + d_start) % week
        for a, b in ((s, s + d_len), (s - week, s - week + d_len)):
            if a < w_start + w_len and w_start < b:
                return True
    return False


class KeysConfig(ConfigModel):
    """``fraudstack:keys``: the customer-managed KMS keys, one per purpose."""

    deletion_window_days: int = Field(30, ge=7, le=30, description="Days a scheduled key deletion waits, 7-30 (production: 30).")
    rotation_period_days: int = Field(365, ge=90, le=2560, description="Days between automatic rotations of the key material, 90-2560.")
    admin_role_arns: tuple[str, ...] = Field(default_factory=tuple, description="IAM roles allowed to administer (never use) the keys, besides IAM through the account root.")

    @field_validator("admin_role_arns")
    @classmethod
    def _arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not _IAM_ROLE_ARN_RE.match(arn):
                raise ValueError(f"{arn!r} is not an IAM role ARN")
        if len(set(value)) != len(value):
            raise ValueError("lists a role twice")
        return value


class DatabaseConfig(ConfigModel):
    """``fraudstack:database``: the RDS PostgreSQL audit-trail database."""

    engine_version: str = Field("17.6", description="PostgreSQL `major.minor` (majors 15-18).")
    instance_class: str = Field("db.r7g.large", description="RDS instance class, e.g. `db.r7g.large` (production: not burstable `db.t*`).")
    allocated_storage_gb: int = Field(100, ge=20, le=65536, description="Initial gp3 storage in GiB.")
    max_allocated_storage_gb: int = Field(500, ge=20, le=65536, description="Storage autoscaling ceiling in GiB (>= allocatedStorageGb).")
    multi_az: bool = Field(True, description="Standby in a second AZ (production: true).")
    backup_retention_days: int = Field(14, description="Automated backup retention, 7-35 days (production: at least 14).")
    backup_window: str = Field("02:00-03:00", description="Daily backup window, UTC `hh:mm-hh:mm`.")
    maintenance_window: str = Field("sun:04:00-sun:05:00", description="Weekly maintenance window, UTC `ddd:hh:mm-ddd:hh:mm`, not overlapping the backup window.")
    performance_insights_retention_days: int = Field(7, description="Performance Insights retention: 7, a multiple of 31 up to 713, or 731.")
    monitoring_interval_seconds: Literal[1, 5, 10, 15, 30, 60] = Field(60, description="Enhanced monitoring granularity in seconds.")
    ca_cert_identifier: str = Field("rds-ca-rsa2048-g1", description="Server certificate authority (a current one).")
    log_min_duration_ms: int = Field(500, ge=0, le=600000, description="Statements slower than this are logged (`log_min_duration_statement`).")
    log_retention_days: int = Field(365, description="Retention of the exported PostgreSQL logs (production: at least 365, PCI DSS 10.5.1).")
    deletion_protection: bool = Field(True, description="Refuse to delete the instance (production: true).")
    backup_replication_region: str | None = Field(
        None,
        description="Region the automated backups (snapshots and transaction logs) are replicated to, for point-in-time restore there (production: required, not the stack's region).",
    )
    backup_replication_retention_days: int = Field(
        7, ge=1, le=35, description="Days the replicated backups are kept in backupReplicationRegion, 1-35."
    )

    @field_validator("backup_replication_region")
    @classmethod
    def _replication_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION_RE.match(value):
            raise ValueError(f"{value!r} is not an AWS region name such as eu-central-1")
        return value

    @field_validator("engine_version")
    @classmethod
    def _version(cls, value: str) -> str:
        m = re.match(r"^(\d+)\.(\d+)$", value)
        if not m:
            raise ValueError(f"{value!r} is not a PostgreSQL version major.minor such as 17.6")
        if int(m[1]) not in POSTGRES_MAJORS:
            raise ValueError(f"PostgreSQL {m[1]} is not a supported major ({', '.join(map(str, POSTGRES_MAJORS))})")
        return value

    @field_validator("instance_class")
    @classmethod
    def _class(cls, value: str) -> str:
        m = _DB_CLASS_RE.match(value)
        if not m or m[1] not in DB_INSTANCE_FAMILIES:
            raise ValueError(
                f"{value!r} is not a known RDS instance class (db.<family>.<size>, families: {', '.join(DB_INSTANCE_FAMILIES)})"
            )
        return value

    @field_validator("backup_retention_days")
    @classmethod
    def _backup(cls, value: int) -> int:
        if not 7 <= value <= 35:
            raise ValueError(f"must be 7-35 days, got {value}")
        return value

    @field_validator("backup_window")
    @classmethod
    def _bwindow(cls, value: str) -> str:
        _daily_minutes(value)
        return value

    @field_validator("maintenance_window")
    @classmethod
    def _mwindow(cls, value: str) -> str:
        _weekly_minutes(value)
        return value

    @field_validator("performance_insights_retention_days")
    @classmethod
    def _pi(cls, value: int) -> int:
        if value != 7 and value != 731 and not (value % 31 == 0 and 31 <= value <= 713):
            raise ValueError(f"{value} is not 7, a multiple of 31 up to 713, or 731")
        return value

    @field_validator("ca_cert_identifier")
    @classmethod
    def _ca(cls, value: str) -> str:
        if value not in RDS_CA_CERTIFICATES:
            raise ValueError(f"{value!r} is not a current RDS CA ({', '.join(RDS_CA_CERTIFICATES)})")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _logs(cls, value: int) -> int:
        return _check_retention(value)


class CacheConfig(ConfigModel):
    """``fraudstack:cache``: the ElastiCache Redis velocity store."""

    engine_version: str = Field("7.1", description="Redis OSS 7 version (`7.0` or `7.1`).")
    node_type: str = Field("cache.r7g.large", description="Node type, e.g. `cache.r7g.large` (production: not burstable `cache.t*`).")
    replicas: int = Field(2, ge=0, le=5, description="Read replicas besides the primary (production: at least 1, for automatic failover).")
    multi_az: bool = Field(True, description="Spread nodes over AZs with automatic failover (production: true; needs a replica).")
    snapshot_retention_days: int = Field(7, ge=1, le=35, description="Daily snapshots kept, 1-35 (production: at least 7).")
    snapshot_window: str = Field("03:00-04:00", description="Daily snapshot window, UTC `hh:mm-hh:mm`.")
    maintenance_window: str = Field("sun:05:00-sun:06:00", description="Weekly maintenance window, UTC, not overlapping the snapshot window.")
    log_retention_days: int = Field(365, description="Retention of the slow-log and engine-log groups (production: at least 365).")

    @field_validator("engine_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value not in ("7.0", "7.1"):
            raise ValueError(f"{value!r} is not a Redis OSS 7 version ElastiCache offers (7.0, 7.1)")
        return value

    @field_validator("node_type")
    @classmethod
    def _node(cls, value: str) -> str:
        m = _CACHE_NODE_RE.match(value)
        if not m or m[1] not in CACHE_NODE_FAMILIES:
            raise ValueError(
                f"{value!r} is not a known ElastiCache node type (cache.<family>.<size>, families: {', '.join(CACHE_NODE_FAMILIES)})"
            )
        return value

    @field_validator("snapshot_window")
    @classmethod
    def _swindow(cls, value: str) -> str:
        _daily_minutes(value)
        return value

    @field_validator("maintenance_window")
    @classmethod
    def _mwindow(cls, value: str) -> str:
        _weekly_minutes(value)
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _logs(cls, value: int) -> int:
        return _check_retention(value)


class SecretsConfig(ConfigModel):
    """``fraudstack:secrets``: the service's generated secrets."""

    recovery_window_days: int = Field(30, ge=7, le=30, description="Days a deleted secret can be restored, 7-30 (production: 30).")
    api_key_clients: tuple[str, ...] = Field(default_factory=lambda: ("payment-gateway",), min_length=1, description="Clients of /score that each get a generated API key.")
    api_key_length: int = Field(48, ge=32, le=128, description="Length of each generated API key.")
    hmac_key_length: int = Field(64, ge=32, le=128, description="Length of the generated HMAC signing key.")
    admin_key_length: int = Field(48, ge=32, le=128, description="Length of the generated admin key of the service's `/admin` routes (secret `admin-key`).")
    reader_role_arns: tuple[str, ...] = Field(default_factory=tuple, description="IAM roles allowed to read the secrets besides the scoring service's (e.g. a break-glass operator role).")

    @field_validator("reader_role_arns")
    @classmethod
    def _readers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not _IAM_ROLE_ARN_RE.match(arn):
                raise ValueError(f"{arn!r} is not an IAM role ARN")
        if len(set(value)) != len(value):
            raise ValueError("lists a role twice")
        return value

    @field_validator("api_key_clients")
    @classmethod
    def _clients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for client in value:
            if not _CLIENT_RE.match(client):
                raise ValueError(f"{client!r}: client names are lowercase letters, digits and dashes")
        if len(set(value)) != len(value):
            raise ValueError("lists a client twice")
        return value


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
    keys: KeysConfig = Field(default_factory=KeysConfig, description="Customer-managed KMS keys.")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig, description="RDS PostgreSQL audit database.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="ElastiCache Redis velocity store.")
    secrets: SecretsConfig = Field(default_factory=SecretsConfig, description="Generated service secrets.")
    app: AppConfig = Field(default_factory=AppConfig, description="The scoring service on the cluster and its load balancer.")
    model_store: ModelStoreConfig = Field(default_factory=ModelStoreConfig, description="S3 model store.")
    model_monitoring: ModelMonitoringConfig = Field(default_factory=ModelMonitoringConfig, description="Model drift and quality alarms.")

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


@invariant
def _autoscaler(cfg: StackConfig) -> Iterable[tuple[str, str]]:
    from components.autoscaling import autoscaler_problems

    yield from autoscaler_problems(cfg.cluster.kubernetes_version, cfg.cluster.autoscaler)


@invariant
def _app(cfg: StackConfig) -> Iterable[tuple[str, str]]:
    yield from app_problems(
        cfg.is_production, cfg.app, cfg.alarms.service.namespace, cfg.alarms.service.deployment, cfg.cluster.gpu_nodes.max_size
    )


@invariant
def _data_tier(cfg: StackConfig) -> Iterable[tuple[str, str]]:
    db, cache = cfg.database, cfg.cache
    if db.max_allocated_storage_gb < db.allocated_storage_gb:
        yield "database.maxAllocatedStorageGb", f"{db.max_allocated_storage_gb} is below allocatedStorageGb ({db.allocated_storage_gb})"
    if windows_overlap(db.backup_window, db.maintenance_window):
        yield "database.maintenanceWindow", f"{db.maintenance_window} overlaps backupWindow {db.backup_window}"
    if windows_overlap(cache.snapshot_window, cache.maintenance_window):
        yield "cache.maintenanceWindow", f"{cache.maintenance_window} overlaps snapshotWindow {cache.snapshot_window}"
    if cache.multi_az and cache.replicas < 1:
        yield "cache.multiAz", "Multi-AZ needs at least one replica (cache.replicas)"
    if db.backup_replication_region == cfg.region:
        yield "database.backupReplicationRegion", f"must be another region than the stack's ({cfg.region})"
    if not cfg.is_production:
        return
    if db.backup_replication_region is None:
        yield "database.backupReplicationRegion", "production replicates its backups to a second region; set one (e.g. eu-central-1)"
    if not db.multi_az:
        yield "database.multiAz", "production needs a Multi-AZ database"
    if db.backup_retention_days < 14:
        yield "database.backupRetentionDays", f"production needs at least 14 days, got {db.backup_retention_days}"
    if not db.deletion_protection:
        yield "database.deletionProtection", "production needs deletion protection"
    if db.instance_class.split(".")[1].startswith("t"):
        yield "database.instanceClass", f"{db.instance_class} is burstable; production needs a db.m* or db.r* class"
    if db.log_retention_days < 365:
        yield "database.logRetentionDays", f"production keeps database logs at least 365 days, got {db.log_retention_days}"
    if cache.replicas < 1:
        yield "cache.replicas", "production needs at least one replica for automatic failover"
    if not cache.multi_az:
        yield "cache.multiAz", "production needs Multi-AZ Redis"
    if cache.snapshot_retention_days < 7:
        yield "cache.snapshotRetentionDays", f"production needs at least 7 days, got {cache.snapshot_retention_days}"
    if cache.node_type.split(".")[1].startswith("t"):
        yield "cache.nodeType", f"{cache.node_type} is burstable; production needs a cache.m* or cache.r* type"
    if cache.log_retention_days < 365:
        yield "cache.logRetentionDays", f"production keeps cache logs at least 365 days, got {cache.log_retention_days}"
    if cfg.keys.deletion_window_days != 30:
        yield "keys.deletionWindowDays", f"production needs the 30-day maximum, got {cfg.keys.deletion_window_days}"
    if cfg.secrets.recovery_window_days != 30:
        yield "secrets.recoveryWindowDays", f"production needs the 30-day maximum, got {cfg.secrets.recovery_window_days}"
    if cfg.model_store.force_destroy:
        yield "modelStore.forceDestroy", "production never lets destroy empty the model store"


# --------------------------------------------------------------------------- loading


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    if type(None) in getattr(annotation, "__args__", ()) and len(args) == 1:
        return args[0]
    return annotation


def _field_kind(annotation: Any) -> str:
    """'object' for sections and maps (JSON in the flat config), 'secret' or 'scalar'."""
    annotation = _unwrap_optional(annotation)
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


def load_stack_config(cfg: pulumi.Config | None = None, *, model: type[StackConfig] = StackConfig) -> StackConfig:
    """Read, validate and return the stack config; raise ``pulumi.RunError`` naming the bad key.

    A top-level field typed ``SecretStr`` must be set with ``pulumi config set --secret``:
    a plain-text value in the stack file is refused. ``model`` is for tests.
    """
    cfg = cfg or pulumi.Config(NAMESPACE)
    fields = model.model_fields
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
        result = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        why = _describe(first)
        if runtime_config.is_config_secret(f"{NAMESPACE}:{first['loc'][0]}"):
            # Never echo a secret value back, not even a wrong one.
            why = _describe({**first, "input": None})
        raise _fail(_loc_to_key(first["loc"]), why) from None

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
            annotation = _unwrap_optional(field.annotation)
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
    origin = getattr(annotation, "__origin__", None)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in annotation.__args__)
    if origin is dict:
        return "map of strings"
    if origin in (list, tuple):
        return "list"
    return {str: "string", int: "integer", bool: "boolean", float: "number"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


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
