"""Backups and recovery: point-in-time recovery and snapshots of the database, snapshots of
the cache, and the production database's automated backups replicated to a second region
(through a second provider and a key of our own there), for both stacks under mocks."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.config import load_stack_config
from tests.delivery.helpers import of_type, one
from tools.plan import stack_config

REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
DB = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"


def load(stack: str, overrides: dict):
    flat, secrets = stack_config(stack, overrides)
    pulumi.runtime.set_all_config(flat, secrets)
    return load_stack_config()


@pytest.mark.parametrize(("stack", "retention"), [("staging", 7), ("production", 14)])
def test_database_point_in_time_recovery_and_snapshots(plans, stack, retention):
    inputs = one(plans[stack], DB, "database-instance")["inputs"]
    assert {k: inputs[k] for k in (
        "backupRetentionPeriod", "backupWindow", "copyTagsToSnapshot", "deleteAutomatedBackups",
        "skipFinalSnapshot", "finalSnapshotIdentifier", "deletionProtection", "storageEncrypted",
    )} == {
        "backupRetentionPeriod": retention,  # PITR to any second of the last N days
        "backupWindow": "02:00-03:00",
        "copyTagsToSnapshot": True,
        "deleteAutomatedBackups": False,  # backups outlive a deleted instance
        "skipFinalSnapshot": False,
        "finalSnapshotIdentifier": f"fraudstack-{stack}-audit-final",
        "deletionProtection": True,
        "storageEncrypted": True,
    }
    assert inputs["kmsKeyId"] == plans[stack]["outputs"]["kmsKeyArns"]["database"]


@pytest.mark.parametrize(("stack", "retention"), [("staging", 1), ("production", 7)])
def test_cache_snapshots(plans, stack, retention):
    inputs = one(plans[stack], CACHE, "cache-replication-group")["inputs"]
    assert (inputs["snapshotRetentionLimit"], inputs["snapshotWindow"], inputs["finalSnapshotIdentifier"]) == (
        retention, "03:00-04:00", f"fraudstack-{stack}-velocity-final"
    )
    assert inputs["kmsKeyId"] == plans[stack]["outputs"]["kmsKeyArns"]["cache"]


def test_production_replicates_backups_to_a_second_region(plans):
    plan = plans["production"]
    provider = one(plan, "pulumi:providers:aws", "database-backups-eu-central-1")
    assert provider["inputs"]["region"] == "eu-central-1"
    assert provider["parent"] == "database-backups"

    replication = one(plan, REPLICATION, "database-backups-replication")
    assert replication["parent"] == "database-backups"
    assert replication["provider"] == "database-backups-eu-central-1"
    assert replication["inputs"] == {
        "sourceDbInstanceArn": "arn:aws:rds:eu-west-1:123456789012:db:fraudstack-production-audit",
        "kmsKeyId": plan["outputs"]["databaseBackupReplicationKeyArn"],
        "retentionPeriod": 14,
    }
    assert plan["outputs"]["databaseArn"] == replication["inputs"]["sourceDbInstanceArn"]
    # The key lives in the destination region: a KMS key never leaves its region.
    assert plan["outputs"]["databaseBackupReplicationKeyArn"].startswith("arn:aws:kms:eu-central-1:123456789012:key/")
    assert plan["outputs"]["databaseBackupReplicationRegion"] == "eu-central-1"


def test_destination_key_is_rotated_and_usable_only_by_rds_there(plans):
    plan = plans["production"]
    key = one(plan, "aws:kms/key:Key", "database-backups-key")
    assert key["provider"] == "database-backups-eu-central-1"
    inputs = key["inputs"]
    assert (inputs["enableKeyRotation"], inputs["rotationPeriodInDays"], inputs["deletionWindowInDays"]) == (True, 365, 30)
    assert inputs["tags"]["Name"] == "fraudstack-production-database-backups"
    policy = json.loads(inputs["policy"])
    principals = [s["Principal"] for s in policy["Statement"]]
    assert "*" not in json.dumps(principals)
    use = next(s for s in policy["Statement"] if "kms:Decrypt" in s["Action"])
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == "rds.eu-central-1.amazonaws.com"
    alias = one(plan, "aws:kms/alias:Alias", "database-backups-key-alias")
    assert alias["inputs"]["name"] == "alias/fraudstack-production-database-backups"
    assert alias["provider"] == "database-backups-eu-central-1"


def test_staging_has_no_cross_region_copy(plans):
    plan = plans["staging"]
    assert of_type(plan, REPLICATION) == []
    assert [r for r in plan["resources"] if r["name"].startswith("database-backups")] == []
    assert plan["outputs"]["databaseBackupReplicationRegion"] is None
    assert plan["outputs"]["databaseBackupReplicationKeyArn"] is None


def test_policy_pack_passes_on_the_backup_resources(plans):
    ours = [r for r in plans["production"]["resources"] if r["name"].startswith("database-backups")]
    assert len(ours) == 5  # component, provider, key, alias, replication
    names = {r["name"] for r in ours}
    assert [v for v in plans["production"]["violations"] if v["name"] in names] == []


@pytest.mark.parametrize(
    ("stack", "change", "key", "why"),
    [
        ("production", {"backupReplicationRegion": None}, "database.backupReplicationRegion", "production replicates its backups"),
        ("production", {"backupReplicationRegion": "eu-west-1"}, "database.backupReplicationRegion", "another region than the stack's (eu-west-1)"),
        ("staging", {"backupReplicationRegion": "moon-1"}, "database.backupReplicationRegion", "not an AWS region name"),
        ("production", {"backupReplicationRetentionDays": 0}, "database.backupReplicationRetentionDays", "greater than or equal to 1"),
        ("production", {"backupReplicationRetentionDays": 36}, "database.backupReplicationRetentionDays", "less than or equal to 35"),
    ],
)
def test_bad_backup_config_names_the_key(stack, change, key, why):
    with pytest.raises(pulumi.RunError) as err:
        load(stack, {"fraudstack:database": change})
    assert str(err.value).startswith(f"fraudstack:{key}: ")
    assert why in str(err.value)


def test_staging_may_opt_in():
    cfg = load("staging", {"fraudstack:database": {"backupReplicationRegion": "eu-central-1"}})
    assert cfg.database.backup_replication_region == "eu-central-1"
    assert cfg.database.backup_replication_retention_days == 7
