"""Which catalogue rows the pack implements, and why the others cannot apply.

Every row marked Y or V in aws_rules.tsv, every Y row of k8s_rules.tsv and every row of
own_rules.tsv must be referenced by a rule; the rows below are not, and say why.
"""
from __future__ import annotations

from . import catalogue

#: AWS row id -> why no rule implements it (shown in docs/policies.md). The Kubernetes
#: rows carry theirs in k8s_rules.tsv's reason column; ``reasons()`` merges both.
REASONS: dict[str, str] = {
    "A7": "C: the platform declares no network ACLs (security groups do the filtering; the VPC's default NACL is "
          "left as AWS creates it). A rule is needed only if aws.ec2.NetworkAcl resources are added.",
    "A8": "N: the VPC has no peering connections. route-private-via-nat still rejects a default route through a "
          "peering connection.",
    "A45": "C: RDS automated backups and the final snapshot are enforced (rds-backup-retention, rds-final-snapshot); "
           "an AWS Backup plan is an account-level choice the stack does not create.",
    "A46": "N: the audit database is RDS for PostgreSQL, not Aurora MySQL (no backtracking, no MySQL audit plugin).",
    "A66": "C: the CIS metric-filter alarms watch account-level CloudTrail events (root login, IAM/NACL changes); "
           "CloudTrail and its alarms belong to the account baseline, not to this workload stack.",
    "A90": "C: the stack creates no GitHub OIDC deploy role; CI credentials are configured outside the program.",
    "A91": "C: the platform grants no s3:* (iam-no-wildcard-action and iam-no-data-exfiltration reject it); the "
           "model store's bucket policy names its reader and writer roles (s3-policy-not-public).",
    "A118": "C: model artifacts are rebuilt by the pipeline and the bucket is versioned with noncurrent versions "
            "kept for roll-back; a second-region copy is a disaster-recovery choice of the account, not this stack.",
    "A92": "N: the stack creates no IAM users; workloads use roles (IRSA) only.",
    "A93": "N: MFA, password policy, access-key rotation and root-account hygiene are account settings, "
           "not resources of a workload stack.",
    "A103": "C: the ALB is created by the AWS Load Balancer Controller from the Ingress; its WAF association is "
            "checked through the Ingress annotation (wafv2-acl-arn, rule X17) rather than on an aws.wafv2 resource.",
    "A104": "N: the platform has no Network Load Balancer.",
    "A107": "C: node AMIs are the EKS-optimised images resolved through the SSM public parameters, not by "
            "aws.ec2.get_ami name filters, so there is no owner/name-confusion lookup to constrain.",
}


def reasons() -> dict[str, str]:
    """Every written reason, by row id."""
    out = {rid: row.reason for rid, row in catalogue.rows().items() if row.reason}
    out.update(REASONS)
    return out


def required_rows() -> list[str]:
    """Rows the pack must cover (by a rule or by a reason)."""
    out = []
    for rid, row in catalogue.rows().items():
        if rid.startswith("A") and row.applies in ("Y", "V"):
            out.append(rid)
        elif rid.startswith("K") and row.applies == "Y":
            out.append(rid)
        elif rid.startswith("X"):
            out.append(rid)
    return out


def coverage(rules) -> dict[str, list[str]]:
    """Row id -> ids of the rules referencing it (every catalogue row)."""
    out: dict[str, list[str]] = {rid: [] for rid in catalogue.rows()}
    for rule in rules:
        for ref in rule.references:
            out[ref].append(rule.id)
    return out


def missing(rules) -> list[str]:
    """Required rows with neither a rule nor a written reason."""
    cov = coverage(rules)
    why = reasons()
    return [rid for rid in required_rows() if not cov[rid] and rid not in why]
