"""KMS keys: rotation, key policy, deletion window."""
from __future__ import annotations

from ..model import Param, Rule
from ._util import UNKNOWN, as_list, get, known, parse_json, principals, statements

KEY = "aws:kms/key:Key"


def _symmetric(props) -> bool:
    spec = get(props, "customerMasterKeySpec") or get(props, "keySpec") or "SYMMETRIC_DEFAULT"
    return spec == "SYMMETRIC_DEFAULT"


def _rotation(props, cfg):
    if _symmetric(props) and get(props, "enableKeyRotation") is not True:
        yield "enableKeyRotation is not true: the key material never changes (PCI 3.6.1 cryptoperiod)"


def _has_condition(st) -> bool:
    return bool(st.get("Condition"))


def _no_wildcard_principal(props, cfg):
    for st in statements(parse_json(get(props, "policy"))):
        if st.get("Effect") == "Allow" and "*" in principals(st) and not _has_condition(st):
            yield "the key policy allows Principal '*' without a condition: any AWS account could use the key"


def _enabled(props, cfg):
    if get(props, "isEnabled") is False:
        yield "isEnabled is false: everything encrypted with this key becomes unreadable"


def _explicit_policy(props, cfg):
    raw = known(props, "policy")
    if raw == UNKNOWN:
        return  # computed from other outputs: set, judged once known
    if not statements(parse_json(raw)):
        yield "no key policy: the default policy hands the key to every IAM principal of the account with kms:* in IAM"


def _deletion_window(props, cfg):
    days = get(props, "deletionWindowInDays", 30)
    if float(days) < cfg["minimumDays"]:
        yield f"deletionWindowInDays is {days:g}: keep {cfg['minimumDays']} days to undo a mistaken key deletion"


RULES = [
    Rule(id="kms-rotation", name="KMS key rotation", description="Symmetric customer-managed keys rotate yearly.",
         severity="medium", enforcement="mandatory", resource_types=(KEY,), references=("A58",),
         remediation="enable_key_rotation=True.", check=_rotation),
    Rule(id="kms-no-wildcard-principal", name="KMS key policy has no open principal",
         description="No key policy statement allows Principal '*' without a condition.", severity="critical",
         enforcement="mandatory", resource_types=(KEY,), references=("A59",),
         remediation="Name the account root and the roles that use the key; condition service principals with aws:SourceAccount.",
         check=_no_wildcard_principal),
    Rule(id="kms-key-enabled", name="KMS key enabled", description="Customer-managed keys are enabled.", severity="high",
         enforcement="mandatory", resource_types=(KEY,), references=("A60",), remediation="Leave is_enabled at True.",
         check=_enabled),
    Rule(id="kms-explicit-policy", name="KMS explicit key policy", description="Every key has an explicit key policy.",
         severity="medium", enforcement="mandatory", resource_types=(KEY,), references=("A61",),
         remediation="policy=json.dumps({...}) naming key administrators and users.", check=_explicit_policy),
    Rule(id="kms-deletion-window", name="KMS deletion window",
         description="Key deletion waits 30 days in production (7 allowed in staging).", severity="medium",
         enforcement="mandatory", resource_types=(KEY,), references=("X11",),
         params=(Param("minimumDays", "integer", 30, "minimum deletion_window_in_days", minimum=7),),
         remediation="deletion_window_in_days=30.", check=_deletion_window),
]
