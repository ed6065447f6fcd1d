"""The data-tier components alone under the mock runtime: exact inputs with wiring the
program does not have yet (security groups of the cluster, the service's reader role)."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.cache import Cache, CacheArgs
from components.database import Database, DatabaseArgs
from components.keys import Keys, KeysArgs
from components.secrets import Secrets, SecretsArgs
from tools.plan import run_component

PREFIX = "fraudstack-test"
TAGS = {"environment": "test", "service": "fraudstack"}
NODES_SG = "sg-0123456789abcdef0"
READER = "arn:aws:iam::123456789012:role/fraudstack-scoring"


def _database(allowed: dict, **overrides) -> None:
    args = dict(
        name_prefix=PREFIX, tags=TAGS, vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"],
        allowed_security_group_ids=allowed, kms_key_arn="arn:db-key", secrets_kms_key_arn="arn:secrets-key",
        logs_kms_key_arn="arn:logs-key", engine_version="16.4", instance_class="db.m7g.large",
        allocated_storage_gb=50, max_allocated_storage_gb=200, multi_az=True, backup_retention_days=21,
        backup_window="01:00-02:00", maintenance_window="sat:03:00-sat:04:00",
        performance_insights_retention_days=31, monitoring_interval_seconds=15,
        ca_cert_identifier="rds-ca-ecc384-g1", log_min_duration_ms=1000, log_retention_days=400,
    )
    args.update(overrides)
    Database("db", DatabaseArgs(**args))


def _cache(allowed: dict, replicas: int = 1, multi_az: bool = True) -> None:
    Cache("kv", CacheArgs(
        name_prefix=PREFIX, tags=TAGS, vpc_id="vpc-1", subnet_ids=["subnet-a", "subnet-b"],
        allowed_security_group_ids=allowed, kms_key_arn="arn:cache-key", logs_kms_key_arn="arn:logs-key",
        auth_token=pulumi.Output.secret("test-token-not-a-secret"), engine_version="7.0",
        node_type="cache.m7g.large", replicas=replicas, multi_az=multi_az, snapshot_retention_days=5,
        snapshot_window="04:00-05:00", maintenance_window="mon:06:00-mon:07:00", log_retention_days=14,
    ))


def _by_type(resources: list[dict], typ: str) -> list[dict]:
    return [r for r in resources if r["type"] == typ]


def _one(resources: list[dict], typ: str) -> dict:
    found = _by_type(resources, typ)
    assert len(found) == 1, [r["name"] for r in found]
    return found[0]


def test_database_admits_5432_only_from_each_listed_security_group():
    res = run_component(lambda: _database({"cluster-nodes": NODES_SG, "ops-bastion": "sg-0bbbbbbbbbbbbbbbb"}))
    rules = _by_type(res, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    sg = _one(res, "aws:ec2/securityGroup:SecurityGroup")
    assert sg["inputs"] == {
        "vpcId": "vpc-1",
        "description": "PostgreSQL fraudstack-test-audit: 5432 from the listed security groups only",
        "tags": {**TAGS, "Name": "fraudstack-test-audit-db"},
    }
    assert "ingress" not in sg["inputs"] and "egress" not in sg["inputs"]
    assert {r["name"]: r["parent"] for r in rules} == {"db-sg-from-cluster-nodes": "db", "db-sg-from-ops-bastion": "db"}
    for rule in rules:
        inputs = dict(rule["inputs"])
        assert inputs.pop("securityGroupId").startswith("sg-")
        label = rule["name"].removeprefix("db-sg-from-")
        assert inputs == {
            "referencedSecurityGroupId": {"cluster-nodes": NODES_SG, "ops-bastion": "sg-0bbbbbbbbbbbbbbbb"}[label],
            "ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432,
            "description": f"PostgreSQL from {label}",
            "tags": {**TAGS, "Name": f"fraudstack-test-audit-from-{label}"},
        }
    assert not _by_type(res, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")


def test_database_with_no_allowed_groups_has_no_ingress_at_all():
    res = run_component(lambda: _database({}))
    assert not _by_type(res, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def test_database_instance_inputs_follow_args():
    res = run_component(lambda: _database({"cluster-nodes": NODES_SG}))
    db = _one(res, "aws:rds/instance:Instance")["inputs"]
    assert {k: db[k] for k in (
        "engineVersion", "instanceClass", "allocatedStorage", "maxAllocatedStorage", "multiAz",
        "backupRetentionPeriod", "backupWindow", "maintenanceWindow", "performanceInsightsRetentionPeriod",
        "monitoringInterval", "caCertIdentifier", "kmsKeyId", "performanceInsightsKmsKeyId",
        "masterUserSecretKmsKeyId", "finalSnapshotIdentifier",
    )} == {
        "engineVersion": "16.4", "instanceClass": "db.m7g.large", "allocatedStorage": 50, "maxAllocatedStorage": 200,
        "multiAz": True, "backupRetentionPeriod": 21, "backupWindow": "01:00-02:00",
        "maintenanceWindow": "sat:03:00-sat:04:00", "performanceInsightsRetentionPeriod": 31,
        "monitoringInterval": 15, "caCertIdentifier": "rds-ca-ecc384-g1", "kmsKeyId": "arn:db-key",
        "performanceInsightsKmsKeyId": "arn:db-key", "masterUserSecretKmsKeyId": "arn:secrets-key",
        "finalSnapshotIdentifier": "fraudstack-test-audit-final",
    }
    pg = _one(res, "aws:rds/parameterGroup:ParameterGroup")["inputs"]
    assert pg["family"] == "postgres16"
    assert {p["name"]: p["value"] for p in pg["parameters"]}["log_min_duration_statement"] == "1000"
    groups = {g["inputs"]["name"]: g["inputs"] for g in _by_type(res, "aws:cloudwatch/logGroup:LogGroup")}
    assert set(groups) == {"/aws/rds/instance/fraudstack-test-audit/postgresql", "/aws/rds/instance/fraudstack-test-audit/upgrade"}
    assert {(g["kmsKeyId"], g["retentionInDays"]) for g in groups.values()} == {("arn:logs-key", 400)}


def test_database_refuses_a_single_subnet():
    with pytest.raises(Exception, match="at least two AZs"):
        run_component(lambda: _database({}, subnet_ids=["subnet-a"]))


def test_cache_admits_6379_only_from_listed_security_groups():
    res = run_component(lambda: _cache({"cluster-nodes": NODES_SG}))
    (rule,) = _by_type(res, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    inputs = dict(rule["inputs"])
    assert inputs.pop("securityGroupId").startswith("sg-")
    assert rule["name"] == "kv-sg-from-cluster-nodes"
    assert inputs == {
        "referencedSecurityGroupId": NODES_SG, "ipProtocol": "tcp", "fromPort": 6379, "toPort": 6379,
        "description": "Redis from cluster-nodes", "tags": {**TAGS, "Name": "fraudstack-test-velocity-from-cluster-nodes"},
    }
    sg = _one(res, "aws:ec2/securityGroup:SecurityGroup")["inputs"]
    assert "ingress" not in sg and "egress" not in sg
    assert not _by_type(res, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")


def test_cache_replication_group_inputs_follow_args():
    res = run_component(lambda: _cache({}, replicas=1))
    rg = _one(res, "aws:elasticache/replicationGroup:ReplicationGroup")["inputs"]
    assert {k: rg[k] for k in (
        "engineVersion", "nodeType", "numCacheClusters", "automaticFailoverEnabled", "multiAzEnabled",
        "kmsKeyId", "authToken", "snapshotRetentionLimit", "snapshotWindow", "maintenanceWindow",
    )} == {
        "engineVersion": "7.0", "nodeType": "cache.m7g.large", "numCacheClusters": 2,
        "automaticFailoverEnabled": True, "multiAzEnabled": True, "kmsKeyId": "arn:cache-key",
        "authToken": "[secret]", "snapshotRetentionLimit": 5, "snapshotWindow": "04:00-05:00",
        "maintenanceWindow": "mon:06:00-mon:07:00",
    }
    assert "test-token-not-a-secret" not in json.dumps(res)


def test_cache_single_node_has_no_failover_and_multi_az_needs_a_replica():
    res = run_component(lambda: _cache({}, replicas=0, multi_az=False))
    rg = _one(res, "aws:elasticache/replicationGroup:ReplicationGroup")["inputs"]
    assert (rg["numCacheClusters"], rg["automaticFailoverEnabled"], rg["multiAzEnabled"]) == (1, False, False)
    with pytest.raises(Exception, match="Multi-AZ Redis needs at least one replica"):
        run_component(lambda: _cache({}, replicas=0, multi_az=True))


def test_secrets_policy_names_the_reader_role():
    def program():
        Secrets("sec", SecretsArgs(
            name_prefix=PREFIX, tags=TAGS, kms_key_arn="arn:secrets-key", recovery_window_days=10,
            api_key_clients=("acme", "globex"), reader_role_arns=[READER],
        ))

    res = run_component(program)
    policies = _by_type(res, "aws:secretsmanager/secretPolicy:SecretPolicy")
    assert len(policies) == 4
    for p in policies:
        assert p["inputs"]["blockPublicPolicy"] is True
        deny, allow = json.loads(p["inputs"]["policy"])["Statement"]
        assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [READER]}}
        assert allow["Principal"] == {"AWS": [READER]}
        assert deny["Resource"] == allow["Resource"] == p["inputs"]["secretArn"]
    passwords = {r["name"]: r["inputs"] for r in _by_type(res, "random:index/randomPassword:RandomPassword")}
    assert set(passwords) == {"sec-api-key-acme-value", "sec-api-key-globex-value", "sec-hmac-signing-key-value",
                              "sec-redis-auth-token-value", "sec-admin-key-value"}
    assert passwords["sec-admin-key-value"] == {"length": 48, "special": False}
    assert {s["inputs"]["recoveryWindowInDays"] for s in _by_type(res, "aws:secretsmanager/secret:Secret")} == {10}


def test_secrets_refuse_duplicate_clients():
    with pytest.raises(Exception, match="duplicate API key clients"):
        run_component(lambda: Secrets("sec", SecretsArgs(
            name_prefix=PREFIX, tags=TAGS, kms_key_arn="arn:k", recovery_window_days=7, api_key_clients=("a1", "a1"))))


def test_keys_take_admin_roles_and_refuse_unknown_purposes():
    admin = "arn:aws:iam::123456789012:role/platform-admin"
    res = run_component(lambda: Keys("k", KeysArgs(
        purposes=("database",), deletion_window_days=9, tags=TAGS, name_prefix=PREFIX,
        admin_role_arns=(admin,), rotation_period_days=180)))
    key = _one(res, "aws:kms/key:Key")["inputs"]
    assert (key["deletionWindowInDays"], key["rotationPeriodInDays"], key["enableKeyRotation"]) == (9, 180, True)
    sids = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    assert sids["KeyAdministrators"]["Principal"] == {"AWS": [admin]}
    with pytest.raises(Exception, match="unknown key purposes"):
        run_component(lambda: Keys("k", KeysArgs(purposes=("tape",), deletion_window_days=7, tags=TAGS, name_prefix=PREFIX)))
