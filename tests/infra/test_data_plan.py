"""The data tier in the whole program, both stacks, under the mock runtime: the exact
security-relevant inputs of every data-tier resource, and no secret value in the plan."""

from __future__ import annotations

import json
import re

import pytest
from pulumi.runtime.mocks import MockResourceArgs

from components.keys import PLATFORM_PURPOSES
from policies.engine import evaluate, load_config
from tools.mocks import SECRET_MARKER, FraudstackMocks
from tools.plan import run_program

ACCOUNT = "123456789012"
DATA_COMPONENTS = ("keys", "secrets", "database", "cache")

EXPECTED = {
    "staging": {
        "db": {"instanceClass": "db.t4g.medium", "allocatedStorage": 20, "maxAllocatedStorage": 100, "multiAz": False,
               "backupRetentionPeriod": 7, "monitoringInterval": 60},
        "db_logs": 30,
        "cache": {"nodeType": "cache.t4g.small", "numCacheClusters": 1, "automaticFailoverEnabled": False,
                  "multiAzEnabled": False, "snapshotRetentionLimit": 1},
        "cache_logs": 30,
        "deletion_window": 7,
        "recovery_window": 7,
    },
    "production": {
        "db": {"instanceClass": "db.r7g.large", "allocatedStorage": 100, "maxAllocatedStorage": 1000, "multiAz": True,
               "backupRetentionPeriod": 14, "monitoringInterval": 30},
        "db_logs": 365,
        "cache": {"nodeType": "cache.r7g.large", "numCacheClusters": 3, "automaticFailoverEnabled": True,
                  "multiAzEnabled": True, "snapshotRetentionLimit": 7},
        "cache_logs": 365,
        "deletion_window": 30,
        "recovery_window": 30,
    },
}


@pytest.fixture(scope="module", params=["staging", "production"])
def plan(request):
    return run_program(request.param)


def _of(plan, typ, parent=None):
    return [r for r in plan["resources"] if r["type"] == typ and (parent is None or r["parent"] == parent)]


def _one(plan, typ, parent=None):
    found = _of(plan, typ, parent)
    assert len(found) == 1, [r["name"] for r in found]
    return found[0]


def _pick(inputs, keys):
    return {k: inputs.get(k, "<absent>") for k in keys}


def test_one_rotating_key_with_an_explicit_policy_per_purpose(plan):
    exp = EXPECTED[plan["stack"]]
    keys = {r["name"]: r for r in _of(plan, "aws:kms/key:Key", "keys")}
    assert set(keys) == {f"keys-{p}" for p in PLATFORM_PURPOSES}
    assert set(PLATFORM_PURPOSES) == {"database", "cache", "secrets", "logs", "eks", "ebs", "ecr", "sns", "models"}
    for purpose in PLATFORM_PURPOSES:
        inputs = keys[f"keys-{purpose}"]["inputs"]
        assert _pick(inputs, ("enableKeyRotation", "rotationPeriodInDays", "deletionWindowInDays", "isEnabled", "keyUsage",
                              "customerMasterKeySpec", "multiRegion", "bypassPolicyLockoutSafetyCheck")) == {
            "enableKeyRotation": True, "rotationPeriodInDays": 365, "deletionWindowInDays": exp["deletion_window"],
            "isEnabled": True, "keyUsage": "ENCRYPT_DECRYPT", "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "multiRegion": False, "bypassPolicyLockoutSafetyCheck": False,
        }
        policy = json.loads(inputs["policy"])
        for st in policy["Statement"]:
            assert st["Effect"] == "Allow"
            assert st["Principal"] != "*" and "*" not in json.dumps(st["Principal"]), (purpose, st["Sid"])
        use = {s["Sid"]: s for s in policy["Statement"]}["UseThroughService"]
        assert use["Condition"]["StringEquals"]["kms:CallerAccount"] == ACCOUNT
    aliases = {r["inputs"]["name"] for r in _of(plan, "aws:kms/alias:Alias", "keys")}
    assert aliases == {f"alias/fraudstack-{plan['stack']}-{p}" for p in PLATFORM_PURPOSES}
    assert set(plan["outputs"]["kmsKeyArns"]) == set(PLATFORM_PURPOSES)
    assert all(a.startswith(f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/") for a in plan["outputs"]["kmsKeyArns"].values())


def test_database_instance_security_inputs(plan):
    exp, out, stack = EXPECTED[plan["stack"]], plan["outputs"], plan["stack"]
    db = _one(plan, "aws:rds/instance:Instance", "database")
    keys = out["kmsKeyArns"]
    assert db["name"] == "database-instance"
    inputs = db["inputs"]
    assert _pick(inputs, list(exp["db"])) == exp["db"]
    assert _pick(inputs, (
        "engine", "engineVersion", "identifier", "port", "storageType", "storageEncrypted", "kmsKeyId", "publiclyAccessible",
        "networkType", "dbSubnetGroupName", "vpcSecurityGroupIds", "parameterGroupName", "caCertIdentifier",
        "iamDatabaseAuthenticationEnabled", "manageMasterUserPassword", "masterUserSecretKmsKeyId", "password",
        "deletionProtection", "skipFinalSnapshot", "finalSnapshotIdentifier", "copyTagsToSnapshot",
        "deleteAutomatedBackups", "backupWindow", "maintenanceWindow", "autoMinorVersionUpgrade",
        "allowMajorVersionUpgrade", "performanceInsightsEnabled", "performanceInsightsKmsKeyId",
        "performanceInsightsRetentionPeriod", "enabledCloudwatchLogsExports",
    )) == {
        "engine": "postgres", "engineVersion": "17.6", "identifier": f"fraudstack-{stack}-audit", "port": 5432,
        "storageType": "gp3", "storageEncrypted": True, "kmsKeyId": keys["database"], "publiclyAccessible": False,
        "networkType": "IPV4", "dbSubnetGroupName": f"fraudstack-{stack}-audit",
        "vpcSecurityGroupIds": [out["databaseSecurityGroupId"]], "parameterGroupName": f"fraudstack-{stack}-audit",
        "caCertIdentifier": "rds-ca-rsa2048-g1", "iamDatabaseAuthenticationEnabled": True,
        "manageMasterUserPassword": True, "masterUserSecretKmsKeyId": keys["secrets"], "password": "<absent>",
        "deletionProtection": True, "skipFinalSnapshot": False, "finalSnapshotIdentifier": f"fraudstack-{stack}-audit-final",
        "copyTagsToSnapshot": True, "deleteAutomatedBackups": False, "backupWindow": "02:00-03:00",
        "maintenanceWindow": "sun:04:00-sun:05:00", "autoMinorVersionUpgrade": True, "allowMajorVersionUpgrade": False,
        "performanceInsightsEnabled": True, "performanceInsightsKmsKeyId": keys["database"],
        "performanceInsightsRetentionPeriod": 7, "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
    }
    role = _one(plan, "aws:iam/role:Role", "database")
    assert inputs["monitoringRoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/{role['name']}")
    assert json.loads(role["inputs"]["assumeRolePolicy"])["Statement"] == [{
        "Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
    }]
    attachment = _one(plan, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "database")
    assert attachment["inputs"]["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    # The instance waits for its role and its pre-created, encrypted log groups.
    assert {"database-monitoring-policy", "database-log-postgresql", "database-log-upgrade"} <= set(db["dependencies"])


def test_database_parameter_group_forces_tls_and_logs_slow_statements(plan):
    params = _one(plan, "aws:rds/parameterGroup:ParameterGroup", "database")["inputs"]
    assert params["family"] == "postgres17"
    assert {p["name"]: (p["value"], p["applyMethod"]) for p in params["parameters"]} == {
        "rds.force_ssl": ("1", "pending-reboot"),
        "ssl_min_protocol_version": ("TLSv1.2", "pending-reboot"),
        "log_min_duration_statement": ("250", "immediate"),
        "log_statement": ("ddl", "immediate"),
        "log_connections": ("1", "immediate"),
        "log_disconnections": ("1", "immediate"),
        "log_lock_waits": ("1", "immediate"),
        "log_parameter_max_length": ("0", "immediate"),
        "log_parameter_max_length_on_error": ("0", "immediate"),
    }


def test_data_stores_sit_in_the_isolated_subnets(plan):
    isolated = plan["outputs"]["isolatedSubnetIds"]
    assert len(isolated) == {"staging": 2, "production": 3}[plan["stack"]]
    assert _one(plan, "aws:rds/subnetGroup:SubnetGroup", "database")["inputs"]["subnetIds"] == isolated
    assert _one(plan, "aws:elasticache/subnetGroup:SubnetGroup", "cache")["inputs"]["subnetIds"] == isolated
    assert not set(isolated) & set(plan["outputs"]["privateSubnetIds"] + plan["outputs"]["publicSubnetIds"])


def test_cache_replication_group_security_inputs(plan):
    exp, out, stack = EXPECTED[plan["stack"]], plan["outputs"], plan["stack"]
    rg = _one(plan, "aws:elasticache/replicationGroup:ReplicationGroup", "cache")["inputs"]
    assert _pick(rg, list(exp["cache"])) == exp["cache"]
    logs = {g["inputs"]["name"] for g in _of(plan, "aws:cloudwatch/logGroup:LogGroup", "cache")}
    assert _pick(rg, (
        "replicationGroupId", "engine", "engineVersion", "port", "subnetGroupName", "securityGroupIds",
        "atRestEncryptionEnabled", "kmsKeyId", "transitEncryptionEnabled", "transitEncryptionMode", "authToken",
        "authTokenUpdateStrategy", "snapshotWindow", "maintenanceWindow", "finalSnapshotIdentifier",
        "autoMinorVersionUpgrade", "applyImmediately", "logDeliveryConfigurations",
    )) == {
        "replicationGroupId": f"fraudstack-{stack}-velocity", "engine": "redis", "engineVersion": "7.1", "port": 6379,
        "subnetGroupName": f"fraudstack-{stack}-velocity", "securityGroupIds": [out["cacheSecurityGroupId"]],
        "atRestEncryptionEnabled": True, "kmsKeyId": out["kmsKeyArns"]["cache"], "transitEncryptionEnabled": True,
        "transitEncryptionMode": "required", "authToken": SECRET_MARKER, "authTokenUpdateStrategy": "ROTATE",
        "snapshotWindow": "03:00-04:00", "maintenanceWindow": "sun:05:00-sun:06:00",
        "finalSnapshotIdentifier": f"fraudstack-{stack}-velocity-final", "autoMinorVersionUpgrade": True,
        "applyImmediately": False,
        "logDeliveryConfigurations": [
            {"destination": f"/aws/elasticache/fraudstack-{stack}-velocity/{log}", "destinationType": "cloudwatch-logs",
             "logFormat": "json", "logType": log}
            for log in ("slow-log", "engine-log")
        ],
    }
    assert set(logs) == {f"/aws/elasticache/fraudstack-{stack}-velocity/{log}" for log in ("slow-log", "engine-log")}


def test_data_tier_log_groups_are_encrypted_with_the_logs_key(plan):
    exp, stack = EXPECTED[plan["stack"]], plan["stack"]
    logs_key = plan["outputs"]["kmsKeyArns"]["logs"]
    groups = {g["inputs"]["name"]: g["inputs"] for g in _of(plan, "aws:cloudwatch/logGroup:LogGroup")
              if g["parent"] in ("database", "cache")}
    assert {name: (g["kmsKeyId"], g["retentionInDays"]) for name, g in groups.items()} == {
        f"/aws/rds/instance/fraudstack-{stack}-audit/postgresql": (logs_key, exp["db_logs"]),
        f"/aws/rds/instance/fraudstack-{stack}-audit/upgrade": (logs_key, exp["db_logs"]),
        f"/aws/elasticache/fraudstack-{stack}-velocity/slow-log": (logs_key, exp["cache_logs"]),
        f"/aws/elasticache/fraudstack-{stack}-velocity/engine-log": (logs_key, exp["cache_logs"]),
    }


def test_data_security_groups_have_no_inline_rules_and_no_open_cidr(plan):
    stack = plan["stack"]
    sgs = {r["parent"]: r["inputs"] for r in _of(plan, "aws:ec2/securityGroup:SecurityGroup") if r["parent"] in ("database", "cache")}
    assert set(sgs) == {"database", "cache"}
    assert sgs["database"]["tags"]["Name"] == f"fraudstack-{stack}-audit-db"
    assert sgs["cache"]["tags"]["Name"] == f"fraudstack-{stack}-velocity-cache"
    for inputs in sgs.values():
        assert "ingress" not in inputs and "egress" not in inputs
        assert inputs["description"] and inputs["vpcId"] == plan["outputs"]["vpcId"]
    rule_types = ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    data_rules = [r for t in rule_types for r in _of(plan, t) if r["parent"] in ("database", "cache")]
    # Exactly one rule per data store, from the cluster's node security group only.
    nodes = plan["outputs"]["nodeSecurityGroupId"]
    assert nodes.startswith("sg-")
    assert sorted((r["name"], r["type"]) for r in data_rules) == [
        ("cache-sg-from-cluster-nodes", rule_types[0]), ("database-sg-from-cluster-nodes", rule_types[0]),
    ]
    for rule in data_rules:
        inputs = rule["inputs"]
        assert inputs == {
            "securityGroupId": plan["outputs"][f"{rule['parent']}SecurityGroupId"],
            "referencedSecurityGroupId": nodes,
            "ipProtocol": "tcp",
            "fromPort": 5432 if rule["parent"] == "database" else 6379,
            "toPort": 5432 if rule["parent"] == "database" else 6379,
            "description": f"{'PostgreSQL' if rule['parent'] == 'database' else 'Redis'} from cluster-nodes",
            "tags": inputs["tags"],
        }
        assert not {"cidrIpv4", "cidrIpv6", "prefixListId"} & set(inputs)
        assert (inputs["fromPort"], inputs["toPort"]) == ((5432, 5432) if rule["parent"] == "database" else (6379, 6379))
    assert {r["name"]: r["inputs"]["referencedSecurityGroupId"] for r in data_rules} == {
        "database-sg-from-cluster-nodes": plan["outputs"]["nodeSecurityGroupId"],
        "cache-sg-from-cluster-nodes": plan["outputs"]["nodeSecurityGroupId"],
    }
    for t in rule_types:
        for rule in _of(plan, t):
            # The one world-facing rule is the nodes' HTTPS egress through the NAT gateways.
            if rule["name"] == "eks-nodes-to-https":
                assert (rule["inputs"]["ipProtocol"], rule["inputs"]["fromPort"], rule["inputs"]["toPort"]) == ("tcp", 443, 443)
                continue
            assert rule["inputs"].get("cidrIpv4") != "0.0.0.0/0" and rule["inputs"].get("cidrIpv6") != "::/0", rule["name"]


def test_secrets_are_generated_encrypted_and_readable_only_by_the_service(plan):
    exp, stack, out = EXPECTED[plan["stack"]], plan["stack"], plan["outputs"]
    secrets = {r["inputs"]["name"]: r["inputs"] for r in _of(plan, "aws:secretsmanager/secret:Secret", "secrets")}
    names = {f"fraudstack-{stack}/{s}" for s in ("api-keys", "hmac-signing-key", "redis-auth-token", "admin-key")}
    assert set(secrets) == names
    for inputs in secrets.values():
        assert (inputs["kmsKeyId"], inputs["recoveryWindowInDays"]) == (out["kmsKeyArns"]["secrets"], exp["recovery_window"])
    versions = _of(plan, "aws:secretsmanager/secretVersion:SecretVersion", "secrets")
    assert len(versions) == 4 and all(v["inputs"]["secretString"] == SECRET_MARKER for v in versions)
    # The scoring service's IRSA role (components/scoring_app.py) is the only reader.
    service_role = out["appServiceAccountRoleArn"]
    assert service_role.startswith("arn:aws:iam::123456789012:role/app-irsa")
    for p in _of(plan, "aws:secretsmanager/secretPolicy:SecretPolicy", "secrets"):
        assert p["inputs"]["blockPublicPolicy"] is True
        assert json.loads(p["inputs"]["policy"])["Statement"] == [
            {"Sid": "DenyReadExceptReaders", "Effect": "Deny", "Principal": {"AWS": "*"},
             "Action": ["secretsmanager:GetSecretValue"], "Resource": p["inputs"]["secretArn"],
             "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [service_role]}}},
            {"Sid": "AllowReaders", "Effect": "Allow", "Principal": {"AWS": [service_role]},
             "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
             "Resource": p["inputs"]["secretArn"]},
        ]
    passwords = {r["name"]: r["inputs"] for r in _of(plan, "random:index/randomPassword:RandomPassword", "secrets")}
    assert all(i["special"] is False for i in passwords.values())  # URL-safe values
    assert {n: i["length"] for n, i in passwords.items()} == {
        "secrets-api-key-payment-gateway-value": 48, "secrets-hmac-signing-key-value": 64, "secrets-redis-auth-token-value": 64,
        "secrets-admin-key-value": 48,
    }
    assert set(out["secretArns"]) == {"api-keys", "hmac-signing-key", "redis-auth-token", "admin-key"}
    # The admin key is encrypted with the same key and described for the operator who reads it.
    admin = secrets[f"fraudstack-{stack}/admin-key"]
    assert admin["description"] == "Admin key (X-Admin-Key) of the scoring service's /admin routes; the service keeps its SHA-256"
    assert admin["tags"]["Name"] == f"fraudstack-{stack}/admin-key"


SECRETISH = re.compile(r"(password|token|secretstring|secret_string)$", re.I)


def test_no_plaintext_secret_anywhere_in_the_plan(plan):
    mocks = FraudstackMocks()
    generated = []
    for r in _of(plan, "random:index/randomPassword:RandomPassword"):
        _, outputs = mocks.new_resource(MockResourceArgs(r["type"], r["name"], dict(r["inputs"]), custom=True))
        generated.append(outputs["result"])
    assert len(generated) >= 3 and all(len(v) >= 48 for v in generated)
    text = json.dumps(plan)
    for value in generated:
        assert value not in text
    # Every input whose name says it holds a secret is redacted (or absent).
    found = []

    def walk(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                if SECRETISH.search(k) and not isinstance(v, bool):
                    found.append((path + k, v))
                walk(v, path + k + ".")
        elif isinstance(value, list):
            for v in value:
                walk(v, path)

    for r in plan["resources"]:
        walk(r["inputs"], f"{r['name']}:")
    assert [f for f in found if f[1] != SECRET_MARKER] == []
    assert {path for path, _ in found} >= {"cache-replication-group:authToken"} | {
        f"secrets-{s}-version:secretString" for s in ("api-keys", "hmac-signing-key", "redis-auth-token")
    }


def test_outputs_for_the_next_components(plan):
    out, stack = plan["outputs"], plan["stack"]
    assert out["databasePort"] == 5432 and out["cachePort"] == 6379
    assert out["databaseName"] == "fraudstack"
    assert re.fullmatch(rf"fraudstack-{stack}-audit\.c[0-9a-f]+\.eu-west-1\.rds\.amazonaws\.com:5432", out["databaseEndpoint"])
    assert out["databaseEndpoint"] == f"{out['databaseAddress']}:5432"
    assert out["cachePrimaryEndpoint"].startswith(f"master.fraudstack-{stack}-velocity.")
    assert out["cacheReaderEndpoint"].startswith(f"replica.fraudstack-{stack}-velocity.")
    assert out["databaseSecurityGroupId"].startswith("sg-") and out["cacheSecurityGroupId"].startswith("sg-")
    assert out["databaseSecurityGroupId"] != out["cacheSecurityGroupId"]
    assert out["databaseMasterUserSecretArn"].startswith(f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:rds!db-")
    assert set(out["kmsKeyAliases"].values()) == {f"alias/fraudstack-{stack}-{p}" for p in PLATFORM_PURPOSES}
    assert out["databaseIdentifier"] == f"fraudstack-{stack}-audit"
    assert out["cacheReplicationGroupId"] == f"fraudstack-{stack}-velocity"
    replicas = EXPECTED[stack]["cache"]["numCacheClusters"]
    assert out["cacheMemberClusterIds"] == [f"fraudstack-{stack}-velocity-00{i}" for i in range(1, replicas + 1)]


def test_data_tier_passes_the_policy_pack(plan):
    violations = [v for v in evaluate(plan["resources"], load_config(plan["stack"]), stack=plan["stack"])
                  if any(r["name"] == v["name"] and r["parent"] in DATA_COMPONENTS for r in plan["resources"])
                  # The alarms watching the database and the cache belong to the cluster
                  # issue's components/alarms.py, which is wired next to these components.
                  and v["policy"] != "data-tier-alarms"]
    rotation = [("secret-rotation", "advisory", f"secrets-{s}")
                for s in ("api-keys", "hmac-signing-key", "redis-auth-token", "admin-key")]
    expected = {
        # Staging runs a Single-AZ database and a single cache node on purpose: advisory there.
        "staging": [("cache-multi-az", "advisory", "cache-replication-group")] * 3
        + [("rds-multi-az", "advisory", "database-instance")] + rotation,
        # AWS offers no managed rotation for generated secrets: docs/operations.md has the procedures.
        "production": rotation,
    }[plan["stack"]]
    assert sorted((v["policy"], v["enforcement"], v["name"]) for v in violations) == sorted(expected)


def test_reader_roles_from_config_may_read_the_secrets():
    reader = "arn:aws:iam::123456789012:role/break-glass"
    plan = run_program("staging", {"fraudstack:secrets": {"readerRoleArns": [reader]}})
    policies = _of(plan, "aws:secretsmanager/secretPolicy:SecretPolicy", "secrets")
    assert len(policies) == 4
    readers = sorted([reader, plan["outputs"]["appServiceAccountRoleArn"]])
    for p in policies:
        deny, allow = json.loads(p["inputs"]["policy"])["Statement"]
        assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": readers}}
        assert allow["Principal"] == {"AWS": readers}
