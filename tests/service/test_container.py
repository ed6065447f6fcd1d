"""Static checks of the container recipe (no Docker daemon runs in CI or here).

app/Dockerfile makes two images: ``runtime`` (the default target, ONNX Runtime for the
CPU) and ``runtime-gpu`` (onnxruntime-gpu with NVIDIA's CUDA and cuDNN wheels). The
recipe is parsed into stages, and each final image is judged by what it inherits.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "app" / "Dockerfile").read_text()
FINAL = ("runtime", "runtime-gpu")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuations joined."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.strip().partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
    return out


def _parse(text: str) -> tuple[list[tuple[str, str]], dict[str, Stage]]:
    """The global instructions (before the first FROM) and the stages by name, in order."""
    globals_: list[tuple[str, str]] = []
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in _instructions(text):
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+) AS (\S+)", args)
            assert m, f"every stage is named: FROM {args}"
            current = stages[m.group(2)] = Stage(m.group(2), m.group(1))
        elif current is None:
            globals_.append((keyword, args))
        else:
            current.instructions.append((keyword, args))
    return globals_, stages


GLOBALS, STAGES = _parse(DOCKERFILE)


def _chain(name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, base first."""
    chain = []
    while name in STAGES:
        chain.insert(0, STAGES[name])
        name = STAGES[name].base
    return chain


def _inherited(name: str, keyword: str) -> list[str]:
    return [args for stage in _chain(name) for args in stage.all(keyword)]


def _global_arg(name: str) -> str:
    (value,) = [args.split("=", 1)[1] for kw, args in GLOBALS if kw == "ARG" and args.startswith(f"{name}=")]
    return value


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s#]+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(3)
    return out


def test_stages_and_the_default_target_is_the_cpu_image():
    assert list(STAGES) == ["build", "build-gpu", "runtime-base", "runtime-gpu", "runtime"]
    assert {s: STAGES[s].base for s in STAGES} == {
        "build": "${PYTHON_IMAGE}", "build-gpu": "${PYTHON_IMAGE}", "runtime-base": "${PYTHON_IMAGE}",
        "runtime-gpu": "runtime-base", "runtime": "runtime-base",
    }
    # `docker build` without --target builds the last stage: the release workflow's CPU image.
    assert list(STAGES)[-1] == "runtime"
    assert _global_arg("PYTHON_IMAGE") == "python:3.11-slim-bookworm"


@pytest.mark.parametrize("image", FINAL)
def test_both_images_run_as_the_fixed_non_root_user_of_the_pods(image):
    from components.scoring_app_specs import RUN_AS

    assert _global_arg("UID") == str(RUN_AS) == "10001"
    users = _inherited(image, "USER")
    # The last USER of the chain is the user the container runs as.
    assert users and users[-1] == "${UID}:${UID}"
    assert STAGES[image].all("USER") == ["${UID}:${UID}"], "each final image says who it runs as"
    # A global ARG is in scope in a stage only when the stage declares it again.
    for stage in _chain(image):
        if "${UID}" in " ".join(args for _, args in stage.instructions):
            assert "UID" in stage.all("ARG"), stage.name
    (account,) = STAGES["runtime-base"].all("RUN")
    assert "groupadd --system --gid ${UID} fraudstack" in account
    assert "useradd --system --uid ${UID} --gid ${UID} --no-create-home" in account


def test_nothing_switches_to_root():
    for stage in STAGES.values():
        for user in stage.all("USER"):
            assert user.split(":")[0] not in ("root", "0"), (stage.name, user)


@pytest.mark.parametrize("image", FINAL)
def test_both_images_serve_the_same_way_with_a_read_only_root(image):
    assert _inherited(image, "EXPOSE") == ["8080"]
    (health,) = _inherited(image, "HEALTHCHECK")
    assert health.startswith("--interval=10s --timeout=3s --start-period=20s --retries=3 CMD [")
    assert "http://127.0.0.1:8080/health/live" in health
    assert _inherited(image, "ENTRYPOINT") == ['["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8080"]']
    assert _inherited(image, "CMD") == ['["--workers", "1"]']
    env = " ".join(_inherited(image, "ENV"))
    assert "FRAUDSTACK_MODEL_DIR=/opt/fraudstack/model" in env
    # The only writable places: the data volume (audit spool) and /tmp.
    assert "FRAUDSTACK_DATA_DIR=/var/lib/fraudstack" in env
    assert _inherited(image, "VOLUME") == ['["/var/lib/fraudstack"]']
    # Code, model and virtualenv stay root-owned: the service user cannot change them.
    copies = _inherited(image, "COPY")
    assert copies and not [c for c in copies if "--chown" in c]
    # Nothing in the runtime stages installs packages.
    assert not [r for r in _inherited(image, "RUN") if "pip" in r or "apt-get" in r]


def test_each_image_takes_its_own_virtualenv():
    assert STAGES["runtime"].all("COPY") == ["--from=build /opt/venv /opt/venv"]
    assert STAGES["runtime-gpu"].all("COPY") == ["--from=build-gpu /opt/venv /opt/venv"]
    # Code and model are the CPU build's in both (built once, identical bytes).
    assert STAGES["runtime-base"].all("COPY") == [
        "--from=build /src/app /opt/fraudstack/app", "--from=build /opt/model /opt/fraudstack/model"]


def test_gpu_image_keeps_the_gpus_to_the_device_plugin_and_caches_in_tmp():
    (env,) = STAGES["runtime-gpu"].all("ENV")
    assert env == "NVIDIA_DRIVER_CAPABILITIES=compute,utility CUDA_CACHE_PATH=/tmp/cuda-cache"
    # Which GPUs a container sees is the device plugin's per-allocation answer.
    assert not [e for s in STAGES.values() for e in s.all("ENV") if "NVIDIA_VISIBLE_DEVICES" in e]


def _gpu_requirements_command() -> str:
    """The part of the build-gpu RUN that writes gpu-requirements.txt and checks it."""
    (run,) = STAGES["build-gpu"].all("RUN")
    write, check, venv, *_ = run.split(" && ")
    assert venv == "python -m venv /opt/venv" and "pip install -r gpu-requirements.txt" in run
    return f"{write} && {check}"


def test_gpu_stage_installs_onnxruntime_gpu_at_the_cpu_pin(tmp_path):
    """Run the stage's own sed over app/requirements.txt: the version has one source."""
    (tmp_path / "app-requirements.txt").write_text((ROOT / "app" / "requirements.txt").read_text())
    result = subprocess.run(["sh", "-c", _gpu_requirements_command()], cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    cpu, gpu = _pins(tmp_path / "app-requirements.txt"), _pins(tmp_path / "gpu-requirements.txt")
    assert gpu["onnxruntime-gpu"] == cpu["onnxruntime"] == _pins(ROOT / "requirements.txt")["onnxruntime"] == "1.31.1"
    assert "onnxruntime" not in gpu
    assert {k: v for k, v in gpu.items() if k != "onnxruntime-gpu"} == {k: v for k, v in cpu.items() if k != "onnxruntime"}
    assert "onnxruntime-gpu[cuda,cudnn]==1.31.1" in (tmp_path / "gpu-requirements.txt").read_text().splitlines()


def test_gpu_stage_stops_when_the_pin_is_missing(tmp_path):
    """A requirements file without `onnxruntime==` must fail the build, not make a CPU-only 'GPU' image."""
    (tmp_path / "app-requirements.txt").write_text("fastapi==0.165.0\nonnxruntime>=1.31\n")
    result = subprocess.run(["sh", "-c", _gpu_requirements_command()], cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert result.returncode != 0


def test_runtime_requirements_match_the_pinned_set() -> None:
    service, everything = _pins(ROOT / "app" / "requirements.txt"), _pins(ROOT / "requirements.txt")
    assert service and all(everything.get(name) == version for name, version in service.items()), \
        {n: (v, everything.get(n)) for n, v in service.items() if everything.get(n) != v}


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*" and "!app" in lines and "!requirements.txt" in lines
