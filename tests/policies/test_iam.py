"""IAM rules over permission and trust policy documents."""
import json

import pytest

from tests.policies.helpers import Case, check_case, res

ROLE, POLICY, RP, ATT = ("aws:iam/role:Role", "aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy",
                         "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:fraudstack-production/api-keys-AbCdEf"


def doc(action, resource="*", condition=None, effect="Allow"):
    st = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        st["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


def pol(action, resource="*", name="p", **kw):
    return res(POLICY, name, policy=doc(action, resource, **kw))


def trust(principal, condition=None):
    st = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if condition:
        st["Condition"] = condition
    return res(ROLE, "role", assumeRolePolicy=json.dumps({"Version": "2012-10-17", "Statement": [st]}))


SCOPED = pol(["secretsmanager:GetSecretValue"], SECRET_ARN, name="ok")

CASES = [
    Case("iam-no-admin-policy", pol("*"), ["p"]),
    Case("iam-no-admin-policy", res(ROLE, "role", inlinePolicies=[{"name": "all", "policy": doc("*")}]), ["role"], id="inline"),
    Case("iam-no-admin-policy", [SCOPED, pol("*", "*", effect="Deny", name="deny")]),
    Case("iam-no-wildcard-action", pol("s3:*", "arn:aws:s3:::bucket/*"), ["p"]),
    Case("iam-no-wildcard-action", SCOPED),
    Case("iam-no-wildcard-resource", pol(["secretsmanager:GetSecretValue"]), ["p"]),
    Case("iam-no-wildcard-resource", [SCOPED, pol(["ec2:DescribeInstances", "ecr:GetAuthorizationToken"], name="describe"),
                                      pol(["ec2:CreateTags"], condition={"StringEquals": {"aws:RequestTag/service": "fraudstack"}}, name="cond")]),
    Case("iam-no-privilege-escalation", pol(["iam:AttachRolePolicy"]), ["p"]),
    Case("iam-no-privilege-escalation", pol(["iam:*"]), ["p"], id="wildcard"),
    Case("iam-no-privilege-escalation", pol(["iam:AttachRolePolicy"], "arn:aws:iam::111122223333:role/fraudstack-*")),
    Case("iam-no-credentials-exposure", pol(["iam:CreateAccessKey"]), ["p"]),
    Case("iam-no-credentials-exposure", pol(["rds-db:connect"], "arn:aws:rds-db:eu-west-1:111122223333:dbuser:db-ABC/scoring")),
    Case("iam-no-data-exfiltration", pol(["secretsmanager:GetSecretValue"]), ["p"]),
    Case("iam-no-data-exfiltration", SCOPED),
    Case("iam-no-permissions-management", pol(["kms:PutKeyPolicy"]), ["p"]),
    Case("iam-no-permissions-management", pol(["kms:PutKeyPolicy"], "arn:aws:kms:eu-west-1:111122223333:key/k")),
    Case("iam-no-unconstrained-write", pol(["sns:Publish"]), ["p"]),
    Case("iam-no-unconstrained-write", [pol(["sns:Publish"], "arn:aws:sns:eu-west-1:111122223333:alerts"),
                                        pol(["cloudwatch:PutMetricData"], name="metrics")]),
    Case("iam-no-iam-star", pol("iam:*", "arn:aws:iam::111122223333:role/x"), ["p"]),
    Case("iam-no-iam-star", pol("iam:GetRole", "arn:aws:iam::111122223333:role/x")),
    Case("iam-passrole-scoped", pol(["iam:PassRole"]), ["p"]),
    Case("iam-passrole-scoped", pol(["iam:PassRole"], "arn:aws:iam::111122223333:role/fraudstack-rds-monitoring")),
    Case("iam-no-administrator-access", res(ATT, "att", role="r", policyArn="arn:aws:iam::aws:policy/AdministratorAccess"), ["att"]),
    Case("iam-no-administrator-access", res(ROLE, "role", managedPolicyArns=["arn:aws:iam::aws:policy/AdministratorAccess"]), ["role"], id="managed"),
    Case("iam-no-administrator-access", res(ATT, "att", role="r", policyArn="arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy")),
    Case("iam-no-iam-full-access", res(ATT, "att", role="r", policyArn="arn:aws:iam::aws:policy/IAMFullAccess"), ["att"]),
    Case("iam-no-iam-full-access", res(ATT, "att", role="r", policyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")),
    Case("iam-trust-specific-principals", trust({"AWS": "*"}), ["role"]),
    Case("iam-trust-specific-principals", trust({"AWS": "arn:aws:iam::111122223333:root"}), ["role"], id="account-root"),
    Case("iam-trust-specific-principals", trust({"Service": "monitoring.rds.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": "111122223333"}})),
    Case("iam-trust-not-all-services", trust({"Service": "*"}), ["role"]),
    Case("iam-trust-not-all-services", trust({"Service": "ec2.amazonaws.com"})),
    Case("iam-role-no-policy-conflicts", [res(ROLE, "role", name="fraudstack-nodes", managedPolicyArns=["arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"]),
                                          res(ATT, "att", role="fraudstack-nodes", policyArn="arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")], ["role"]),
    Case("iam-role-no-policy-conflicts", [res(ROLE, "role", name="fraudstack-nodes"),
                                          res(ATT, "att", role="fraudstack-nodes", policyArn="arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_iam_rule(case):
    check_case(case)
