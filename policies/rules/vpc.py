"""Network: VPC, subnets, routes, NAT, flow logs, AZ pinning, the Bedrock endpoint."""
from __future__ import annotations

import re

from ..model import Param, Rule
from ._util import as_list, get, is_world, linked, parse_json, present, refs, safe, statements, tags_of

VPC = "aws:ec2/vpc:Vpc"
DEFAULT_VPC = "aws:ec2/defaultVpc:DefaultVpc"
DEFAULT_SUBNET = "aws:ec2/defaultSubnet:DefaultSubnet"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE = "aws:ec2/route:Route"
EIP = "aws:ec2/eip:Eip"
NAT = "aws:ec2/natGateway:NatGateway"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def tier_of(r) -> str | None:
    """public / private / isolated, from a ``tier`` tag, the ELB role tags or the name."""
    tags = tags_of(r.props) if hasattr(r, "props") else {}
    for key in ("tier", "Tier", "fraudstack:tier"):
        if isinstance(tags.get(key), str):
            return tags[key].lower()
    if "kubernetes.io/role/elb" in tags:
        return "public"
    if "kubernetes.io/role/internal-elb" in tags:
        return "private"
    text = f"{tags.get('Name', '')} {r.name}".lower()
    for tier in ("isolated", "private", "public"):
        if re.search(rf"\b{tier}\b|-{tier}|{tier}-", text):
            return tier
    return None


def _flow_logs(stack, cfg):
    vpcs = stack.of_type(VPC)
    logs = stack.of_type(FLOW_LOG)
    covered = set()
    for fl in logs:
        covered |= refs(fl, "vpcId")
    for vpc in vpcs:
        if stack.has_dependencies:
            if not linked(stack, vpc, set(), (FLOW_LOG,)):
                yield vpc, "no aws.ec2.FlowLog records this VPC's traffic"
            continue
        ids = {safe(vpc.props, "id"), safe(vpc.props, "arn")} - {None}
        if ids and ids & covered:
            continue
        if not ids and len(logs) >= len(vpcs) and any(present(fl.props, "vpcId") for fl in logs):
            continue  # plan without outputs: one VPC-level flow log per VPC
        yield vpc, "no aws.ec2.FlowLog records this VPC's traffic"


def _flow_log_all(props, cfg):
    if get(props, "trafficType") != "ALL":
        yield f"trafficType is {get(props, 'trafficType')!r}: record ALL traffic (accepted and rejected)"
    if not present(props, "logDestination") and not present(props, "logGroupName"):
        yield "no log destination: point the flow log at the encrypted CloudWatch log group"


def _default_sg_empty(props, cfg):
    for field in ("ingress", "egress"):
        if as_list(get(props, field)):
            yield f"the default security group has {field} rules: keep it empty so nothing can use it by accident"


def _default_sg_managed(stack, cfg):
    if stack.has_dependencies:
        for vpc in stack.of_type(VPC):
            if not linked(stack, vpc, set(), (DEFAULT_SG,)):
                yield vpc, "the VPC's default security group is not managed (aws.ec2.DefaultSecurityGroup with no rules)"
        return
    n_vpc, n_dsg = len(stack.of_type(VPC)), len(stack.of_type(DEFAULT_SG))
    if n_dsg < n_vpc:
        for vpc in stack.of_type(VPC)[n_dsg:] if n_dsg else stack.of_type(VPC):
            yield vpc, "the VPC's default security group is not managed (aws.ec2.DefaultSecurityGroup with no rules)"


def _no_default_vpc(stack, cfg):
    for r in stack.of_type(DEFAULT_VPC, DEFAULT_SUBNET):
        yield r, "uses the account's default VPC/subnet: declare a dedicated VPC"
    if stack.of_type(SUBNET) and not stack.of_type(VPC):
        yield None, "subnets are declared but no aws.ec2.Vpc: the stack would land in a default or foreign VPC"


def _subnet_no_public_ip(props, cfg):
    if get(props, "mapPublicIpOnLaunch") is True:
        yield "mapPublicIpOnLaunch is true: instances get public IPs (NAT and ALB do not need it)"
    if get(props, "assignIpv6AddressOnCreation") is True:
        yield "assignIpv6AddressOnCreation is true: instances get globally routable IPv6 addresses"


def _az_ids(props, cfg):
    if get(props, "availabilityZone") and not get(props, "availabilityZoneId"):
        yield (f"availabilityZone {get(props, 'availabilityZone')!r} is a per-account name: "
               "use availabilityZoneId so the stack is the same in every account")


def _default_routes(r):
    if r.resource_type == ROUTE:
        yield r.props
    else:
        for route in as_list(safe(r.props, "routes")):
            yield route


def _private_via_nat(stack, cfg):
    for r in stack.of_type(ROUTE_TABLE, ROUTE):
        tier = tier_of(r)
        for route in _default_routes(r):
            dest = safe(route, "cidrBlock") or safe(route, "destinationCidrBlock")
            if not is_world(dest):
                continue
            if tier == "private" and not present(route, "natGatewayId"):
                yield r, "the private tier's default route does not go through a NAT gateway"
            if tier == "isolated":
                yield r, "the isolated tier (databases, caches) has a default route to the internet"
            if tier == "public" and present(route, "natGatewayId"):
                yield r, "the public tier routes 0.0.0.0/0 through a NAT gateway instead of the internet gateway"
            for bad in ("vpcPeeringConnectionId", "networkInterfaceId", "transitGatewayId"):
                if present(route, bad):
                    yield r, f"default route via {bad}: traffic to the internet leaves through an unreviewed path"


def _eip_attached(stack, cfg):
    eips = stack.of_type(EIP)
    nats = stack.of_type(NAT)
    used = set()
    for n in nats:
        used |= refs(n, "allocationId")
    free = []
    for e in eips:
        if present(e.props, "instance") or present(e.props, "networkInterface"):
            continue
        if stack.has_dependencies:
            if not linked(stack, e, set(), (NAT,)):
                yield e, "the Elastic IP is not attached to a NAT gateway, instance or interface (billed, unused)"
            continue
        ids = {safe(e.props, "id"), safe(e.props, "allocationId")} - {None}
        if ids and ids & used:
            continue
        free.append((e, bool(ids)))
    unidentified = [e for e, known in free if not known]
    # Plans without outputs: count the NAT gateways that reference an allocation.
    spare = max(0, len(unidentified) - len([n for n in nats if present(n.props, "allocationId")]))
    for e, known in free:
        if known:
            yield e, "the Elastic IP is not attached to a NAT gateway, instance or interface (billed, unused)"
    for e in unidentified[len(unidentified) - spare:] if spare else []:
        yield e, "more Elastic IPs than NAT gateways using them: this one is not attached"


def _nat_per_az(stack, cfg):
    azs = set()
    for s in stack.of_type(SUBNET):
        az = safe(s.props, "availabilityZoneId") or safe(s.props, "availabilityZone")
        if az:
            azs.add(az)
    nats = stack.of_type(NAT)
    private = [s for s in stack.of_type(SUBNET) if tier_of(s) == "private"]
    if cfg["natPerAz"] and len(nats) < len(azs):
        yield None, (f"{len(nats)} NAT gateway(s) for {len(azs)} AZs: one AZ's outage cuts the others' egress "
                     "(one NAT per AZ required here)")
    if private and not nats:
        yield None, "private subnets but no NAT gateway: nodes cannot pull images or reach AWS APIs"


def _is_bedrock(props) -> bool:
    return str(get(props, "serviceName", "")).endswith(("bedrock-runtime", "bedrock-runtime-fips"))


def _bedrock_endpoint(props, cfg):
    if not _is_bedrock(props):
        return
    if get(props, "vpcEndpointType") != "Interface":
        yield "the Bedrock runtime endpoint must be an Interface endpoint"
    if get(props, "privateDnsEnabled") is not True:
        yield "privateDnsEnabled is not true: the SDK's default Bedrock hostname would resolve to the public endpoint"
    if len(as_list(get(props, "subnetIds"))) < cfg["minSubnets"]:
        yield f"the endpoint spans fewer than {cfg['minSubnets']} subnets (AZs): one AZ outage stops explanations"
    if not as_list(get(props, "securityGroupIds")):
        yield "no security group: the endpoint gets the VPC default group"


def _bedrock_policy(props, cfg):
    if not _is_bedrock(props):
        return
    doc = parse_json(get(props, "policy"))
    if not isinstance(doc, dict):
        yield "no endpoint policy: any principal in the VPC can invoke any Bedrock model through it"
        return
    for st in statements(doc):
        if st.get("Effect") != "Allow":
            continue
        actions = [str(a) for a in as_list(st.get("Action"))]
        if any(a in ("*", "bedrock:*") for a in actions):
            yield "the endpoint policy allows bedrock:* or *: limit it to bedrock:InvokeModel*"
        resources = [str(x) for x in as_list(st.get("Resource"))]
        if any(x == "*" or x.endswith(":*") or x.endswith("/*") for x in resources):
            yield "the endpoint policy allows every model: list the approved foundation-model ARNs"
        principals = st.get("Principal")
        if principals == "*" or (isinstance(principals, dict) and "*" in as_list(principals.get("AWS"))):
            cond = st.get("Condition") or {}
            if not any("aws:PrincipalAccount" in c or "aws:PrincipalArn" in c or "aws:PrincipalOrgID" in c
                       for c in (cond.values() if isinstance(cond, dict) else [])):
                yield "the endpoint policy allows any principal: restrict it to the project's roles"


def _node_groups_private(stack, cfg):
    public_ids, public_named = set(), False
    for s in stack.of_type(SUBNET):
        if tier_of(s) == "public":
            ids = {safe(s.props, "id")} - {None}
            public_ids |= ids
            public_named = public_named or not ids
    for ng in stack.of_type(NODE_GROUP):
        if stack.has_dependencies:
            tiers = {tier_of(s) for s in linked(stack, ng, set(), (SUBNET,))}
            if "public" in tiers or "isolated" in tiers:
                yield ng, f"the node group uses {' and '.join(sorted(tiers & {'public', 'isolated'}))} subnets: nodes must live in the private tier"
            continue
        subnets = refs(ng, "subnetIds")
        if subnets & public_ids:
            yield ng, "the node group uses public subnets: nodes must live in the private tier"
        elif any(re.search(r"public", s) for s in subnets):
            yield ng, "the node group's subnets look public: nodes must live in the private tier"


RULES = [
    Rule(id="vpc-flow-logs", name="VPC flow logs enabled",
         description="Every VPC has a flow log.", severity="medium", enforcement="mandatory",
         resource_types=(VPC, FLOW_LOG), stack=True, references=("A1",),
         remediation="Add aws.ec2.FlowLog(vpc_id=vpc.id, traffic_type='ALL', log_destination=<log group ARN>).",
         check=_flow_logs),
    Rule(id="vpc-flow-log-all-traffic", name="Flow log records all traffic",
         description="Flow logs record ALL traffic (accepted and rejected) to a log destination.",
         severity="medium", enforcement="mandatory", resource_types=(FLOW_LOG,), references=("X5",),
         remediation="Set traffic_type='ALL' and log_destination to the KMS-encrypted log group.",
         check=_flow_log_all),
    Rule(id="vpc-default-sg-no-rules", name="Default security group has no rules",
         description="The VPC's default security group allows nothing.", severity="high",
         enforcement="mandatory", resource_types=(DEFAULT_SG,), references=("A2",),
         remediation="Declare aws.ec2.DefaultSecurityGroup(vpc_id=...) with no ingress and no egress.",
         check=_default_sg_empty),
    Rule(id="vpc-default-sg-managed", name="Default security group is managed",
         description="Every VPC's default security group is taken under management (and so emptied).",
         severity="medium", enforcement="mandatory", resource_types=(VPC, DEFAULT_SG), stack=True,
         references=("A2",),
         remediation="Add aws.ec2.DefaultSecurityGroup(vpc_id=vpc.id) with no rules for each VPC.",
         check=_default_sg_managed),
    Rule(id="vpc-no-default-vpc", name="No default VPC",
         description="The stack declares its own VPC and never uses or adopts the account's default VPC or subnets.",
         severity="medium", enforcement="mandatory", resource_types=(DEFAULT_VPC, DEFAULT_SUBNET, SUBNET, VPC),
         stack=True, references=("A3",),
         remediation="Remove aws.ec2.DefaultVpc/DefaultSubnet; use the Network component's VPC.",
         check=_no_default_vpc),
    Rule(id="subnet-no-public-ip", name="Subnets do not auto-assign public IPs",
         description="No subnet auto-assigns public IPv4 or IPv6 addresses.", severity="high",
         enforcement="mandatory", resource_types=(SUBNET,), references=("A4",),
         remediation="Set map_public_ip_on_launch=False (the NAT gateways use Elastic IPs, the ALB its own).",
         check=_subnet_no_public_ip),
    Rule(id="subnet-az-id", name="Subnets pinned by AZ id",
         description="Subnets use availability-zone ids (use1-az1), stable across accounts, not AZ names.",
         severity="low", enforcement="mandatory", resource_types=(SUBNET,), references=("A106",),
         remediation="Pass availability_zone_id from aws.get_availability_zones().zone_ids.",
         check=_az_ids),
    Rule(id="route-private-via-nat", name="Private tier egress through NAT",
         description="The private tier's default route goes through a NAT gateway, the isolated tier has none, "
                     "the public tier uses the internet gateway, and no default route uses peering, ENIs or TGWs.",
         severity="high", enforcement="mandatory", resource_types=(ROUTE_TABLE, ROUTE), stack=True,
         references=("A5",),
         remediation="Route 0.0.0.0/0 of private route tables to the AZ's NAT gateway; give isolated route tables no default route.",
         check=_private_via_nat),
    Rule(id="eip-attached", name="Elastic IPs attached",
         description="Every Elastic IP is used (by a NAT gateway, instance or interface).", severity="low",
         enforcement="advisory", resource_types=(EIP, NAT), stack=True, references=("A6",),
         advisory_reason="An unattached Elastic IP costs money but exposes nothing.",
         remediation="Delete unused aws.ec2.Eip resources or attach them to the NAT gateway.",
         check=_eip_attached),
    Rule(id="nat-per-az", name="One NAT gateway per AZ",
         description="Where the stack asks for high availability (production) every AZ has its own NAT gateway; "
                     "any stack with private subnets has at least one.",
         severity="medium", enforcement="mandatory", resource_types=(NAT, SUBNET), stack=True,
         references=("X6",),
         params=(Param("natPerAz", "boolean", True, "require a NAT gateway in every AZ used by the subnets"),),
         remediation="Set fraudstack:natStrategy to one-per-az (production).", check=_nat_per_az),
    Rule(id="bedrock-endpoint-private", name="Bedrock endpoint private and multi-AZ",
         description="The bedrock-runtime VPC endpoint is an Interface endpoint with private DNS, in at least "
                     "two AZs, with its own security group.",
         severity="high", enforcement="mandatory", resource_types=(ENDPOINT,), references=("X1",),
         params=(Param("minSubnets", "integer", 2, "minimum subnets (AZs) of the endpoint", minimum=1),),
         remediation="aws.ec2.VpcEndpoint(service_name='com.amazonaws.<region>.bedrock-runtime', "
                     "vpc_endpoint_type='Interface', private_dns_enabled=True, subnet_ids=<private subnets>, "
                     "security_group_ids=[endpoint SG]).",
         check=_bedrock_endpoint),
    Rule(id="bedrock-endpoint-policy", name="Bedrock endpoint policy scoped",
         description="The bedrock-runtime endpoint policy allows only bedrock:InvokeModel* on approved model ARNs "
                     "for the project's own principals.",
         severity="high", enforcement="mandatory", resource_types=(ENDPOINT,), references=("X2",),
         remediation="Set the endpoint policy to Allow bedrock:InvokeModel and InvokeModelWithResponseStream on the "
                     "approved foundation-model ARNs, with an aws:PrincipalAccount condition.",
         check=_bedrock_policy),
    Rule(id="eks-nodes-private-subnets", name="Node groups in private subnets",
         description="EKS node groups use private subnets only.", severity="high", enforcement="mandatory",
         resource_types=(NODE_GROUP, SUBNET), stack=True, references=("X7",),
         remediation="Pass the private tier's subnet ids to aws.eks.NodeGroup(subnet_ids=...).",
         check=_node_groups_private),
]
