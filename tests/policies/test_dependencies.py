"""Stack rules tie resources together through dependencies when the plan records them
(the policy server always passes them): the same verdicts as the id-based cases."""
import json

import pytest

from tests.policies.helpers import Case, check_case, dep, res

VPC, FL, EIP, NAT = "aws:ec2/vpc:Vpc", "aws:ec2/flowLog:FlowLog", "aws:ec2/eip:Eip", "aws:ec2/natGateway:NatGateway"
SG, IN, RDS = "aws:ec2/securityGroup:SecurityGroup", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:rds/instance:Instance"
SECRET, ROT = "aws:secretsmanager/secret:Secret", "aws:secretsmanager/secretRotation:SecretRotation"
REPO, LC = "aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy"
ROLE, ATT = "aws:iam/role:Role", "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
TOPIC, TP = "aws:sns/topic:Topic", "aws:sns/topicPolicy:TopicPolicy"
DENY_PLAIN = json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": "*",
                                        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def ingress(name, parent, *deps, sg="sg-x"):
    return dep(res(IN, name, parent=parent, securityGroupId=sg, ipProtocol="tcp", fromPort=5432, toPort=5432,
                   referencedSecurityGroupId="sg-nodes", description="d"), *deps)


CASES = [
    Case("vpc-flow-logs", [res(VPC, "main"), res(VPC, "spare"), dep(res(FL, "fl", vpcId="vpc-1", trafficType="ALL"), "main")],
         ["spare"], id="deps"),
    Case("vpc-flow-logs", [res(VPC, "main"), dep(res(FL, "fl", vpcId="vpc-1", trafficType="ALL"), "main")], id="deps"),
    Case("eip-attached", [res(EIP, "e1"), res(EIP, "e2"), dep(res(NAT, "n1", allocationId="a", subnetId="s"), "e1")], ["e2"], id="deps"),
    Case("eip-attached", [res(EIP, "e1"), dep(res(NAT, "n1", allocationId="a", subnetId="s"), "e1")], id="deps"),
    Case("sg-attached", [res(SG, "db-sg", description="d", name="audit-db"), res(SG, "lonely", description="d"),
                         dep(res(RDS, "db", vpcSecurityGroupIds=["sg-1"]), "db-sg"), ingress("r", "component", "lonely")],
         ["lonely"], id="deps"),
    Case("sg-attached", [res(SG, "db-sg", description="d", name="audit-db"), dep(res(RDS, "db", vpcSecurityGroupIds=["sg-1"]), "db-sg")],
         id="deps"),
    Case("sg-no-rule-conflicts", [res(SG, "db-sg", parent="database", description="d", egress=[]),
                                  ingress("db-from-nodes", "database", "db-sg")], ["db-sg"], id="deps"),
    Case("sg-no-rule-conflicts", [res(SG, "nodes", parent="cluster", description="d", egress=[]), res(SG, "db-sg", parent="database", description="d"),
                                  ingress("db-from-nodes", "database", "db-sg", "nodes")], id="deps-source-elsewhere"),
    Case("secret-rotation", [res(SECRET, "a", kmsKeyId="k"), res(SECRET, "b", kmsKeyId="k"),
                             dep(res(ROT, "rot", secretId="x", rotationRules={"automaticallyAfterDays": 30.0}), "a")], ["b"], id="deps"),
    Case("secret-rotation", [res(SECRET, "a", kmsKeyId="k"), dep(res(ROT, "rot", secretId="x", rotationRules={"automaticallyAfterDays": 30.0}), "a")],
         id="deps"),
    Case("ecr-lifecycle-policy", [res(REPO, "scoring"), res(REPO, "other"), dep(res(LC, "lc", repository="x", policy="{}"), "scoring")],
         ["other"], id="deps"),
    Case("ecr-lifecycle-policy", [res(REPO, "scoring"), dep(res(LC, "lc", repository="x", policy="{}"), "scoring")], id="deps"),
    Case("iam-role-no-policy-conflicts", [res(ROLE, "nodes", managedPolicyArns=["arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"]),
                                          dep(res(ATT, "att", role="x", policyArn="arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"), "nodes")],
         ["nodes"], id="deps"),
    Case("iam-role-no-policy-conflicts", [res(ROLE, "nodes"), dep(res(ATT, "att", role="x", policyArn="arn:p"), "nodes")], id="deps"),
    Case("sns-tls-only", [res(TOPIC, "alerts", kmsMasterKeyId="k"), res(TOPIC, "other", kmsMasterKeyId="k"),
                          dep(res(TP, "tp", arn="x", policy=DENY_PLAIN), "alerts")], ["other"], id="deps"),
    Case("sns-tls-only", [res(TOPIC, "alerts", kmsMasterKeyId="k"), dep(res(TP, "tp", arn="x", policy=DENY_PLAIN), "alerts")], id="deps"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dependency_linked_rule(case):
    check_case(case)

SUBNET, NG, DSG = "aws:ec2/subnet:Subnet", "aws:eks/nodeGroup:NodeGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
CASES += [
    Case("eks-nodes-private-subnets", [res(SUBNET, "public-a", tags={"tier": "public"}), res(SUBNET, "private-a", tags={"tier": "private"}),
                                       dep(res(NG, "cpu", subnetIds=["subnet-1", "subnet-2"]), "public-a", "private-a")], ["cpu"], id="deps"),
    Case("eks-nodes-private-subnets", [res(SUBNET, "public-a", tags={"tier": "public"}), res(SUBNET, "private-a", tags={"tier": "private"}),
                                       dep(res(NG, "cpu", subnetIds=["subnet-2"]), "private-a")], id="deps"),
    Case("vpc-default-sg-managed", [res(VPC, "main"), res(VPC, "spare"), dep(res(DSG, "dsg", vpcId="v"), "main")], ["spare"], id="deps"),
    Case("vpc-default-sg-managed", [res(VPC, "main"), dep(res(DSG, "dsg", vpcId="v"), "main")], id="deps"),
]
