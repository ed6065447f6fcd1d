"""The offline preview: JSON shape, manifests, summary and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import preview
from tools.plan import PROJECT_DIR

PY = sys.executable


@pytest.fixture(scope="module")
def staging_plan(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("plan") / "staging.json"
    code = preview.main(["--stack", "staging", "--json", str(out)])
    plan = json.loads(out.read_text())
    mandatory = [v for v in plan["violations"] if v["enforcement"] == "mandatory"]
    # Whether the program is clean is test_cli_stack_is_clean's business; here, consistency.
    assert code == (preview.EXIT_VIOLATIONS if mandatory else preview.EXIT_OK)
    return plan


def test_json_shape(staging_plan):
    assert list(staging_plan) == ["project", "stack", "resources", "violations", "outputs"]
    assert (staging_plan["project"], staging_plan["stack"]) == ("fraudstack", "staging")
    providers = {r["name"] for r in staging_plan["resources"] if r["type"].startswith("pulumi:providers:")}
    for r in staging_plan["resources"]:
        assert list(r) == ["type", "name", "parent", "custom", "provider", "inputs", "dependencies"]
        # "" is the default provider; explicit ones (the cluster's Kubernetes provider) are in the plan.
        assert isinstance(r["inputs"], dict) and isinstance(r["custom"], bool) and r["provider"] in providers | {""}
    for v in staging_plan["violations"]:
        assert list(v) == ["policy", "enforcement", "severity", "type", "name", "message"]
        assert v["enforcement"] in ("mandatory", "advisory")
    roots = {r["name"]: r["type"] for r in staging_plan["resources"] if r["parent"] is None}
    assert roots["network"] == "fraudstack:aws:Network"
    assert all(t.startswith("fraudstack:") for t in roots.values())


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_cli_stack_is_clean(tmp_path, stack):
    out = tmp_path / f"{stack}.json"
    proc = subprocess.run([PY, "-m", "tools.preview", "--stack", stack, "--json", str(out)],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert f"fraudstack / {stack}:" in proc.stdout
    assert "violations: 0 mandatory" in proc.stdout, proc.stdout
    assert proc.returncode == preview.EXIT_OK, proc.stderr
    assert json.loads(out.read_text())["stack"] == stack


def test_production_plan_is_highly_available(tmp_path):
    out = tmp_path / "production.json"
    preview.main(["--stack", "production", "--json", str(out), "--quiet"])
    plan = json.loads(out.read_text())
    subnets = [r for r in plan["resources"] if r["type"] == "aws:ec2/subnet:Subnet"]
    tiers = {r["inputs"]["tags"]["tier"] for r in subnets}
    zones = {r["inputs"]["availabilityZoneId"] for r in subnets}
    assert tiers == {"public", "private", "isolated"} and len(zones) >= 3
    assert len([r for r in plan["resources"] if r["type"] == "aws:ec2/natGateway:NatGateway"]) == len(zones)
    [flow] = [r for r in plan["resources"] if r["type"] == "aws:ec2/flowLog:FlowLog"]
    assert flow["inputs"]["trafficType"] == "ALL"
    [sg] = [r for r in plan["resources"] if r["type"] == "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"]
    assert sg["inputs"]["ingress"] == [] == sg["inputs"]["egress"]


def test_cli_config_error_is_one_line_naming_the_key(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((PROJECT_DIR / "Pulumi.yaml").read_text())
    (project / "__main__.py").write_text((PROJECT_DIR / "__main__.py").read_text())
    bad = (PROJECT_DIR / "Pulumi.production.yaml").read_text().replace("flowLogRetentionDays: 365", "flowLogRetentionDays: -7")
    assert "-7" in bad
    (project / "Pulumi.production.yaml").write_text(bad)
    proc = subprocess.run([PY, "-m", "tools.preview", "--stack", "production", "--project-dir", str(project)],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert proc.returncode == preview.EXIT_FAILED
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "fraudstack:network.flowLogRetentionDays: -7 is not a retention CloudWatch accepts "
        "(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)"
    ]


def test_unknown_stack_fails(capsys):
    assert preview.main(["--stack", "qa"]) == preview.EXIT_FAILED
    assert capsys.readouterr().err.strip() == f"no stack file Pulumi.qa.yaml in {PROJECT_DIR}"


def _rds(name: str, **inputs) -> dict:
    return {"type": "aws:rds/instance:Instance", "name": name, "parent": "data", "custom": True, "provider": "", "inputs": inputs}


def test_plan_file_edited_by_hand_fails_on_mandatory_violation(staging_plan, tmp_path, capsys):
    edited = dict(staging_plan)
    edited["resources"] = staging_plan["resources"] + [
        {"type": "fraudstack:aws:Data", "name": "data", "parent": None, "custom": False, "provider": "", "inputs": {}},
        _rds("audit-db", storageEncrypted=False, publiclyAccessible=True, multiAz=False, engine="postgres"),
    ]
    path, out = tmp_path / "edited.json", tmp_path / "checked.json"
    path.write_text(json.dumps(edited))
    assert preview.main(["--plan", str(path), "--json", str(out)]) == preview.EXIT_VIOLATIONS
    found = {(v["policy"], v["enforcement"]) for v in json.loads(out.read_text())["violations"] if v["name"] == "audit-db"}
    assert {("rds-storage-encrypted", "mandatory"), ("rds-not-public", "mandatory")} <= found
    # staging's policy config makes Multi-AZ advisory
    assert ("rds-multi-az", "advisory") in found
    text = capsys.readouterr().out
    assert "[mandatory/critical] rds-storage-encrypted: aws:rds/instance:Instance audit-db:" in text


def test_plan_file_unchanged_gives_the_same_verdict(staging_plan, tmp_path):
    path, out = tmp_path / "plan.json", tmp_path / "again.json"
    path.write_text(json.dumps(staging_plan))
    code = preview.main(["--plan", str(path), "--json", str(out)])
    again = json.loads(out.read_text())
    assert again == staging_plan
    mandatory = any(v["enforcement"] == "mandatory" for v in again["violations"])
    assert code == (preview.EXIT_VIOLATIONS if mandatory else preview.EXIT_OK)


@pytest.mark.parametrize("content,message", [
    ("not json", "not valid JSON (Expecting value at line 1)"),
    ('{"project": "fraudstack", "stack": "staging"}', "`resources` must be a list"),
    ('{"project": "fraudstack", "stack": "staging", "resources": [{"type": "aws:ec2/vpc:Vpc"}]}',
     "resources[0].name: must be a non-empty string"),
    ('{"project": "fraudstack", "stack": "staging", "resources": [{"type": "t", "name": "n", "inputs": []}]}',
     "resources[0].inputs: must be an object"),
])
def test_bad_plan_file(tmp_path, capsys, content, message):
    path = tmp_path / "plan.json"
    path.write_text(content)
    assert preview.main(["--plan", str(path)]) == preview.EXIT_FAILED
    assert capsys.readouterr().err.strip() == f"{path}: {message}"


def test_advisory_only_exits_zero_and_is_reported(staging_plan, tmp_path, capsys):
    def evaluate(resources, config, **kw):
        return [{"policy": "x", "enforcement": "advisory", "severity": "low", "type": "t", "name": "n", "message": "m"}]

    path = tmp_path / "plan.json"
    path.write_text(json.dumps(staging_plan))
    assert preview.main(["--plan", str(path)], evaluate=evaluate) == preview.EXIT_OK
    assert "violations: 0 mandatory, 1 advisory" in capsys.readouterr().out


def test_missing_policy_pack_means_no_violations(monkeypatch):
    monkeypatch.setitem(sys.modules, "policies.engine", None)
    assert preview.load_evaluator() is None


def test_broken_policy_pack_surfaces(monkeypatch, tmp_path):
    pkg = tmp_path / "policies"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "engine.py").write_text("import fraudstack_missing_dependency_xyz\n")
    for name in [m for m in sys.modules if m == "policies" or m.startswith("policies.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="fraudstack_missing_dependency_xyz"):
        preview.load_evaluator()


def test_manifests_one_file_per_object(tmp_path):
    resources = [
        {"type": "kubernetes:core/v1:Namespace", "name": "ns", "inputs": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scoring"}}},
        {"type": "kubernetes:apps/v1:Deployment", "name": "api", "inputs": {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "scoring-api", "namespace": "scoring"}, "spec": {"replicas": 3}}},
        {"type": "kubernetes:helm.sh/v3:Release", "name": "nvidia", "inputs": {"chart": "nvidia-device-plugin"}},
        {"type": "pulumi:providers:kubernetes", "name": "k8s", "inputs": {}},
        {"type": "aws:ec2/vpc:Vpc", "name": "vpc", "inputs": {"cidrBlock": "10.0.0.0/16"}},
    ]
    stale = tmp_path / "old.yaml"
    stale.write_text("kind: Gone\n")
    written = preview.write_manifests(resources, tmp_path)
    assert sorted(p.name for p in written) == ["deployment-scoring-scoring-api.yaml", "namespace-cluster-scoring.yaml"]
    assert not stale.exists()
    import yaml

    assert yaml.safe_load((tmp_path / "deployment-scoring-scoring-api.yaml").read_text()) == resources[1]["inputs"]


@pytest.mark.parametrize("edit,policy,names", [
    ("flow-log-reject", "vpc-flow-log-all-traffic", {"network-flow-log"}),
    ("default-sg-rule", "vpc-default-sg-no-rules", {"network-default-sg"}),
    ("private-public-ip", "subnet-no-public-ip", {"network-private-euw1-az1"}),
])
def test_plan_with_network_edited_by_hand_fails(staging_plan, tmp_path, edit, policy, names):
    edited = json.loads(json.dumps(staging_plan))
    for r in edited["resources"]:
        if edit == "flow-log-reject" and r["type"] == "aws:ec2/flowLog:FlowLog":
            r["inputs"]["trafficType"] = "REJECT"
        if edit == "default-sg-rule" and r["type"] == "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup":
            r["inputs"]["ingress"] = [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]
        if edit == "private-public-ip" and r["name"] == "network-private-euw1-az1":
            r["inputs"]["mapPublicIpOnLaunch"] = True
    path, out = tmp_path / "edited.json", tmp_path / "checked.json"
    path.write_text(json.dumps(edited))
    assert preview.main(["--plan", str(path), "--json", str(out), "--quiet"]) == preview.EXIT_VIOLATIONS
    violations = json.loads(out.read_text())["violations"]
    assert {v["name"] for v in violations if v["policy"] == policy and v["enforcement"] == "mandatory"} == names


def test_manifest_of_a_secret_stays_schema_valid(tmp_path):
    import yaml

    secret = {"type": "kubernetes:core/v1:Secret", "name": "db", "inputs": {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "scoring"}, "stringData": "[secret]"}}
    [path] = preview.write_manifests([secret], tmp_path)
    assert yaml.safe_load(path.read_text()) == {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "scoring", "annotations": {"fraudstack/redacted-fields": "stringData"}},
        "stringData": {},
    }
    assert secret["inputs"]["stringData"] == "[secret]"  # the plan itself is untouched
