"""Run the Pulumi program (or one component) under the SDK's mock runtime and return its plan.

``run_program("staging")`` runs ``__main__.py`` exactly as ``pulumi preview`` would, with
the config of ``Pulumi.staging.yaml`` (plus ``overrides`` in tests), and returns the plan
dict documented in docs/ARCHITECTURE.md. ``run_component(fn)`` runs a function that
declares resources and returns what it registered. Both can be called any number of
times in one process: the runtime's global state (root stack, config) is reset each run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import runpy
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tools.mocks import SECRET_MARKER, FraudstackMocks, RecordingMonitor, redact

PROJECT_DIR = Path(__file__).resolve().parent.parent

#: What a ``secure:`` value becomes under mocks: the real one is never needed (or known).
MOCK_SECRET_VALUE = "mock-secret-not-a-real-value"

#: Keys of each plan resource written to JSON (the contract in docs/ARCHITECTURE.md) plus
#: ``dependencies``, which stack policies use to reason about ordering.
PLAN_RESOURCE_KEYS = ("type", "name", "parent", "custom", "provider", "inputs", "dependencies")


class StackFileError(ValueError):
    """The stack file is missing or not the YAML shape Pulumi expects."""


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    """The project name from ``Pulumi.yaml``."""
    return yaml.safe_load((Path(project_dir) / "Pulumi.yaml").read_text())["name"]


def _deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict) and "secure" not in override:
        merged = dict(base)
        for key, value in override.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = _deep_merge(base.get(key), value)
        return merged
    return copy.deepcopy(override)


def stack_config(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    project_dir: Path = PROJECT_DIR,
) -> tuple[dict[str, str], list[str]]:
    """The flat config (``{"ns:key": "text"}``) and secret keys the CLI would pass the program.

    ``overrides`` maps full keys to values merged over the stack file (dicts merge
    recursively; ``None`` deletes a key) so tests can change one value at a time.
    """
    project_dir = Path(project_dir)
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise StackFileError(f"no stack file {path.name} in {project_dir}")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name} is not valid YAML: {exc}") from None
    values = doc.get("config") or {}
    if not isinstance(values, dict):
        raise StackFileError(f"{path.name}: `config` must be a map of keys to values")
    project = project_name(project_dir)
    merged: dict[str, Any] = {}
    for key, value in values.items():
        # A key without a namespace belongs to the project, as in the CLI.
        merged[key if ":" in key else f"{project}:{key}"] = value
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if value is None:
            merged.pop(full, None)
        else:
            merged[full] = _deep_merge(merged.get(full), value)

    flat: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in merged.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            flat[key] = MOCK_SECRET_VALUE
            secrets.append(key)
        elif isinstance(value, str):
            flat[key] = value
        else:
            # Structured and non-string values reach the program as JSON text, as with the CLI.
            flat[key] = json.dumps(value)
    return flat, secrets


def _run(
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    mocks: FraudstackMocks,
    monitor: RecordingMonitor,
    body: Callable[[], Any],
) -> dict[str, Any]:
    """Run ``body`` under the mock runtime; return the stack's exports (secrets redacted)."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    # A fresh root stack per run: its URN carries the stack name.
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    exports: dict[str, Any] = {}

    async def program() -> None:
        body()
        root = runtime_settings.get_root_resource()
        for key, value in dict(getattr(root, "outputs", {})).items():
            output = pulumi.Output.from_input(value)
            resolved = await output.future(with_unknowns=True)
            exports[key] = SECRET_MARKER if await output.is_secret() else redact(_plain(resolved))

    runtime_settings.SETTINGS.rpc_manager.clear()
    runtime_settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    return exports


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def plan_resource(record: dict[str, Any]) -> dict[str, Any]:
    """A recorded registration reduced to the plan's resource shape."""
    return {key: record[key] for key in PLAN_RESOURCE_KEYS}


def run_program(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    project_dir: Path | str = PROJECT_DIR,
) -> dict[str, Any]:
    """Run ``__main__.py`` for ``stack`` under mocks; return ``{"project", "stack", "resources", "violations", "outputs"}``.

    ``violations`` is empty here: the preview tool fills it from the policy pack.
    A config error surfaces as the ``pulumi.RunError`` the program raised.
    """
    project_dir = Path(project_dir).resolve()
    project = project_name(project_dir)
    config, secrets = stack_config(stack, overrides, project_dir)
    mocks = FraudstackMocks(region=config.get("aws:region", "eu-west-1"))
    monitor = RecordingMonitor(mocks)
    main = project_dir / "__main__.py"

    # The CLI runs the program from the project directory with it importable.
    old_cwd = os.getcwd()
    added = str(project_dir) not in sys.path
    if added:
        sys.path.insert(0, str(project_dir))
    os.chdir(project_dir)
    try:
        outputs = _run(project, stack, config, secrets, mocks, monitor, lambda: runpy.run_path(str(main), run_name="__main__"))
    finally:
        os.chdir(old_cwd)
        if added:
            sys.path.remove(str(project_dir))
    return {
        "project": project,
        "stack": stack,
        # Registration order varies with thread scheduling; a sorted plan diffs cleanly.
        "resources": sorted((plan_resource(r) for r in monitor.records), key=lambda r: (r["name"], r["type"])),
        "violations": [],
        "outputs": outputs,
    }


def run_component(
    fn: Callable[[], Any],
    config: Mapping[str, Any] | None = None,
    region: str = "eu-west-1",
    stack: str = "test",
) -> list[dict[str, Any]]:
    """Run ``fn`` (which declares resources) under mocks; return the registered resources.

    Each resource is a plan resource plus ``urn`` and ``protect``. ``config`` is optional
    flat config (``{"fraudstack:network": {...}}``) for code that reads it.
    """
    flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (config or {}).items()}
    flat.setdefault("aws:region", region)
    mocks = FraudstackMocks(region=region)
    monitor = RecordingMonitor(mocks)
    _run(project_name(), stack, flat, [], mocks, monitor, fn)
    return list(monitor.records)
