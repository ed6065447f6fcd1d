"""Catalogue CLI, generated docs, coverage of the rule catalogue, per-stack config."""
import json
import time

import pytest

from policies import catalog, catalogue, coverage
from policies.engine import evaluate, load_config, resolve_config
from policies.rules import RULES

BY_ID = {r.id: r for r in RULES}


def test_docs_are_in_sync_with_the_rules():
    assert catalog.DOC_PATH.read_text(encoding="utf-8") == catalog.markdown(), \
        "docs/policies.md is stale: run `python -m policies.catalog --write`"


def test_json_lists_every_rule_with_its_metadata(capsys):
    assert catalog.main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in out] == [r.id for r in RULES]
    rds = next(r for r in out if r["id"] == "rds-not-public")
    assert rds == {
        "id": "rds-not-public", "name": "RDS not publicly accessible",
        "description": "RDS instances are not publicly accessible.", "severity": "critical",
        "enforcement": "mandatory", "scope": "resource", "resource_types": ["aws:rds/instance:Instance"],
        "references": ["A30", "CKV_AWS_17", "AVD-AWS-0180", "awsguard:rds-instance-public-access"],
        "catalogue_rows": ["A30"], "pci_dss_v4": ["1.4.4"],
        "remediation": "Set publicly_accessible=False and place the instance in the isolated subnets.",
        "config": {}, "advisory_reason": "",
    }
    for r in out:
        assert r["severity"] in ("critical", "high", "medium", "low")
        assert r["enforcement"] in ("mandatory", "advisory")
        assert r["catalogue_rows"] and r["remediation"] and r["description"]


def test_table_lists_every_rule(capsys):
    assert catalog.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{r.id} " in out for r in RULES)
    assert f"{len(RULES)} rules (" in out


def test_scanner_ids_expand_the_catalogue_shorthand():
    rows = catalogue.rows()
    assert rows["A7"].scanner_ids == ("CKV_AWS_229", "CKV_AWS_230", "CKV_AWS_231", "CKV_AWS_232", "CKV2_AWS_1",
                                      "AVD-AWS-0102", "AVD-AWS-0105")
    assert rows["A75"].scanner_ids == ("CKV_AWS_62", "CKV_AWS_1")
    assert rows["A76"].scanner_ids == ("CKV_AWS_63", "CKV_AWS_49", "AVD-AWS-0057")
    assert rows["A16"].scanner_ids == ("awsguard:security-group-no-rule-management-conflicts",)


def test_every_required_row_has_a_rule_or_a_reason():
    """Y/V rows of aws_rules.tsv, Y rows of k8s_rules.tsv and every own rule (both halves of the pack)."""
    assert coverage.missing(RULES) == []


def test_reasons_are_only_for_rows_that_cannot_apply():
    rows = catalogue.rows()
    assert sorted(rid for rid in coverage.REASONS if rows[rid].applies not in ("C", "N")) == []
    uncovered_cn = [rid for rid, row in rows.items() if row.applies in ("C", "N") and not coverage.coverage(RULES)[rid]]
    assert sorted(set(uncovered_cn) - set(coverage.reasons())) == []


def test_advisory_rules_are_explained_in_the_docs():
    doc = catalog.DOC_PATH.read_text(encoding="utf-8")
    for r in RULES:
        if r.enforcement == "advisory":
            assert f"**`{r.id}`**" in doc and r.advisory_reason in doc


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_stack_configs_are_valid(stack):
    levels, props = resolve_config(load_config(stack), RULES)
    assert set(levels) == set(BY_ID)


def test_production_config_is_the_defaults_and_staging_only_relaxes():
    prod, staging = load_config("production"), load_config("staging")
    assert set(prod) == set(staging)
    for pid, values in prod.items():
        rule = BY_ID[pid]
        for key, value in values.items():
            default = rule.enforcement if key == "enforcementLevel" else rule.defaults()[key]
            assert value == default, (pid, key)
            relaxed = staging[pid].get(key, default)
            if key == "enforcementLevel":
                assert relaxed in (default, "advisory")
            elif key.startswith("minimum"):
                assert relaxed <= default
            elif isinstance(default, bool):
                assert relaxed in (default, False)


def test_staging_thresholds():
    _, props = resolve_config(load_config("staging"), RULES)
    assert props["rds-backup-retention"]["minimumDays"] == 7
    assert props["log-group-retention-minimum"]["minimumDays"] == 30
    assert props["nat-per-az"]["natPerAz"] is False
    levels, _ = resolve_config(load_config("staging"), RULES)
    assert (levels["rds-multi-az"], levels["rds-storage-encrypted"]) == ("advisory", "mandatory")


def test_a_few_hundred_resources_evaluate_well_under_a_second():
    from tests.policies.helpers import res
    plan = []
    for i in range(100):
        plan += [res("aws:rds/instance:Instance", f"db-{i}", storageEncrypted=True, publiclyAccessible=False, tags={}),
                 res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", f"in-{i}", securityGroupId=f"sg-{i}",
                     ipProtocol="tcp", fromPort=22.0, toPort=22.0, cidrIpv4="0.0.0.0/0"),
                 res("kubernetes:apps/v1:Deployment", f"app-{i}", metadata={"name": f"app-{i}", "namespace": "scoring"},
                     spec={"replicas": 2, "selector": {"matchLabels": {"app": f"app-{i}"}},
                           "template": {"metadata": {"labels": {"app": f"app-{i}"}},
                                        "spec": {"containers": [{"name": "c", "image": "scoring:latest"}]}}})]
    start = time.perf_counter()
    found = evaluate(plan, load_config("production"))
    elapsed = time.perf_counter() - start
    assert {v["name"] for v in found if v["policy"] == "sg-no-world-ssh"} == {f"in-{i}" for i in range(100)}
    assert elapsed < 1.0, f"{len(plan)} resources took {elapsed:.2f}s"


def test_bench_reports_each_plan(tmp_path, capsys):
    from policies import bench
    from tests.policies.helpers import res
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"project": "fraudstack", "stack": "staging",
                                "resources": [res("aws:rds/instance:Instance", "db", publiclyAccessible=True)]}))
    assert bench.main([str(plan), "--repeat", "2"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    n = len(evaluate([res("aws:rds/instance:Instance", "db", publiclyAccessible=True)], load_config("staging"), stack="staging"))
    assert line.startswith(f"{plan}: stack staging, 1 resources, {n} violations, best ")
