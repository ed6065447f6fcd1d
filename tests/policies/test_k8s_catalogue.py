"""The Kubernetes half of the catalogue is covered: every 'Y' row of k8s_rules.tsv, the
'V' ALB rows and the Kubernetes own rules have a rule; every other row says why not."""
from __future__ import annotations

import csv

from policies import catalogue
from tests.policies import k8s_fixtures as fx

ALB_ROWS = {f"A{n}" for n in range(94, 103)}
OWN_ROWS = {"X3", "X7", "X16", "X17", "X18", "X19"}


def _k8s_rows() -> list[dict[str, str]]:
    with open(catalogue.CATALOGUE_DIR / "k8s_rules.tsv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_every_applicable_row_has_a_rule_and_no_rule_cites_an_inapplicable_one():
    rows = _k8s_rows()
    referenced = {ref for r in fx.K8S_RULES for ref in r.references}
    applicable = {r["id"] for r in rows if r["applies"] == "Y"}
    assert sorted(applicable - referenced) == []
    assert sorted(ALB_ROWS - referenced) == []
    assert sorted(OWN_ROWS - referenced) == []
    cited_k = {ref for ref in referenced if ref.startswith("K")}
    # conditional rows: they guard nginx Ingresses and RBAC objects if any are added
    assert sorted(cited_k - applicable) == ["K58", "K68"]
    assert len(applicable) == 66  # K1-K67 without K58


def test_rows_without_a_rule_give_the_reason():
    reasons = {r["id"]: r["reason"] for r in _k8s_rows() if r["applies"] != "Y"}
    assert sorted(reasons) == ["K58", "K68", "K69"]
    assert reasons["K58"].startswith("Conditional: ") and "k8s-no-nginx-snippets" in reasons["K58"]
    assert reasons["K68"].startswith("Conditional: ") and "k8s-rbac-least-privilege" in reasons["K68"]
    assert reasons["K69"].startswith("Not applicable: ") and "EKS-managed control plane" in reasons["K69"]
    assert all(r["reason"] == "" for r in _k8s_rows() if r["applies"] == "Y")


def test_scanner_ids_of_graph_checks_keep_their_prefix():
    rows = catalogue.rows()
    assert rows["K41"].scanner_ids == ("CKV2_K8S_6", "kube-score:pod-networkpolicy", "KSV038")
    assert rows["K4"].scanner_ids == ("CKV_K8S_23", "KSV105")
    assert "CKV2_K8S_1" in rows["K68"].scanner_ids and "CKV_K8S_155" in rows["K68"].scanner_ids


def test_kubernetes_rules_carry_pci_requirements_and_remediation():
    by_id = {r.id: r for r in fx.K8S_RULES}
    assert by_id["k8s-no-privileged-containers"].pci == ("2.2.1/2.2.4/2.2.5",)
    assert by_id["k8s-alb-tls12-policy"].pci == ("4.2.1",)
    assert by_id["k8s-alb-waf-when-internet-facing"].pci == ("6.4.2",)
    assert by_id["k8s-irsa-role-trust"].pci == ("7.2.1/7.2.2/7.2.5",)
    assert by_id["k8s-image-pinned"].pci == ("6.3.3 (+6.3.1)",)
    assert all(r.remediation and r.description for r in fx.K8S_RULES)
