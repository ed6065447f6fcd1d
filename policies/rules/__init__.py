"""Every rule of the pack, gathered from the per-service modules.

Add a module here to add its ``RULES`` to the pack (the CLI entry point, the engine and
the catalogue all read this list).
"""
from __future__ import annotations

from ..model import Rule
from . import (
    ec2,
    ecr,
    eks,
    elasticache,
    iam,
    kms,
    kubernetes,
    kubernetes_ingress,
    kubernetes_rbac,
    kubernetes_stack,
    logs,
    platform,
    rds,
    s3,
    secrets,
    sns,
    vpc,
)

MODULES = [vpc, ec2, eks, rds, elasticache, kms, secrets, logs, sns, ecr, s3, iam, platform,
           kubernetes, kubernetes_ingress, kubernetes_rbac, kubernetes_stack]

RULES: list[Rule] = [rule for module in MODULES for rule in module.RULES]

_ids = [r.id for r in RULES]
_dupes = sorted({i for i in _ids if _ids.count(i) > 1})
if _dupes:
    raise ValueError(f"duplicate rule ids: {_dupes}")
