"""Cross-region replication of the database's automated backups.

RDS copies every automated snapshot and the transaction logs of the audit database to a
second region, so the database can be restored to any point in the replicated retention
there if the home region is lost. The copies are encrypted with a key of our own in the
destination region (a KMS key never leaves its region), reached through a second AWS
provider pinned to that region.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.keys import key_policy


@dataclass(frozen=True)
class BackupReplicationArgs:
    """Inputs of :class:`BackupReplication`."""

    name_prefix: str
    """Physical name prefix, e.g. ``fraudstack-production``; the key alias is
    ``alias/<name_prefix>-database-backups``."""
    source_db_instance_arn: pulumi.Input[str]
    """ARN of the RDS instance whose automated backups are replicated."""
    destination_region: str
    """Region the backups are copied to; never the stack's own region."""
    retention_days: int
    """Days the replicated backups are kept (1-35): how far back a restore there can go."""
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    deletion_window_days: int
    """Deletion window of the destination key (as for the platform's other keys)."""
    rotation_period_days: int = 365
    admin_role_arns: Sequence[str] = ()
    """Key administrators, as for the platform's other keys."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Required tags; every child adds its own ``Name``."""


class BackupReplication(pulumi.ComponentResource):
    """A destination-region provider, KMS key and alias, and the RDS automated-backups replication."""

    provider: aws.Provider
    key: aws.kms.Key
    replication: aws.rds.InstanceAutomatedBackupsReplication

    def __init__(self, name: str, args: BackupReplicationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:BackupReplication", name, None, opts)
        self.provider = aws.Provider(
            f"{name}-{args.destination_region}",
            region=args.destination_region,
            # Tags are passed explicitly below; the provider adds none of its own.
            opts=pulumi.ResourceOptions(parent=self),
        )
        remote = pulumi.ResourceOptions(parent=self, provider=self.provider)
        key_name = f"{args.name_prefix}-database-backups"

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"Replicated automated backups of {args.name_prefix}'s audit database ({args.destination_region})",
            enable_key_rotation=True,
            rotation_period_in_days=args.rotation_period_days,
            deletion_window_in_days=args.deletion_window_days,
            # The database purpose's policy: RDS in the destination region only.
            policy=pulumi.Output.all(args.account_id, args.partition).apply(
                lambda v: json.dumps(
                    key_policy(
                        "database",
                        account_id=v[0],
                        region=args.destination_region,
                        partition=v[1],
                        admin_role_arns=args.admin_role_arns,
                    ),
                    sort_keys=True,
                )
            ),
            tags={**args.tags, "Name": key_name},
            opts=remote,
        )
        self.alias = aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{key_name}",
            target_key_id=self.key.key_id,
            opts=remote,
        )
        # The replication is created in (and called through) the destination region.
        self.replication = aws.rds.InstanceAutomatedBackupsReplication(
            f"{name}-replication",
            source_db_instance_arn=args.source_db_instance_arn,
            kms_key_id=self.key.arn,
            retention_period=args.retention_days,
            opts=remote,
        )
        self.destination_region = args.destination_region
        self.register_outputs(
            {"key_arn": self.key.arn, "replication_id": self.replication.id, "destination_region": args.destination_region}
        )
