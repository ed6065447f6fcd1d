"""RDS PostgreSQL (the audit trail): encryption, exposure, resilience, auditing."""
from __future__ import annotations

from ..model import Param, Rule
from ._util import get

RDS = "aws:rds/instance:Instance"
PARAM_GROUP = "aws:rds/parameterGroup:ParameterGroup"


def _storage_encrypted(props, cfg):
    if get(props, "storageEncrypted") is not True:
        yield "storageEncrypted must be true: the audit trail holds card tokens at rest"


def _storage_cmk(props, cfg):
    if not get(props, "kmsKeyId"):
        yield "kmsKeyId is not set: storage is encrypted with the AWS-managed key, not the platform's CMK"


def _not_public(props, cfg):
    # Inverted on purpose: the violation is publiclyAccessible == true (a public pack
    # once shipped this check firing on false).
    if get(props, "publiclyAccessible") is True:
        yield "publiclyAccessible is true: the database gets a public DNS name and can be reached from the internet"


def _multi_az(props, cfg):
    if get(props, "multiAz") is not True:
        yield "multiAz is not true: an AZ outage takes the audit trail down"


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
        remediation="Set multi_az=True (fraudstack:db.multiAz in the stack file).",
        check=_multi_az,
    ),
]
