"""ElastiCache Redis (velocity features): encryption, AUTH, resilience, patching."""
from __future__ import annotations

from ..model import Param, Rule
from ._util import as_list, get, known, present

RG = "aws:elasticache/replicationGroup:ReplicationGroup"


def _at_rest(props, cfg):
    if not (get(props, "atRestEncryptionEnabled") is True or str(get(props, "atRestEncryptionEnabled")).lower() == "true"):
        yield "atRestEncryptionEnabled is not true: cached card velocity data sits unencrypted on disk and in backups"


def _cmk(props, cfg):
    if not present(props, "kmsKeyId"):
        yield "kmsKeyId is not set: at-rest encryption uses the AWS-managed key"


def _transit(props, cfg):
    if get(props, "transitEncryptionEnabled") is not True:
        yield "transitEncryptionEnabled is not true: Redis traffic (and the AUTH token) crosses the VPC in clear text"
    elif get(props, "transitEncryptionMode") == "preferred":
        yield "transitEncryptionMode is 'preferred': clear-text clients are still accepted"


def _auth(props, cfg):
    token = present(props, "authToken")
    groups = as_list(get(props, "userGroupIds"))
    if not token and not groups:
        yield "neither authToken nor userGroupIds: anyone who reaches port 6379 can read and write"
    if (token or groups) and get(props, "transitEncryptionEnabled") is not True:
        yield "AUTH without TLS sends the token in clear text"


def _engine(props, cfg):
    engine = str(get(props, "engine", "redis"))
    version = str(get(props, "engineVersion", ""))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = None
    if engine not in ("redis", "valkey"):
        yield f"engine {engine!r}: the velocity store needs Redis (or Valkey)"
    elif major is None:
        yield "engineVersion is not pinned"
    elif major < cfg["minimumMajorVersion"]:
        yield f"{engine} {version} is older than {cfg['minimumMajorVersion']}.x (no RBAC/TLS improvements, end of life)"


def _multi_az(props, cfg):
    if get(props, "automaticFailoverEnabled") is not True:
        yield "automaticFailoverEnabled is not true: a primary failure stops scoring until someone intervenes"
    if get(props, "multiAzEnabled") is not True:
        yield "multiAzEnabled is not true: replicas may share the primary's AZ"
    n = get(props, "numCacheClusters") or get(props, "numNodeGroups")
    if n is not None and float(n) < 2:
        yield f"numCacheClusters is {n:g}: failover needs at least one replica"


def _snapshots(props, cfg):
    days = get(props, "snapshotRetentionLimit", 0)
    if float(days) < cfg["minimumDays"]:
        yield f"snapshotRetentionLimit is {days:g}: keep at least {cfg['minimumDays']} daily snapshots"


def _minor(props, cfg):
    if get(props, "autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade is false: security patches are never applied"


def _subnet_group(props, cfg):
    sg = known(props, "subnetGroupName")
    if not sg or sg == "default":
        yield "no dedicated subnet group: the cache lands in the default VPC's subnets"


RULES = [
    Rule(id="cache-encrypted-at-rest", name="Redis encrypted at rest", description="ElastiCache encrypts data at rest.",
         severity="high", enforcement="mandatory", resource_types=(RG,), references=("A47",),
         remediation="at_rest_encryption_enabled=True.", check=_at_rest),
    Rule(id="cache-cmk", name="Redis at-rest CMK", description="At-rest encryption uses the customer-managed key.",
         severity="medium", enforcement="mandatory", resource_types=(RG,), references=("A48",),
         remediation="kms_key_id=<data key ARN>.", check=_cmk),
    Rule(id="cache-in-transit-tls", name="Redis TLS", description="ElastiCache requires TLS in transit.",
         severity="high", enforcement="mandatory", resource_types=(RG,), references=("A49",),
         remediation="transit_encryption_enabled=True (transit_encryption_mode 'required').", check=_transit),
    Rule(id="cache-auth", name="Redis AUTH or RBAC", description="Clients authenticate (AUTH token as a secret, or RBAC user groups) over TLS.",
         severity="critical", enforcement="mandatory", resource_types=(RG,), references=("A50", "X9"),
         remediation="auth_token=<generated secret> (or user_group_ids) together with transit_encryption_enabled=True.",
         check=_auth),
    Rule(id="cache-engine-version", name="Redis 7 or later", description="The cache runs Redis (or Valkey) 7.x or later, pinned.",
         severity="medium", enforcement="mandatory", resource_types=(RG,), references=("X9",),
         params=(Param("minimumMajorVersion", "integer", 7, "oldest engine major accepted", minimum=6),),
         remediation="engine='redis', engine_version='7.1'.", check=_engine),
    Rule(id="cache-multi-az", name="Redis Multi-AZ failover",
         description="The replication group fails over automatically across AZs (mandatory in production, advisory in staging).",
         severity="high", enforcement="mandatory", resource_types=(RG,), references=("A51",),
         remediation="automatic_failover_enabled=True, multi_az_enabled=True, num_cache_clusters>=2.", check=_multi_az),
    Rule(id="cache-snapshot-retention", name="Redis snapshots kept",
         description="Daily snapshots are kept (7 days in production, 1 in staging).", severity="medium",
         enforcement="mandatory", resource_types=(RG,), references=("A52",),
         params=(Param("minimumDays", "integer", 7, "minimum snapshot_retention_limit", minimum=1),),
         remediation="snapshot_retention_limit=7.", check=_snapshots),
    Rule(id="cache-auto-minor-upgrade", name="Redis minor upgrades automatic",
         description="Minor engine versions are applied automatically.", severity="medium", enforcement="mandatory",
         resource_types=(RG,), references=("A53",), remediation="Leave auto_minor_version_upgrade at True.", check=_minor),
    Rule(id="cache-dedicated-subnet-group", name="Redis in its own subnet group",
         description="The replication group uses a dedicated subnet group (the isolated tier), not the default one.",
         severity="medium", enforcement="mandatory", resource_types=(RG,), references=("A54",),
         remediation="aws.elasticache.SubnetGroup over the isolated subnets; subnet_group_name=<it>.", check=_subnet_group),
]
