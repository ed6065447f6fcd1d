"""Shared, cached plans for the scoring-app and manifest tests.

Running the whole program under mocks costs seconds; the plans are cached per process
so every test file of the area reuses one run per stack (the area has no conftest of its
own: tests/infra/conftest.py belongs to the infra branch).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tools.plan import run_program
from tools.preview import main as preview_main

STACKS = ("staging", "production")
PREFIX = "app"
ACCOUNT = "123456789012"


#: Where the cached previews write their plan JSON and manifests (one per process).
_WORK = Path(tempfile.mkdtemp(prefix="fraudstack-k8sapp-"))
atexit.register(shutil.rmtree, _WORK, True)


@functools.lru_cache(maxsize=None)
def preview(stack: str) -> tuple[int, dict[str, Any], Path]:
    """``python -m tools.preview --stack S --json F --manifests D``, run in-process once per stack.

    Returns the exit code, the plan JSON it wrote and the manifest directory.
    """
    out = _WORK / stack
    code = preview_main(["--stack", stack, "--json", str(out / "plan.json"), "--manifests", str(out / "manifests"), "--quiet"])
    return code, json.loads((out / "plan.json").read_text()), out / "manifests"


@functools.lru_cache(maxsize=None)
def _plan(stack: str, overrides_json: str) -> dict[str, Any]:
    return run_program(stack, json.loads(overrides_json))


def plan(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The program's plan for ``stack``: the preview's, or a fresh run with ``overrides``."""
    if not overrides:
        return preview(stack)[1]
    return _plan(stack, json.dumps(overrides, sort_keys=True))


def objects(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scoring app's resources by logical name."""
    return {r["name"]: r for r in p["resources"] if r["parent"] == PREFIX}


def inputs(p: dict[str, Any], name: str) -> dict[str, Any]:
    """Inputs of one of the app's resources."""
    return objects(p)[name]["inputs"]


def pod(p: dict[str, Any], workload: str = "app-deployment") -> dict[str, Any]:
    """Pod spec of a workload."""
    return inputs(p, workload)["spec"]["template"]["spec"]


def env(p: dict[str, Any], workload: str = "app-deployment") -> dict[str, str]:
    """The first container's environment as a dict."""
    return {e["name"]: e["value"] for e in pod(p, workload)["containers"][0]["env"]}
