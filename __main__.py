"""fraudstack: reads the stack config, wires the components, exports the outputs. Nothing else."""

import pulumi
import pulumi_aws as aws

from components.alarms import Alarms, AlarmsArgs, ModelThresholds, Thresholds, member_cluster_ids
from components.backup_replication import BackupReplication, BackupReplicationArgs
from components.cache import Cache, CacheArgs
from components.cluster import AddonVersionsSpec, Cluster, ClusterArgs, NodeGroupSpec
from components.config import NatStrategy, load_stack_config
from components.database import Database, DatabaseArgs
from components.endpoints import SERVICES, Endpoints, EndpointsArgs
from components.keys import PLATFORM_PURPOSES, Keys, KeysArgs
from components.model_store import ModelStore, ModelStoreArgs
from components.network import Network, NetworkArgs
from components.registry import Registry, RegistryArgs
from components.scoring_app import Resources, ScoringApp, ScoringAppArgs
from components.secrets import Secrets, SecretsArgs
from components.subnets import plan_subnets
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

account_id = aws.get_caller_identity_output().account_id


def _node_group(spec) -> NodeGroupSpec:
    return NodeGroupSpec(
        instance_types=spec.instance_types,
        min_size=spec.min_size,
        desired_size=spec.desired_size,
        max_size=spec.max_size,
        disk_size_gib=spec.disk_size_gib,
        capacity_type=spec.capacity_type,
    )


cluster = Cluster(
    "eks",
    ClusterArgs(
        cluster_name=name_prefix,
        kubernetes_version=cfg.cluster.kubernetes_version,
        region=cfg.region,
        vpc_id=network.vpc_id,
        vpc_cidr=network.vpc_cidr,
        private_subnet_ids=network.private_subnet_ids,
        secrets_key_arn=keys.key_arns["eks"],
        ebs_key_arn=keys.key_arns["ebs"],
        logs_key_arn=keys.key_arns["logs"],
        admin_role_arns=cfg.cluster.admin_role_arns,
        cpu_nodes=_node_group(cfg.cluster.cpu_nodes),
        gpu_nodes=_node_group(cfg.cluster.gpu_nodes),
        addon_versions=AddonVersionsSpec(
            vpc_cni=cfg.cluster.addons.vpc_cni,
            coredns=cfg.cluster.addons.coredns,
            kube_proxy=cfg.cluster.addons.kube_proxy,
            cloudwatch_observability=cfg.cluster.addons.cloudwatch_observability,
        ),
        nvidia_device_plugin_version=cfg.cluster.nvidia_device_plugin_version,
        cluster_autoscaler_version=cfg.cluster.cluster_autoscaler_version,
        autoscaler=cfg.cluster.autoscaler,
        public_access_cidrs=cfg.cluster.public_access_cidrs,
        private_access_cidrs=cfg.cluster.private_access_cidrs,
        log_retention_days=cfg.cluster.log_retention_days,
        deletion_protection=cfg.cluster.deletion_protection,
        tags=tags,
    ),
)

# Security groups admitted to the database and the cache (the cluster's nodes), and roles
# allowed to read the service's secrets (the scoring service's role once it exists).
data_clients: dict[str, pulumi.Input[str]] = {"cluster-nodes": cluster.node_security_group.id}
# The service's IRSA role is created with the app further down, after the data tier it
# needs; its ARN reaches the secrets' policies through a deferred output.
service_role_arn, resolve_service_role_arn = pulumi.deferred_output()
# The model store needs that role too, and the Deployment needs the store's URI: the
# URI reaches the app the same way.
model_store_uri, resolve_model_store_uri = pulumi.deferred_output()
secret_readers: list[pulumi.Input[str]] = [*cfg.secrets.reader_role_arns, service_role_arn]

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
        admin_key_length=cfg.secrets.admin_key_length,
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

# Production keeps a copy of every automated backup in a second region (point-in-time
# restore there if the home region is lost).
backup_replication = None
if cfg.database.backup_replication_region:
    backup_replication = BackupReplication(
        "database-backups",
        BackupReplicationArgs(
            name_prefix=name_prefix,
            source_db_instance_arn=database.arn,
            destination_region=cfg.database.backup_replication_region,
            retention_days=cfg.database.backup_replication_retention_days,
            account_id=account_id,
            partition=aws.get_partition_output().partition,
            deletion_window_days=cfg.keys.deletion_window_days,
            rotation_period_days=cfg.keys.rotation_period_days,
            admin_role_arns=cfg.keys.admin_role_arns,
            tags=tags,
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

endpoints = Endpoints(
    "endpoints",
    EndpointsArgs(
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        node_security_group_id=cluster.node_security_group.id,
        region=cfg.region,
        account_id=account_id,
        model_ids=cfg.bedrock.model_ids,
        services=[key for key in SERVICES if getattr(cfg.endpoints, key)],
        name_prefix=name_prefix,
        tags=tags,
    ),
)

registry = Registry(
    "registry",
    RegistryArgs(
        repository_name=cfg.registry.repository_name,
        key_arn=keys.key_arns["ecr"],
        keep_last_images=cfg.registry.keep_last_images,
        untagged_expiry_days=cfg.registry.untagged_expiry_days,
        tags=tags,
    ),
)

subnet_plan = plan_subnets(
    cfg.network.vpc_cidr,
    cfg.network.az_count,
    cfg.network.private_subnet_prefix,
    cfg.network.public_subnet_prefix,
    cfg.network.isolated_subnet_prefix,
)
app_cfg = cfg.app
app = ScoringApp(
    "app",
    ScoringAppArgs(
        name_prefix=name_prefix,
        environment=cfg.environment,
        region=cfg.region,
        account_id=account_id,
        cluster_name=cluster.cluster_name,
        kubeconfig=cluster.kubeconfig,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer_url=cluster.oidc_issuer_url,
        kubernetes_service_cidr=cluster.service_ipv4_cidr,
        vpc_id=network.vpc_id,
        vpc_cidr=cfg.network.vpc_cidr,
        public_subnet_cidrs=subnet_plan.public,
        private_subnet_cidrs=subnet_plan.private,
        isolated_subnet_cidrs=subnet_plan.isolated,
        public_subnet_ids=network.public_subnet_ids,
        private_subnet_ids=network.private_subnet_ids,
        repository_url=registry.repository_url,
        image=app_cfg.image,
        gpu_image=app_cfg.gpu_image,
        database_address=database.address,
        database_port=database.port,
        database_name=database.database_name,
        database_username=DatabaseArgs.master_username,  # the dataclass default: the program never overrides it
        database_secret_arn=database.master_user_secret_arn,
        cache_address=cache.primary_endpoint,
        cache_port=cache.port,
        secret_arns=secrets.secret_arns,
        secrets_key_arn=keys.key_arns["secrets"],
        logs_key_arn=keys.key_arns["logs"],
        bedrock_model_ids=cfg.bedrock.model_ids,
        certificate_arn=app_cfg.certificate_arn,
        namespace=app_cfg.namespace,
        name=app_cfg.name,
        workers=app_cfg.workers,
        log_level=app_cfg.log_level,
        gpu=app_cfg.gpu,
        signed_requests=app_cfg.signed_requests,
        metrics_scrapers=app_cfg.metrics_scrapers,
        wait_for=[cluster.cpu_nodes, cluster.gpu_nodes],
        resources=Resources(app_cfg.resources.cpu, app_cfg.resources.memory, app_cfg.resources.ephemeral_storage),
        min_replicas=app_cfg.min_replicas,
        max_replicas=app_cfg.max_replicas,
        cpu_target_percent=app_cfg.cpu_target_percent,
        requests_per_second_target=app_cfg.requests_per_second_target,
        internet_facing=app_cfg.scheme.value == "internet-facing",
        hostname=app_cfg.hostname,
        ssl_policy=app_cfg.ssl_policy,
        waf_rate_limit=app_cfg.waf_rate_limit,
        access_log_retention_days=app_cfg.access_log_retention_days,
        log_retention_days=cfg.cluster.log_retention_days,
        lb_controller_version=app_cfg.lb_controller_version,
        monitoring_namespace=app_cfg.monitoring_namespace,
        prometheus_version=app_cfg.prometheus_version,
        prometheus_adapter_version=app_cfg.prometheus_adapter_version,
        model_store_uri=model_store_uri,
        tags=tags,
    ),
)
resolve_service_role_arn(app.service_account_role_arn)
# Models are read by the scoring service's role (which also gets the reader IAM policy) and
# fraudstack:modelStore.readerRoleArns; written only by modelStore.writerRoleArns.
model_store = ModelStore(
    "model-store",
    ModelStoreArgs(
        name_prefix=name_prefix,
        account_id=account_id,
        kms_key_arn=keys.key_arns["models"],
        reader_role_arns=list(cfg.model_store.reader_role_arns),
        service_role_arn=app.service_account_role_arn,
        writer_role_arns=list(cfg.model_store.writer_role_arns),
        noncurrent_version_days=cfg.model_store.noncurrent_version_days,
        keep_noncurrent_versions=cfg.model_store.keep_noncurrent_versions,
        access_log_days=cfg.model_store.access_log_days,
        force_destroy=cfg.model_store.force_destroy,
        tags=tags,
    ),
)
resolve_model_store_uri(model_store.bucket_name.apply(lambda b: f"s3://{b}"))

limits = cfg.alarms
monitoring = cfg.model_monitoring
alarms = Alarms(
    "alarms",
    AlarmsArgs(
        name_prefix=name_prefix,
        region=cfg.region,
        account_id=account_id,
        environment=cfg.environment,
        topic_key_arn=keys.key_arns["sns"],
        db_instance_id=database.identifier,
        cache_cluster_ids=member_cluster_ids(cache.replication_group_id, 1 + cfg.cache.replicas),
        cluster_name=cluster.cluster_name,
        service_namespace=limits.service.namespace,
        service_deployment=limits.service.deployment,
        thresholds=Thresholds(
            db_cpu_percent=limits.database.cpu_percent,
            db_free_storage_gib=limits.database.free_storage_gib,
            db_freeable_memory_mib=limits.database.freeable_memory_mib,
            db_read_latency_ms=limits.database.read_latency_ms,
            db_write_latency_ms=limits.database.write_latency_ms,
            db_connections=limits.database.connections,
            cache_engine_cpu_percent=limits.cache.engine_cpu_percent,
            cache_memory_percent=limits.cache.memory_percent,
            cache_evictions=limits.cache.evictions,
            cache_replication_lag_seconds=limits.cache.replication_lag_seconds,
            node_cpu_percent=limits.nodes.cpu_percent,
            node_memory_percent=limits.nodes.memory_percent,
            pod_restarts=limits.nodes.pod_restarts,
            service_p99_latency_ms=limits.service.p99_latency_ms,
            service_error_rate_percent=limits.service.error_rate_percent,
            service_audit_backlog=limits.service.audit_backlog,
        ),
        email=limits.email,
        period_seconds=limits.period_seconds,
        evaluation_periods=limits.evaluation_periods,
        model=ModelThresholds(
            score_psi=monitoring.score_psi,
            feature_psi=monitoring.feature_psi,
            decline_precision=monitoring.decline_precision,
            decline_recall=monitoring.decline_recall,
            review_precision=monitoring.review_precision,
            review_recall=monitoring.review_recall,
            evaluation_hours=monitoring.evaluation_hours,
        ) if monitoring.enabled else None,
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
pulumi.export("kmsKeyArns", keys.key_arns)
pulumi.export("kmsKeyAliases", keys.alias_names)
pulumi.export("secretArns", secrets.secret_arns)
pulumi.export("databaseIdentifier", database.identifier)
pulumi.export("databaseEndpoint", database.endpoint)
pulumi.export("databaseAddress", database.address)
pulumi.export("databasePort", database.port)
pulumi.export("databaseName", database.database_name)
pulumi.export("databaseSecurityGroupId", database.security_group_id)
pulumi.export("databaseMasterUserSecretArn", database.master_user_secret_arn)
pulumi.export("databaseArn", database.arn)
pulumi.export("databaseBackupReplicationRegion", cfg.database.backup_replication_region)
pulumi.export("databaseBackupReplicationKeyArn", backup_replication.key.arn if backup_replication else None)
pulumi.export("cacheReplicationGroupId", cache.replication_group_id)
pulumi.export("cacheMemberClusterIds", cache.member_cluster_ids)
pulumi.export("cachePrimaryEndpoint", cache.primary_endpoint)
pulumi.export("cacheReaderEndpoint", cache.reader_endpoint)
pulumi.export("cachePort", cache.port)
pulumi.export("cacheSecurityGroupId", cache.security_group_id)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("clusterEndpoint", cluster.endpoint)
pulumi.export("clusterOidcProviderArn", cluster.oidc_provider_arn)
pulumi.export("clusterOidcIssuerUrl", cluster.oidc_issuer_url)
pulumi.export("nodeSecurityGroupId", cluster.node_security_group.id)
pulumi.export("vpcEndpointIds", {key: e.id for key, e in endpoints.endpoints.items()})
pulumi.export("vpcEndpointSecurityGroupId", endpoints.security_group.id)
pulumi.export("repositoryUrl", registry.repository_url)
pulumi.export("alarmTopicArn", alarms.topic_arn)
pulumi.export("alarmNames", [a.name for a in alarms.alarms.values()])
pulumi.export("dashboardName", alarms.dashboard.dashboard_name)
pulumi.export("modelStoreBucket", model_store.bucket_name)
pulumi.export("modelStoreBucketArn", model_store.bucket_arn)
pulumi.export("modelStoreLogBucket", model_store.log_bucket_name)
pulumi.export("modelStoreUri", model_store_uri)
pulumi.export("modelStoreReaderPolicy", model_store.reader_policy_json)
pulumi.export("appNamespace", app_cfg.namespace)
pulumi.export("appImage", app.image)
pulumi.export("appServiceAccountRoleArn", app.service_account_role_arn)
pulumi.export("albAccessLogBucket", app.access_logs.bucket)
pulumi.export("albHostname", app.load_balancer_hostname)
pulumi.export("wafWebAclArn", app.waf_acl.arn if app.waf_acl is not None else None)
