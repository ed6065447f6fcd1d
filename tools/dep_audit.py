"""Known-vulnerability gate for requirements.txt: ``python -m tools.dep_audit``.

Runs ``pip-audit -r requirements.txt`` (PyPI's vulnerability data, reached through the
PyPI JSON API) and judges its JSON report:

* a vulnerability not listed in ``.ci/pip-audit-exceptions`` -> exit 1, each one named;
* every listed exception must carry a reason, and one that no longer matches anything is
  reported so it can be removed;
* packages pip-audit could not look up are counted; when it could look up none of
  them, the data source was unreachable and the result says so ("UNVERIFIED") instead
  of claiming zero vulnerabilities. ``--require-data`` turns that into exit 3 (use it
  wherever the PyPI JSON API is reachable).

Exit codes: 0 clean (or unverified without --require-data), 1 vulnerabilities,
2 pip-audit itself failed, 3 unverified with --require-data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXCEPTIONS = ROOT / ".ci" / "pip-audit-exceptions"


@dataclass(frozen=True)
class Verdict:
    """What the report means: findings, ignored findings, coverage and the exit code."""

    vulnerabilities: list[str] = field(default_factory=list)
    excepted: list[str] = field(default_factory=list)
    stale_exceptions: list[str] = field(default_factory=list)
    audited: int = 0
    skipped: int = 0

    @property
    def unverified(self) -> bool:
        """No package could be looked up: the vulnerability data was not reachable."""
        return self.audited == 0

    def exit_code(self, require_data: bool) -> int:
        if self.vulnerabilities:
            return 1
        if self.unverified and require_data:
            return 3
        return 0


def load_exceptions(path: Path = EXCEPTIONS) -> dict[str, str]:
    """``ID  reason...`` per line (``#`` comments); an exception without a reason is an error."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise ValueError(f"{path.name}:{n}: exception {parts[0]} has no written reason")
        out[parts[0]] = parts[1]
    return out


def judge(report: dict[str, Any], exceptions: dict[str, str]) -> Verdict:
    """Read pip-audit's JSON report (``--format json``)."""
    found, excepted, audited, skipped, matched = [], [], 0, 0, set()
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:
            skipped += 1
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            hit = ids & exceptions.keys()
            label = f"{dep['name']}=={dep['version']}: {vuln['id']} (fixed in {', '.join(vuln.get('fix_versions', [])) or 'no release'})"
            if hit:
                matched |= hit
                excepted.append(f"{label}, excepted: {exceptions[sorted(hit)[0]]}")
            else:
                found.append(label)
    stale = sorted(set(exceptions) - matched) if audited else []
    return Verdict(found, excepted, stale, audited, skipped)


def run_pip_audit(requirements: Path) -> dict[str, Any]:
    """pip-audit's JSON report for a requirements file (it resolves the pins in a temporary virtualenv)."""
    proc = subprocess.run([sys.executable, "-m", "pip_audit", "-r", str(requirements), "--format", "json",
                           "--progress-spinner", "off"], capture_output=True, text=True)
    # pip-audit exits 1 when it finds vulnerabilities; the JSON report is on stdout either way.
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"pip-audit failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}") from None


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m tools.dep_audit", description=__doc__.splitlines()[0])
    p.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    p.add_argument("--report", type=Path, help="judge an existing pip-audit JSON report instead of running it")
    p.add_argument("--require-data", action="store_true", help="fail (exit 3) when no package could be looked up")
    args = p.parse_args(argv)
    try:
        exceptions = load_exceptions()
        report = json.loads(args.report.read_text()) if args.report else run_pip_audit(args.requirements)
    except (RuntimeError, ValueError) as exc:
        print(f"dep_audit: {exc}", file=sys.stderr)
        return 2
    v = judge(report, exceptions)
    for line in v.vulnerabilities:
        print(f"VULNERABLE {line}")
    for line in v.excepted:
        print(f"excepted   {line}")
    for ident in v.stale_exceptions:
        print(f"stale exception {ident}: matches nothing any more; remove it from .ci/pip-audit-exceptions")
    total = v.audited + v.skipped
    if v.unverified:
        print(f"dep_audit: UNVERIFIED: pip-audit could look up none of the {total} packages (its data source, the "
              "PyPI JSON API, is not reachable from here); no claim about known vulnerabilities is made")
    else:
        print(f"dep_audit: {len(v.vulnerabilities)} known vulnerabilities, {len(v.excepted)} excepted; "
              f"{v.audited} of {total} packages audited ({v.skipped} could not be looked up)")
    return v.exit_code(args.require_data)


if __name__ == "__main__":
    sys.exit(main())
