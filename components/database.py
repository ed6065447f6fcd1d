"""RDS PostgreSQL for the scoring service's audit trail.

The instance lives in the isolated subnets behind its own security group, which admits
5432 only from the security groups passed in (the cluster's nodes): never a CIDR. The
master password is never known to Pulumi: RDS generates it, stores it in Secrets Manager
under our ``secrets`` key and rotates it (``manage_master_user_password``); the service
itself logs in with IAM database authentication.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

PORT = 5432

#: PostgreSQL logs exported to CloudWatch (pre-created below, encrypted, with retention).
LOG_EXPORTS: tuple[str, ...] = ("postgresql", "upgrade")


def parameter_family(engine_version: str) -> str:
    """``16.6`` -> ``postgres16`` (the family of RDS parameter groups)."""
    return f"postgres{engine_version.split('.')[0]}"


def db_parameters(log_min_duration_ms: int) -> list[dict[str, str]]:
    """Parameters of the instance's parameter group (pure, tested alone).

    ``rds.force_ssl`` refuses clear-text connections; slow statements, DDL, connections
    and lock waits are logged. ``log_statement`` stays at ``ddl``: ``all`` would copy
    card tokens and amounts from every INSERT into CloudWatch. For the same reason the
    bound parameters of a logged (slow or failed) statement are left out: psycopg sends
    values as parameters, so the statement text itself carries none.
    """
    params = {
        "rds.force_ssl": ("1", "pending-reboot"),
        "ssl_min_protocol_version": ("TLSv1.2", "pending-reboot"),
        "log_min_duration_statement": (str(log_min_duration_ms), "immediate"),
        "log_statement": ("ddl", "immediate"),
        "log_connections": ("1", "immediate"),
        "log_disconnections": ("1", "immediate"),
        "log_lock_waits": ("1", "immediate"),
        "log_parameter_max_length": ("0", "immediate"),
        "log_parameter_max_length_on_error": ("0", "immediate"),
    }
    return [
        {"name": k, "value": v, "apply_method": method} for k, (v, method) in params.items()
    ]


@dataclass(frozen=True)
class DatabaseArgs:
    """Inputs of :class:`Database`."""

    #: Physical name prefix, e.g. ``fraudstack-production``; the instance is
    #: ``<name_prefix>-audit``.
    name_prefix: str
    #: Required tags; each child adds its own ``Name``.
    tags: Mapping[str, str]
    #: VPC of the isolated subnets.
    vpc_id: pulumi.Input[str]
    #: Isolated subnet ids (one per AZ, at least two) for the subnet group, e.g. the
    #: network's ``isolated_subnet_ids``.
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    #: Security groups allowed to reach 5432, by a stable label (``{"cluster-nodes": id}``).
    #: Empty means nobody can connect yet.
    allowed_security_group_ids: Mapping[str, pulumi.Input[str]]
    #: ``database`` key: storage, snapshots and Performance Insights.
    kms_key_arn: pulumi.Input[str]
    #: ``secrets`` key: the RDS-managed master password secret.
    secrets_kms_key_arn: pulumi.Input[str]
    #: ``logs`` key: the exported PostgreSQL log groups.
    logs_kms_key_arn: pulumi.Input[str]
    engine_version: str
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    backup_retention_days: int
    #: ``hh:mm-hh:mm`` UTC.
    backup_window: str
    #: ``ddd:hh:mm-ddd:hh:mm`` UTC, not overlapping the backup window.
    maintenance_window: str
    performance_insights_retention_days: int
    #: Enhanced monitoring granularity (1, 5, 10, 15, 30 or 60 seconds).
    monitoring_interval_seconds: int
    ca_cert_identifier: str
    log_min_duration_ms: int
    log_retention_days: int
    deletion_protection: bool = True
    storage_type: str = "gp3"
    database_name: str = "fraudstack"
    master_username: str = "fraudstack_admin"


class Database(pulumi.ComponentResource):
    """Encrypted, private, backed-up RDS PostgreSQL instance."""

    arn: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    security_group_id: pulumi.Output[str]
    master_user_secret_arn: pulumi.Output[str]
    identifier: str
    database_name: str

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:Database", name, None, opts)
        if isinstance(args.subnet_ids, (list, tuple)) and len(args.subnet_ids) < 2:
            # RDS requires a subnet group spanning at least two AZs, even for Single-AZ.
            raise ValueError("the database subnet group needs subnets in at least two AZs")
        child = pulumi.ResourceOptions(parent=self)
        self.identifier = f"{args.name_prefix}-audit"
        self.database_name = args.database_name
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        account_id = aws.get_caller_identity_output(opts=invoke).account_id

        def tags(suffix: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{self.identifier}{suffix}"}

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=self.identifier,
            description=f"Isolated subnets of the {self.identifier} database",
            subnet_ids=args.subnet_ids,
            tags=tags(""),
            opts=child,
        )
        # Auto-named (the Name tag carries the readable name) so a replacement can be
        # created before the old group is deleted. Rules are separate resources below and
        # never inline, so the two kinds never fight over the group.
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"PostgreSQL {self.identifier}: {PORT} from the listed security groups only",
            vpc_id=args.vpc_id,
            tags=tags("-db"),
            opts=child,
        )
        for label, source in sorted(args.allowed_security_group_ids.items()):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-sg-from-{label}",
                security_group_id=sg.id,
                referenced_security_group_id=source,
                ip_protocol="tcp",
                from_port=PORT,
                to_port=PORT,
                description=f"PostgreSQL from {label}",
                tags=tags(f"-from-{label}"),
                opts=child,
            )

        params = aws.rds.ParameterGroup(
            f"{name}-params",
            name=self.identifier,
            family=parameter_family(args.engine_version),
            description=f"TLS-only, slow-statement logging for {self.identifier}",
            parameters=[aws.rds.ParameterGroupParameterArgs(**p) for p in db_parameters(args.log_min_duration_ms)],
            tags=tags(""),
            opts=child,
        )

        monitoring_role = aws.iam.Role(
            f"{name}-monitoring",
            description=f"Enhanced monitoring of {self.identifier}",
            assume_role_policy=account_id.apply(
                lambda acct: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                                # Confused-deputy guard: only RDS acting for this account.
                                "Condition": {"StringEquals": {"aws:SourceAccount": acct}},
                            }
                        ],
                    },
                    sort_keys=True,
                )
            ),
            tags=tags("-monitoring"),
            opts=child,
        )
        monitoring_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring-policy",
            role=monitoring_role.name,
            policy_arn=partition.apply(
                lambda p: f"arn:{p}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
            ),
            opts=child,
        )

        # RDS would create these log groups itself, unencrypted and kept forever; created
        # first, they get our key and a retention.
        log_groups = [
            aws.cloudwatch.LogGroup(
                f"{name}-log-{log}",
                name=f"/aws/rds/instance/{self.identifier}/{log}",
                kms_key_id=args.logs_kms_key_arn,
                retention_in_days=args.log_retention_days,
                tags=tags(f"-{log}"),
                opts=child,
            )
            for log in LOG_EXPORTS
        ]

        instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=self.identifier,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.max_allocated_storage_gb,
            storage_type=args.storage_type,
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            db_name=args.database_name,
            username=args.master_username,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.secrets_kms_key_arn,
            iam_database_authentication_enabled=True,
            port=PORT,
            multi_az=args.multi_az,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[sg.id],
            publicly_accessible=False,
            network_type="IPV4",
            parameter_group_name=params.name,
            ca_cert_identifier=args.ca_cert_identifier,
            backup_retention_period=args.backup_retention_days,
            backup_window=args.backup_window,
            maintenance_window=args.maintenance_window,
            copy_tags_to_snapshot=True,
            delete_automated_backups=False,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{self.identifier}-final",
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            apply_immediately=False,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.kms_key_arn,
            performance_insights_retention_period=args.performance_insights_retention_days,
            monitoring_interval=args.monitoring_interval_seconds,
            monitoring_role_arn=monitoring_role.arn,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            tags=tags(""),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[monitoring_attachment, *log_groups]
            ),
        )

        self.arn = instance.arn
        self.endpoint = instance.endpoint
        self.address = instance.address
        self.port = instance.port
        self.security_group_id = sg.id
        self.master_user_secret_arn = instance.master_user_secrets.apply(
            lambda secrets: secrets[0].secret_arn if secrets else None
        )
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "address": self.address,
                "port": self.port,
                "security_group_id": self.security_group_id,
                "master_user_secret_arn": self.master_user_secret_arn,
            }
        )
