"""The one tagging function."""

from components.tags import required_tags, with_name
from tests.infra.conftest import load_config


def test_required_tags_staging():
    assert required_tags(load_config("staging")) == {
        "environment": "staging",
        "service": "fraudstack",
        "owner": "fraud-platform-team",
        "data-classification": "confidential",
        "pci-scope": "in-scope",
        "cost-center": "fraud-platform",
    }


def test_out_of_scope_and_extra_tags():
    cfg = load_config("staging", {"fraudstack:pciScope": "false", "fraudstack:tags": {"team": "risk"}})
    tags = required_tags(cfg)
    assert tags["pci-scope"] == "out-of-scope"
    assert tags["team"] == "risk" and tags["cost-center"] == "fraud-platform"


def test_with_name_copies():
    base = {"environment": "staging"}
    assert with_name(base, "fraudstack-staging-vpc") == {"environment": "staging", "Name": "fraudstack-staging-vpc"}
    assert base == {"environment": "staging"}
