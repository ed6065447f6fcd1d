"""Offline preview: run the Pulumi program for a stack under the mock runtime and check it.

    python -m tools.preview --stack staging [--json out/staging.json] [--manifests out/k8s]
    python -m tools.preview --plan out/staging.json [--json out/checked.json]

The first form runs ``__main__.py`` with ``Pulumi.<stack>.yaml`` (no CLI, plugins or AWS
credentials needed) and evaluates the policy pack over what it would create; the second
evaluates the pack over an existing plan JSON (edited by hand or produced elsewhere).

Exit codes: 0 no mandatory violation; 1 at least one mandatory violation; 2 the program
or its input failed (a config error prints one line naming the key, e.g.
``fraudstack:network.azCount: ...``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

EXIT_OK, EXIT_VIOLATIONS, EXIT_FAILED = 0, 1, 2
VIOLATION_KEYS = ("policy", "enforcement", "severity", "type", "name", "message")
RESOURCE_KEYS = ("type", "name", "parent", "custom", "provider", "inputs")
SECRET_MARKER = "[secret]"

Evaluator = Callable[..., list[dict[str, Any]]]


class PlanFileError(ValueError):
    """A ``--plan`` file that is not a plan."""


def load_evaluator() -> Evaluator | None:
    """``policies.engine.evaluate``, or None only while that module does not exist yet."""
    try:
        engine = importlib.import_module("policies.engine")
    except ModuleNotFoundError as exc:
        # Only a missing pack means "no policies yet"; a pack that fails to import is a bug.
        if exc.name in ("policies", "policies.engine"):
            return None
        raise
    return engine.evaluate


def policy_config(stack: str, path: Path | None, project_dir: Path) -> dict[str, Any] | None:
    """The ``--policy-pack-config`` document for a stack: ``path`` or ``policies/config/<stack>.json``.

    None (the pack's stricter production defaults) when the stack ships no config.
    """
    path = path or project_dir / "policies" / "config" / f"{stack}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_plan(path: Path) -> dict[str, Any]:
    """Load and check a plan JSON file (the shape in docs/ARCHITECTURE.md)."""
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(plan, dict):
        raise PlanFileError(f"{path}: a plan is a JSON object")
    for key, kind in (("project", str), ("stack", str), ("resources", list)):
        if not isinstance(plan.get(key), kind):
            raise PlanFileError(f"{path}: `{key}` must be a {kind.__name__}")
    for index, resource in enumerate(plan["resources"]):
        where = f"{path}: resources[{index}]"
        if not isinstance(resource, dict):
            raise PlanFileError(f"{where}: must be an object")
        for key in ("type", "name"):
            if not isinstance(resource.get(key), str) or not resource[key]:
                raise PlanFileError(f"{where}.{key}: must be a non-empty string")
        if not isinstance(resource.get("inputs", {}), dict):
            raise PlanFileError(f"{where}.inputs: must be an object")
        if resource.get("parent") is not None and not isinstance(resource["parent"], str):
            raise PlanFileError(f"{where}.parent: must be a string or null")
    return plan


def _manifest_objects(resources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    objects = []
    for r in resources:
        inputs = r.get("inputs") or {}
        if not r["type"].startswith("kubernetes:") or not {"apiVersion", "kind"} <= set(inputs):
            continue  # providers, Helm releases and other non-objects
        if r["type"].startswith("kubernetes:helm.sh/"):
            continue
        objects.append(inputs)
    return objects


def _schema_valid(obj: dict[str, Any]) -> dict[str, Any]:
    """A manifest validators accept: a wholly redacted map becomes ``{}`` and is noted.

    Secret values never reach a plan, so a Secret's ``data``/``stringData`` arrive as the
    redaction marker; schema validators (kubernetes-validate, checkov) need a map there.
    """
    redacted = [k for k in ("data", "stringData") if obj.get(k) == SECRET_MARKER]
    if not redacted:
        return obj
    obj = {**obj, **{k: {} for k in redacted}}
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), "fraudstack/redacted-fields": ",".join(redacted)}
    obj["metadata"] = meta
    return obj


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def write_manifests(resources: Sequence[dict[str, Any]], directory: Path) -> list[Path]:
    """Write each Kubernetes object as YAML, one file per object; old ``*.yaml`` there are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yaml"):
        stale.unlink()
    written = []
    for obj in _manifest_objects(resources):
        meta = obj.get("metadata") or {}
        parts = [obj["kind"], meta.get("namespace") or "cluster", meta.get("name") or "unnamed"]
        path = directory / (_slug("-".join(parts)) + ".yaml")
        path.write_text(yaml.safe_dump(_schema_valid(obj), sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


def summary(plan: dict[str, Any], elapsed: float | None = None) -> str:
    """The human-readable report: resources by type, violations by enforcement and severity."""
    resources, violations = plan["resources"], plan["violations"]
    lines = [f"{plan['project']} / {plan['stack']}: {len(resources)} resources"
             + (f" in {elapsed:.1f} s" if elapsed is not None else "")]
    for rtype, count in sorted(Counter(r["type"] for r in resources).items()):
        lines.append(f"  {count:4d}  {rtype}")
    by_level = Counter(v.get("enforcement", "?") for v in violations)
    lines.append(
        f"violations: {by_level.get('mandatory', 0)} mandatory, {by_level.get('advisory', 0)} advisory"
        + (f" (severity: {', '.join(f'{k} {n}' for k, n in sorted(Counter(v.get('severity', '?') for v in violations).items()))})" if violations else "")
    )
    order = {"mandatory": 0, "advisory": 1}
    for v in sorted(violations, key=lambda v: (order.get(v.get("enforcement"), 2), v.get("policy", ""), v.get("name", ""))):
        lines.append(f"  [{v.get('enforcement')}/{v.get('severity', '-')}] {v.get('policy')}: {v.get('type')} {v.get('name')}: {v.get('message')}")
    return "\n".join(lines)


def _violation(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v[k] for k in VIOLATION_KEYS if k in v}


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m tools.preview", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="run __main__.py with Pulumi.<STACK>.yaml under the mock runtime")
    source.add_argument("--plan", type=Path, help="evaluate the policy pack over this plan JSON instead")
    parser.add_argument("--json", type=Path, help="write the plan with its violations here")
    parser.add_argument("--manifests", type=Path, help="write each Kubernetes object as YAML into this directory")
    parser.add_argument("--policy-config", type=Path, help="policy pack config JSON (default: policies/config/<stack>.json)")
    parser.add_argument("--project-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="print only violations and errors")
    return parser


def main(argv: Sequence[str] | None = None, evaluate: Evaluator | None = None) -> int:
    """Run the preview; returns the exit code. ``evaluate`` replaces the policy pack (tests)."""
    args = build_parser().parse_args(argv)
    import pulumi

    from tools.plan import PROJECT_DIR, StackFileError, run_program

    project_dir = (args.project_dir or PROJECT_DIR).resolve()
    started = time.perf_counter()
    try:
        if args.plan is not None:
            plan = read_plan(args.plan)
        else:
            plan = run_program(args.stack, project_dir=project_dir)
        evaluate = evaluate or load_evaluator()
        config = policy_config(plan["stack"], args.policy_config, project_dir)
        if evaluate is None:
            print("note: the policy pack (policies.engine) does not exist yet; no policies evaluated", file=sys.stderr)
            violations: list[dict[str, Any]] = []
        else:
            violations = evaluate(plan["resources"], config, project=plan["project"], stack=plan["stack"])
    except (pulumi.RunError, StackFileError, PlanFileError) as exc:
        print(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - any other failure of the program is reported, not raised
        if type(exc).__name__ == "PolicyConfigError":
            print(f"policy config: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"error: the program failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exc(limit=-8, file=sys.stderr)
        return EXIT_FAILED
    elapsed = time.perf_counter() - started

    result = {
        "project": plan["project"],
        "stack": plan["stack"],
        "resources": [{k: r.get(k) for k in RESOURCE_KEYS} | ({"dependencies": r["dependencies"]} if "dependencies" in r else {})
                      for r in plan["resources"]],
        "violations": [_violation(v) for v in violations],
    }
    if "outputs" in plan:
        result["outputs"] = plan["outputs"]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    if args.manifests:
        write_manifests(result["resources"], args.manifests)
    text = summary(result, elapsed)
    if args.quiet:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("    ") and not re.match(r"^\s+\d+\s", line))
    print(text)
    mandatory = any(v.get("enforcement") == "mandatory" for v in result["violations"])
    return EXIT_VIOLATIONS if mandatory else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
