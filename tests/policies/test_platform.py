"""Stack-wide rules: plaintext secrets, tags, AZ ids, provider credentials."""
import pytest

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from tests.policies.helpers import SECRET, Case, check_case, res

RDS = "aws:rds/instance:Instance"
RG = "aws:elasticache/replicationGroup:ReplicationGroup"
DEPLOY = "kubernetes:apps/v1:Deployment"
TAGS = {"environment": "production", "service": "fraudstack", "owner": "payments-platform",
        "data-classification": "confidential", "pci-scope": "in-scope", "Name": "fraudstack-production-audit"}


def _deploy(env):
    return res(DEPLOY, "scoring", spec={"template": {"spec": {"containers": [{"name": "app", "env": env}]}}})


CASES = [
    Case("no-plaintext-secrets", [res(RDS, "db", password="hunter2-not-a-secret"), res(RG, "cache", authToken=SECRET)], ["db"]),
    Case("no-plaintext-secrets", res("pulumi:providers:aws", "prov", accessKey="test-key-not-a-secret",
                                     secretKey=SECRET), ["prov"], id="provider-keys"),
    Case("no-plaintext-secrets", _deploy([{"name": "DB_PASSWORD", "value": "test-key-not-a-secret"}]), ["scoring"], id="env"),
    # Pointers to secrets and counts are not secrets (the scoring Deployment passes secret ARNs).
    Case("no-plaintext-secrets", _deploy([{"name": "DB_SECRET_ARN", "value": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db"},
                                          {"name": "BEDROCK_MAX_TOKENS", "value": "512"}]), id="env-pointers"),
    Case("no-plaintext-secrets", res("kubernetes:core/v1:Secret", "s", stringData={"token": "plain"}), ["s"], id="k8s-secret"),
    Case("no-plaintext-secrets", [res(RDS, "db", password=SECRET, manageMasterUserPassword=True),
                                  res(RG, "cache", authToken=UNKNOWN_STRING_VALUE),
                                  _deploy([{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                                           {"name": "LOG_LEVEL", "value": "info"}]),
                                  res("aws:secretsmanager/secret:Secret", "sec", kmsKeyId="k", secretId="x")]),
    Case("provider-no-static-credentials", res("pulumi:providers:aws", "prov", region="eu-west-1", accessKey=SECRET, secretKey=SECRET), ["prov"]),
    Case("provider-no-static-credentials", res("pulumi:providers:aws", "prov", region="eu-west-1")),
    Case("required-tags", res(RDS, "db", tags={"environment": "production", "service": "fraudstack", "owner": "payments-platform"}), ["db"]),
    Case("required-tags", res("aws:ec2/vpc:Vpc", "vpc", cidrBlock="10.0.0.0/16"), ["vpc"], id="untagged"),
    Case("required-tags", [res(RDS, "db", tags=TAGS), res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "rule", ipProtocol="tcp")]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_platform_rule(case):
    check_case(case)
