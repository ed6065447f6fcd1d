"""CloudWatch: log group retention and encryption; alarms wired to SNS and covering the data tier."""
from __future__ import annotations

from ..model import Param, Rule
from ._util import UNKNOWN, as_list, get, present, safe

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RDS = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"


def _retention_set(props, cfg):
    days = get(props, "retentionInDays")
    if not days:
        yield "retentionInDays is not set: logs are kept forever (cost, and personal data kept without limit)"


def _retention_min(props, cfg):
    days = get(props, "retentionInDays")
    if days and float(days) < cfg["minimumDays"]:
        yield f"retentionInDays is {days:g}: audit logs are kept at least {cfg['minimumDays']} days"


def _kms(props, cfg):
    if not present(props, "kmsKeyId"):
        yield "kmsKeyId is not set: the log group is encrypted with a CloudWatch-owned key"


def _actions_enabled(props, cfg):
    if get(props, "actionsEnabled") is False:
        yield "actionsEnabled is false: the alarm fires silently"


def _notifies_sns(props, cfg):
    for field in ("alarmActions", "okActions"):
        actions = [str(a) for a in as_list(get(props, field))]
        if not actions:
            yield f"{field} is empty: on-call is not told when the alarm {'fires' if field == 'alarmActions' else 'clears'}"
        elif not any(":sns:" in a or a == UNKNOWN for a in actions):
            yield f"{field} names no SNS topic"


def _dims(alarm) -> dict:
    d = safe(alarm.props, "dimensions") or {}
    return {k: safe(d, k) for k in d} if hasattr(d, "keys") else {}


def _alarm_coverage(stack, cfg):
    alarms = stack.of_type(ALARM)
    targets = [(RDS, "AWS/RDS", ("DBInstanceIdentifier",), "identifier"),
               (CACHE, "AWS/ElastiCache", ("ReplicationGroupId", "CacheClusterId"), "replicationGroupId")]
    for rtype, namespace, dim_keys, id_key in targets:
        mine = [a for a in alarms if safe(a.props, "namespace") == namespace]
        for r in stack.of_type(rtype):
            ident = safe(r.props, id_key)
            if ident:
                hit = [a for a in mine if any(str(_dims(a).get(k, "")).startswith(ident) for k in dim_keys)]
            else:
                hit = mine  # identifier generated: any alarm in the namespace counts
            if not hit:
                yield r, f"no CloudWatch alarm watches this resource ({namespace})"


RULES = [
    Rule(id="log-group-retention-set", name="Log retention set", description="Every log group has a retention.",
         severity="low", enforcement="mandatory", resource_types=(LOG_GROUP,), references=("A62",),
         remediation="retention_in_days=<fraudstack:logRetentionDays>.", check=_retention_set),
    Rule(id="log-group-retention-minimum", name="Log retention long enough",
         description="Log groups keep at least 365 days in production (PCI 10.5.1; staging keeps 30).",
         severity="medium", enforcement="mandatory", resource_types=(LOG_GROUP,), references=("A63",),
         params=(Param("minimumDays", "integer", 365, "minimum retention_in_days", minimum=1),),
         remediation="retention_in_days=365 (or 400/545/731).", check=_retention_min),
    Rule(id="log-group-kms", name="Log groups encrypted with the CMK",
         description="Log groups are encrypted with the customer-managed logs key.", severity="medium",
         enforcement="mandatory", resource_types=(LOG_GROUP,), references=("A64",),
         remediation="kms_key_id=<logs key ARN> (the key policy must allow logs.<region>.amazonaws.com).", check=_kms),
    Rule(id="alarm-actions-enabled", name="Alarm actions enabled", description="Alarm actions are enabled.",
         severity="medium", enforcement="mandatory", resource_types=(ALARM,), references=("A65",),
         remediation="Leave actions_enabled at True.", check=_actions_enabled),
    Rule(id="alarm-notifies-sns", name="Alarms notify on-call",
         description="Every alarm notifies an SNS topic when it fires and when it clears.", severity="medium",
         enforcement="mandatory", resource_types=(ALARM,), references=("X14",),
         remediation="alarm_actions=[topic.arn], ok_actions=[topic.arn].", check=_notifies_sns),
    Rule(id="data-tier-alarms", name="Database and cache alarmed",
         description="Every database and every cache is watched by at least one CloudWatch alarm.", severity="medium",
         enforcement="mandatory", resource_types=(RDS, CACHE, ALARM), stack=True, references=("X14", "A65"),
         remediation="Add aws.cloudwatch.MetricAlarm on CPU, free storage/memory and connections with the resource's dimension.",
         check=_alarm_coverage),
]
