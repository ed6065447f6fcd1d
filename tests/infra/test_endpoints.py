"""The Endpoints component: private DNS, 443 from the nodes only, least-privilege policies."""

from __future__ import annotations

import json

import pytest

from components.endpoints import SERVICES, Endpoints, EndpointsArgs, bedrock_model_arns, endpoint_policy
from tests.infra.cluster_helpers import ACCOUNT, TAGS, of_type, one, policy
from tools.plan import run_component

VPCE = "aws:ec2/vpcEndpoint:VpcEndpoint"
SUBNETS = ["subnet-priv-a", "subnet-priv-b", "subnet-priv-c"]
MODELS = ["anthropic.claude-3-5-haiku-20241022-v1:0", "eu.anthropic.claude-sonnet-4-20250514-v1:0"]


def _args(**changes) -> EndpointsArgs:
    values = dict(vpc_id="vpc-0test", subnet_ids=SUBNETS, node_security_group_id="sg-nodes", region="eu-west-1",
                  account_id=ACCOUNT, model_ids=MODELS, tags=TAGS)
    values.update(changes)
    return EndpointsArgs(**values)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return run_component(lambda: Endpoints("endpoints", _args()))


def test_every_endpoint_is_interface_with_private_dns(records):
    endpoints = {r["inputs"]["serviceName"]: r["inputs"] for r in of_type(records, VPCE)}
    assert set(endpoints) == {f"com.amazonaws.eu-west-1.{s}" for s in
                              ("bedrock-runtime", "ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager", "monitoring")}
    sg = one(records, "aws:ec2/securityGroup:SecurityGroup", "endpoints-sg")
    for inputs in endpoints.values():
        assert inputs["vpcEndpointType"] == "Interface"
        assert inputs["privateDnsEnabled"] is True
        assert inputs["subnetIds"] == SUBNETS
        assert inputs["vpcId"] == "vpc-0test"
        assert len(inputs["securityGroupIds"]) == 1 and inputs["securityGroupIds"][0].startswith("sg-")
    assert "ingress" not in sg["inputs"] and "egress" not in sg["inputs"]


def test_security_group_admits_443_from_nodes_only(records):
    rules = of_type(records, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert [r["inputs"] for r in rules] == [
        {**rules[0]["inputs"], "referencedSecurityGroupId": "sg-nodes", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443}
    ]
    assert "cidrIpv4" not in rules[0]["inputs"]
    assert of_type(records, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule") == []


def test_bedrock_policy_allows_invoke_on_configured_models_only(records):
    doc = policy(one(records, VPCE, "endpoints-bedrock-runtime"))
    assert doc["Statement"] == [
        {
            "Sid": "InvokeApprovedModelsOnly",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "Resource": [
                "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
                f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0",
                "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
            ],
        }
    ]


def test_other_policies_pin_our_account(records):
    for name, actions in (("ecr-api", ["ecr:*"]), ("ecr-dkr", ["ecr:*"]), ("logs", ["logs:*"]),
                          ("secretsmanager", ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"])):
        [statement] = policy(one(records, VPCE, f"endpoints-{name}"))["Statement"]
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, name
        assert statement["Action"] == actions, name
    sts = policy(one(records, VPCE, "endpoints-sts"))["Statement"]
    assert sts[0]["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/*"
    assert sts[0]["Action"] == ["sts:AssumeRoleWithWebIdentity", "sts:AssumeRole", "sts:TagSession"]
    assert sts[1]["Action"] == "sts:GetCallerIdentity"


def test_bedrock_can_be_narrowed_to_the_service_role():
    role = f"arn:aws:iam::{ACCOUNT}:role/scoring-api"
    records = run_component(lambda: Endpoints("endpoints", _args(services=["bedrock_runtime"], bedrock_invoker_role_arns=[role])))
    [statement] = policy(one(records, VPCE, "endpoints-bedrock-runtime"))["Statement"]
    assert statement["Principal"] == {"AWS": [role]}


def test_endpoints_are_switchable():
    records = run_component(lambda: Endpoints("endpoints", _args(services=["bedrock_runtime"])))
    assert [r["inputs"]["serviceName"] for r in of_type(records, VPCE)] == ["com.amazonaws.eu-west-1.bedrock-runtime"]


def test_unknown_service_is_refused():
    with pytest.raises(Exception, match="unknown endpoint services"):
        run_component(lambda: Endpoints("endpoints", _args(services=["bedrock_runtime", "s3"])))


def test_model_arns_and_policy_pure():
    assert bedrock_model_arns(["amazon.titan-text-lite-v1"], "us-east-1", "1") == [
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-lite-v1"
    ]
    assert bedrock_model_arns(["global.anthropic.claude-x"], "us-east-1", "1") == [
        "arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-x",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-x",
    ]
    assert set(SERVICES) == {"bedrock_runtime", "ecr_api", "ecr_dkr", "sts", "logs", "secrets_manager", "monitoring"}
    # The service's PutMetricData (app/cloudwatch.py): its pods reach AWS only through endpoints.
    assert json.loads(endpoint_policy("monitoring", "1", "us-east-1", [])) == {"Version": "2012-10-17", "Statement": [
        {"Sid": "OwnAccountOnly", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"},
         "Action": ["cloudwatch:PutMetricData"], "Resource": "*"}]}
    assert "bedrock:*" not in endpoint_policy("bedrock-runtime", "1", "us-east-1", ["a.b"])
