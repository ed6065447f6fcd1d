"""RDS PostgreSQL (the audit trail): encryption, exposure, resilience, auditing."""
from __future__ import annotations

from ..model import Param, Rule, with_type
from ._util import as_list, get, known, present

RDS = "aws:rds/instance:Instance"
PARAM_GROUP = "aws:rds/parameterGroup:ParameterGroup"


def _storage_encrypted(props, cfg):
    if get(props, "storageEncrypted") is not True:
        yield "storageEncrypted must be true: the audit trail holds card tokens at rest"


def _storage_cmk(props, cfg):
    if not present(props, "kmsKeyId"):
        yield "kmsKeyId is not set: storage is encrypted with the AWS-managed key, not the platform's CMK"


def _not_public(props, cfg):
    # Inverted on purpose: the violation is publiclyAccessible == true (a public pack
    # once shipped this check firing on false).
    if get(props, "publiclyAccessible") is True:
        yield "publiclyAccessible is true: the database gets a public DNS name and can be reached from the internet"


def _multi_az(props, cfg):
    if get(props, "multiAz") is not True:
        yield "multiAz is not true: an AZ outage takes the audit trail down"


def _backup_retention(props, cfg):
    days = get(props, "backupRetentionPeriod", 0)
    if float(days) < cfg["minimumDays"]:
        yield f"backupRetentionPeriod is {days:g} days: keep at least {cfg['minimumDays']} (point-in-time recovery)"


def _final_snapshot(props, cfg):
    if get(props, "skipFinalSnapshot") is not False:
        yield "skipFinalSnapshot is not false: deleting the instance would discard the audit trail"
    elif not present(props, "finalSnapshotIdentifier"):
        yield "finalSnapshotIdentifier is not set: the final snapshot cannot be taken"


def _flag(path: str, message: str, expected=True):
    def check(props, cfg):
        if get(props, path) is not expected:
            yield message
    return check


def _not_false(path: str, message: str):
    def check(props, cfg):
        if get(props, path) is False:
            yield message
    return check


def _monitoring(props, cfg):
    interval = get(props, "monitoringInterval", 0)
    if not interval or float(interval) <= 0:
        yield "monitoringInterval is 0: enhanced monitoring (OS metrics) is off"
    elif not present(props, "monitoringRoleArn"):
        yield "monitoringInterval set without monitoringRoleArn"


def _log_exports(props, cfg):
    if not str(get(props, "engine", "")).startswith("postgres"):
        return
    exports = [str(x) for x in as_list(get(props, "enabledCloudwatchLogsExports"))]
    if "postgresql" not in exports:
        yield "enabledCloudwatchLogsExports lacks 'postgresql': database logs stay on the instance"


def _params(props) -> dict:
    return {get(p, "name"): str(get(p, "value")) for p in as_list(get(props, "parameters"))}


def _query_logging(props, cfg):
    if not str(get(props, "family", "")).startswith("postgres"):
        return
    params = _params(props)
    if params.get("log_statement") not in ("ddl", "mod", "all"):
        yield "log_statement is not ddl/mod/all: schema and privilege changes are not logged"
    dur = params.get("log_min_duration_statement")
    if dur is None or not dur.lstrip("-").isdigit() or int(dur) < 0:
        yield "log_min_duration_statement is not set (>= 0): slow statements are not logged"


@with_type
def _force_ssl(props, cfg, rtype):
    if rtype == PARAM_GROUP:
        if str(get(props, "family", "")).startswith("postgres") and _params(props).get("rds.force_ssl") != "1":
            yield "rds.force_ssl is not 1: clients may connect without TLS"
    else:
        pg = known(props, "parameterGroupName")
        if not pg or str(pg).startswith("default."):
            yield "the instance uses the default parameter group, which does not force TLS"


_CA_OK = ("rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1")


def _ca(props, cfg):
    ca = get(props, "caCertIdentifier")
    if ca not in _CA_OK:
        yield f"caCertIdentifier is {ca!r}: pin one of {', '.join(_CA_OK)}"


def _pi_cmk(props, cfg):
    if get(props, "performanceInsightsEnabled") is True and not present(props, "performanceInsightsKmsKeyId"):
        yield "Performance Insights data is encrypted with the AWS-managed key: set performanceInsightsKmsKeyId"


def _engine_version(props, cfg):
    if not str(get(props, "engine", "")).startswith("postgres"):
        return
    v = str(get(props, "engineVersion", ""))
    if not v:
        yield "engineVersion is not pinned"
        return
    try:
        major = int(v.split(".")[0])
    except ValueError:
        yield f"engineVersion {v!r} is not a version"
        return
    if major < cfg["minimumMajorVersion"]:
        yield f"PostgreSQL {v} is older than major {cfg['minimumMajorVersion']}: out of support, known CVEs unfixed"
    if "." not in v:
        yield f"engineVersion {v!r} pins only the major version: pin the minor so upgrades are reviewed"


RULES = [
    Rule(
        id="rds-storage-encrypted", name="RDS storage encrypted",
        description="RDS instances encrypt their storage at rest.",
        severity="critical", enforcement="mandatory", resource_types=(RDS,), references=("A28",),
        remediation="Set storage_encrypted=True on aws.rds.Instance (requires a new instance for existing ones).",
        check=_storage_encrypted,
    ),
    Rule(
        id="rds-storage-cmk", name="RDS storage uses a customer-managed KMS key",
        description="RDS storage encryption uses a customer-managed KMS key (kms_key_id), so key policy and rotation are ours.",
        severity="high", enforcement="mandatory", resource_types=(RDS,), references=("A29",),
        remediation="Pass kms_key_id=<the data KMS key ARN> to aws.rds.Instance.",
        check=_storage_cmk,
    ),
    Rule(
        id="rds-not-public", name="RDS not publicly accessible",
        description="RDS instances are not publicly accessible.",
        severity="critical", enforcement="mandatory", resource_types=(RDS,), references=("A30",),
        remediation="Set publicly_accessible=False and place the instance in the isolated subnets.",
        check=_not_public,
    ),
    Rule(
        id="rds-multi-az", name="RDS Multi-AZ",
        description="RDS instances run Multi-AZ (mandatory in production; staging config makes it advisory).",
        severity="high", enforcement="mandatory", resource_types=(RDS,), references=("A31",),
        remediation="Set multi_az=True (fraudstack:database.multiAz in the stack file).",
        check=_multi_az,
    ),
    Rule(
        id="rds-backup-retention", name="RDS backups retained",
        description="Automated backups are kept at least 14 days in production (7 in staging).",
        severity="high", enforcement="mandatory", resource_types=(RDS,), references=("A32", "X8"),
        params=(Param("minimumDays", "integer", 14, "minimum backup_retention_period in days", minimum=1),),
        remediation="Set backup_retention_period (fraudstack:database.backupRetentionDays).", check=_backup_retention,
    ),
    Rule(
        id="rds-final-snapshot", name="RDS final snapshot kept",
        description="Deleting the instance takes a named final snapshot.", severity="high", enforcement="mandatory",
        resource_types=(RDS,), references=("X8",),
        remediation="skip_final_snapshot=False, final_snapshot_identifier='<identifier>-final'.", check=_final_snapshot,
    ),
    Rule(
        id="rds-deletion-protection", name="RDS deletion protection",
        description="The instance has deletion protection on (production; advisory in staging, which is torn down).",
        severity="high", enforcement="mandatory", resource_types=(RDS,), references=("A33",),
        remediation="deletion_protection=True.",
        check=_flag("deletionProtection", "deletionProtection is not true: one mistaken `pulumi destroy` deletes the audit trail"),
    ),
    Rule(
        id="rds-iam-auth", name="RDS IAM authentication",
        description="IAM database authentication is enabled (the service logs in with short-lived tokens).",
        severity="medium", enforcement="mandatory", resource_types=(RDS,), references=("A34",),
        remediation="iam_database_authentication_enabled=True.",
        check=_flag("iamDatabaseAuthenticationEnabled", "iamDatabaseAuthenticationEnabled is not true: only static passwords can log in"),
    ),
    Rule(
        id="rds-enhanced-monitoring", name="RDS enhanced monitoring",
        description="Enhanced monitoring is on with a monitoring role.", severity="low", enforcement="mandatory",
        resource_types=(RDS,), references=("A35",),
        remediation="monitoring_interval=60 (or finer) and monitoring_role_arn=<role with AmazonRDSEnhancedMonitoringRole>.",
        check=_monitoring,
    ),
    Rule(
        id="rds-log-exports", name="RDS logs exported",
        description="PostgreSQL logs are exported to CloudWatch.", severity="medium", enforcement="mandatory",
        resource_types=(RDS,), references=("A36",),
        remediation="enabled_cloudwatch_logs_exports=['postgresql', 'upgrade'].", check=_log_exports,
    ),
    Rule(
        id="rds-query-logging", name="PostgreSQL statement logging",
        description="The parameter group logs DDL (log_statement) and slow statements (log_min_duration_statement).",
        severity="medium", enforcement="mandatory", resource_types=(PARAM_GROUP,), references=("A37",),
        remediation="parameters log_statement=ddl and log_min_duration_statement=<ms>.", check=_query_logging,
    ),
    Rule(
        id="rds-force-ssl", name="RDS forces TLS",
        description="The instance uses its own parameter group and that group sets rds.force_ssl=1.",
        severity="high", enforcement="mandatory", resource_types=(RDS, PARAM_GROUP), references=("A38",),
        remediation="aws.rds.ParameterGroup(parameters=[{'name': 'rds.force_ssl', 'value': '1'}]) and parameter_group_name=<it>.",
        check=_force_ssl,
    ),
    Rule(
        id="rds-ca-cert", name="RDS modern CA",
        description="The instance pins a current RDS CA (rsa2048/rsa4096/ecc384 g1).", severity="medium",
        enforcement="mandatory", resource_types=(RDS,), references=("A39",),
        remediation="ca_cert_identifier='rds-ca-rsa2048-g1' (or rsa4096/ecc384).", check=_ca,
    ),
    Rule(
        id="rds-auto-minor-upgrade", name="RDS minor upgrades automatic",
        description="Minor engine versions (security fixes) are applied automatically.", severity="medium",
        enforcement="mandatory", resource_types=(RDS,), references=("A40",),
        remediation="Leave auto_minor_version_upgrade at True.",
        check=_not_false("autoMinorVersionUpgrade", "autoMinorVersionUpgrade is false: security patches are never applied"),
    ),
    Rule(
        id="rds-performance-insights", name="RDS Performance Insights",
        description="Performance Insights is enabled.", severity="low", enforcement="mandatory", resource_types=(RDS,),
        references=("A41",), remediation="performance_insights_enabled=True.",
        check=_flag("performanceInsightsEnabled", "performanceInsightsEnabled is not true"),
    ),
    Rule(
        id="rds-performance-insights-cmk", name="Performance Insights encrypted with the CMK",
        description="Performance Insights data (which contains SQL text) is encrypted with the customer-managed key.",
        severity="medium", enforcement="mandatory", resource_types=(RDS,), references=("A42",),
        remediation="performance_insights_kms_key_id=<data key ARN>.", check=_pi_cmk,
    ),
    Rule(
        id="rds-copy-tags-to-snapshots", name="RDS snapshots tagged",
        description="Snapshots inherit the instance's tags (data classification travels with the data).",
        severity="low", enforcement="mandatory", resource_types=(RDS,), references=("A43",),
        remediation="copy_tags_to_snapshot=True.",
        check=_flag("copyTagsToSnapshot", "copyTagsToSnapshot is not true: snapshots lose their data-classification tags"),
    ),
    Rule(
        id="rds-engine-version", name="PostgreSQL version supported",
        description="The engine version is pinned to a supported PostgreSQL major (>= 15 by default).",
        severity="medium", enforcement="mandatory", resource_types=(RDS,), references=("A44",),
        params=(Param("minimumMajorVersion", "integer", 15, "oldest PostgreSQL major accepted", minimum=11),),
        remediation="engine_version='16.x' (fraudstack:database.engineVersion).", check=_engine_version,
    ),
]
