"""The rule catalogue shipped with the pack (a copy of the project's reference catalogue).

Rules name the catalogue rows they implement (``A28``, ``K3``, ``X4``); the scanner ids
(checkov, trivy/tfsec AVD, AWSGuard, kube-score) and the PCI DSS v4 requirements are
derived from those rows here, so each fact is written once.
"""
from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"


@dataclass(frozen=True)
class Row:
    """One catalogue row: its id, the resource it is about, the requirement text,
    whether it applies (Y/V/C/N; own rules always apply) and the scanner ids."""

    id: str
    resource: str
    requirement: str
    applies: str
    scanner_ids: tuple[str, ...]
    reason: str = ""  # why no rule implements it (k8s_rules.tsv's reason column)


def _read(name: str) -> list[dict[str, str]]:
    with open(CATALOGUE_DIR / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _expand_numbers(text: str) -> list[int]:
    """'229-232,1' -> [229, 230, 231, 232, 1]."""
    out: list[int] = []
    for a, b in re.findall(r"(\d+)(?:-(\d+))?", text):
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def _checkov_ids(cell: str) -> list[str]:
    """Normalise the catalogue's shorthand ('CKV_AWS_16(96)', 'CKV_AWS_62/1',
    'CKV_AWS_229-232,CKV2_AWS_1', '(23)' for Kubernetes) into full checkov ids."""
    ids: list[str] = []
    prefix = None
    for m in re.finditer(r"(CKV2?_(?:AWS|K8S)_)?(\d+)(?:-(\d+))?", cell):
        prefix = m.group(1) or prefix
        if prefix is None:
            continue
        lo, hi = int(m.group(2)), int(m.group(3) or m.group(2))
        ids.extend(f"{prefix}{n}" for n in range(lo, hi + 1))
    return ids


def _k8s_checkov_ids(cell: str) -> list[str]:
    """The Kubernetes column lists bare CKV_K8S numbers ('37,28', '(23)') but may name
    CKV2 graph checks in full ('CKV2_K8S_6', '49,155-158,CKV2_K8S_1-5')."""
    if cell == "-":
        return []
    if "CKV" not in cell:
        return [f"CKV_K8S_{n}" for n in _expand_numbers(cell)]
    return _checkov_ids(cell if cell.startswith("CKV") else "CKV_K8S_" + cell)


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


@functools.cache
def rows() -> dict[str, Row]:
    """All catalogue rows by id (A*, K*, X*)."""
    out: dict[str, Row] = {}
    for r in _read("aws_rules.tsv"):
        ids = _checkov_ids(r["checkov"])
        if r["trivy_AVD-AWS"] != "-":
            ids += [f"AVD-AWS-{n:04d}" for n in _expand_numbers(r["trivy_AVD-AWS"].split("(dep)")[0])]
        if r["AWSGuard"] != "-":
            ids += [f"awsguard:{g.strip()}" for g in r["AWSGuard"].split(",")]
        out[r["id"]] = Row(r["id"], r["resource"], r["requirement"], r["applies"], _dedupe(ids))
    for r in _read("k8s_rules.tsv"):
        ids = _k8s_checkov_ids(r["checkov_CKV_K8S"])
        if r["kube-score"] != "-":
            ids.append(f"kube-score:{r['kube-score']}")
        if r["trivy_KSV"] != "-":
            ids += [f"KSV{n:03d}" for n in _expand_numbers(r["trivy_KSV"])]
        out[r["id"]] = Row(r["id"], r["object"], r["requirement"], r["applies"], _dedupe(ids), r.get("reason") or "")
    for r in _read("own_rules.tsv"):
        out[r["id"]] = Row(r["id"], r["resource"], r["requirement"], "Y", ())
    return out


def _expand_ids(text: str) -> list[str]:
    """'A9-A15 K1-K21 X4' -> every id in those ranges."""
    out: list[str] = []
    for tok in text.split():
        m = re.fullmatch(r"([AKX])(\d+)(?:-[AKX]?(\d+))?", tok)
        if not m:
            continue
        lo, hi = int(m.group(2)), int(m.group(3) or m.group(2))
        out.extend(f"{m.group(1)}{n}" for n in range(lo, hi + 1))
    return out


@functools.cache
def pci_by_row() -> dict[str, tuple[str, ...]]:
    """Row id -> the PCI DSS v4 requirements (as written in pci_map.tsv) that cite it."""
    out: dict[str, list[str]] = {}
    for r in _read("pci_map.tsv"):
        for rid in _expand_ids(r["rule_ideas"]):
            out.setdefault(rid, []).append(r["pci_v4"])
    return {k: _dedupe(v) for k, v in out.items()}
