"""The mock runtime: invoke answers, resource outputs, and what the monitor records."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest

from tools.mocks import SECRET_MARKER, UnknownInvokeError, render_policy_document
from tools.plan import run_component


def test_invokes_answer_realistically():
    seen: dict = {}

    def program():
        azs = aws.get_availability_zones(state="available")
        seen["names"], seen["ids"] = azs.names, azs.zone_ids
        seen["region"] = aws.get_region().region
        seen["partition"] = aws.get_partition().partition
        seen["account"] = aws.get_caller_identity().account_id
        seen["ami"] = aws.ssm.get_parameter(name="/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/standard/recommended/image_id").value

    run_component(program, region="us-east-2")
    assert seen["names"] == ["us-east-2a", "us-east-2b", "us-east-2c"]
    assert seen["ids"] == ["use2-az1", "use2-az2", "use2-az3"]
    assert seen["region"] == "us-east-2"
    assert seen["partition"] == "aws"
    assert seen["account"] == "123456789012"
    assert seen["ami"].startswith("ami-") and len(seen["ami"]) == 21


def test_unknown_invoke_names_its_token():
    with pytest.raises(UnknownInvokeError, match=r"no mock answer for invoke 'aws:ec2/getAmi:getAmi'"):
        run_component(lambda: aws.ec2.get_ami(owners=["amazon"], most_recent=True))


def test_unknown_invoke_inside_output_also_fails():
    def program():
        ami = aws.ec2.get_ami_output(owners=["amazon"], most_recent=True)
        aws.ec2.Vpc("vpc", cidr_block=ami.id)

    with pytest.raises(UnknownInvokeError, match="aws:ec2/getAmi:getAmi"):
        run_component(program)


def test_unknown_ssm_parameter_fails():
    with pytest.raises(UnknownInvokeError, match="/company/secret-thing"):
        run_component(lambda: aws.ssm.get_parameter(name="/company/secret-thing"))


def test_policy_document_renders_like_aws():
    rendered = json.loads(render_policy_document({
        "statements": [
            {"sid": "Trust", "actions": ["sts:AssumeRoleWithWebIdentity"],
             "principals": [{"type": "Federated", "identifiers": ["arn:aws:iam::123456789012:oidc-provider/x"]}],
             "conditions": [{"test": "StringEquals", "variable": "x:aud", "values": ["sts.amazonaws.com"]},
                            {"test": "StringEquals", "variable": "x:sub", "values": ["system:serviceaccount:a:b"]}]},
            {"effect": "Deny", "actions": ["s3:PutObject", "s3:GetObject"], "resources": ["*"],
             "principals": [{"type": "*", "identifiers": ["*"]}]},
        ],
    }))
    assert rendered == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Trust", "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
             "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"},
             "Condition": {"StringEquals": {"x:aud": "sts.amazonaws.com", "x:sub": "system:serviceaccount:a:b"}}},
            {"Effect": "Deny", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*", "Principal": "*"},
        ],
    }


def test_policy_document_through_the_invoke_reaches_inputs():
    def program():
        doc = aws.iam.get_policy_document_output(statements=[{
            "actions": ["sts:AssumeRole"],
            "principals": [{"type": "Service", "identifiers": ["vpc-flow-logs.amazonaws.com"]}],
        }])
        aws.iam.Role("role", assume_role_policy=doc.json)

    [role] = run_component(program)
    assert json.loads(role["inputs"]["assumeRolePolicy"]) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"}}],
    }


def test_resource_outputs_feed_apply_chains():
    seen: dict = {}

    def program():
        db = aws.rds.Instance("audit-db", identifier="fraudstack-audit", engine="postgres", instance_class="db.t4g.micro", allocated_storage=20)
        pulumi.Output.all(db.address, db.port, db.arn, db.endpoint).apply(lambda v: seen.update(db=v))
        key = aws.kms.Key("key")
        key.arn.apply(lambda a: seen.update(key=a))
        cluster = aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/x", vpc_config={"subnet_ids": ["subnet-1"]})
        cluster.identities.apply(lambda ids: seen.update(issuer=ids[0].oidcs[0].issuer))
        repo = aws.ecr.Repository("scoring", name="fraudstack/scoring")
        repo.repository_url.apply(lambda u: seen.update(repo=u))
        vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16")
        vpc.id.apply(lambda i: seen.update(vpc=i))

    run_component(program)
    address, port, arn, endpoint = seen["db"]
    assert address.startswith("fraudstack-audit.c") and address.endswith(".eu-west-1.rds.amazonaws.com")
    assert port == 5432 and endpoint == f"{address}:5432"
    assert arn == "arn:aws:rds:eu-west-1:123456789012:db:fraudstack-audit"
    assert seen["key"].startswith("arn:aws:kms:eu-west-1:123456789012:key/")
    assert seen["issuer"].startswith("https://oidc.eks.eu-west-1.amazonaws.com/id/")
    assert seen["repo"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraudstack/scoring"
    assert seen["vpc"].startswith("vpc-") and len(seen["vpc"]) == 21


def test_outputs_are_deterministic():
    ids = []
    for _ in range(2):
        run_component(lambda: aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16").id.apply(ids.append))
    assert ids[0] == ids[1]


class _Box(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fraudstack:test:Box", name, None, opts)
        self.secret = aws.secretsmanager.Secret(f"{name}-secret", opts=pulumi.ResourceOptions(parent=self))
        aws.secretsmanager.SecretVersion(
            f"{name}-version",
            secret_id=self.secret.id,
            secret_string=pulumi.Output.secret("test-key-not-a-secret"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def test_monitor_records_parents_secrets_and_dependencies():
    records = run_component(lambda: _Box("box"))
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"box", "box-secret", "box-version"}
    assert by_name["box"]["parent"] is None and by_name["box"]["custom"] is False
    assert by_name["box-secret"]["parent"] == "box" and by_name["box-secret"]["custom"] is True
    version = by_name["box-version"]
    assert version["inputs"]["secretString"] == SECRET_MARKER
    assert version["inputs"]["secretId"].startswith("arn:aws:secretsmanager:eu-west-1:123456789012:secret:box-secret-")
    assert version["dependencies"] == ["box-secret"]
    assert "test-key-not-a-secret" not in json.dumps(records)


def test_monitor_records_explicit_provider_name():
    def program():
        provider = aws.Provider("use1", region="us-east-1")
        aws.sns.Topic("alerts", opts=pulumi.ResourceOptions(provider=provider))

    records = {r["name"]: r for r in run_component(program)}
    assert records["alerts"]["provider"] == "use1"
    assert records["use1"]["type"] == "pulumi:providers:aws"
