"""Static checks of the container recipe (no Docker daemon runs in CI)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "app" / "Dockerfile").read_text()


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s#]+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(3)
    return out


def test_multi_stage_non_root_fixed_uid_healthcheck() -> None:
    stages = re.findall(r"^FROM \S+ AS (\w+)", DOCKERFILE, flags=re.M)
    assert stages == ["build", "runtime"]
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert "ARG UID=10001" in runtime and "USER ${UID}:${UID}" in runtime
    assert "HEALTHCHECK" in runtime and "/health/live" in runtime
    assert "FRAUDSTACK_MODEL_DIR=/opt/fraudstack/model" in runtime
    # Nothing in the runtime stage installs packages or writes outside the data volume.
    assert "pip install" not in runtime


def test_runtime_requirements_match_the_pinned_set() -> None:
    service, everything = _pins(ROOT / "app" / "requirements.txt"), _pins(ROOT / "requirements.txt")
    assert service and all(everything.get(name) == version for name, version in service.items()), \
        {n: (v, everything.get(n)) for n, v in service.items() if everything.get(n) != v}


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*" and "!app" in lines and "!requirements.txt" in lines
