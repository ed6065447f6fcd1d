"""The VPC: public, private (workload) and isolated (data) subnets in each AZ, with flow logs.

Built from ``pulumi_aws`` resources directly (awsx is a remote component, opaque to
tests and policies under the mock runtime), keeping the awsx design:

- public subnets route to an internet gateway and host the NAT gateways and load
  balancers; private subnets (EKS nodes and pods) route out through a NAT gateway
  (one per AZ, or one shared); isolated subnets (RDS, ElastiCache) have no route out at
  all, only the S3 gateway endpoint;
- subnets are placed by AZ *id* (``euw1-az1``), which names the same physical zone in
  every account, so the stacks are stable across accounts;
- no subnet assigns public IPs on launch: the NAT gateways and load balancers get
  their addresses explicitly, and nothing else should have one;
- the VPC's default security group and default route table are taken over and left
  empty, so nothing attached to them by mistake can talk or route anywhere;
- VPC flow logs (traffic type ALL) go to a KMS-encrypted CloudWatch log group with a
  retention, through a role only the flow-logs service of this account can assume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.subnets import TIERS, plan_subnets
from components.tags import with_name

#: Subnet tags the AWS Load Balancer Controller uses to discover subnets per scheme.
ELB_ROLE_TAGS = {
    "public": {"kubernetes.io/role/elb": "1"},
    "private": {"kubernetes.io/role/internal-elb": "1"},
    "isolated": {},
}


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of :class:`Network` (values come from ``fraudstack:network``)."""

    #: Physical-name prefix, e.g. ``fraudstack-production`` (Name tags, log group, key alias).
    name_prefix: str
    #: VPC IPv4 CIDR (``network.vpcCidr``).
    vpc_cidr: str
    #: Number of AZs to use (``network.azCount``); the first N available zone ids are taken.
    az_count: int
    #: One NAT gateway per AZ (production) or a single shared one (``network.natStrategy``).
    nat_per_az: bool
    #: Prefix lengths of the private, public and isolated subnets.
    private_subnet_prefix: int
    public_subnet_prefix: int
    isolated_subnet_prefix: int
    #: Retention of the flow log group in days (``network.flowLogRetentionDays``).
    flow_log_retention_days: int
    #: Tags for every resource (from :func:`components.tags.required_tags`); ``Name`` is added per resource.
    tags: Mapping[str, str] = field(default_factory=dict)
    #: KMS key ARN for the flow log group; when ``None`` the component creates its own key.
    flow_log_kms_key_arn: pulumi.Input[str] | None = None
    #: Deletion window of the component's own key (when it creates one).
    kms_deletion_window_days: int = 30


class Network(pulumi.ComponentResource):
    """VPC with three subnet tiers per AZ, NAT, routing, flow logs and an S3 gateway endpoint."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    availability_zone_ids: list[str]
    availability_zones: list[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    isolated_subnet_ids: pulumi.Output[list[str]]
    private_route_table_ids: pulumi.Output[list[str]]
    isolated_route_table_id: pulumi.Output[str]
    nat_gateway_ids: pulumi.Output[list[str]]
    flow_log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fraudstack:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix

        def tags(suffix: str, **extra: str) -> dict[str, str]:
            return {**with_name(args.tags, f"{prefix}-{suffix}"), **extra}

        # The provider of this component (or the default one) decides the region and account.
        invoke = pulumi.InvokeOptions(parent=self)
        region = aws.get_region(opts=invoke).region
        zones = aws.get_availability_zones(
            state="available",
            # Local Zones and Wavelength zones are opt-in and lack most services.
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=invoke,
        )
        by_id = dict(zip(zones.zone_ids, zones.names))
        if len(by_id) < args.az_count:
            raise pulumi.RunError(
                f"fraudstack:network.azCount: {args.az_count} availability zones requested but "
                f"{region} offers {len(by_id)} ({', '.join(sorted(by_id))})"
            )
        self.availability_zone_ids = sorted(by_id)[: args.az_count]
        self.availability_zones = [by_id[z] for z in self.availability_zone_ids]
        self.vpc_cidr = args.vpc_cidr
        plan = plan_subnets(
            args.vpc_cidr, args.az_count, args.private_subnet_prefix, args.public_subnet_prefix, args.isolated_subnet_prefix
        )

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            # DNS hostnames are required by private interface endpoints and EKS.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=tags("vpc"),
            opts=child,
        )
        # Take over the default security group with no rules: anything attached to it by
        # accident is isolated instead of open to the whole VPC (CIS 5.4).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[], tags=tags("default-sg"), opts=child
        )
        # Every subnet has an explicit route table; the main one stays empty so a subnet
        # created outside this program gets no route out.
        aws.ec2.DefaultRouteTable(
            f"{name}-default-rt", default_route_table_id=vpc.default_route_table_id, routes=[], tags=tags("default-rt"), opts=child
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags("igw"), opts=child)

        subnets: dict[str, list[aws.ec2.Subnet]] = {tier: [] for tier in TIERS}
        for tier in TIERS:
            for zone_id, cidr in zip(self.availability_zone_ids, plan.tier(tier)):
                subnets[tier].append(
                    aws.ec2.Subnet(
                        f"{name}-{tier}-{zone_id}",
                        vpc_id=vpc.id,
                        cidr_block=cidr,
                        availability_zone_id=zone_id,
                        map_public_ip_on_launch=False,
                        tags=tags(f"{tier}-{zone_id}", tier=tier, **ELB_ROLE_TAGS[tier]),
                        opts=child,
                    )
                )

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=tags("public-rt", tier="public"),
            opts=child,
        )
        for zone_id, subnet in zip(self.availability_zone_ids, subnets["public"]):
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone_id}-rta", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child)

        nat_zones = self.availability_zone_ids if args.nat_per_az else self.availability_zone_ids[:1]
        nats: list[aws.ec2.NatGateway] = []
        for zone_id, subnet in zip(nat_zones, subnets["public"]):
            eip = aws.ec2.Eip(
                f"{name}-nat-{zone_id}-eip",
                domain="vpc",
                tags=tags(f"nat-{zone_id}-eip"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{zone_id}",
                    allocation_id=eip.allocation_id,
                    subnet_id=subnet.id,
                    connectivity_type="public",
                    tags=tags(f"nat-{zone_id}"),
                    # A NAT gateway created before the IGW is attached cannot reach out.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        private_rts: list[aws.ec2.RouteTable] = []
        for index, (zone_id, subnet) in enumerate(zip(self.availability_zone_ids, subnets["private"])):
            # Each AZ's workloads leave through their own AZ's NAT when there is one, so
            # an AZ outage does not cut the others' egress.
            nat = nats[index] if args.nat_per_az else nats[0]
            rt = aws.ec2.RouteTable(
                f"{name}-private-{zone_id}-rt",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=tags(f"private-{zone_id}-rt", tier="private"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-private-{zone_id}-rta", subnet_id=subnet.id, route_table_id=rt.id, opts=child)
            private_rts.append(rt)

        # Databases and caches never need to reach the internet; routes=[] also removes
        # any route added by hand (gateway endpoint routes are managed by the endpoint).
        isolated_rt = aws.ec2.RouteTable(
            f"{name}-isolated-rt", vpc_id=vpc.id, routes=[], tags=tags("isolated-rt", tier="isolated"), opts=child
        )
        for zone_id, subnet in zip(self.availability_zone_ids, subnets["isolated"]):
            aws.ec2.RouteTableAssociation(f"{name}-isolated-{zone_id}-rta", subnet_id=subnet.id, route_table_id=isolated_rt.id, opts=child)

        # S3 through the gateway endpoint: ECR image layers and backups stay off the NAT
        # (no data-processing charge) and off the internet.
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts] + [isolated_rt.id],
            tags=tags("s3-endpoint"),
            opts=child,
        )

        log_group_name = f"/{prefix}/vpc-flow-logs"
        key_arn = args.flow_log_kms_key_arn or self._flow_log_key(name, prefix, region, log_group_name, args, tags("flow-logs-key"))
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=log_group_name,
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=key_arn,
            tags=tags("flow-logs"),
            opts=child,
        )
        role = self._flow_log_role(name, region, log_group, tags("flow-logs-role"))
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            # One-minute aggregation: incident response needs the finer timeline.
            max_aggregation_interval=60,
            tags=tags("flow-log"),
            opts=child,
        )

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["public"]])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["private"]])
        self.isolated_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["isolated"]])
        self.private_route_table_ids = pulumi.Output.all(*[rt.id for rt in private_rts])
        self.isolated_route_table_id = isolated_rt.id
        self.nat_gateway_ids = pulumi.Output.all(*[n.id for n in nats])
        self.flow_log_group_name = log_group.name
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "vpcCidr": self.vpc_cidr,
                "availabilityZoneIds": self.availability_zone_ids,
                "availabilityZones": self.availability_zones,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
                "isolatedSubnetIds": self.isolated_subnet_ids,
                "natGatewayIds": self.nat_gateway_ids,
                "flowLogGroupName": self.flow_log_group_name,
            }
        )

    def _flow_log_key(
        self, name: str, prefix: str, region: str, log_group_name: str, args: NetworkArgs, key_tags: dict[str, str]
    ) -> pulumi.Output[str]:
        """A customer-managed key only CloudWatch Logs of this account may use, for this log group."""
        invoke = pulumi.InvokeOptions(parent=self)
        account = aws.get_caller_identity(opts=invoke).account_id
        partition = aws.get_partition(opts=invoke).partition
        log_group_arn = f"arn:{partition}:logs:{region}:{account}:log-group:{log_group_name}"
        policy = aws.iam.get_policy_document_output(
            statements=[
                {
                    # Administration through IAM, the AWS default: without it the key is unmanageable.
                    "sid": "AccountAdministration",
                    "actions": ["kms:*"],
                    "resources": ["*"],
                    "principals": [{"type": "AWS", "identifiers": [f"arn:{partition}:iam::{account}:root"]}],
                },
                {
                    "sid": "FlowLogGroupEncryption",
                    "actions": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                    "resources": ["*"],
                    "principals": [{"type": "Service", "identifiers": [f"logs.{region}.amazonaws.com"]}],
                    "conditions": [
                        {"test": "ArnEquals", "variable": "kms:EncryptionContext:aws:logs:arn", "values": [log_group_arn]},
                        {"test": "StringEquals", "variable": "aws:SourceAccount", "values": [account]},
                    ],
                },
            ],
            opts=invoke,
        )
        key = aws.kms.Key(
            f"{name}-flow-logs-key",
            description=f"{prefix} VPC flow logs",
            enable_key_rotation=True,
            deletion_window_in_days=args.kms_deletion_window_days,
            policy=policy.json,
            tags=key_tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.kms.Alias(
            f"{name}-flow-logs-key-alias", name=f"alias/{prefix}-flow-logs", target_key_id=key.key_id, opts=pulumi.ResourceOptions(parent=self)
        )
        return key.arn

    def _flow_log_role(self, name: str, region: str, log_group: aws.cloudwatch.LogGroup, role_tags: dict[str, str]) -> aws.iam.Role:
        """The role the flow-logs service assumes, limited to this account and this log group."""
        invoke = pulumi.InvokeOptions(parent=self)
        account = aws.get_caller_identity(opts=invoke).account_id
        partition = aws.get_partition(opts=invoke).partition
        trust = aws.iam.get_policy_document_output(
            statements=[
                {
                    "actions": ["sts:AssumeRole"],
                    "principals": [{"type": "Service", "identifiers": ["vpc-flow-logs.amazonaws.com"]}],
                    # Confused-deputy protection: only flow logs of this account.
                    "conditions": [
                        {"test": "StringEquals", "variable": "aws:SourceAccount", "values": [account]},
                        {"test": "ArnLike", "variable": "aws:SourceArn", "values": [f"arn:{partition}:ec2:{region}:{account}:vpc-flow-log/*"]},
                    ],
                }
            ],
            opts=invoke,
        )
        role = aws.iam.Role(f"{name}-flow-logs-role", assume_role_policy=trust.json, tags=role_tags, opts=pulumi.ResourceOptions(parent=self))
        permissions = aws.iam.get_policy_document_output(
            statements=[
                {
                    "sid": "DeliverToTheFlowLogGroup",
                    "actions": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "resources": [log_group.arn, log_group.arn.apply(lambda arn: f"{arn}:*")],
                },
                {
                    # The service checks the destination exists before delivering; this
                    # action has no narrower resource than the account's log groups.
                    "sid": "FindTheFlowLogGroup",
                    "actions": ["logs:DescribeLogGroups"],
                    "resources": [f"arn:{partition}:logs:{region}:{account}:log-group:*"],
                },
            ],
            opts=invoke,
        )
        aws.iam.RolePolicy(f"{name}-flow-logs-policy", role=role.id, policy=permissions.json, opts=pulumi.ResourceOptions(parent=self))
        return role

