"""The scoring service on EKS: a hardened workload, autoscaling, private wiring and its ALB.

Everything Kubernetes goes through one ``pulumi_kubernetes.Provider`` built from the
cluster's kubeconfig. What it declares, in dependency order:

* a Namespace enforcing the restricted Pod Security Standard, with a ResourceQuota and a
  LimitRange, and default-deny NetworkPolicies (ingress and egress);
* an IRSA role (the cluster's :func:`~components.cluster.service_account_role` helper)
  allowed exactly to read the service's secrets, invoke the configured Bedrock models and
  publish metrics to the ``fraudstack`` CloudWatch namespace, and the ServiceAccount
  annotated with it. Credentials never sit in a Kubernetes Secret: the service reads them
  from Secrets Manager at start-up through that role;
* the migrations Job, then the Deployment (no ``replicas``: the HPA owns them), its
  ClusterIP Service, HorizontalPodAutoscaler and PodDisruptionBudget;
* the AWS Load Balancer Controller (Helm release with its own IRSA role), the ALB's access
  log bucket, a WAFv2 web ACL when the ALB is internet-facing, and the Ingress (which
  answers the service's ``/admin`` routes with a 404 instead of forwarding them).

What each object contains comes from the pure functions of
:mod:`components.scoring_app_specs` (``security_context``, ``network_policies``,
``alb_annotations``, ...), so tests and the docs can state exactly what the cluster receives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster import CPU_LABELS, service_account_role
from components.metrics_adapter import (
    ADAPTER_RELEASE,
    POLICY_NAMES as MONITORING_POLICIES,
    PROMETHEUS_CHART_REPO,
    PROMETHEUS_RELEASE,
    MetricsAdapterSpec,
    adapter_values,
    kubernetes_service_block,
    prometheus_values,
)
from components.metrics_adapter import limit_range as monitoring_limit_range
from components.metrics_adapter import network_policies as monitoring_network_policies
from components.metrics_adapter import quota as monitoring_quota
from components.scoring_app_specs import (
    DATA_DIR,
    LB_CONTROLLER_CHART_REPO,
    LB_CONTROLLER_NAMESPACE,
    LB_CONTROLLER_SERVICE_ACCOUNT,
    REQUEST_RATE_METRIC,
    SERVICE_PORT,
    CONTAINER_PORT,
    PRE_STOP_SECONDS,
    TMP_DIR,
    TMP_MIB,
    WAF_MANAGED_RULE_GROUPS,
    access_log_bucket_policy,
    alb_annotations,
    checkov_skips,
    container_resources,
    database_url,
    environment,
    gpu_scheduling,
    image_ref,
    ingress_paths,
    labels,
    lb_controller_policy,
    namespace_labels,
    network_policies,
    pod_security_context,
    probes,
    redis_url,
    security_context,
    selector,
    service_role_policy,
    short_name,
    spool_size_mib,
    termination_grace_seconds,
    times,
    topology_spread,
)


@dataclass(frozen=True)
class Resources:
    """Container requests (= limits) as Kubernetes quantities."""

    cpu: str
    memory: str
    ephemeral_storage: str


@dataclass(frozen=True)
class ScoringAppArgs:
    """Inputs of :class:`ScoringApp`."""

    name_prefix: str
    """Physical name prefix, e.g. ``fraudstack-production``."""
    environment: str
    """Passed to the service as FRAUDSTACK_ENVIRONMENT (``production`` refuses placeholder keys)."""
    region: str
    account_id: pulumi.Input[str]
    # --- cluster
    cluster_name: pulumi.Input[str]
    kubeconfig: pulumi.Input[str]
    """The cluster's kubeconfig (``aws eks get-token``); the component's Kubernetes provider is built from it."""
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    kubernetes_service_cidr: pulumi.Input[str]
    """The cluster's Service range: its first address is the API server's ClusterIP."""
    # --- network
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    public_subnet_cidrs: Sequence[str]
    """Where an internet-facing ALB's nodes are (its traffic to the pods comes from here)."""
    private_subnet_cidrs: Sequence[str]
    """Where an internal ALB's nodes and the VPC interface endpoints are."""
    isolated_subnet_cidrs: Sequence[str]
    """Where PostgreSQL and Redis are."""
    public_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    # --- image
    repository_url: pulumi.Input[str]
    image: str
    """An immutable tag or ``sha256:<digest>`` in ``repository_url``: the CPU image (the
    Deployment's unless ``gpu``; always the migration Job's)."""
    # --- data tier
    database_address: pulumi.Input[str]
    database_port: pulumi.Input[int]
    database_name: pulumi.Input[str]
    database_username: str
    database_secret_arn: pulumi.Input[str]
    """RDS-managed master-user secret (JSON username/password)."""
    cache_address: pulumi.Input[str]
    cache_port: pulumi.Input[int]
    secret_arns: Mapping[str, pulumi.Input[str]]
    """The Secrets component's ARNs by name (``api-keys``, ``hmac-signing-key``, ``redis-auth-token``)."""
    secrets_key_arn: pulumi.Input[str]
    """KMS key of those secrets (decrypt allowed only through Secrets Manager)."""
    logs_key_arn: pulumi.Input[str]
    """KMS key of the WAF log group."""
    bedrock_model_ids: Sequence[str]
    """Models the service may invoke; the first is the one it uses."""
    # --- workload
    certificate_arn: str
    namespace: str = "fraudstack"
    name: str = "scoring-api"
    workers: int = 1
    log_level: str = "INFO"
    gpu: bool = False
    gpu_image: str | None = None
    """The GPU build (app/Dockerfile ``runtime-gpu``) in ``repository_url``; required with ``gpu``."""
    signed_requests: bool = True
    """Give the service the HMAC key's secret: every request must then be signed."""
    metrics_scrapers: Sequence[str] = ()
    """Namespaces allowed to scrape ``/metrics`` on the service port."""
    resources: Resources = Resources("1", "1Gi", "1Gi")
    min_replicas: int = 3
    max_replicas: int = 12
    cpu_target_percent: int = 60
    requests_per_second_target: int = 1000
    internet_facing: bool = False
    hostname: str | None = None
    ssl_policy: str = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    waf_rate_limit: int = 2000
    access_log_retention_days: int = 365
    log_retention_days: int = 365
    lb_controller_version: str = "1.14.0"
    monitoring_namespace: str = "monitoring"
    """Namespace of the Prometheus server and prometheus-adapter behind the request-rate metric."""
    prometheus_version: str = "25.27.0"
    """Helm chart version of ``prometheus`` (server only)."""
    prometheus_adapter_version: str = "4.11.0"
    """Helm chart version of ``prometheus-adapter``."""
    model_store_uri: pulumi.Input[str] | None = None
    """``s3://<bucket>`` of the model store: the service loads the version its ``active``
    pointer names and follows the pointer (FRAUDSTACK_MODEL_STORE, app/lifecycle.py).
    None: the model baked into the image."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Required tags; AWS children add their own ``Name``, the ALB gets them through the controller."""
    wait_for: Sequence[pulumi.Resource] = ()
    """What must exist before anything is applied to the cluster: the node groups (which
    wait for the VPC CNI with network-policy enforcement), so pods can schedule and no pod
    ever runs before its NetworkPolicies are enforced."""


# --------------------------------------------------------------------------- the component


class ScoringApp(pulumi.ComponentResource):
    """The scoring service deployed on the cluster behind an ALB.

    Outputs: ``namespace``, ``service_account_role_arn``, ``lb_controller_role_arn``,
    ``access_log_bucket``, ``waf_acl_arn`` (None when internal), ``image`` (the
    Deployment's), ``migration_image`` (the migration Job's: always the CPU build).
    """

    def __init__(self, name: str, args: ScoringAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:ScoringApp", name, None, opts)
        if args.max_replicas < args.min_replicas or args.min_replicas < 2:
            raise ValueError("need 2 <= min_replicas <= max_replicas")
        if args.gpu and not args.gpu_image:
            raise ValueError("gpu needs gpu_image: the runtime-gpu build of the service")
        if not args.bedrock_model_ids:
            raise ValueError("at least one Bedrock model id is required")
        if len(f"{args.name_prefix}-alb") > 32:
            raise ValueError(f"ALB name {args.name_prefix}-alb is longer than 32 characters; shorten the service name")
        self._args, self._name = args, name
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=args.kubeconfig,
            # Server-side apply: field ownership is tracked, so kubectl edits show up as drift.
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.wait_for)),
        )
        self._namespace()
        self._identity()
        self._load_balancer_controller()
        self._metrics_adapter()
        self._access_logs()
        # WAF in front of an internet-facing ALB.
        self.waf_acl: aws.wafv2.WebAcl | None = self._web_acl(name, args) if args.internet_facing else None
        self._workload()
        self._ingress()

        self.service_account_role_arn = self.service_role.arn
        self.register_outputs(
            {
                "namespace": self._args.namespace,
                "service_account_role_arn": self.service_role.arn,
                "lb_controller_role_arn": self.lb_controller_role.arn,
                "access_log_bucket": self.access_logs.bucket,
                "waf_acl_arn": self.waf_acl.arn if self.waf_acl is not None else None,
                "image": self.image,
                "migration_image": self.migration_image,
            }
        )

    # ------------------------------------------------------------------ helpers
    def _aws_tags(self, suffix: str) -> dict[str, str]:
        return {**self._args.tags, "Name": f"{self._args.name_prefix}-{suffix}"}

    def _kopts(self, *depends: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options of a Kubernetes object: this component's child, through its provider."""
        return pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(depends))

    def _meta(self, obj_name: str, obj_labels: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        """Object metadata in the service's namespace."""
        return {"name": obj_name, "namespace": self._args.namespace, "labels": dict(obj_labels or labels(self._args)), **extra}

    # ------------------------------------------------------------------ parts
    def _namespace(self) -> None:
        """Restricted namespace, its quota and limits, and the NetworkPolicies."""
        args, name, meta, kopts = self._args, self._name, self._meta, self._kopts
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": {
                    **namespace_labels(),
                    # The controller injects readiness gates: a pod takes traffic only once
                    # the ALB sees it healthy, so a rollout never outruns the load balancer.
                    "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
                },
            },
            opts=kopts(),
        )
        per_pod = container_resources(args.resources, args.gpu)["limits"]
        # Room for maxReplicas, a surge of 25 % and the migration Job (which takes no GPU).
        serving = args.max_replicas + max(1, args.max_replicas // 4)
        pods = serving + 1
        hard = {
            "pods": str(pods),
            "requests.cpu": times(args.resources.cpu, pods),
            "limits.cpu": times(args.resources.cpu, pods),
            "requests.memory": times(args.resources.memory, pods),
            "limits.memory": times(args.resources.memory, pods),
            "requests.ephemeral-storage": times(args.resources.ephemeral_storage, pods),
            "limits.ephemeral-storage": times(args.resources.ephemeral_storage, pods),
            "services.loadbalancers": "0",
            "services.nodeports": "0",
        }
        if args.gpu:
            hard["requests.nvidia.com/gpu"] = str(serving)
        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota", metadata=meta("quota"), spec={"hard": hard}, opts=kopts(self.namespace)
        )
        defaults = {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "512Mi"}
        self.limit_range = k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=meta("limits"),
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": dict(defaults),
                        "defaultRequest": dict(defaults),
                        "max": {k: v for k, v in per_pod.items() if k != "nvidia.com/gpu"},
                    }
                ]
            },
            opts=kopts(self.namespace),
        )
        self.network_policies = {
            policy: k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{policy}", metadata=meta(policy), spec=spec, opts=kopts(self.namespace)
            )
            for policy, spec in network_policies(args).items()
        }

    def _identity(self) -> None:
        """IRSA role with exactly the service's permissions, and its ServiceAccount."""
        args, name, meta, kopts = self._args, self._name, self._meta, self._kopts
        secret_arns = [*args.secret_arns.values(), args.database_secret_arn]
        policy_json = pulumi.Output.all(args.secrets_key_arn, args.account_id, *secret_arns).apply(
            lambda v: json.dumps(service_role_policy(v[2:], v[0], args.bedrock_model_ids, args.region, v[1]), sort_keys=True)
        )
        self.service_role = service_account_role(
            f"{name}-irsa",
            args.namespace,
            args.name,
            policy_json,
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            tags=args.tags,
            parent=self,
        )
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta(args.name, annotations={"eks.amazonaws.com/role-arn": self.service_role.arn}),
            # The pod needs no Kubernetes API token; the IRSA web-identity token is a
            # separate projected volume the EKS webhook adds.
            automount_service_account_token=False,
            opts=kopts(self.namespace),
        )

    def _load_balancer_controller(self) -> None:
        """The AWS Load Balancer Controller, with its own IRSA role."""
        args, name, meta, kopts = self._args, self._name, self._meta, self._kopts
        controller_policy = pulumi.Output.all(args.cluster_name, args.account_id, args.vpc_id).apply(
            lambda v: json.dumps(lb_controller_policy(v[0], args.region, v[1], v[2]), sort_keys=True)
        )
        self.lb_controller_role = service_account_role(
            f"{name}-lb-controller-irsa",
            LB_CONTROLLER_NAMESPACE,
            LB_CONTROLLER_SERVICE_ACCOUNT,
            controller_policy,
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            tags=args.tags,
            parent=self,
        )
        self.lb_controller = k8s.helm.v3.Release(
            f"{name}-lb-controller",
            name="aws-load-balancer-controller",
            chart="aws-load-balancer-controller",
            version=args.lb_controller_version,
            namespace=LB_CONTROLLER_NAMESPACE,
            repository_opts={"repo": LB_CONTROLLER_CHART_REPO},
            values={
                "clusterName": args.cluster_name,
                "region": args.region,
                "vpcId": args.vpc_id,
                "replicaCount": 2,
                "serviceAccount": {
                    "create": True,
                    "name": LB_CONTROLLER_SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": self.lb_controller_role.arn},
                },
                # Only Ingresses: Services of type LoadBalancer are refused by our quota anyway.
                "enableServiceMutatorWebhook": False,
                "defaultTags": dict(args.tags),
                "nodeSelector": dict(CPU_LABELS),
                "podDisruptionBudget": {"maxUnavailable": 1},
                "priorityClassName": "system-cluster-critical",
            },
            opts=kopts(),
        )

    def _metrics_adapter(self) -> None:
        """Prometheus (server only) and prometheus-adapter: the HPA's request-rate metric.

        Their namespace is ours, not Helm's, so it carries what the service's namespace
        does (restricted PSS, quota, limits, default-deny NetworkPolicies with the exact
        flows) and every guard exists before the charts' first pod.
        """
        args, name, kopts = self._args, self._name, self._kopts
        spec = MetricsAdapterSpec(args.monitoring_namespace, args.namespace, args.name, CONTAINER_PORT,
                                  REQUEST_RATE_METRIC, dict(CPU_LABELS), selector(args), tuple(args.private_subnet_cidrs))
        ns = args.monitoring_namespace

        def meta(obj_name: str) -> dict[str, Any]:
            return {"name": obj_name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "fraudstack"}}

        self.monitoring_namespace = k8s.core.v1.Namespace(
            f"{name}-monitoring-namespace",
            metadata={"name": ns, "labels": namespace_labels()},
            opts=kopts(),
        )
        self.monitoring_quota = k8s.core.v1.ResourceQuota(
            f"{name}-monitoring-quota", metadata=meta("quota"), spec={"hard": monitoring_quota()},
            opts=kopts(self.monitoring_namespace),
        )
        self.monitoring_limit_range = k8s.core.v1.LimitRange(
            f"{name}-monitoring-limits", metadata=meta("limits"), spec=monitoring_limit_range(),
            opts=kopts(self.monitoring_namespace),
        )
        # Only the ClusterIP waits for the cluster: the rest of every policy is known at preview.
        service_ip = pulumi.Output.from_input(args.kubernetes_service_cidr).apply(kubernetes_service_block)
        policies = monitoring_network_policies(spec, [service_ip, *spec.control_plane_cidrs])
        self.monitoring_network_policies = {
            policy: k8s.networking.v1.NetworkPolicy(
                f"{name}-monitoring-netpol-{policy}", metadata=meta(policy), spec=policies[policy],
                opts=kopts(self.monitoring_namespace),
            )
            for policy in MONITORING_POLICIES
        }
        guards = [self.monitoring_namespace, self.monitoring_quota, self.monitoring_limit_range,
                  *self.monitoring_network_policies.values()]
        self.prometheus = k8s.helm.v3.Release(
            f"{name}-prometheus", name=PROMETHEUS_RELEASE, chart="prometheus", version=args.prometheus_version,
            namespace=ns, repository_opts={"repo": PROMETHEUS_CHART_REPO},
            values=prometheus_values(spec), create_namespace=False, opts=kopts(*guards),
        )
        self.prometheus_adapter = k8s.helm.v3.Release(
            f"{name}-prometheus-adapter", name=ADAPTER_RELEASE, chart="prometheus-adapter",
            version=args.prometheus_adapter_version, namespace=ns,
            repository_opts={"repo": PROMETHEUS_CHART_REPO}, values=adapter_values(spec), create_namespace=False,
            opts=kopts(self.prometheus, *guards),
        )

    def _access_logs(self) -> None:
        """The ALB's access-log bucket (SSE-S3: ALB log delivery does not support KMS keys)."""
        args, name = self._args, self._name
        # Bucket names are global: account and region make this one unique and recognisable.
        self.access_logs = aws.s3.Bucket(
            f"{name}-alb-logs",
            bucket=pulumi.Output.from_input(args.account_id).apply(
                lambda account: f"{args.name_prefix}-alb-logs-{account}-{args.region}"
            ),
            force_destroy=False,
            tags=self._aws_tags("alb-logs"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-alb-logs-public-access",
            bucket=self.access_logs.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-alb-logs-ownership",
            bucket=self.access_logs.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-alb-logs-encryption",
            bucket=self.access_logs.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}, "bucket_key_enabled": True}],
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketVersioning(
            f"{name}-alb-logs-versioning",
            bucket=self.access_logs.id,
            versioning_configuration={"status": "Enabled"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-alb-logs-lifecycle",
            bucket=self.access_logs.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": args.access_log_retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 30},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.access_log_policy = aws.s3.BucketPolicy(
            f"{name}-alb-logs-policy",
            bucket=self.access_logs.id,
            policy=pulumi.Output.all(self.access_logs.arn, args.account_id).apply(
                lambda v: json.dumps(access_log_bucket_policy(v[0], args.region, v[1]), sort_keys=True)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _workload(self) -> None:
        """The migrations Job first, then the Deployment, its Service, HPA and PDB."""
        args, name, meta, kopts = self._args, self._name, self._meta, self._kopts
        # The Deployment runs the GPU build on GPU nodes when asked; the migration Job always
        # runs the CPU build on a CPU node: it needs no GPU and must not hold one.
        deployment_image = args.gpu_image if args.gpu and args.gpu_image else args.image
        repository = pulumi.Output.from_input(args.repository_url)
        self.image = repository.apply(lambda url: image_ref(url, deployment_image))
        self.migration_image = repository.apply(lambda url: image_ref(url, args.image))
        env = pulumi.Output.all(
            pulumi.Output.all(args.database_address, args.database_port, args.database_name).apply(
                lambda v: database_url(args.database_username, v[0], v[1], v[2])
            ),
            pulumi.Output.all(args.cache_address, args.cache_port).apply(lambda v: redis_url(v[0], v[1])),
            pulumi.Output.all(**args.secret_arns),
            args.database_secret_arn,
            args.model_store_uri,
        ).apply(lambda v: environment(args, v[0], v[1], v[2], v[3], model_store=v[4]))
        # The audit spool lives on an emptyDir: it survives container restarts (the next
        # start replays it) but not the pod; see docs/deploy-service.md for the limits.
        volumes = [
            {"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_MIB}Mi"}},
            {"name": "data", "emptyDir": {"sizeLimit": f"{spool_size_mib(args.resources)}Mi"}},
        ]
        mounts = [{"name": "tmp", "mountPath": TMP_DIR}, {"name": "data", "mountPath": DATA_DIR}]
        cpu_scheduling = {"nodeSelector": dict(CPU_LABELS)}

        def pod_spec(container: dict[str, Any], scheduling: dict[str, Any], **extra: Any) -> dict[str, Any]:
            return {
                "serviceAccountName": args.name,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security_context(),
                "containers": [container],
                "volumes": volumes,
                **scheduling,
                **extra,
            }

        base_container = {
            "imagePullPolicy": "Always",
            "env": env,
            "securityContext": security_context(),
            "volumeMounts": mounts,
        }
        job_labels = labels(args, "migrate")

        def image_skips(tag_or_digest: str) -> dict[str, Any]:
            # checkov wants digests; a tag is as fixed here, so the check is suppressed only then.
            return {} if tag_or_digest.startswith("sha256:") else {
                "annotations": checkov_skips(
                    ("CKV_K8S_43", "pinned by an immutable tag: the ECR repository refuses to overwrite tags (imageTagMutability IMMUTABLE)")
                )
            }

        self.migrations = k8s.batch.v1.Job(
            f"{name}-migrate",
            metadata=meta(
                # A new image is a new Job: Jobs are immutable, and each release migrates once.
                f"{args.name}-migrate-{short_name(args.image)}",
                job_labels,
                **image_skips(args.image),
            ),
            spec={
                "backoffLimit": 3,
                "activeDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": job_labels},
                    "spec": pod_spec(
                        {
                            **base_container,
                            "image": self.migration_image,
                            "resources": container_resources(args.resources, False),
                            "name": "migrate",
                            "command": ["python", "-m", "app.migrate"],
                        },
                        cpu_scheduling,
                        restartPolicy="Never",
                    ),
                },
            },
            # The controller's pod webhook (readiness gates) must answer before any pod is created here.
            opts=kopts(self.namespace, self.service_account, self.lb_controller, *self.network_policies.values()),
        )

        container = {
            **base_container,
            "image": self.image,
            "resources": container_resources(args.resources, args.gpu),
            "name": "scoring",
            "args": ["--workers", str(args.workers)],
            "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
            **probes(),
            # Keep serving while the ALB deregisters the pod, before SIGTERM stops the listener.
            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        }
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(args.name, **image_skips(deployment_image)),
            spec={
                "revisionHistoryLimit": 5,
                "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": selector(args)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": labels(args)},
                    "spec": pod_spec(
                        container,
                        gpu_scheduling() if args.gpu else cpu_scheduling,
                        # Pre-stop pause, in-flight requests, the audit flush and a margin
                        # (termination_grace_seconds); past it the kubelet kills the container.
                        terminationGracePeriodSeconds=termination_grace_seconds(),
                        topologySpreadConstraints=topology_spread(args),
                    ),
                },
            },
            opts=kopts(self.migrations, self.lb_controller, self.limit_range, self.quota),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(args.name),
            spec={
                "type": "ClusterIP",
                "selector": selector(args),
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=kopts(self.namespace),
        )
        self.hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=meta(args.name),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.name},
                "minReplicas": args.min_replicas,
                "maxReplicas": args.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": args.cpu_target_percent}},
                    },
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": REQUEST_RATE_METRIC},
                            "target": {"type": "AverageValue", "averageValue": str(args.requests_per_second_target)},
                        },
                    },
                ],
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}]},
                    "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                },
            },
            opts=kopts(self.deployment),
        )
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta(args.name),
            spec={
                # One pod at a time, and never counting unhealthy pods: a drain always progresses.
                "maxUnavailable": 1,
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
                "selector": {"matchLabels": selector(args)},
            },
            opts=kopts(self.namespace),
        )

    def _ingress(self) -> None:
        """The Ingress the controller turns into the ALB."""
        args, name, meta, kopts = self._args, self._name, self._meta, self._kopts
        subnet_ids = args.public_subnet_ids if args.internet_facing else args.private_subnet_ids
        annotations = pulumi.Output.all(
            self.access_logs.bucket,
            pulumi.Output.from_input(subnet_ids),
            self.waf_acl.arn if self.waf_acl is not None else None,
        ).apply(lambda v: alb_annotations(args, v[0], v[1], v[2]))
        # /admin ahead of "/" in every controller's order, so the 404 action answers the
        # admin routes (scoring_app_specs.ingress_paths).
        rule: dict[str, Any] = {"http": {"paths": ingress_paths(args)}}
        if args.hostname:
            rule["host"] = args.hostname
        spec: dict[str, Any] = {"ingressClassName": "alb", "rules": [rule]}
        if args.hostname:
            spec["tls"] = [{"hosts": [args.hostname]}]
        self.ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=meta(args.name, annotations=annotations),
            spec=spec,
            opts=kopts(self.lb_controller, self.service, self.access_log_policy, *([self.waf_acl] if self.waf_acl else [])),
        )
        self.load_balancer_hostname = self.ingress.status.apply(
            lambda s: (s.load_balancer.ingress[0].hostname if s and s.load_balancer and s.load_balancer.ingress else None)
        )

    def _web_acl(self, name: str, args: ScoringAppArgs) -> aws.wafv2.WebAcl:
        """AWS managed rule groups plus a per-IP rate limit; logs with the API key redacted."""
        metric = f"{args.name_prefix}-{args.name}".replace("-", "")

        def visibility(suffix: str) -> dict[str, Any]:
            return {"cloudwatch_metrics_enabled": True, "sampled_requests_enabled": True, "metric_name": f"{metric}{suffix}"}

        rules: list[dict[str, Any]] = [
            {
                "name": group,
                "priority": i,
                "override_action": {"none": {}},
                "statement": {"managed_rule_group_statement": {"name": group, "vendor_name": "AWS"}},
                "visibility_config": visibility(group),
            }
            for i, group in enumerate(WAF_MANAGED_RULE_GROUPS)
        ]
        rules.append(
            {
                "name": "rate-limit-per-ip",
                "priority": len(rules),
                "action": {"block": {}},
                "statement": {"rate_based_statement": {"limit": args.waf_rate_limit, "aggregate_key_type": "IP"}},
                "visibility_config": visibility("RateLimit"),
            }
        )
        acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            name=f"{args.name_prefix}-{args.name}",
            description=f"Screens public traffic to {args.name} ({args.name_prefix})",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=rules,
            visibility_config=visibility("Acl"),
            tags=self._aws_tags("waf"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # WAF only logs to log groups named aws-waf-logs-*.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-waf-logs",
            name=f"aws-waf-logs-{args.name_prefix}-{args.name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            tags=self._aws_tags("waf-logs"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-waf-logging",
            resource_arn=acl.arn,
            log_destination_configs=[log_group.arn],
            # Client API keys and request signatures never reach the logs.
            redacted_fields=[
                {"single_header": {"name": "x-api-key"}},
                {"single_header": {"name": "x-signature"}},
                {"single_header": {"name": "authorization"}},
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        return acl
