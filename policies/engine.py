"""Run the pack in-process over plan resources, the way the Pulumi policy server does.

``evaluate(resources, config)`` takes the plan's resources
(``{"type", "name", "parent", "custom", "provider", "inputs"}``, see docs/ARCHITECTURE.md,
optionally with ``"dependencies"`` (names), ``"id"`` and ``"outputs"``, which stack rules use
to tie resources together)
and the stack's policy config (the JSON passed to ``--policy-pack-config``) and returns
the violations. Each resource's inputs go through
``pulumi_policy.deserialize.deserialize_properties`` and ``unknown_checking_proxy`` and
each policy is called through the 1.21 ``ResourceValidationArgs`` /
``StackValidationArgs`` / ``PolicyResource`` constructors, exactly as the server's
``Analyze``/``AnalyzeStack`` do. A policy touching a value unknown during preview
gives an advisory diagnostic, as under ``pulumi preview``.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from inspect import isawaitable
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from .model import Rule
from .rules import RULES

PACK_NAME = "fraudstack"
PACK_VERSION = "0.1.0"
SECRET_MARKER = "[secret]"
CONFIG_DIR = Path(__file__).resolve().parent / "config"
_LEVELS = ("advisory", "mandatory", "remediate", "disabled")


class PolicyConfigError(ValueError):
    """The policy config names an unknown policy or property, or a value of the wrong type."""


class PolicyRunError(RuntimeError):
    """A rule failed on a resource (typically an input of the wrong type in a hand-edited
    plan); the message names the rule and the resource."""


def load_config(stack: str) -> dict[str, Any]:
    """The policy config shipped for a stack (``policies/config/<stack>.json``)."""
    path = CONFIG_DIR / f"{stack}.json"
    if not path.is_file():
        raise PolicyConfigError(f"no policy config for stack {stack!r} (expected {path})")
    return json.loads(path.read_text(encoding="utf-8"))


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True


def resolve_config(config: Mapping[str, Any] | None, rules: list[Rule]) -> tuple[dict[str, str], dict[str, dict]]:
    """Check a ``--policy-pack-config`` document against the rules' schemas and return
    (enforcement level per policy, properties per policy). Errors name the offending key."""
    by_id = {r.id: r for r in rules}
    levels = {r.id: r.enforcement for r in rules}
    props: dict[str, dict] = {r.id: r.defaults() for r in rules}
    config = dict(config or {})
    if "all" in config:
        level = config.pop("all")
        level = level.get("enforcementLevel") if isinstance(level, Mapping) else level
        if level not in _LEVELS:
            raise PolicyConfigError(f"all: enforcement level must be one of {_LEVELS}, got {level!r}")
        levels = {k: level for k in levels}
    for pid, value in config.items():
        if pid not in by_id:
            raise PolicyConfigError(f"{pid}: no such policy in pack {PACK_NAME!r}")
        if isinstance(value, str):
            value = {"enforcementLevel": value}
        if not isinstance(value, Mapping):
            raise PolicyConfigError(f"{pid}: expected an enforcement level or an object")
        params = {p.name: p for p in by_id[pid].params}
        for key, v in value.items():
            if key == "enforcementLevel":
                if v not in _LEVELS:
                    raise PolicyConfigError(f"{pid}.enforcementLevel: must be one of {_LEVELS}, got {v!r}")
                levels[pid] = v
                continue
            if key not in params:
                raise PolicyConfigError(f"{pid}.{key}: unknown config property (known: {sorted(params)})")
            p = params[key]
            if not _type_ok(p.type, v):
                raise PolicyConfigError(f"{pid}.{key}: expected {p.type}, got {v!r}")
            if p.minimum is not None and v < p.minimum:
                raise PolicyConfigError(f"{pid}.{key}: must be >= {p.minimum}, got {v!r}")
            props[pid][key] = v
    return levels, props


def _redact_secrets(value: Any) -> Any:
    """Replace wrapped secrets by the plan's redaction marker: rules never see a secret
    value, and a secret is recognisable as such (rule X10)."""
    if isinstance(value, dict):
        if value.get(SPECIAL_SIG_KEY) == SPECIAL_SECRET_SIG:
            return SECRET_MARKER
        return {k: _redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_secrets(v) for v in value]
    return value


def _run(result: Any) -> None:
    if isawaitable(result):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(result)
        finally:
            loop.close()


class _Plan:
    """Plan resources turned into what the policy server hands to policies."""

    def __init__(self, resources: list[dict], project: str, stack: str):
        self.items: list[tuple[dict, str, Mapping[str, Any], PolicyResourceOptions]] = []
        by_name = {}
        for r in resources:
            for key in ("type", "name"):
                if not isinstance(r.get(key), str) or not r.get(key):
                    raise ValueError(f"plan resource {r!r}: missing {key!r}")
            # Parents are found by name; components (custom false) win over a child that
            # reuses the component's name.
            if r["name"] not in by_name or (by_name[r["name"]].get("custom", True) and not r.get("custom", True)):
                by_name[r["name"]] = r
        self.by_urn: dict[str, dict] = {}
        urns: dict[int, str] = {}
        for r in resources:
            chain, seen, cur = [], set(), r
            while cur is not None and id(cur) not in seen:
                seen.add(id(cur))
                chain.append(cur["type"])
                parent = cur.get("parent")
                cur = by_name.get(parent) if parent else None
            urn = f"urn:pulumi:{stack}::{project}::{'$'.join(reversed(chain))}::{r['name']}"
            urns[id(r)] = urn
            self.by_urn[urn] = r
        timeouts = PolicyCustomTimeouts(0, 0, 0)
        for r in resources:
            inputs = r.get("inputs") or {}
            if not isinstance(inputs, dict):
                raise ValueError(f"plan resource {r['name']!r}: inputs must be an object")
            props = unknown_checking_proxy(deserialize_properties(_redact_secrets(inputs)))
            parent = r.get("parent")
            # A parent missing from the plan still groups its children (same-component matching).
            parent_urn = (urns.get(id(by_name[parent])) if parent in by_name
                          else f"urn:pulumi:{stack}::{project}::component::{parent}" if parent else None)
            opts = PolicyResourceOptions(False, [], None, [], timeouts, [], parent_urn)
            self.items.append((r, urns[id(r)], props, opts))
        # Stack policies see a resource's outputs when the plan records them (as the
        # server does after an update): ids and ARNs let rules tie references together.
        self.policy_resources = [
            PolicyResource(r["type"], self._stack_props(r, props), urn, r["name"], opts, None, None, [], {})
            for r, urn, props, opts in self.items
        ]
        by_pr_urn = {pr.urn: pr for pr in self.policy_resources}
        by_pr_name: dict[str, list[PolicyResource]] = {}
        for pr in self.policy_resources:
            by_pr_name.setdefault(pr.name, []).append(pr)
        for pr, (r, _, _, opts) in zip(self.policy_resources, self.items):
            if opts.parent in by_pr_urn:
                pr.parent = by_pr_urn[opts.parent]
            # The plan names dependencies by resource name (as the server passes URNs).
            for dep in r.get("dependencies") or []:
                pr.dependencies.extend(d for d in by_pr_name.get(dep, []) if d is not pr)


    @staticmethod
    def _stack_props(r: dict, props: Mapping[str, Any]) -> Mapping[str, Any]:
        outputs = r.get("outputs")
        rid = r.get("id")
        if not isinstance(outputs, dict) and not isinstance(rid, str):
            return props
        merged = {**(r.get("inputs") or {}), **(outputs if isinstance(outputs, dict) else {})}
        if isinstance(rid, str):
            merged["id"] = rid
        return unknown_checking_proxy(deserialize_properties(_redact_secrets(merged)))


def evaluate(resources: list[dict], config: Mapping[str, Any] | None = None, *,
             rules: list[Rule] | None = None, project: str = "fraudstack", stack: str = "stack") -> list[dict]:
    """Evaluate the pack over plan resources; returns violations as
    ``{"policy", "enforcement", "severity", "type", "name", "message"}``.

    ``config`` is the ``--policy-pack-config`` document (e.g. ``load_config("staging")``);
    ``None`` means the production defaults. ``rules`` narrows the pack (tests).
    """
    rules = list(RULES) if rules is None else rules
    levels, props_by_policy = resolve_config(config, rules)
    for props in props_by_policy.values():
        if "inputsRedacted" in props:
            props["inputsRedacted"] = True  # this engine redacts secrets (see _redact_secrets)
    plan = _Plan(resources, project, stack)
    out: list[dict] = []
    for rule in rules:
        level = levels[rule.id]
        if level == "disabled":
            continue
        if level == "remediate":
            level = "mandatory"
        policy = rule.policy()
        cfg = props_by_policy[rule.id]

        def violation(message: str, rtype: str, name: str, level=level, rule=rule) -> dict:
            return {"policy": rule.id, "enforcement": level, "severity": rule.severity,
                    "type": rtype, "name": name, "message": message}

        def diagnostic(e: UnknownValueError, rtype: str, name: str, rule=rule) -> dict:
            v = violation(f"can't run policy '{rule.id}' from policy pack '{PACK_NAME}@v{PACK_VERSION}' "
                          f"during preview: {e.message}", rtype, name)
            v["enforcement"] = "advisory"
            return v

        if isinstance(policy, ResourceValidationPolicy):
            types = set(rule.resource_types)
            for r, urn, props, opts in plan.items:
                if r["type"] not in types:
                    continue  # the policy ignores it too; skipping saves building args
                found: list[str] = []
                args = ResourceValidationArgs(r["type"], props, urn, r["name"], opts, None, cfg, {})
                try:
                    _run(policy.validate(args, lambda msg, _urn=None, found=found: found.append(msg)))
                except UnknownValueError as e:
                    out.append(diagnostic(e, r["type"], r["name"]))
                except _NotApplicableError:
                    pass
                except Exception as e:  # the server fails the same way; say where
                    raise PolicyRunError(f"policy {rule.id!r} failed on {r['type']} {r['name']!r}: "
                                         f"{type(e).__name__}: {e}") from e
                out.extend(violation(m, r["type"], r["name"]) for m in found)
        else:
            reported: list[tuple[str, str | None]] = []
            args = StackValidationArgs(plan.policy_resources, cfg, {})
            try:
                _run(policy.validate(args, lambda msg, urn=None: reported.append((msg, urn))))
            except UnknownValueError as e:
                out.append(diagnostic(e, "pulumi:pulumi:Stack", f"{project}-{stack}"))
            except _NotApplicableError:
                pass
            except Exception as e:
                raise PolicyRunError(f"stack policy {rule.id!r} failed: {type(e).__name__}: {e}") from e
            for msg, urn in reported:
                r = plan.by_urn.get(urn) if urn else None
                out.append(violation(msg, r["type"], r["name"]) if r else
                           violation(msg, "pulumi:pulumi:Stack", f"{project}-{stack}"))
    return out
