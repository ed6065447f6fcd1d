"""Whole-program structure: every AWS resource lives inside a component."""

from __future__ import annotations

import pytest

from tools.plan import run_program


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_every_resource_is_parented_inside_a_component(stack):
    plan = run_program(stack)
    by_name = {r["name"]: r for r in plan["resources"]}
    assert len(by_name) == len(plan["resources"]), "logical names must be unique across the program"
    for r in plan["resources"]:
        if r["custom"]:
            assert r["parent"] is not None, f"{r['type']} {r['name']} is top-level"
            assert by_name[r["parent"]]["type"].startswith("fraudstack:"), f"{r['name']} parent {r['parent']}"
        else:
            assert r["type"].startswith("fraudstack:aws:") or r["type"].startswith("fraudstack:")
            # top-level components have no parent; nested ones sit in another component
            assert r["parent"] is None or by_name[r["parent"]]["type"].startswith("fraudstack:")


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_plan_has_no_secret_values(stack):
    import json

    from tools.plan import MOCK_SECRET_VALUE

    assert MOCK_SECRET_VALUE not in json.dumps(run_program(stack))
