"""Customer-managed KMS keys, one per purpose, with explicit key policies.

Each purpose (database, cache, secrets, logs, eks, ebs, ecr, sns, models) gets its own key so a
key can be disabled, audited or scheduled for deletion without touching the others, and
so a role allowed to decrypt audit-trail snapshots cannot read, say, Kubernetes secrets.

The key policies never use a wildcard principal. The account root principal gets key
*administration* (delegated to IAM, so administrators need an IAM policy too) but not
data-plane use: encrypting and decrypting is allowed only when the call arrives through
the AWS service the key is for (``kms:ViaService``), plus the few service principals
that must call KMS directly (CloudWatch Logs, CloudWatch alarms publishing to SNS,
the Auto Scaling service-linked role launching encrypted EBS volumes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

#: What each purpose's key is for, and which AWS services may use it.
#: ``via_services`` are service name prefixes (``rds`` -> ``rds.<region>.amazonaws.com``).
PURPOSE_SERVICES: dict[str, tuple[str, ...]] = {
    "database": ("rds",),
    "cache": ("elasticache",),
    # RDS writes the managed master password to Secrets Manager under this key.
    "secrets": ("secretsmanager",),
    "logs": ("logs",),
    "eks": ("eks",),
    "ebs": ("ec2",),
    "ecr": ("ecr",),
    "sns": ("sns",),
    # S3 encrypts model artifacts with this key (SSE-KMS) on behalf of the caller.
    "models": ("s3",),
}

#: Purposes whose key a role of ours calls directly, not through an AWS service: the EKS
#: control plane's KMS plugin encrypts Secrets with the cluster role's own credentials, so
#: a ``kms:ViaService`` condition would never match. Use is then delegated to IAM: only a
#: principal of this account whose IAM policy names the key can use it.
DIRECT_IAM_USE: frozenset[str] = frozenset({"eks"})

#: Every purpose the platform needs a key for (the program makes all of them).
PLATFORM_PURPOSES: tuple[str, ...] = tuple(PURPOSE_SERVICES)

PURPOSE_DESCRIPTIONS: dict[str, str] = {
    "database": "RDS PostgreSQL storage, snapshots and Performance Insights",
    "cache": "ElastiCache Redis data at rest and snapshots",
    "secrets": "Secrets Manager secrets (service secrets and the RDS-managed master password)",
    "logs": "CloudWatch Logs log groups",
    "eks": "EKS envelope encryption of Kubernetes secrets",
    "ebs": "EBS volumes of the EKS worker nodes",
    "ecr": "ECR image repositories",
    "sns": "SNS alarm topics",
    "models": "S3 model store (model artifacts, SSE-KMS)",
}

#: Key administration without any data-plane action (no Encrypt/Decrypt/GenerateDataKey).
ADMIN_ACTIONS: tuple[str, ...] = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)

USE_ACTIONS: tuple[str, ...] = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
)

GRANT_ACTIONS: tuple[str, ...] = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")


def key_policy(
    purpose: str,
    *,
    account_id: str,
    region: str,
    partition: str,
    admin_role_arns: Sequence[str] = (),
) -> dict:
    """Return the key policy document for one purpose (a pure function, tested alone)."""
    if purpose not in PURPOSE_SERVICES:
        raise ValueError(f"unknown key purpose {purpose!r}; known: {sorted(PURPOSE_SERVICES)}")
    root = f"arn:{partition}:iam::{account_id}:root"
    statements: list[dict] = [
        {
            # Without this statement IAM policies cannot grant anything on the key and a
            # lost administrator role would make the key unmanageable.
            "Sid": "AccountAdministrationViaIam",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": list(ADMIN_ACTIONS),
            "Resource": "*",
        },
    ]
    if admin_role_arns:
        statements.append(
            {
                "Sid": "KeyAdministrators",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(admin_role_arns)},
                "Action": list(ADMIN_ACTIONS),
                "Resource": "*",
            }
        )
    via = [f"{svc}.{region}.amazonaws.com" for svc in PURPOSE_SERVICES[purpose]]
    statements.append(
        {
            "Sid": "UseThroughService",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": list(USE_ACTIONS),
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:CallerAccount": account_id,
                    "kms:ViaService": via if len(via) > 1 else via[0],
                }
            },
        }
    )
    if purpose in DIRECT_IAM_USE:
        statements.append(
            {
                "Sid": "UseThroughIamPolicies",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": list(USE_ACTIONS),
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account_id}},
            }
        )
    # Services (RDS, ElastiCache, EKS, EBS, ...) hold grants rather than calling with
    # the caller's credentials; grants are allowed only for AWS resources.
    statements.append(
        {
            "Sid": "GrantsForAwsResources",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": list(GRANT_ACTIONS),
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": account_id},
                "Bool": {"kms:GrantIsForAWSResource": "true"},
            },
        }
    )
    if purpose == "logs":
        # CloudWatch Logs calls KMS as its own principal; the encryption context names
        # the log group, so only log groups of this account and region can use the key.
        statements.append(
            {
                "Sid": "CloudWatchLogsEncryptLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{partition}:logs:{region}:{account_id}:log-group:*"
                        )
                    }
                },
            }
        )
    if purpose == "sns":
        # CloudWatch alarms publish to the encrypted alarm topics as the service itself.
        statements.append(
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    if purpose == "ebs":
        # Managed node groups launch instances through Auto Scaling, whose service-linked
        # role must use the key directly to attach encrypted root volumes.
        asg_role = (
            f"arn:{partition}:iam::{account_id}:role/aws-service-role/"
            "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
        )
        statements.append(
            {
                "Sid": "AutoScalingServiceLinkedRoleUse",
                "Effect": "Allow",
                "Principal": {"AWS": asg_role},
                "Action": list(USE_ACTIONS),
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "AutoScalingServiceLinkedRoleGrants",
                "Effect": "Allow",
                "Principal": {"AWS": asg_role},
                "Action": ["kms:CreateGrant"],
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return {"Version": "2012-10-17", "Id": f"fraudstack-{purpose}", "Statement": statements}


@dataclass(frozen=True)
class KeysArgs:
    """Inputs of :class:`Keys`."""

    #: Purposes to make a key for; each must be a key of ``PURPOSE_SERVICES``.
    purposes: tuple[str, ...]
    #: Days a scheduled deletion waits (7-30; 30 in production).
    deletion_window_days: int
    #: Required tags (from ``components.tags``); each key adds its own ``Name``.
    tags: Mapping[str, str]
    #: Physical name prefix, e.g. ``fraudstack-production``; aliases are
    #: ``alias/<name_prefix>-<purpose>``.
    name_prefix: str
    #: Roles allowed to administer (not use) every key, in addition to IAM via the root.
    admin_role_arns: tuple[str, ...] = ()
    #: Days between automatic rotations of the key material (90-2560).
    rotation_period_days: int = 365
    #: Account, region and partition the policies are written for; looked up when None.
    account_id: pulumi.Input[str] | None = None
    region: pulumi.Input[str] | None = None
    partition: pulumi.Input[str] | None = None
    #: Extra per-purpose descriptions (defaults from ``PURPOSE_DESCRIPTIONS``).
    descriptions: Mapping[str, str] = field(default_factory=dict)


class Keys(pulumi.ComponentResource):
    """One customer-managed, rotating KMS key and alias per purpose."""

    key_arns: dict[str, pulumi.Output[str]]
    key_ids: dict[str, pulumi.Output[str]]
    alias_names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: KeysArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:Keys", name, None, opts)
        unknown = [p for p in args.purposes if p not in PURPOSE_SERVICES]
        if unknown:
            raise ValueError(f"unknown key purposes {unknown}; known: {sorted(PURPOSE_SERVICES)}")
        if len(set(args.purposes)) != len(args.purposes):
            raise ValueError(f"duplicate key purposes in {list(args.purposes)}")
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = args.account_id or aws.get_caller_identity_output(opts=invoke).account_id
        region = args.region or aws.get_region_output(opts=invoke).region
        partition = args.partition or aws.get_partition_output(opts=invoke).partition
        admins = tuple(args.admin_role_arns)

        self.key_arns, self.key_ids, self.alias_names = {}, {}, {}
        for purpose in args.purposes:
            policy = pulumi.Output.all(account_id, region, partition).apply(
                lambda v, p=purpose: json.dumps(
                    key_policy(p, account_id=v[0], region=v[1], partition=v[2], admin_role_arns=admins),
                    sort_keys=True,
                )
            )
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"fraudstack {args.name_prefix}: "
                + args.descriptions.get(purpose, PURPOSE_DESCRIPTIONS[purpose]),
                key_usage="ENCRYPT_DECRYPT",
                customer_master_key_spec="SYMMETRIC_DEFAULT",
                enable_key_rotation=True,
                rotation_period_in_days=args.rotation_period_days,
                deletion_window_in_days=args.deletion_window_days,
                is_enabled=True,
                multi_region=False,
                bypass_policy_lockout_safety_check=False,
                policy=policy,
                tags={**args.tags, "Name": f"{args.name_prefix}-{purpose}"},
                opts=child,
            )
            alias = aws.kms.Alias(
                f"{name}-{purpose}-alias",
                name=f"alias/{args.name_prefix}-{purpose}",
                target_key_id=key.key_id,
                opts=child,
            )
            self.key_arns[purpose] = key.arn
            self.key_ids[purpose] = key.key_id
            self.alias_names[purpose] = alias.name

        self.register_outputs(
            {"key_arns": self.key_arns, "key_ids": self.key_ids, "alias_names": self.alias_names}
        )
