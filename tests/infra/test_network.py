"""The network component's exact inputs for both stacks (the whole program under mocks)."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.network import Network, NetworkArgs
from tools.plan import run_component, run_program

ACCOUNT = "123456789012"
REQUIRED = {"environment", "service", "owner", "data-classification", "pci-scope", "cost-center", "Name"}

EXPECTED = {
    "staging": {
        "zones": ["euw1-az1", "euw1-az2"],
        "vpc": "10.20.0.0/16",
        "private": ["10.20.0.0/19", "10.20.32.0/19"],
        "public": ["10.20.64.0/24", "10.20.65.0/24"],
        "isolated": ["10.20.66.0/24", "10.20.67.0/24"],
        "nats": ["euw1-az1"],
        "retention": 90,
    },
    "production": {
        "zones": ["euw1-az1", "euw1-az2", "euw1-az3"],
        "vpc": "10.30.0.0/16",
        "private": ["10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19"],
        "public": ["10.30.96.0/24", "10.30.97.0/24", "10.30.98.0/24"],
        "isolated": ["10.30.99.0/24", "10.30.100.0/24", "10.30.101.0/24"],
        "nats": ["euw1-az1", "euw1-az2", "euw1-az3"],
        "retention": 365,
    },
}


@pytest.fixture(scope="module", params=["staging", "production"])
def plan(request):
    return run_program(request.param)


def _of_type(plan, suffix):
    # Only the network's own resources: other components add log groups, keys, ...
    return [r for r in plan["resources"] if r["type"].endswith(suffix) and r["parent"] == "network"]


def _one(plan, name):
    [r] = [r for r in plan["resources"] if r["name"] == name]
    return r


def test_vpc(plan):
    exp = EXPECTED[plan["stack"]]
    [vpc] = _of_type(plan, ":Vpc")
    assert vpc["name"] == "network-vpc" and vpc["parent"] == "network"
    assert vpc["inputs"]["cidrBlock"] == exp["vpc"]
    assert vpc["inputs"]["enableDnsHostnames"] is True and vpc["inputs"]["enableDnsSupport"] is True
    assert vpc["inputs"]["tags"]["Name"] == f"fraudstack-{plan['stack']}-vpc"


@pytest.mark.parametrize("tier", ["private", "public", "isolated"])
def test_subnets_per_tier(plan, tier):
    exp = EXPECTED[plan["stack"]]
    subnets = {r["name"]: r["inputs"] for r in _of_type(plan, ":Subnet") if r["inputs"]["tags"]["tier"] == tier}
    assert sorted(subnets) == [f"network-{tier}-{z}" for z in exp["zones"]]
    for zone, cidr in zip(exp["zones"], exp[tier]):
        inputs = subnets[f"network-{tier}-{zone}"]
        assert inputs["cidrBlock"] == cidr
        assert inputs["availabilityZoneId"] == zone
        assert "availabilityZone" not in inputs  # ids, never account-specific names
        assert inputs["mapPublicIpOnLaunch"] is False
        role_tags = {k: v for k, v in inputs["tags"].items() if k.startswith("kubernetes.io/")}
        assert role_tags == {"public": {"kubernetes.io/role/elb": "1"},
                             "private": {"kubernetes.io/role/internal-elb": "1"},
                             "isolated": {}}[tier]


def test_nat_gateways(plan):
    exp = EXPECTED[plan["stack"]]
    nats = _of_type(plan, ":NatGateway")
    assert sorted(n["name"] for n in nats) == [f"network-nat-{z}" for z in exp["nats"]]
    eips = _of_type(plan, ":Eip")
    assert sorted(e["name"] for e in eips) == [f"network-nat-{z}-eip" for z in exp["nats"]]
    assert all(e["inputs"]["domain"] == "vpc" for e in eips)
    for nat in nats:
        assert nat["inputs"]["connectivityType"] == "public"
        assert "network-igw" in nat["dependencies"]
        assert nat["inputs"]["subnetId"].startswith("subnet-")
    assert len(plan["outputs"]["natGatewayIds"]) == len(exp["nats"])


def test_routing(plan):
    exp = EXPECTED[plan["stack"]]
    nat_ids = plan["outputs"]["natGatewayIds"]
    public = _one(plan, "network-public-rt")["inputs"]
    assert public["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": public["routes"][0]["gatewayId"]}]
    assert public["routes"][0]["gatewayId"].startswith("igw-")
    for index, zone in enumerate(exp["zones"]):
        private = _one(plan, f"network-private-{zone}-rt")["inputs"]
        nat = nat_ids[index] if len(nat_ids) > 1 else nat_ids[0]
        assert private["routes"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": nat}]
    assert _one(plan, "network-isolated-rt")["inputs"]["routes"] == []
    assert _one(plan, "network-default-rt")["inputs"]["routes"] == []
    associations = _of_type(plan, ":RouteTableAssociation")
    assert len(associations) == 3 * len(exp["zones"])


def test_default_security_group_has_no_rules(plan):
    [sg] = _of_type(plan, ":DefaultSecurityGroup")
    assert sg["inputs"]["ingress"] == [] and sg["inputs"]["egress"] == []
    assert sg["inputs"]["vpcId"] == plan["outputs"]["vpcId"]


def test_flow_log_to_encrypted_group(plan):
    exp = EXPECTED[plan["stack"]]
    [flow] = _of_type(plan, ":FlowLog")
    [group] = _of_type(plan, ":LogGroup")
    [key] = _of_type(plan, "kms/key:Key")
    group_name = f"/fraudstack-{plan['stack']}/vpc-flow-logs"
    assert flow["inputs"]["trafficType"] == "ALL"
    assert flow["inputs"]["logDestinationType"] == "cloud-watch-logs"
    assert flow["inputs"]["logDestination"] == f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{group_name}"
    assert flow["inputs"]["vpcId"] == plan["outputs"]["vpcId"]
    assert flow["inputs"]["maxAggregationInterval"] == 60
    assert group["inputs"]["name"] == group_name
    assert group["inputs"]["retentionInDays"] == exp["retention"]
    assert group["inputs"]["kmsKeyId"].startswith(f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/")
    assert key["inputs"]["enableKeyRotation"] is True
    statements = json.loads(key["inputs"]["policy"])["Statement"]
    assert statements[1] == {
        "Sid": "FlowLogGroupEncryption",
        "Effect": "Allow",
        "Action": ["kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
        "Resource": "*",
        "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
        "Condition": {
            "ArnEquals": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{group_name}"},
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
        },
    }
    assert statements[0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def test_flow_log_role_is_scoped(plan):
    role = _one(plan, "network-flow-logs-role")
    assert json.loads(role["inputs"]["assumeRolePolicy"])["Statement"] == [{
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
        "Condition": {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:eu-west-1:{ACCOUNT}:vpc-flow-log/*"},
        },
    }]
    policy = json.loads(_one(plan, "network-flow-logs-policy")["inputs"]["policy"])
    group_arn = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/fraudstack-{plan['stack']}/vpc-flow-logs"
    assert policy["Statement"] == [
        {
            "Sid": "DeliverToTheFlowLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Resource": [group_arn, f"{group_arn}:*"],
        },
        {
            "Sid": "FindTheFlowLogGroup",
            "Effect": "Allow",
            "Action": "logs:DescribeLogGroups",
            "Resource": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:*",
        },
    ]


def test_s3_gateway_endpoint(plan):
    exp = EXPECTED[plan["stack"]]
    [endpoint] = _of_type(plan, ":VpcEndpoint")
    assert endpoint["inputs"]["serviceName"] == "com.amazonaws.eu-west-1.s3"
    assert endpoint["inputs"]["vpcEndpointType"] == "Gateway"
    # every private route table plus the isolated one
    assert len(endpoint["inputs"]["routeTableIds"]) == len(exp["zones"]) + 1
    assert all(i.startswith("rtb-") for i in endpoint["inputs"]["routeTableIds"])


def test_every_taggable_resource_has_required_tags(plan):
    for r in plan["resources"]:
        if r["type"].startswith("aws:") and "tags" in r["inputs"]:
            assert REQUIRED <= set(r["inputs"]["tags"]), r["name"]
            assert r["inputs"]["tags"]["environment"] == plan["stack"]
    untagged = {r["type"] for r in plan["resources"]
                if r["type"].startswith("aws:") and "tags" not in r["inputs"] and r["parent"] == "network"}
    # These AWS resource types take no tags.
    assert untagged == {"aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:iam/rolePolicy:RolePolicy", "aws:kms/alias:Alias"}


def test_outputs(plan):
    exp = EXPECTED[plan["stack"]]
    out = plan["outputs"]
    assert out["availabilityZoneIds"] == exp["zones"]
    assert out["availabilityZones"] == [f"eu-west-1{c}" for c in "abc"[: len(exp["zones"])]]
    assert out["vpcCidr"] == exp["vpc"]
    for tier in ("public", "private", "isolated"):
        assert len(out[f"{tier}SubnetIds"]) == len(exp["zones"])
    assert out["flowLogGroupName"] == f"/fraudstack-{plan['stack']}/vpc-flow-logs"


def test_more_azs_than_the_region_has_names_the_key():
    with pytest.raises(pulumi.RunError) as err:
        run_program("staging", {"fraudstack:network": {"azCount": 4}})
    assert str(err.value) == (
        "fraudstack:network.azCount: 4 availability zones requested but eu-west-1 offers 3 (euw1-az1, euw1-az2, euw1-az3)"
    )


def test_other_region_uses_its_zone_ids():
    plan = run_program("production", {"aws:region": "us-east-1", "fraudstack:region": "us-east-1"})
    assert plan["outputs"]["availabilityZoneIds"] == ["use1-az1", "use1-az2", "use1-az3"]
    [endpoint] = _of_type(plan, ":VpcEndpoint")
    assert endpoint["inputs"]["serviceName"] == "com.amazonaws.us-east-1.s3"


def test_given_key_is_used_instead_of_own():
    key = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    records = run_component(lambda: Network("net", NetworkArgs(
        name_prefix="fraudstack-test", vpc_cidr="10.9.0.0/16", az_count=2, nat_per_az=False,
        private_subnet_prefix=20, public_subnet_prefix=24, isolated_subnet_prefix=24,
        flow_log_retention_days=30, tags={"environment": "test"}, flow_log_kms_key_arn=key)))
    types = [r["type"] for r in records]
    assert "aws:kms/key:Key" not in types and "aws:kms/alias:Alias" not in types
    [group] = [r for r in records if r["type"] == "aws:cloudwatch/logGroup:LogGroup"]
    assert group["inputs"]["kmsKeyId"] == key
    private = sorted(r["inputs"]["cidrBlock"] for r in records if r["type"] == "aws:ec2/subnet:Subnet" and r["inputs"]["tags"]["tier"] == "private")
    assert private == ["10.9.0.0/20", "10.9.16.0/20"]
