"""The pip-audit gate (tools/dep_audit.py) judges pip-audit's JSON report correctly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import dep_audit
from tools.dep_audit import Verdict, judge, load_exceptions

# Shapes as pip-audit 2.10 writes them with --format json.
AUDITED = {"name": "fastapi", "version": "0.165.0", "vulns": []}
VULNERABLE = {"name": "requests", "version": "2.19.0", "vulns": [
    {"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"], "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
     "description": "..."}]}
SKIPPED = {"name": "pulumi", "skip_reason": "Dependency not found on PyPI and could not be audited: pulumi (3.272.0)"}


def test_a_finding_fails_and_is_named() -> None:
    v = judge({"dependencies": [AUDITED, VULNERABLE]}, {})
    assert v.vulnerabilities == ["requests==2.19.0: PYSEC-2018-28 (fixed in 2.20.0)"]
    assert (v.audited, v.skipped, v.exit_code(False), v.exit_code(True)) == (2, 0, 1, 1)


def test_an_exception_with_a_reason_matches_by_id_or_alias() -> None:
    v = judge({"dependencies": [AUDITED, VULNERABLE]}, {"GHSA-x84v-xcm2-53pg": "only used in tests, no proxies"})
    assert v.vulnerabilities == [] and v.exit_code(True) == 0
    assert v.excepted == ["requests==2.19.0: PYSEC-2018-28 (fixed in 2.20.0), excepted: only used in tests, no proxies"]


def test_a_stale_exception_is_reported() -> None:
    v = judge({"dependencies": [AUDITED]}, {"PYSEC-2000-1": "old"})
    assert v.stale_exceptions == ["PYSEC-2000-1"] and v.exit_code(True) == 0


def test_nothing_looked_up_is_unverified_not_clean() -> None:
    v = judge({"dependencies": [SKIPPED, dict(SKIPPED, name="fastapi")]}, {"PYSEC-2000-1": "old"})
    assert v == Verdict([], [], [], 0, 2)
    assert v.unverified and v.exit_code(False) == 0 and v.exit_code(True) == 3


def test_partly_looked_up_is_verified_for_what_was_audited() -> None:
    v = judge({"dependencies": [AUDITED, SKIPPED]}, {})
    assert not v.unverified and (v.audited, v.skipped) == (1, 1)


def test_exceptions_need_a_reason(tmp_path: Path) -> None:
    f = tmp_path / "exceptions"
    f.write_text("# comment\nPYSEC-2018-28   only in tests  # trailing comment\n\n")
    assert load_exceptions(f) == {"PYSEC-2018-28": "only in tests"}
    f.write_text("GHSA-x84v-xcm2-53pg\n")
    with pytest.raises(ValueError, match="exceptions:1: exception GHSA-x84v-xcm2-53pg has no written reason"):
        load_exceptions(f)


def test_the_repository_exceptions_file_is_valid() -> None:
    assert load_exceptions() == {}


def test_cli_prints_unverified_instead_of_claiming_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dependencies": [SKIPPED]}))
    assert dep_audit.main(["--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "UNVERIFIED: pip-audit could look up none of the 1 packages" in out and "0 known" not in out
    assert dep_audit.main(["--report", str(report), "--require-data"]) == 3
    report.write_text(json.dumps({"dependencies": [AUDITED, VULNERABLE]}))
    assert dep_audit.main(["--report", str(report)]) == 1
    assert "VULNERABLE requests==2.19.0: PYSEC-2018-28 (fixed in 2.20.0)" in capsys.readouterr().out
