"""fraudstack: reads the stack config, wires the components, exports the outputs. Nothing else."""

import pulumi

from components.cache import Cache, CacheArgs
from components.config import NatStrategy, load_stack_config
from components.database import Database, DatabaseArgs
from components.keys import PLATFORM_PURPOSES, Keys, KeysArgs
from components.network import Network, NetworkArgs
from components.secrets import Secrets, SecretsArgs
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

keys = Keys(
    "keys",
    KeysArgs(
        purposes=PLATFORM_PURPOSES,
        deletion_window_days=cfg.keys.deletion_window_days,
        rotation_period_days=cfg.keys.rotation_period_days,
        admin_role_arns=cfg.keys.admin_role_arns,
        tags=tags,
        name_prefix=name_prefix,
    ),
)

# Security groups admitted to the database and the cache, and roles allowed to read the
# service's secrets: the cluster's node security group and the scoring service's role
# once those components exist. Empty means nobody can reach or read them, which is safe.
data_clients: dict[str, pulumi.Input[str]] = {}
secret_readers: list[pulumi.Input[str]] = []

secrets = Secrets(
    "secrets",
    SecretsArgs(
        name_prefix=name_prefix,
        tags=tags,
        kms_key_arn=keys.key_arns["secrets"],
        recovery_window_days=cfg.secrets.recovery_window_days,
        api_key_clients=cfg.secrets.api_key_clients,
        api_key_length=cfg.secrets.api_key_length,
        hmac_key_length=cfg.secrets.hmac_key_length,
        reader_role_arns=secret_readers,
    ),
)

database = Database(
    "database",
    DatabaseArgs(
        name_prefix=name_prefix,
        tags=tags,
        vpc_id=network.vpc_id,
        subnet_ids=network.isolated_subnet_ids,
        allowed_security_group_ids=data_clients,
        kms_key_arn=keys.key_arns["database"],
        secrets_kms_key_arn=keys.key_arns["secrets"],
        logs_kms_key_arn=keys.key_arns["logs"],
        engine_version=cfg.database.engine_version,
        instance_class=cfg.database.instance_class,
        allocated_storage_gb=cfg.database.allocated_storage_gb,
        max_allocated_storage_gb=cfg.database.max_allocated_storage_gb,
        multi_az=cfg.database.multi_az,
        backup_retention_days=cfg.database.backup_retention_days,
        backup_window=cfg.database.backup_window,
        maintenance_window=cfg.database.maintenance_window,
        performance_insights_retention_days=cfg.database.performance_insights_retention_days,
        monitoring_interval_seconds=cfg.database.monitoring_interval_seconds,
        ca_cert_identifier=cfg.database.ca_cert_identifier,
        log_min_duration_ms=cfg.database.log_min_duration_ms,
        log_retention_days=cfg.database.log_retention_days,
        deletion_protection=cfg.database.deletion_protection,
    ),
)

cache = Cache(
    "cache",
    CacheArgs(
        name_prefix=name_prefix,
        tags=tags,
        vpc_id=network.vpc_id,
        subnet_ids=network.isolated_subnet_ids,
        allowed_security_group_ids=data_clients,
        kms_key_arn=keys.key_arns["cache"],
        logs_kms_key_arn=keys.key_arns["logs"],
        auth_token=secrets.redis_auth_token,
        engine_version=cfg.cache.engine_version,
        node_type=cfg.cache.node_type,
        replicas=cfg.cache.replicas,
        multi_az=cfg.cache.multi_az,
        snapshot_retention_days=cfg.cache.snapshot_retention_days,
        snapshot_window=cfg.cache.snapshot_window,
        maintenance_window=cfg.cache.maintenance_window,
        log_retention_days=cfg.cache.log_retention_days,
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
pulumi.export("kmsKeyArns", keys.key_arns)
pulumi.export("kmsKeyAliases", keys.alias_names)
pulumi.export("secretArns", secrets.secret_arns)
pulumi.export("databaseEndpoint", database.endpoint)
pulumi.export("databaseAddress", database.address)
pulumi.export("databasePort", database.port)
pulumi.export("databaseName", database.database_name)
pulumi.export("databaseSecurityGroupId", database.security_group_id)
pulumi.export("databaseMasterUserSecretArn", database.master_user_secret_arn)
pulumi.export("cachePrimaryEndpoint", cache.primary_endpoint)
pulumi.export("cacheReaderEndpoint", cache.reader_endpoint)
pulumi.export("cachePort", cache.port)
pulumi.export("cacheSecurityGroupId", cache.security_group_id)
