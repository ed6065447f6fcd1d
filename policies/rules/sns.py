"""SNS (alarm notifications): encryption and topic policy."""
from __future__ import annotations

import re

from ..model import Rule, with_type
from ._util import as_list, get, identities, known, linked, parse_json, present, principals, refs, safe, statements

TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
_SCOPING = ("aws:SourceAccount", "aws:SourceArn", "aws:SourceOwner", "aws:PrincipalAccount",
            "aws:PrincipalOrgID", "aws:PrincipalArn")


def _encrypted(props, cfg):
    if not present(props, "kmsMasterKeyId"):
        yield "kmsMasterKeyId is not set: messages are stored unencrypted"


def _cmk(props, cfg):
    key = known(props, "kmsMasterKeyId")
    if key and str(key).endswith("alias/aws/sns"):
        yield "alias/aws/sns cannot be used by CloudWatch alarms and is not ours to control: use the platform CMK"


def _scoped(st) -> bool:
    cond = st.get("Condition") or {}
    keys = [k for op in cond.values() if isinstance(op, dict) for k in op]
    return any(k in _SCOPING for k in keys)


@with_type
def _not_public(props, cfg, rtype):
    for st in statements(parse_json(get(props, "policy"))):
        if st.get("Effect") == "Allow" and "*" in principals(st) and not _scoped(st):
            yield "the topic policy allows Principal '*' without a source/principal condition: anyone can publish or subscribe"


def _accounts(values) -> set[str]:
    return {m.group(1) for v in values for m in [re.search(r"(?:arn:[^:]+:[^:]*:[^:]*:)?(\d{12})", str(v))] if m}


@with_type
def _no_cross_account(props, cfg, rtype):
    own = _accounts([known(props, "arn", "")]) if rtype == TOPIC_POLICY else set()
    for st in statements(parse_json(get(props, "policy"))):
        if st.get("Effect") != "Allow":
            continue
        accts = _accounts([p for p in principals(st) if p != "*"])
        own = own or _accounts(as_list(st.get("Resource")))
        foreign = accts - own if own else (accts if len(accts) > 1 else set())
        if foreign:
            yield f"the topic policy grants account(s) {', '.join(sorted(foreign))} outside this one"


def _denies_plain(doc) -> bool:
    for st in statements(doc):
        if st.get("Effect") != "Deny":
            continue
        cond = st.get("Condition") or {}
        for op, body in cond.items():
            if op.startswith("Bool") and isinstance(body, dict):
                if str(body.get("aws:SecureTransport", "")).lower() == "false":
                    actions = [str(a).lower() for a in as_list(st.get("Action"))]
                    if any(a in ("sns:publish", "sns:*", "*") for a in actions):
                        return True
    return False


def _tls_only(stack, cfg):
    policies = stack.of_type(TOPIC_POLICY)
    for topic in stack.of_type(TOPIC):
        docs = [parse_json(safe(topic.props, "policy"))]
        ids = identities(topic)
        mine = [p for p in policies if ids & refs(p, "arn")]
        if stack.has_dependencies:
            mine = linked(stack, topic, set(), (TOPIC_POLICY,))
        elif not mine and not any(refs(p, "arn") & set().union(*(identities(t) for t in stack.of_type(TOPIC))) for p in policies):
            # Policies cannot be tied to topics by ARN (a plan without outputs): same component.
            parent = topic.parent.urn if topic.parent is not None else topic.opts.parent
            mine = [p for p in policies if parent and (p.parent.urn if p.parent is not None else p.opts.parent) == parent]
        docs += [parse_json(safe(p.props, "policy")) for p in mine]
        if not any(_denies_plain(d) for d in docs):
            yield topic, "no topic policy denies sns:Publish when aws:SecureTransport is false"


RULES = [
    Rule(id="sns-encrypted", name="SNS encrypted", description="SNS topics encrypt messages at rest.", severity="medium",
         enforcement="mandatory", resource_types=(TOPIC,), references=("A67",),
         remediation="kms_master_key_id=<alerts key ARN>.", check=_encrypted),
    Rule(id="sns-cmk", name="SNS uses the CMK", description="SNS topics use a customer-managed key, not alias/aws/sns.",
         severity="medium", enforcement="mandatory", resource_types=(TOPIC,), references=("A68",),
         remediation="kms_master_key_id=<alerts key ARN> (its policy lets cloudwatch.amazonaws.com use it).", check=_cmk),
    Rule(id="sns-policy-not-public", name="SNS policy not public",
         description="Topic policies never allow '*' without a source or principal condition.", severity="high",
         enforcement="mandatory", resource_types=(TOPIC, TOPIC_POLICY), references=("A69",),
         remediation="Allow cloudwatch.amazonaws.com with aws:SourceAccount/aws:SourceArn conditions.", check=_not_public),
    Rule(id="sns-no-cross-account", name="SNS policy single-account",
         description="Topic policies grant no other AWS account.", severity="high", enforcement="mandatory",
         resource_types=(TOPIC, TOPIC_POLICY), references=("A70",),
         remediation="Remove foreign account principals.", check=_no_cross_account),
    Rule(id="sns-tls-only", name="SNS publish over TLS only",
         description="Every topic's policy denies sns:Publish when aws:SecureTransport is false.", severity="medium",
         enforcement="mandatory", resource_types=(TOPIC, TOPIC_POLICY), stack=True, references=("X12",),
         remediation="aws.sns.TopicPolicy with a Deny statement: Action sns:Publish, Condition Bool aws:SecureTransport false.",
         check=_tls_only),
]
