"""RDS rules: each with violating and compliant plan resources."""
import pytest

from tests.policies.helpers import Case, check_case, res, run_rule

RDS = "aws:rds/instance:Instance"

CASES = [
    Case("rds-storage-encrypted", res(RDS, "db", storageEncrypted=False), ["db"]),
    Case("rds-storage-encrypted", res(RDS, "db"), ["db"], id="absent"),
    Case("rds-storage-encrypted", res(RDS, "db", storageEncrypted=True)),
    Case("rds-storage-cmk", res(RDS, "db", storageEncrypted=True), ["db"]),
    Case("rds-storage-cmk", res(RDS, "db", kmsKeyId="arn:aws:kms:eu-west-1:111122223333:key/data")),
    # Inverted-rule trap: false must pass, true must fail.
    Case("rds-not-public", res(RDS, "db", publiclyAccessible=True), ["db"]),
    Case("rds-not-public", res(RDS, "db", publiclyAccessible=False)),
    Case("rds-multi-az", res(RDS, "db", multiAz=False), ["db"]),
    Case("rds-multi-az", res(RDS, "db", multiAz=True)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rds_rule(case):
    check_case(case)


def test_multi_az_is_mandatory_in_production_and_advisory_in_staging():
    db = res(RDS, "db", multiAz=False)
    assert [v["enforcement"] for v in run_rule("rds-multi-az", db, "production")] == ["mandatory"]
    assert [v["enforcement"] for v in run_rule("rds-multi-az", db, "staging")] == ["advisory"]


def test_rule_ignores_other_resource_types():
    assert run_rule("rds-not-public", res("aws:rds/cluster:Cluster", "c", publiclyAccessible=True)) == []

PG = "aws:rds/parameterGroup:ParameterGroup"


def params(**values):
    return res(PG, "pg", family="postgres16", parameters=[{"name": k, "value": v, "applyMethod": "immediate"} for k, v in values.items()])


CASES += [
    Case("rds-backup-retention", res(RDS, "db", backupRetentionPeriod=7.0), ["db"]),
    Case("rds-backup-retention", res(RDS, "db", backupRetentionPeriod=7.0), config="staging", id="staging-7"),
    Case("rds-backup-retention", res(RDS, "db", backupRetentionPeriod=14.0)),
    Case("rds-final-snapshot", res(RDS, "db", skipFinalSnapshot=True), ["db"]),
    Case("rds-final-snapshot", res(RDS, "db", skipFinalSnapshot=False), ["db"], id="no-identifier"),
    Case("rds-final-snapshot", res(RDS, "db", skipFinalSnapshot=False, finalSnapshotIdentifier="audit-final")),
    Case("rds-deletion-protection", res(RDS, "db", deletionProtection=False), ["db"]),
    Case("rds-deletion-protection", res(RDS, "db", deletionProtection=True)),
    Case("rds-iam-auth", res(RDS, "db"), ["db"]),
    Case("rds-iam-auth", res(RDS, "db", iamDatabaseAuthenticationEnabled=True)),
    Case("rds-enhanced-monitoring", res(RDS, "db", monitoringInterval=0.0), ["db"]),
    Case("rds-enhanced-monitoring", res(RDS, "db", monitoringInterval=60.0), ["db"], id="no-role"),
    Case("rds-enhanced-monitoring", res(RDS, "db", monitoringInterval=60.0, monitoringRoleArn="arn:aws:iam::111122223333:role/m")),
    Case("rds-log-exports", res(RDS, "db", engine="postgres", enabledCloudwatchLogsExports=["upgrade"]), ["db"]),
    Case("rds-log-exports", res(RDS, "db", engine="postgres", enabledCloudwatchLogsExports=["postgresql", "upgrade"])),
    Case("rds-query-logging", params(log_statement="none", log_min_duration_statement="500"), ["pg"]),
    Case("rds-query-logging", params(log_statement="ddl"), ["pg"], id="no-slow-log"),
    Case("rds-query-logging", params(log_statement="ddl", log_min_duration_statement="500")),
    Case("rds-force-ssl", params(**{"rds.force_ssl": "0"}), ["pg"]),
    Case("rds-force-ssl", res(RDS, "db", parameterGroupName="default.postgres16"), ["db"], id="default-group"),
    Case("rds-force-ssl", [params(**{"rds.force_ssl": "1"}), res(RDS, "db", parameterGroupName="fraudstack-audit")]),
    Case("rds-ca-cert", res(RDS, "db", caCertIdentifier="rds-ca-2019"), ["db"]),
    Case("rds-ca-cert", res(RDS, "db", caCertIdentifier="rds-ca-rsa2048-g1")),
    Case("rds-auto-minor-upgrade", res(RDS, "db", autoMinorVersionUpgrade=False), ["db"]),
    Case("rds-auto-minor-upgrade", res(RDS, "db", autoMinorVersionUpgrade=True)),
    Case("rds-performance-insights", res(RDS, "db", performanceInsightsEnabled=False), ["db"]),
    Case("rds-performance-insights", res(RDS, "db", performanceInsightsEnabled=True)),
    Case("rds-performance-insights-cmk", res(RDS, "db", performanceInsightsEnabled=True), ["db"]),
    Case("rds-performance-insights-cmk", res(RDS, "db", performanceInsightsEnabled=True, performanceInsightsKmsKeyId="arn:k")),
    Case("rds-copy-tags-to-snapshots", res(RDS, "db", copyTagsToSnapshot=False), ["db"]),
    Case("rds-copy-tags-to-snapshots", res(RDS, "db", copyTagsToSnapshot=True)),
    Case("rds-engine-version", res(RDS, "db", engine="postgres", engineVersion="13.15"), ["db"]),
    Case("rds-engine-version", res(RDS, "db", engine="postgres", engineVersion="16"), ["db"], id="major-only"),
    Case("rds-engine-version", res(RDS, "db", engine="postgres", engineVersion="16.6")),
]
