"""fraudstack: reads the stack config, wires the components, exports the outputs. Nothing else."""

import pulumi

from components.config import NatStrategy, load_stack_config
from components.network import Network, NetworkArgs
from components.tags import required_tags

cfg = load_stack_config()
tags = required_tags(cfg)
name_prefix = f"{cfg.service}-{cfg.environment}"

network = Network(
    "network",
    NetworkArgs(
        name_prefix=name_prefix,
        vpc_cidr=cfg.network.vpc_cidr,
        az_count=cfg.network.az_count,
        nat_per_az=cfg.network.nat_strategy is NatStrategy.PER_AZ,
        private_subnet_prefix=cfg.network.private_subnet_prefix,
        public_subnet_prefix=cfg.network.public_subnet_prefix,
        isolated_subnet_prefix=cfg.network.isolated_subnet_prefix,
        flow_log_retention_days=cfg.network.flow_log_retention_days,
        tags=tags,
    ),
)

pulumi.export("environment", cfg.environment)
pulumi.export("region", cfg.region)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("vpcCidr", network.vpc_cidr)
pulumi.export("availabilityZoneIds", network.availability_zone_ids)
pulumi.export("availabilityZones", network.availability_zones)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("isolatedSubnetIds", network.isolated_subnet_ids)
pulumi.export("natGatewayIds", network.nat_gateway_ids)
pulumi.export("flowLogGroupName", network.flow_log_group_name)
