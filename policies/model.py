"""The rule model: one frozen description per rule, turned into a pulumi-policy ``Policy``.

A rule is written as a small ``check`` function plus its metadata; ``Rule.policy()``
builds the ``ResourceValidationPolicy`` / ``StackValidationPolicy`` that both the
Pulumi CLI (through ``policies/__main__.py``) and ``policies.engine.evaluate`` run.

Resource rules: ``check(props, cfg) -> Iterable[str]`` yields one message per
violation. ``props`` is the resource's inputs (camelCase, read-only proxy that raises
``UnknownValueError`` on values unknown during preview) and ``cfg`` the policy config
(schema defaults merged with the stack's ``--policy-pack-config``).

Stack rules: ``check(stack, cfg) -> Iterable[tuple[PolicyResource | None, str]]``
yields (offending resource, message) pairs; ``stack`` is a :class:`Stack`.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    PolicyResource,
    ResourceValidationPolicy,
    Severity,
    StackValidationPolicy,
)

from . import catalogue

SEVERITIES = ("critical", "high", "medium", "low")
ENFORCEMENTS = ("mandatory", "advisory")
_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PCI = PolicyComplianceFramework(name="PCI DSS", version="4.0.1",
                                 reference="https://www.pcisecuritystandards.org/document_library/")


@dataclass(frozen=True)
class Param:
    """A policy config property. ``default`` is the production (stricter) value;
    staging relaxes it through ``policies/config/staging.json``."""

    name: str
    type: str  # JSON schema type: integer, boolean, string, array
    default: Any
    description: str
    minimum: int | None = None

    def schema(self) -> dict[str, Any]:
        """The JSON schema fragment the CLI validates the config against."""
        s: dict[str, Any] = {"type": self.type, "default": self.default, "description": self.description}
        if self.type == "array":
            s["items"] = {"type": "string"}
        if self.minimum is not None:
            s["minimum"] = self.minimum
        return s


class Stack:
    """The resources of a stack, indexed by type, for stack-level rules."""

    def __init__(self, resources: list[PolicyResource]):
        self.resources = resources
        self._by_type: dict[str, list[PolicyResource]] = {}
        for r in resources:
            self._by_type.setdefault(r.resource_type, []).append(r)

    @property
    def has_dependencies(self) -> bool:
        """Whether the resources carry dependencies (always under the CLI; in plans that record them)."""
        if not hasattr(self, "_has_deps"):
            self._has_deps = any(r.dependencies for r in self.resources)
        return self._has_deps

    def of_type(self, *types: str) -> list[PolicyResource]:
        """Resources of any of the given type tokens, in declaration order."""
        if len(types) == 1:
            return self._by_type.get(types[0], [])
        return [r for r in self.resources if r.resource_type in types]


def with_type(check):
    """Mark a resource check that needs the resource type: ``check(props, cfg, resource_type)``
    (for rules over several resource shapes, such as the security-group family)."""
    check.wants_type = True
    return check


ResourceCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Stack, Mapping[str, Any]], Iterable[tuple[PolicyResource | None, str]]]


@dataclass(frozen=True)
class Rule:
    """One rule of the pack with the metadata the catalogue and the docs show.

    ``references`` names catalogue rows (``A28``, ``K3``, ``X4``); scanner ids and PCI
    requirements are derived from them. ``advisory_reason`` explains, for an advisory
    rule, why it does not block a deployment (shown in docs/policies.md).
    """

    id: str
    name: str
    description: str
    severity: str
    enforcement: str
    resource_types: tuple[str, ...]
    references: tuple[str, ...]
    remediation: str
    check: ResourceCheck | StackCheck
    stack: bool = False
    params: tuple[Param, ...] = ()
    advisory_reason: str = ""
    extra_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        where = f"rule {self.id!r}"
        if not _KEBAB.match(self.id):
            raise ValueError(f"{where}: id must be kebab-case")
        if self.severity not in SEVERITIES:
            raise ValueError(f"{where}: severity must be one of {SEVERITIES}")
        if self.enforcement not in ENFORCEMENTS:
            raise ValueError(f"{where}: enforcement must be one of {ENFORCEMENTS}")
        if not self.stack and not self.resource_types:
            raise ValueError(f"{where}: a resource rule needs resource types")
        if not self.references:
            raise ValueError(f"{where}: references must name catalogue rows")
        known = catalogue.rows()
        unknown = [r for r in self.references if r not in known]
        if unknown:
            raise ValueError(f"{where}: unknown catalogue rows {unknown}")
        if self.enforcement == "advisory" and not self.advisory_reason:
            raise ValueError(f"{where}: an advisory rule needs advisory_reason")
        if not self.remediation or not self.description:
            raise ValueError(f"{where}: description and remediation are required")

    @property
    def scanner_ids(self) -> tuple[str, ...]:
        """checkov / trivy / AWSGuard / kube-score ids of the referenced rows."""
        rows = catalogue.rows()
        ids = [i for ref in self.references for i in rows[ref].scanner_ids]
        return tuple(dict.fromkeys([*ids, *self.extra_ids]))

    @property
    def all_references(self) -> tuple[str, ...]:
        """Catalogue row ids followed by the scanner ids."""
        return (*self.references, *self.scanner_ids)

    @property
    def pci(self) -> tuple[str, ...]:
        """PCI DSS v4 requirements that cite any referenced row."""
        by_row = catalogue.pci_by_row()
        return tuple(dict.fromkeys(p for ref in self.references for p in by_row.get(ref, ())))

    def defaults(self) -> dict[str, Any]:
        """Config values when the stack passes none (the production values)."""
        return {p.name: p.default for p in self.params}

    def metadata(self) -> dict[str, Any]:
        """JSON-able description of the rule (what ``python -m policies.catalog --json`` prints)."""
        return {
            "id": self.id, "name": self.name, "description": self.description,
            "severity": self.severity, "enforcement": self.enforcement,
            "scope": "stack" if self.stack else "resource",
            "resource_types": list(self.resource_types),
            "references": list(self.all_references), "catalogue_rows": list(self.references),
            "pci_dss_v4": list(self.pci), "remediation": self.remediation,
            "config": {p.name: p.schema() for p in self.params},
            "advisory_reason": self.advisory_reason,
        }

    def policy(self) -> ResourceValidationPolicy | StackValidationPolicy:
        """The pulumi-policy object for this rule (same object for the CLI and the engine)."""
        common = dict(
            name=self.id, description=self.description,
            enforcement_level=EnforcementLevel(self.enforcement),
            config_schema=PolicyConfigSchema({p.name: p.schema() for p in self.params}) if self.params else None,
            display_name=self.name, severity=Severity(self.severity), framework=_PCI,
            tags=[*self.references, *(f"pci:{p}" for p in self.pci)],
            remediation_steps=self.remediation,
        )
        if self.stack:
            return StackValidationPolicy(validate=self._validate_stack, **common)
        return ResourceValidationPolicy(validate=self._validate_resource, **common)

    def _config(self, args) -> dict[str, Any]:
        cfg = {**self.defaults(), **dict(args.get_config() or {})}
        for p in self.params:
            # The CLI passes config through a protobuf Struct: integers arrive as floats.
            if p.type == "integer" and isinstance(cfg.get(p.name), float) and cfg[p.name].is_integer():
                cfg[p.name] = int(cfg[p.name])
        return cfg

    def _validate_resource(self, args, report_violation) -> None:
        if args.resource_type not in self.resource_types:
            return
        if getattr(self.check, "wants_type", False):
            messages = self.check(args.props, self._config(args), args.resource_type)
        else:
            messages = self.check(args.props, self._config(args))
        for message in messages:
            report_violation(message, None)

    def _validate_stack(self, args, report_violation) -> None:
        for resource, message in self.check(Stack(args.resources), self._config(args)):
            report_violation(message, resource.urn if resource is not None else None)
