"""The plan harness: the whole program under mocks, many times in one process."""

from __future__ import annotations

import pulumi
import pytest

from tools.plan import MOCK_SECRET_VALUE, StackFileError, stack_config, run_program


def test_runs_both_stacks_in_one_process():
    staging = run_program("staging")
    production = run_program("production")
    again = run_program("staging")
    assert (staging["project"], staging["stack"]) == ("fraudstack", "staging")
    assert production["stack"] == "production"
    assert staging["outputs"]["environment"] == "staging"
    assert production["outputs"]["environment"] == "production"
    assert again == staging
    assert staging["violations"] == []


def test_overrides_do_not_leak_between_runs():
    with pytest.raises(pulumi.RunError, match="fraudstack:network.azCount"):
        run_program("production", {"fraudstack:network": {"azCount": 2}})
    assert run_program("production")["outputs"]["environment"] == "production"


def test_stack_config_flattens_like_the_cli():
    flat, secrets = stack_config("staging", {"fraudstack:dbPassword": {"secure": "AAABAC=="}, "fraudstack:network": {"azCount": 3}})
    assert flat["aws:region"] == "eu-west-1"
    assert flat["fraudstack:pciScope"] == "true"
    assert flat["fraudstack:network"] == (
        '{"azCount": 3, "vpcCidr": "10.20.0.0/16", "natStrategy": "single", "privateSubnetPrefix": 19, '
        '"publicSubnetPrefix": 24, "isolatedSubnetPrefix": 24, "flowLogRetentionDays": 90}'
    )
    assert flat["fraudstack:dbPassword"] == MOCK_SECRET_VALUE
    assert secrets == ["fraudstack:dbPassword"]


def test_missing_stack_file():
    with pytest.raises(StackFileError, match="no stack file Pulumi.qa.yaml"):
        stack_config("qa")
