"""CI: the single test command fails whenever pytest does, including "no tests collected"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tools.plan import PROJECT_DIR


def _make_test(tmp_path: Path, pytest_exit: int) -> subprocess.CompletedProcess:
    # A stand-in interpreter that exits like pytest would; the venv marker is fresh so
    # make goes straight to the test recipe.
    venv = tmp_path / "venv"
    venv.mkdir()
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho \"pytest $*\"\nexit {pytest_exit}\n")
    fake.chmod(0o755)
    marker = venv / ".installed"
    marker.touch()
    later = (PROJECT_DIR / "requirements.txt").stat().st_mtime + 10
    os.utime(marker, (later, later))
    # CHECKOV_VENV points at the same fresh marker: make must not build checkov here.
    return subprocess.run(["make", "-s", "test", f"VENV={venv}", f"CHECKOV_VENV={venv}", f"PY={fake}"], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("code,fails", [(0, False), (1, True), (5, True)])
def test_make_test_propagates_pytest_failure(tmp_path, code, fails):
    proc = _make_test(tmp_path, code)
    assert proc.stdout.strip() == "pytest -m pytest"
    assert (proc.returncode != 0) is fails


def test_ci_script_runs_the_readme_command_on_a_fresh_venv():
    script = (PROJECT_DIR / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert "rm -rf .venv" in script
    assert script.rstrip().splitlines()[-1] == "make test"
    assert os.access(PROJECT_DIR / ".ci" / "run", os.X_OK)
