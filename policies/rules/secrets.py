"""Secrets Manager: CMK encryption and rotation."""
from __future__ import annotations

from ..model import Param, Rule
from ._util import get, identities, known, linked, refs

SECRET = "aws:secretsmanager/secret:Secret"
ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"


def _cmk(props, cfg):
    key = known(props, "kmsKeyId")
    if not key or str(key).endswith("alias/aws/secretsmanager"):
        yield "kmsKeyId is not a customer-managed key: anyone with secretsmanager:GetSecretValue in the account can decrypt"


def _rotation_configured(stack, cfg):
    rotations = stack.of_type(ROTATION)
    rotated = set()
    for r in rotations:
        rotated |= refs(r, "secretId")
    for s in stack.of_type(SECRET):
        if stack.has_dependencies:
            if not linked(stack, s, set(), (ROTATION,)):
                yield s, "no aws.secretsmanager.SecretRotation for this secret"
            continue
        ids = identities(s)
        if ids & rotated:
            continue
        if not ids and linked(stack, s, set(), (ROTATION,)):
            continue
        yield s, "no aws.secretsmanager.SecretRotation for this secret"


def _rotation_period(props, cfg):
    days = get(props, "rotationRules.automaticallyAfterDays")
    expr = get(props, "rotationRules.scheduleExpression")
    if days is None and not expr:
        yield "rotationRules set no schedule"
    elif days is not None and float(days) > cfg["maximumDays"]:
        yield f"rotation every {days:g} days: rotate at least every {cfg['maximumDays']} days"


RULES = [
    Rule(id="secret-cmk", name="Secrets encrypted with the CMK",
         description="Secrets Manager secrets are encrypted with the customer-managed secrets key.",
         severity="high", enforcement="mandatory", resource_types=(SECRET,), references=("A55",),
         remediation="kms_key_id=<secrets key ARN>.", check=_cmk),
    Rule(id="secret-rotation", name="Secrets rotated",
         description="Every Secrets Manager secret has a rotation schedule.", severity="medium",
         enforcement="advisory", resource_types=(SECRET, ROTATION), stack=True, references=("A56",),
         advisory_reason="The generated API keys, HMAC key and Redis AUTH token need a rotation Lambda that "
                         "coordinates clients (dual keys); until it ships they are rotated by a planned `pulumi up` "
                         "(new RandomPassword keepers). The RDS master password is rotated by RDS itself.",
         remediation="aws.secretsmanager.SecretRotation(secret_id=..., rotation_lambda_arn=..., "
                     "rotation_rules={'automatically_after_days': 30}).",
         check=_rotation_configured),
    Rule(id="secret-rotation-period", name="Rotation at most every 90 days",
         description="Configured rotations run at least every 90 days.", severity="medium", enforcement="mandatory",
         resource_types=(ROTATION,), references=("A57",),
         params=(Param("maximumDays", "integer", 90, "longest rotation interval in days", minimum=1),),
         remediation="rotation_rules={'automatically_after_days': 30}.", check=_rotation_period),
]
