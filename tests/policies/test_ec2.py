"""Security groups, data-tier reachability, launch templates and node groups."""
import base64

import pytest

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from tests.policies.helpers import Case, check_case, res, run_rule

SG, SGR = "aws:ec2/securityGroup:SecurityGroup", "aws:ec2/securityGroupRule:SecurityGroupRule"
IN, EG = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LT, NG, EKS = "aws:ec2/launchTemplate:LaunchTemplate", "aws:eks/nodeGroup:NodeGroup", "aws:eks/cluster:Cluster"
RDS, RG, EP = "aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup", "aws:ec2/vpcEndpoint:VpcEndpoint"


def ingress(name, port, cidr=None, src=None, proto="tcp", sg="sg-db", to=None, **kw):
    extra = {"cidrIpv4": cidr} if cidr else {"referencedSecurityGroupId": src}
    return res(IN, name, securityGroupId=sg, ipProtocol=proto, fromPort=port, toPort=to if to is not None else port,
               description="d", **extra, **kw)


def lt(**kw):
    base = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1.0, "httpEndpoint": "enabled"},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": "arn:k"}}]}
    base.update(kw)
    return res(LT, "lt", **base)


WORLD_CASES = []
for rule, port in (("sg-no-world-ssh", 22), ("sg-no-world-rdp", 3389), ("sg-no-world-http", 80)):
    WORLD_CASES += [
        Case(rule, ingress("open", port, cidr="0.0.0.0/0"), ["open"]),
        Case(rule, res(SG, "inline", description="d", ingress=[{"fromPort": 0, "toPort": 65535, "protocol": "tcp",
                                                                "ipv6CidrBlocks": ["::/0"], "description": "d"}]), ["inline"], id="inline-range"),
        Case(rule, res(SGR, "legacy", type="ingress", fromPort=port, toPort=port, protocol="tcp", cidrBlocks=["0.0.0.0/0"],
                       securityGroupId="sg", description="d"), ["legacy"], id="sg-rule"),
        Case(rule, [ingress("vpc-only", port, cidr="10.0.0.0/16"), ingress("world-443", 443, cidr="0.0.0.0/0"),
                    res(SGR, "egress", type="egress", fromPort=port, toPort=port, protocol="tcp", cidrBlocks=["0.0.0.0/0"],
                        securityGroupId="sg", description="d")]),
    ]

CASES = WORLD_CASES + [
    Case("sg-no-world-all-ports", ingress("all", 0, cidr="0.0.0.0/0", proto="-1", to=0), ["all"]),
    Case("sg-no-world-all-ports", [ingress("https", 443, cidr="0.0.0.0/0"), ingress("all-vpc", 0, cidr="10.0.0.0/8", proto="-1")]),
    Case("sg-no-world-egress-all", res(EG, "out", securityGroupId="sg", ipProtocol="-1", cidrIpv4="0.0.0.0/0", description="d"), ["out"]),
    Case("sg-no-world-egress-all", res(SG, "sg", description="d", egress=[{"fromPort": 0, "toPort": 0, "protocol": "-1",
                                                                         "cidrBlocks": ["0.0.0.0/0"], "description": "d"}]), ["sg"], id="inline"),
    Case("sg-no-world-egress-all", res(EG, "out", securityGroupId="sg", ipProtocol="tcp", fromPort=443, toPort=443,
                                      cidrIpv4="0.0.0.0/0", description="HTTPS out via NAT")),
    Case("sg-descriptions", res(SG, "sg", description="Managed by Pulumi"), ["sg"]),
    Case("sg-descriptions", res(IN, "r", securityGroupId="sg", ipProtocol="tcp", fromPort=5432, toPort=5432, referencedSecurityGroupId="sg-n"),
         ["r"], id="rule"),
    Case("sg-descriptions", [res(SG, "sg", description="PostgreSQL from nodes"), ingress("r", 5432, src="sg-nodes")]),
    Case("sg-attached", [dict(res(SG, "lonely", description="d"), id="sg-1"), dict(res(SG, "used", description="d"), id="sg-2"),
                         res(RDS, "db", vpcSecurityGroupIds=["sg-2"])], ["lonely"]),
    Case("sg-attached", [res(SG, "sg", description="d", parent="data"), res(RDS, "db", vpcSecurityGroupIds=["sg-x"], parent="data")]),
    Case("sg-no-rule-conflicts", [dict(res(SG, "sg", description="d", ingress=[], egress=[]), id="sg-1"), ingress("r", 5432, src="sg-n", sg="sg-1")], ["sg"]),
    Case("sg-no-rule-conflicts", [dict(res(SG, "sg", description="d"), id="sg-1"), ingress("r", 5432, src="sg-n", sg="sg-1")]),
    Case("data-tier-from-nodes-only", [res(RDS, "db", vpcSecurityGroupIds=["sg-db"]), ingress("from-vpc", 5432, cidr="10.0.0.0/16")], ["from-vpc"]),
    Case("data-tier-from-nodes-only", [res(RG, "cache", securityGroupIds=["sg-cache"]), ingress("wide", 0, src="sg-nodes", sg="sg-cache", to=65535)],
         ["wide"], id="port-range"),
    Case("data-tier-from-nodes-only", [res(EKS, "eks", vpcConfig={"securityGroupIds": ["sg-nodes"]}),
                                       res(RDS, "db", vpcSecurityGroupIds=["sg-db"]), ingress("from-bastion", 5432, src="sg-bastion")],
         ["from-bastion"], id="not-node-sg"),
    Case("data-tier-from-nodes-only", [res(EKS, "eks", vpcConfig={"securityGroupIds": ["sg-nodes"]}),
                                       res(RDS, "db", vpcSecurityGroupIds=["sg-db"]), ingress("from-nodes", 5432, src="sg-nodes"),
                                       res(RG, "cache", securityGroupIds=["sg-cache"]), ingress("cache-from-nodes", 6379, src="sg-nodes", sg="sg-cache"),
                                       ingress("unrelated", 443, cidr="10.0.0.0/8", sg="sg-other")]),
    Case("bedrock-endpoint-from-nodes-only", [res(EP, "br", serviceName="com.amazonaws.eu-west-1.bedrock-runtime", securityGroupIds=["sg-ep"]),
                                              ingress("ep-wide", 443, cidr="10.0.0.0/16", sg="sg-ep")], ["ep-wide"]),
    Case("bedrock-endpoint-from-nodes-only", [res(EP, "br", serviceName="com.amazonaws.eu-west-1.bedrock-runtime", securityGroupIds=["sg-ep"]),
                                              ingress("ep-nodes", 443, src="sg-nodes", sg="sg-ep")]),
    Case("lt-imdsv2", lt(metadataOptions={"httpTokens": "optional", "httpPutResponseHopLimit": 1.0}), ["lt"]),
    Case("lt-imdsv2", lt()),
    Case("lt-imds-hop-limit", lt(metadataOptions={"httpTokens": "required", "httpPutResponseHopLimit": 2.0}), ["lt"]),
    Case("lt-imds-hop-limit", lt()),
    Case("lt-no-secrets-in-user-data", lt(userData=base64.b64encode(b"#!/bin/bash\nexport DB_PASSWORD=test-key-not-a-secret\n").decode()), ["lt"]),
    Case("lt-no-secrets-in-user-data", lt(userData="AKIA" + "ABCDEFGHIJKLMNOP"), ["lt"], id="access-key"),
    Case("lt-no-secrets-in-user-data", lt(userData=base64.b64encode(b"#!/bin/bash\n/etc/eks/bootstrap.sh fraudstack\n").decode())),
    Case("lt-no-public-ip", lt(networkInterfaces=[{"associatePublicIpAddress": "true"}]), ["lt"]),
    Case("lt-no-public-ip", lt(networkInterfaces=[{"associatePublicIpAddress": "false"}])),
    Case("lt-ebs-encrypted-cmk", lt(blockDeviceMappings=[{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]), ["lt"]),
    Case("lt-ebs-encrypted-cmk", lt(blockDeviceMappings=[]), ["lt"], id="undeclared"),
    Case("lt-ebs-encrypted-cmk", lt()),
    Case("eks-nodegroup-no-open-ssh", res(NG, "ng", remoteAccess={"ec2SshKey": "ops"}), ["ng"]),
    Case("eks-nodegroup-no-open-ssh", res(NG, "ng", remoteAccess={"ec2SshKey": "ops", "sourceSecurityGroupIds": ["sg-bastion"]})),
    Case("eks-gpu-nodegroup-tainted", res(NG, "gpu", instanceTypes=["g5.xlarge"], taints=[]), ["gpu"]),
    Case("eks-gpu-nodegroup-tainted", res(NG, "gpu", amiType="AL2023_x86_64_NVIDIA",
                                          taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_EXECUTE"}]), ["gpu"], id="wrong-effect"),
    Case("eks-gpu-nodegroup-tainted", [res(NG, "gpu", instanceTypes=["g5.xlarge"],
                                           taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]),
                                       res(NG, "cpu", instanceTypes=["m7i.large"])]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ec2_rule(case):
    check_case(case)


def test_unknown_source_group_does_not_abort_the_stack_rule():
    out = run_rule("data-tier-from-nodes-only", [
        res(RDS, "db", vpcSecurityGroupIds=["sg-db"]),
        ingress("pending", 5432, src=UNKNOWN_STRING_VALUE), ingress("from-vpc", 5432, cidr="10.0.0.0/16")])
    assert [v["name"] for v in out] == ["from-vpc"]
