"""Pure subnet arithmetic."""

import pytest

from components.subnets import SubnetPlanError, plan_subnets


def test_production_layout():
    plan = plan_subnets("10.30.0.0/16", 3, 19, 24, 24)
    assert plan.private == ("10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19")
    assert plan.public == ("10.30.96.0/24", "10.30.97.0/24", "10.30.98.0/24")
    assert plan.isolated == ("10.30.99.0/24", "10.30.100.0/24", "10.30.101.0/24")


def test_alignment_after_smaller_blocks():
    # public /26s then isolated /24s: the isolated block is aligned up to a /24 boundary.
    plan = plan_subnets("10.0.0.0/20", 2, 22, 26, 24)
    assert plan.private == ("10.0.0.0/22", "10.0.4.0/22")
    assert plan.public == ("10.0.8.0/26", "10.0.8.64/26")
    assert plan.isolated == ("10.0.9.0/24", "10.0.10.0/24")


def test_adding_an_az_keeps_existing_private_subnets():
    two = plan_subnets("10.20.0.0/16", 2, 19, 24, 24)
    three = plan_subnets("10.20.0.0/16", 3, 19, 24, 24)
    assert three.private[:2] == two.private


def test_too_small():
    with pytest.raises(SubnetPlanError, match=r"10.0.0.0/20 is too small for 3 AZs"):
        plan_subnets("10.0.0.0/20", 3, 22, 24, 24)
