"""Run rules through ``policies.engine.evaluate`` (the policy server's path) in tests.

Each ``tests/policies/test_*.py`` holds a ``CASES`` table of :class:`Case`; a case names
one rule, the plan resources it sees and the names of the resources expected to violate
it (empty = compliant). ``test_cases_cover_rules`` requires a violating and a compliant
case for every rule of the pack.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policies.engine import evaluate, load_config
from policies.rules import RULES

RULES_BY_ID = {r.id: r for r in RULES}
SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
          "value": "test-key-not-a-secret"}


def res(rtype: str, rname: str = "r", parent: str | None = "component", **inputs: Any) -> dict:
    """One plan resource (as ``tools.preview --json`` writes it)."""
    return {"type": rtype, "name": rname, "parent": parent, "custom": True, "provider": "", "inputs": inputs}


def run_rule(rule_id: str, resources: list[dict] | dict, config: dict | str | None = None) -> list[dict]:
    """Violations of one rule over the given resources, through the engine."""
    if isinstance(resources, dict):
        resources = [resources]
    if isinstance(config, str):
        config = load_config(config)
    if config:
        config = {k: v for k, v in config.items() if k == rule_id}
    return evaluate(resources, config, rules=[RULES_BY_ID[rule_id]])


@dataclass
class Case:
    """A rule, what it sees, and which resources must violate it (by name)."""

    rule: str
    resources: list[dict] | dict
    violating: list[str] = field(default_factory=list)
    config: dict | str | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.resources, dict):
            self.resources = [self.resources]
        kind = "violates" if self.violating else "complies"
        self.id = f"{self.rule}-{kind}-{self.id}" if self.id else f"{self.rule}-{kind}"


def check_case(case: Case) -> None:
    """Assert the rule flags exactly the expected resources, nothing else."""
    found = run_rule(case.rule, case.resources, case.config)
    assert all(v["policy"] == case.rule for v in found)
    assert not [v for v in found if v["message"].startswith("can't run policy")], found
    assert sorted({v["name"] for v in found}) == sorted(case.violating), found
    for v in found:
        assert v["severity"] == RULES_BY_ID[case.rule].severity
        assert v["message"]


def dep(resource: dict, *names: str) -> dict:
    """The resource with ``dependencies`` (resource names), as ``tools.preview`` records them."""
    return {**resource, "dependencies": list(names)}
