"""Every rule has at least one violating and one compliant case in some CASES table."""
import importlib
import pkgutil

import tests.policies as pkg
from policies.rules import RULES


def _all_cases():
    cases = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("test_"):
            cases += getattr(importlib.import_module(f"tests.policies.{info.name}"), "CASES", [])
    return cases


def test_every_rule_has_a_violating_and_a_compliant_case():
    cases = _all_cases()
    violating = {c.rule for c in cases if c.violating}
    compliant = {c.rule for c in cases if not c.violating}
    missing = [(r.id, "violating" if r.id not in violating else "compliant")
               for r in RULES if r.id not in violating or r.id not in compliant]
    assert missing == []


def test_cases_name_real_rules():
    ids = {r.id for r in RULES}
    assert sorted({c.rule for c in _all_cases()} - ids) == []
