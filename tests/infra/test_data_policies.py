"""Pure functions of the data tier: KMS key policies, secret policies, DB parameters."""

from __future__ import annotations

import pytest

from components.database import db_parameters, parameter_family
from components.keys import ADMIN_ACTIONS, PURPOSE_SERVICES, USE_ACTIONS, key_policy
from components.secrets import api_keys_document, secret_policy

ACCOUNT, REGION, PARTITION = "123456789012", "eu-west-1", "aws"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def _policy(purpose: str, admins=()) -> dict:
    return key_policy(purpose, account_id=ACCOUNT, region=REGION, partition=PARTITION, admin_role_arns=admins)


def _principals(statement: dict) -> list[str]:
    values = []
    for kind, value in statement["Principal"].items():
        values.extend([value] if isinstance(value, str) else value)
    return values


@pytest.mark.parametrize("purpose", sorted(PURPOSE_SERVICES))
def test_key_policy_has_no_wildcard_principal_and_no_unconditioned_use(purpose):
    policy = _policy(purpose)
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        assert "*" not in _principals(st), st["Sid"]
        data_plane = {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:Encrypt*", "kms:Decrypt*"}
        if data_plane & set(st["Action"]) and st["Principal"] == {"AWS": ROOT}:
            # The account may use the key only through the purpose's service, except the
            # EKS key, which the cluster role calls directly (delegated to IAM policies).
            assert st["Condition"]["StringEquals"]["kms:CallerAccount"] == ACCOUNT
            if st["Sid"] == "UseThroughIamPolicies":
                assert purpose == "eks"
            else:
                assert "kms:ViaService" in st["Condition"]["StringEquals"]


@pytest.mark.parametrize(
    ("purpose", "via"),
    [
        ("database", "rds.eu-west-1.amazonaws.com"),
        ("cache", "elasticache.eu-west-1.amazonaws.com"),
        ("secrets", "secretsmanager.eu-west-1.amazonaws.com"),
        ("logs", "logs.eu-west-1.amazonaws.com"),
        ("eks", "eks.eu-west-1.amazonaws.com"),
        ("ebs", "ec2.eu-west-1.amazonaws.com"),
        ("ecr", "ecr.eu-west-1.amazonaws.com"),
        ("sns", "sns.eu-west-1.amazonaws.com"),
    ],
)
def test_key_policy_use_is_only_through_its_service(purpose, via):
    statements = {s["Sid"]: s for s in _policy(purpose)["Statement"]}
    use = statements["UseThroughService"]
    assert use["Principal"] == {"AWS": ROOT}
    assert use["Action"] == list(USE_ACTIONS)
    assert use["Condition"] == {"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": via}}
    admin = statements["AccountAdministrationViaIam"]
    assert admin["Principal"] == {"AWS": ROOT}
    assert admin["Action"] == list(ADMIN_ACTIONS)
    assert not any(a.startswith(("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt")) for a in admin["Action"])
    grants = statements["GrantsForAwsResources"]
    assert grants["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


def test_logs_key_lets_cloudwatch_logs_encrypt_only_this_accounts_log_groups():
    st = {s["Sid"]: s for s in _policy("logs")["Statement"]}["CloudWatchLogsEncryptLogGroups"]
    assert st["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert st["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:123456789012:log-group:*"}
    }


def test_sns_key_lets_cloudwatch_alarms_publish_from_this_account_only():
    st = {s["Sid"]: s for s in _policy("sns")["Statement"]}["CloudWatchAlarmsPublish"]
    assert st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert st["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_ebs_key_admits_the_autoscaling_service_linked_role():
    sids = {s["Sid"]: s for s in _policy("ebs")["Statement"]}
    role = "arn:aws:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    assert sids["AutoScalingServiceLinkedRoleUse"]["Principal"] == {"AWS": role}
    assert sids["AutoScalingServiceLinkedRoleGrants"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    # Only the ebs and logs/sns keys have direct service principals.
    assert "AutoScalingServiceLinkedRoleUse" not in {s["Sid"] for s in _policy("database")["Statement"]}
    assert {s["Sid"] for s in _policy("database")["Statement"]} == {
        "AccountAdministrationViaIam", "UseThroughService", "GrantsForAwsResources"
    }


def test_only_the_eks_key_is_usable_outside_its_service():
    direct = {p for p in PURPOSE_SERVICES if "UseThroughIamPolicies" in {s["Sid"] for s in _policy(p)["Statement"]}}
    assert direct == {"eks"}
    st = {s["Sid"]: s for s in _policy("eks")["Statement"]}["UseThroughIamPolicies"]
    assert st == {
        "Sid": "UseThroughIamPolicies", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": list(USE_ACTIONS),
        "Resource": "*", "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}},
    }


def test_admin_roles_get_administration_only():
    admins = ("arn:aws:iam::123456789012:role/platform-admin",)
    st = {s["Sid"]: s for s in _policy("database", admins)["Statement"]}["KeyAdministrators"]
    assert st["Principal"] == {"AWS": list(admins)}
    assert st["Action"] == list(ADMIN_ACTIONS)


def test_unknown_purpose_is_refused():
    with pytest.raises(ValueError, match="unknown key purpose 'backups'"):
        _policy("backups")


def test_secret_policy_without_readers_denies_every_read():
    policy = secret_policy("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x", [])
    assert policy["Statement"] == [
        {
            "Sid": "DenyReadExceptReaders",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x",
        }
    ]


def test_secret_policy_with_readers_denies_everyone_else():
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"
    reader = "arn:aws:iam::123456789012:role/scoring"
    deny, allow = secret_policy(arn, [reader])["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [reader]}}
    assert allow == {
        "Sid": "AllowReaders",
        "Effect": "Allow",
        "Principal": {"AWS": [reader]},
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "Resource": arn,
    }


def test_db_parameters_force_tls_and_log_slow_statements_but_not_data_values():
    params = {p["name"]: p["value"] for p in db_parameters(250)}
    assert params == {
        "rds.force_ssl": "1",
        "ssl_min_protocol_version": "TLSv1.2",
        "log_min_duration_statement": "250",
        "log_statement": "ddl",
        "log_connections": "1",
        "log_disconnections": "1",
        "log_lock_waits": "1",
        "log_parameter_max_length": "0",
        "log_parameter_max_length_on_error": "0",
    }
    assert parameter_family("17.6") == "postgres17"


def test_api_keys_document_is_what_the_service_reads():
    doc = api_keys_document({"globex": "test-key-b-not-a-secret", "acme": "test-key-a-not-a-secret"})
    assert doc == (
        '{"api_keys": ["test-key-a-not-a-secret", "test-key-b-not-a-secret"], '
        '"clients": {"acme": "test-key-a-not-a-secret", "globex": "test-key-b-not-a-secret"}}'
    )
