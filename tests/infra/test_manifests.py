"""The Kubernetes objects as `python -m tools.preview --stack S --manifests DIR` writes them,
checked by the policy pack, `kubernetes-validate --strict` and checkov, for both stacks.

checkov pins libraries below requirements.txt (boto3, packaging), so it lives in its own
virtualenv, ``.venv-checkov`` (made by ``make test`` from requirements-checkov.txt), and
runs as a subprocess; ``FRAUDSTACK_CHECKOV`` may point at another checkov executable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import load_config
from tests.infra.scoring_app_helpers import STACKS, preview

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "Namespace", "ResourceQuota", "LimitRange", "ServiceAccount", "Deployment", "Job", "Service",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Ingress",
}


def _checkov() -> str:
    path = os.environ.get("FRAUDSTACK_CHECKOV") or str(ROOT / ".venv-checkov" / "bin" / "checkov")
    assert Path(path).is_file(), (
        f"checkov not found at {path}: run `make checkov` (or `make test`), which installs "
        "requirements-checkov.txt into .venv-checkov"
    )
    return path


@pytest.mark.parametrize("stack", STACKS)
def test_preview_writes_every_object_and_the_pack_passes(stack):
    code, plan, directory = preview(stack)
    assert code == 0, [v for v in plan["violations"] if v["enforcement"] == "mandatory"]
    k8s_violations = [v for v in plan["violations"] if v["type"].startswith("kubernetes:")]
    # The only Kubernetes finding: production's ALB is internet-facing by configuration
    # (advisory by design, with the WAF rule mandatory).
    expected = [("k8s-alb-internal-scheme", "advisory", "app-ingress")] if stack == "production" else []
    assert [(v["policy"], v["enforcement"], v["name"]) for v in k8s_violations] == expected
    objects = [yaml.safe_load(f.read_text()) for f in sorted(directory.glob("*.yaml"))]
    declared = [r for r in plan["resources"]
                if r["type"].startswith("kubernetes:") and not r["type"].startswith("kubernetes:helm.sh/")]
    # The service's 13 objects and the monitoring namespace's 6 (namespace, quota, limits,
    # three NetworkPolicies); the charts' own objects are not in the plan.
    assert len(objects) == len(declared) == 13 + 6
    assert {o["kind"] for o in objects} == KINDS
    assert sorted(f.name for f in directory.glob("networkpolicy-*.yaml")) == [
        "networkpolicy-fraudstack-allow-egress.yaml", "networkpolicy-fraudstack-allow-ingress-from-alb.yaml",
        "networkpolicy-fraudstack-default-deny.yaml", "networkpolicy-monitoring-allow-prometheus-adapter.yaml",
        "networkpolicy-monitoring-allow-prometheus.yaml", "networkpolicy-monitoring-default-deny.yaml"]
    assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace") == ["fraudstack", "monitoring"]
    in_monitoring = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects
                           if o["kind"] != "Namespace" and o["metadata"]["namespace"] == "monitoring")
    assert in_monitoring == ["LimitRange/limits", "NetworkPolicy/allow-prometheus", "NetworkPolicy/allow-prometheus-adapter",
                             "NetworkPolicy/default-deny", "ResourceQuota/quota"]
    for obj in objects:
        assert obj["kind"] == "Namespace" or obj["metadata"]["namespace"] in ("fraudstack", "monitoring"), obj["metadata"]


@pytest.mark.parametrize("stack", STACKS)
def test_kubernetes_validate_strict_reports_no_error(stack):
    _, _, directory = preview(stack)
    version = load_config(stack).cluster.kubernetes_version
    files = sorted(str(f) for f in directory.glob("*.yaml"))
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, "--quiet", *files],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout and "WARN" not in result.stdout, result.stdout


def test_kubernetes_validate_catches_a_broken_object(tmp_path):
    _, _, directory = preview("staging")
    text = (directory / "deployment-fraudstack-scoring-api.yaml").read_text()
    broken = tmp_path / "deployment.yaml"
    broken.write_text(text.replace("readinessProbe:", "readynessProbe:"))
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.34", "--quiet", str(broken)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "readynessProbe" in result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_reports_no_failed_check(stack):
    _, _, directory = preview(stack)
    result = subprocess.run(
        [_checkov(), "-d", str(directory), "--framework", "kubernetes", "--quiet", "--compact", "--skip-download"],
        capture_output=True, text=True, timeout=120,
    )
    counts = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", result.stdout)
    assert counts, result.stdout + result.stderr
    passed, failed, skipped = map(int, counts.groups())
    assert (failed, result.returncode) == (0, 0), result.stdout
    assert passed >= 150
    # One suppression per workload, only in staging, and only for the digest check: its
    # image is an immutable tag (the ECR repository refuses to overwrite tags).
    assert skipped == (2 if stack == "staging" else 0)
    for path in directory.glob("*.yaml"):
        annotations = (yaml.safe_load(path.read_text())["metadata"].get("annotations") or {})
        skips = {k: v for k, v in annotations.items() if k.startswith("checkov.io/skip")}
        if skips:
            assert stack == "staging" and path.name.startswith(("deployment-", "job-"))
            assert list(skips.values()) == [
                "CKV_K8S_43=pinned by an immutable tag: the ECR repository refuses to overwrite tags "
                "(imageTagMutability IMMUTABLE)"]


def test_gpu_variant_passes_the_pack_kubernetes_validate_and_checkov(tmp_path):
    from policies.engine import evaluate
    from tests.infra.scoring_app_helpers import plan
    from tests.infra.test_scoring_app import _gpu_plan
    from tools.preview import policy_config, write_manifests

    p = _gpu_plan("production")
    violations = evaluate(p["resources"], policy_config("production", None, ROOT), project=p["project"], stack="production")
    assert [v for v in violations if v["enforcement"] == "mandatory"] == []
    files = write_manifests(p["resources"], tmp_path)
    assert len(files) == 13 + 6
    validate = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.34", "--quiet",
                               *map(str, files)], capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stdout
    result = subprocess.run([_checkov(), "-d", str(tmp_path), "--framework", "kubernetes", "--quiet", "--compact",
                             "--skip-download"], capture_output=True, text=True, timeout=120)
    assert "Failed checks: 0," in result.stdout and result.returncode == 0, result.stdout
