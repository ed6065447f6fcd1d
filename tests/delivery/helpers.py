"""Small lookups over plan resources."""

from __future__ import annotations

import json
from typing import Any


def of_type(plan: dict[str, Any], typ: str) -> list[dict[str, Any]]:
    """Every resource of ``typ`` in the plan."""
    return [r for r in plan["resources"] if r["type"] == typ]


def one(plan: dict[str, Any], typ: str, name: str) -> dict[str, Any]:
    """The single resource of ``typ`` named ``name``."""
    found = [r for r in of_type(plan, typ) if r["name"] == name]
    assert len(found) == 1, f"{typ} {name}: {len(found)} found"
    return found[0]


def doc(resource: dict[str, Any], key: str) -> dict[str, Any]:
    """A JSON policy document input, parsed."""
    return json.loads(resource["inputs"][key])
