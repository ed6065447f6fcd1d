"""Network rules: VPC, subnets, routes, NAT, flow logs, endpoints, node placement."""
import json

import pytest

from tests.policies.helpers import Case, check_case, res

VPC, SUBNET, RT, ROUTE = "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/routeTable:RouteTable", "aws:ec2/route:Route"
EIP, NAT, FL = "aws:ec2/eip:Eip", "aws:ec2/natGateway:NatGateway", "aws:ec2/flowLog:FlowLog"
DSG, EP, NG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:eks/nodeGroup:NodeGroup"
BEDROCK = "com.amazonaws.eu-west-1.bedrock-runtime"
MODEL = "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"


def vpc(name="vpc", rid=None):
    r = res(VPC, name, cidrBlock="10.0.0.0/16")
    if rid:
        r["id"] = rid
    return r


def subnet(name, az, tier, **kw):
    return res(SUBNET, name, availabilityZoneId=az, cidrBlock="10.0.0.0/24", tags={"tier": tier}, **kw)


def ep_policy(actions=("bedrock:InvokeModel",), resource=MODEL, principal="*", condition=True):
    st = {"Effect": "Allow", "Principal": principal, "Action": list(actions), "Resource": resource}
    if condition:
        st["Condition"] = {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


CASES = [
    Case("vpc-flow-logs", [vpc(rid="vpc-1"), res(FL, "fl", vpcId="vpc-2", trafficType="ALL")], ["vpc"]),
    Case("vpc-flow-logs", [vpc()], ["vpc"], id="no-flow-log"),
    Case("vpc-flow-logs", [vpc(rid="vpc-1"), res(FL, "fl", vpcId="vpc-1", trafficType="ALL")]),
    Case("vpc-flow-logs", [vpc(), res(FL, "fl", vpcId="vpc-1", trafficType="ALL")], id="no-ids"),
    Case("vpc-flow-log-all-traffic", res(FL, "fl", vpcId="v", trafficType="REJECT", logDestination="arn:x"), ["fl"]),
    Case("vpc-flow-log-all-traffic", res(FL, "fl", vpcId="v", trafficType="ALL", logDestination="arn:x")),
    Case("vpc-default-sg-no-rules", res(DSG, "dsg", vpcId="v", ingress=[{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]), ["dsg"]),
    Case("vpc-default-sg-no-rules", res(DSG, "dsg", vpcId="v", ingress=[], egress=[])),
    Case("vpc-default-sg-managed", [vpc()], ["vpc"]),
    Case("vpc-default-sg-managed", [vpc(), res(DSG, "dsg", vpcId="v")]),
    Case("vpc-no-default-vpc", [res("aws:ec2/defaultVpc:DefaultVpc", "dv")], ["dv"]),
    Case("vpc-no-default-vpc", [subnet("s", "euw1-az1", "private")], ["fraudstack-stack"], id="subnets-without-vpc"),
    Case("vpc-no-default-vpc", [vpc(), subnet("s", "euw1-az1", "private")]),
    Case("subnet-no-public-ip", subnet("pub", "euw1-az1", "public", mapPublicIpOnLaunch=True), ["pub"]),
    Case("subnet-no-public-ip", subnet("pub", "euw1-az1", "public", mapPublicIpOnLaunch=False)),
    Case("subnet-az-id", res(SUBNET, "s", availabilityZone="eu-west-1a"), ["s"]),
    Case("subnet-az-id", res(SUBNET, "s", availabilityZoneId="euw1-az1")),
    Case("route-private-via-nat", res(RT, "rt", tags={"tier": "private"}, routes=[{"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"}]), ["rt"]),
    Case("route-private-via-nat", res(ROUTE, "isolated-a-default", routeTableId="rtb-1", destinationCidrBlock="0.0.0.0/0", natGatewayId="nat-1"), ["isolated-a-default"], id="isolated"),
    Case("route-private-via-nat", [res(RT, "rt", tags={"tier": "private"}, routes=[{"cidrBlock": "0.0.0.0/0", "natGatewayId": "nat-1"}]),
                                   res(ROUTE, "public-default", routeTableId="rtb-2", destinationCidrBlock="0.0.0.0/0", gatewayId="igw-1"),
                                   res(RT, "isolated", tags={"tier": "isolated"}, routes=[])]),
    Case("eip-attached", [res(EIP, "e1", domain="vpc"), res(EIP, "e2", domain="vpc"), res(NAT, "n1", allocationId="eipalloc-1", subnetId="s")], ["e2"]),
    Case("eip-attached", [res(EIP, "e1", domain="vpc"), res(NAT, "n1", allocationId="eipalloc-1", subnetId="s")]),
    Case("nat-per-az", [subnet("a", "euw1-az1", "public"), subnet("b", "euw1-az2", "public"), subnet("c", "euw1-az3", "private"),
                        res(NAT, "n1", allocationId="e", subnetId="a")], ["fraudstack-stack"]),
    Case("nat-per-az", [subnet("a", "euw1-az1", "public"), subnet("b", "euw1-az2", "private"), res(NAT, "n1", allocationId="e", subnetId="a")],
         config="staging", id="staging-one-nat"),
    Case("nat-per-az", [subnet("a", "euw1-az1", "private")], ["fraudstack-stack"], config="staging", id="no-nat"),
    Case("nat-per-az", [subnet("a", "euw1-az1", "public"), subnet("b", "euw1-az2", "private"),
                        res(NAT, "n1", allocationId="e1", subnetId="a"), res(NAT, "n2", allocationId="e2", subnetId="b")]),
    Case("bedrock-endpoint-private", res(EP, "br", serviceName=BEDROCK, vpcEndpointType="Interface", privateDnsEnabled=False,
                                         subnetIds=["a", "b"], securityGroupIds=["sg"]), ["br"]),
    Case("bedrock-endpoint-private", res(EP, "br", serviceName=BEDROCK, vpcEndpointType="Interface", privateDnsEnabled=True,
                                         subnetIds=["a"], securityGroupIds=["sg"]), ["br"], id="one-az"),
    Case("bedrock-endpoint-private", [res(EP, "br", serviceName=BEDROCK, vpcEndpointType="Interface", privateDnsEnabled=True,
                                          subnetIds=["a", "b"], securityGroupIds=["sg"]),
                                      res(EP, "s3", serviceName="com.amazonaws.eu-west-1.s3", vpcEndpointType="Gateway")]),
    Case("bedrock-endpoint-policy", res(EP, "br", serviceName=BEDROCK, policy=ep_policy(actions=("bedrock:*",))), ["br"]),
    Case("bedrock-endpoint-policy", res(EP, "br", serviceName=BEDROCK, policy=ep_policy(resource="*")), ["br"], id="any-model"),
    Case("bedrock-endpoint-policy", res(EP, "br", serviceName=BEDROCK, policy=ep_policy(condition=False)), ["br"], id="any-principal"),
    Case("bedrock-endpoint-policy", res(EP, "br", serviceName=BEDROCK), ["br"], id="no-policy"),
    Case("bedrock-endpoint-policy", res(EP, "br", serviceName=BEDROCK, policy=ep_policy(
        actions=("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")))),
    Case("eks-nodes-private-subnets", [dict(subnet("pub", "euw1-az1", "public"), id="subnet-pub"),
                                       res(NG, "ng", subnetIds=["subnet-pub"])], ["ng"]),
    Case("eks-nodes-private-subnets", [dict(subnet("pub", "euw1-az1", "public"), id="subnet-pub"),
                                       dict(subnet("priv", "euw1-az1", "private"), id="subnet-priv"),
                                       res(NG, "ng", subnetIds=["subnet-priv"])]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_vpc_rule(case):
    check_case(case)
