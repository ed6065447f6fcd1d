"""Entry point for the Pulumi CLI: ``pulumi preview --policy-pack policies``.

Only builds the PolicyPack (constructing it starts the analyzer server and never
returns), so nothing imports this module; tests use ``policies.engine``.
"""
import os
import sys

# The CLI runs this file with policies/ as the working directory: make the package
# importable as ``policies`` from its parent directory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.engine import PACK_NAME  # noqa: E402
from policies.rules import RULES  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    policies=[rule.policy() for rule in RULES],
    enforcement_level=EnforcementLevel.MANDATORY,
    description="fraudstack security and reliability rules (AWS, EKS, Kubernetes, PCI DSS v4).",
    display_name="fraudstack",
    provider="aws",
)
