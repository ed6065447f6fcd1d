"""Fixtures of the delivery tests: each stack's plan, run once per session under the mock runtime."""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import evaluate, load_config
from tools.plan import run_program

STACKS = ("staging", "production")


@pytest.fixture(scope="session")
def plans() -> dict[str, dict[str, Any]]:
    """``{"staging": plan, "production": plan}`` with the policy pack's violations filled in."""
    result = {}
    for stack in STACKS:
        plan = run_program(stack)
        plan["violations"] = evaluate(plan["resources"], load_config(stack), project=plan["project"], stack=stack)
        result[stack] = plan
    return result
