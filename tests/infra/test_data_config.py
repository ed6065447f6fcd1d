"""The data tier's stack config: both stack files' values, and every invalid value naming its key."""

from __future__ import annotations

import pulumi
import pytest

from components.config import windows_overlap
from tests.infra.conftest import load_config


def test_production_data_values_keep_every_high_availability_setting():
    cfg = load_config("production")
    db, cache = cfg.database, cfg.cache
    assert (db.engine_version, db.instance_class, db.multi_az, db.backup_retention_days) == ("17.6", "db.r7g.large", True, 14)
    assert (db.deletion_protection, db.log_retention_days, db.ca_cert_identifier) == (True, 365, "rds-ca-rsa2048-g1")
    assert (db.allocated_storage_gb, db.max_allocated_storage_gb, db.monitoring_interval_seconds) == (100, 1000, 30)
    assert (cache.engine_version, cache.node_type, cache.replicas, cache.multi_az) == ("7.1", "cache.r7g.large", 2, True)
    assert (cache.snapshot_retention_days, cache.log_retention_days) == (7, 365)
    assert (cfg.keys.deletion_window_days, cfg.keys.rotation_period_days, cfg.keys.admin_role_arns) == (30, 365, ())
    assert (cfg.secrets.recovery_window_days, cfg.secrets.api_key_clients) == (30, ("payment-gateway",))


def test_staging_is_smaller_only_through_values():
    cfg = load_config("staging")
    db, cache = cfg.database, cfg.cache
    assert (db.instance_class, db.multi_az, db.backup_retention_days, db.log_retention_days) == ("db.t4g.medium", False, 7, 30)
    assert (db.allocated_storage_gb, db.max_allocated_storage_gb, db.deletion_protection) == (20, 100, True)
    assert (cache.node_type, cache.replicas, cache.multi_az, cache.snapshot_retention_days) == ("cache.t4g.small", 0, False, 1)
    assert (cfg.keys.deletion_window_days, cfg.secrets.recovery_window_days) == (7, 7)
    # Same engines as production: staging tests what production runs.
    prod = load_config("production")
    assert (db.engine_version, cache.engine_version) == (prod.database.engine_version, prod.cache.engine_version)


INVALID = [
    # The three the issue names.
    ("production", {"fraudstack:database": {"backupRetentionDays": 0}},
     "fraudstack:database.backupRetentionDays: must be 7-35 days, got 0"),
    ("production", {"fraudstack:database": {"multiAz": False}},
     "fraudstack:database.multiAz: production needs a Multi-AZ database"),
    ("staging", {"fraudstack:database": {"instanceClass": "db.z9.large"}},
     "fraudstack:database.instanceClass: 'db.z9.large' is not a known RDS instance class (db.<family>.<size>, "
     "families: t3, t4g, m5, m6g, m6i, m7g, m7i, r5, r6g, r6i, r7g, r7i, x2g)"),
    # Production invariants.
    ("production", {"fraudstack:database": {"backupRetentionDays": 7}},
     "fraudstack:database.backupRetentionDays: production needs at least 14 days, got 7"),
    ("production", {"fraudstack:database": {"deletionProtection": False}},
     "fraudstack:database.deletionProtection: production needs deletion protection"),
    ("production", {"fraudstack:database": {"instanceClass": "db.t4g.large"}},
     "fraudstack:database.instanceClass: db.t4g.large is burstable; production needs a db.m* or db.r* class"),
    ("production", {"fraudstack:database": {"logRetentionDays": 90}},
     "fraudstack:database.logRetentionDays: production keeps database logs at least 365 days, got 90"),
    ("production", {"fraudstack:cache": {"replicas": 0, "multiAz": False}},
     "fraudstack:cache.replicas: production needs at least one replica for automatic failover"),
    ("production", {"fraudstack:cache": {"multiAz": False}},
     "fraudstack:cache.multiAz: production needs Multi-AZ Redis"),
    ("production", {"fraudstack:cache": {"snapshotRetentionDays": 1}},
     "fraudstack:cache.snapshotRetentionDays: production needs at least 7 days, got 1"),
    ("production", {"fraudstack:cache": {"nodeType": "cache.t4g.medium"}},
     "fraudstack:cache.nodeType: cache.t4g.medium is burstable; production needs a cache.m* or cache.r* type"),
    ("production", {"fraudstack:cache": {"logRetentionDays": 30}},
     "fraudstack:cache.logRetentionDays: production keeps cache logs at least 365 days, got 30"),
    ("production", {"fraudstack:keys": {"deletionWindowDays": 7}},
     "fraudstack:keys.deletionWindowDays: production needs the 30-day maximum, got 7"),
    ("production", {"fraudstack:secrets": {"recoveryWindowDays": 7}},
     "fraudstack:secrets.recoveryWindowDays: production needs the 30-day maximum, got 7"),
    # Any environment.
    ("staging", {"fraudstack:database": {"backupRetentionDays": 36}},
     "fraudstack:database.backupRetentionDays: must be 7-35 days, got 36"),
    ("staging", {"fraudstack:database": {"engineVersion": "13.20"}},
     "fraudstack:database.engineVersion: PostgreSQL 13 is not a supported major (15, 16, 17, 18)"),
    ("staging", {"fraudstack:database": {"engineVersion": "17"}},
     "fraudstack:database.engineVersion: '17' is not a PostgreSQL version major.minor such as 17.6"),
    ("staging", {"fraudstack:database": {"instanceClass": "r7g.large"}},
     "fraudstack:database.instanceClass: 'r7g.large' is not a known RDS instance class (db.<family>.<size>, "
     "families: t3, t4g, m5, m6g, m6i, m7g, m7i, r5, r6g, r6i, r7g, r7i, x2g)"),
    ("staging", {"fraudstack:database": {"caCertIdentifier": "rds-ca-2019"}},
     "fraudstack:database.caCertIdentifier: 'rds-ca-2019' is not a current RDS CA (rds-ca-rsa2048-g1, rds-ca-rsa4096-g1, rds-ca-ecc384-g1)"),
    ("staging", {"fraudstack:database": {"performanceInsightsRetentionDays": 30}},
     "fraudstack:database.performanceInsightsRetentionDays: 30 is not 7, a multiple of 31 up to 713, or 731"),
    ("staging", {"fraudstack:database": {"monitoringIntervalSeconds": 0}},
     "fraudstack:database.monitoringIntervalSeconds: Input should be 1, 5, 10, 15, 30 or 60 (got 0)"),
    ("staging", {"fraudstack:database": {"backupWindow": "2:00-3:00"}},
     "fraudstack:database.backupWindow: '2:00-3:00' is not a UTC window hh:mm-hh:mm"),
    ("staging", {"fraudstack:database": {"maintenanceWindow": "sun:02:30-sun:03:30"}},
     "fraudstack:database.maintenanceWindow: sun:02:30-sun:03:30 overlaps backupWindow 02:00-03:00"),
    ("staging", {"fraudstack:database": {"maxAllocatedStorageGb": 10}},
     "fraudstack:database.maxAllocatedStorageGb: Input should be greater than or equal to 20 (got 10)"),
    ("staging", {"fraudstack:database": {"allocatedStorageGb": 200}},
     "fraudstack:database.maxAllocatedStorageGb: 100 is below allocatedStorageGb (200)"),
    ("staging", {"fraudstack:database": {"logRetentionDays": 10}},
     "fraudstack:database.logRetentionDays: 10 is not a retention CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, "
     "180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)"),
    ("staging", {"fraudstack:database": {"masterPassword": "hunter2"}},
     "fraudstack:database.masterPassword: unknown key (check the spelling; keys are camelCase)"),
    ("staging", {"fraudstack:cache": {"engineVersion": "6.2"}},
     "fraudstack:cache.engineVersion: '6.2' is not a Redis OSS 7 version ElastiCache offers (7.0, 7.1)"),
    ("staging", {"fraudstack:cache": {"nodeType": "cache.q9.large"}},
     "fraudstack:cache.nodeType: 'cache.q9.large' is not a known ElastiCache node type (cache.<family>.<size>, "
     "families: t3, t4g, m5, m6g, m7g, r5, r6g, r7g)"),
    ("staging", {"fraudstack:cache": {"multiAz": True}},
     "fraudstack:cache.multiAz: Multi-AZ needs at least one replica (cache.replicas)"),
    ("staging", {"fraudstack:cache": {"snapshotRetentionDays": 0}},
     "fraudstack:cache.snapshotRetentionDays: Input should be greater than or equal to 1 (got 0)"),
    ("staging", {"fraudstack:cache": {"maintenanceWindow": "sun:03:30-sun:04:30"}},
     "fraudstack:cache.maintenanceWindow: sun:03:30-sun:04:30 overlaps snapshotWindow 03:00-04:00"),
    ("staging", {"fraudstack:keys": {"deletionWindowDays": 3}},
     "fraudstack:keys.deletionWindowDays: Input should be greater than or equal to 7 (got 3)"),
    ("staging", {"fraudstack:keys": {"rotationPeriodDays": 30}},
     "fraudstack:keys.rotationPeriodDays: Input should be greater than or equal to 90 (got 30)"),
    ("staging", {"fraudstack:keys": {"adminRoleArns": ["*"]}},
     "fraudstack:keys.adminRoleArns: '*' is not an IAM role ARN"),
    ("staging", {"fraudstack:secrets": {"apiKeyClients": []}},
     "fraudstack:secrets.apiKeyClients: Tuple should have at least 1 item after validation, not 0"),
    ("staging", {"fraudstack:secrets": {"apiKeyClients": ["Payment Gateway"]}},
     "fraudstack:secrets.apiKeyClients: 'Payment Gateway': client names are lowercase letters, digits and dashes"),
    ("staging", {"fraudstack:secrets": {"apiKeyClients": ["acme", "acme"]}},
     "fraudstack:secrets.apiKeyClients: lists a client twice"),
    ("staging", {"fraudstack:secrets": {"hmacKeyLength": 16}},
     "fraudstack:secrets.hmacKeyLength: Input should be greater than or equal to 32 (got 16)"),
    ("staging", {"fraudstack:secrets": {"readerRoleArns": ["arn:aws:iam::123456789012:user/alice"]}},
     "fraudstack:secrets.readerRoleArns: 'arn:aws:iam::123456789012:user/alice' is not an IAM role ARN"),
    ("staging", {"fraudstack:secrets": {"recoveryWindowDays": 31}},
     "fraudstack:secrets.recoveryWindowDays: Input should be less than or equal to 30 (got 31)"),
]


@pytest.mark.parametrize(("stack", "overrides", "message"), INVALID, ids=[m.split(":", 2)[1] for _, _, m in INVALID])
def test_invalid_value_names_its_key(stack, overrides, message):
    with pytest.raises(pulumi.RunError) as err:
        load_config(stack, overrides)
    assert str(err.value) == message


def test_admin_role_arns_are_accepted_when_well_formed():
    arn = "arn:aws:iam::123456789012:role/platform-admin"
    assert load_config("production", {"fraudstack:keys": {"adminRoleArns": [arn]}}).keys.admin_role_arns == (arn,)


@pytest.mark.parametrize(
    ("daily", "weekly", "overlap"),
    [
        ("02:00-03:00", "sun:04:00-sun:05:00", False),
        ("02:00-03:00", "sun:02:59-sun:04:00", True),
        ("02:00-03:00", "sun:03:00-sun:04:00", False),
        ("23:30-00:30", "mon:00:00-mon:01:00", True),  # sunday's window runs into monday
        ("23:30-00:30", "sun:23:00-mon:00:00", True),
        ("10:00-11:00", "sat:23:00-sun:01:00", False),
    ],
)
def test_windows_overlap(daily, weekly, overlap):
    assert windows_overlap(daily, weekly) is overlap
