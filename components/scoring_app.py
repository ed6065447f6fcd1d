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
  log bucket, a WAFv2 web ACL when the ALB is internet-facing, and the Ingress.

The module-level helpers (:func:`security_context`, :func:`network_policies`,
:func:`alb_annotations`, ...) are pure, so tests and the docs can state exactly what
the cluster receives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster import CPU_LABELS, GPU_LABELS, GPU_TAINT, service_account_role
from components.endpoints import bedrock_model_arns

#: UID/GID of the image's user (app/Dockerfile); >= 10000 so it maps to no host user.
RUN_AS = 10001
CONTAINER_PORT = 8080
SERVICE_PORT = 80
POSTGRES_PORT = 5432
REDIS_PORT = 6379
HTTPS_PORT = 443
DNS_PORT = 53
#: CloudWatch namespace the service publishes to (components/alarms.py reads the same).
METRIC_NAMESPACE = "fraudstack"
#: Pods metric the HPA scales on; a metrics adapter derives it from the service's
#: ``fraudstack_request_seconds_count`` (see docs/deploy-service.md).
REQUEST_RATE_METRIC = "fraudstack_requests_per_second"
#: Where the service keeps its audit spool (FRAUDSTACK_DATA_DIR) and temp files.
DATA_DIR = "/var/lib/fraudstack"
TMP_DIR = "/tmp"
LB_CONTROLLER_CHART_REPO = "https://aws.github.io/eks-charts"
LB_CONTROLLER_NAMESPACE = "kube-system"
LB_CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
ALB = "alb.ingress.kubernetes.io/"
PSS_LEVEL = "restricted"
#: Regions older than August 2022 deliver ALB access logs from a regional ELB account;
#: newer ones from the log-delivery service principal (both statements are written).
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-west-3": "009996457667",
    "eu-north-1": "897822967062", "ap-south-1": "718504428378", "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "sa-east-1": "507241528517",
}
WAF_MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
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
    """An immutable tag or ``sha256:<digest>`` in ``repository_url``."""
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
    tags: Mapping[str, str] = field(default_factory=dict)
    """Required tags; AWS children add their own ``Name``, the ALB gets them through the controller."""


# --------------------------------------------------------------------------- pure helpers


def labels(args: ScoringAppArgs, component: str = "api") -> dict[str, str]:
    """Recommended labels of the service's objects; ``component`` tells pods apart."""
    return {
        "app.kubernetes.io/name": args.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "fraudstack",
    }


def selector(args: ScoringAppArgs, component: str = "api") -> dict[str, str]:
    """The immutable subset of :func:`labels` that Deployment, Service and policies select on."""
    return {"app.kubernetes.io/name": args.name, "app.kubernetes.io/component": component}


def image_ref(repository_url: str, image: str) -> str:
    """``repo@sha256:...`` for a digest, ``repo:tag`` for an (immutable) tag."""
    return f"{repository_url}@{image}" if image.startswith("sha256:") else f"{repository_url}:{image}"


def pod_security_context() -> dict[str, Any]:
    """Pod-level security context: non-root high UID/GID, RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def security_context() -> dict[str, Any]:
    """Container security context: the restricted Pod Security Standard and then some."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_resources(resources: Resources, gpu: bool) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS); one whole GPU in the GPU variant."""
    amounts = {"cpu": resources.cpu, "memory": resources.memory, "ephemeral-storage": resources.ephemeral_storage}
    if gpu:
        amounts["nvidia.com/gpu"] = "1"
    return {"requests": dict(amounts), "limits": dict(amounts)}


def probes() -> dict[str, dict[str, Any]]:
    """Startup and liveness on ``/health/live``; readiness on ``/health/ready`` (model loaded, dependencies).

    The startup probe gives the model 150 s to load before liveness starts counting; liveness
    only asks "is the process serving", so a slow Redis never restarts pods, while readiness
    takes an unready pod out of the load balancer.
    """
    def http(path: str, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http", "scheme": "HTTP"},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": failures,
            "successThreshold": 1,
        }

    return {
        "startupProbe": http("/health/live", 5, 30),
        "livenessProbe": http("/health/live", 10, 3),
        "readinessProbe": http("/health/ready", 5, 2),
    }


def gpu_scheduling() -> dict[str, Any]:
    """Toleration of the GPU group's taint and its node selector."""
    return {
        "tolerations": [{"key": GPU_TAINT.key, "operator": "Equal", "value": GPU_TAINT.value, "effect": "NoSchedule"}],
        "nodeSelector": {"fraudstack.io/node-pool": GPU_LABELS["fraudstack.io/node-pool"]},
    }


def topology_spread(args: ScoringAppArgs) -> list[dict[str, Any]]:
    """Replicas spread evenly over zones (hard) and nodes (hard: one lost node costs one replica)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": selector(args)},
            # Only pods of the current ReplicaSet count, so a rollout is not blocked by old pods.
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def redis_url(address: str, port: int) -> str:
    """TLS (``rediss://``) URL of the velocity store; the AUTH token comes from Secrets Manager."""
    return f"rediss://{address}:{int(port)}/0"


def database_url(username: str, address: str, port: int, database: str) -> str:
    """PostgreSQL URL without a password (read from the RDS-managed secret), TLS required."""
    return f"postgresql://{username}@{address}:{int(port)}/{database}?sslmode=require"


def environment(
    args: ScoringAppArgs, database: str, cache: str, secrets: Mapping[str, str], database_secret: str
) -> list[dict[str, str]]:
    """The container's environment: the service's ``FRAUDSTACK_*`` settings (app/settings.py).

    No value is a credential: keys, tokens and passwords are read from Secrets Manager
    through the IRSA role, by ARN.
    """
    env = {
        "FRAUDSTACK_ENVIRONMENT": args.environment if args.environment in ("staging", "production") else "staging",
        "FRAUDSTACK_LOG_LEVEL": args.log_level,
        "FRAUDSTACK_AWS_REGION": args.region,
        "FRAUDSTACK_API_KEYS_SECRET_ID": secrets["api-keys"],
        "FRAUDSTACK_DATABASE_URL": database,
        "FRAUDSTACK_DATABASE_SECRET_ID": database_secret,
        "FRAUDSTACK_REDIS_URL": cache,
        "FRAUDSTACK_REDIS_AUTH_SECRET_ID": secrets["redis-auth-token"],
        "FRAUDSTACK_HMAC_SECRET_ID": secrets["hmac-signing-key"],
        "FRAUDSTACK_DATA_DIR": DATA_DIR,
        "FRAUDSTACK_BEDROCK_REGION": args.region,
        "FRAUDSTACK_BEDROCK_MODEL_ID": args.bedrock_model_ids[0],
        # The SDK's region for STS (IRSA) and Secrets Manager: the private endpoints' region.
        "AWS_REGION": args.region,
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "TMPDIR": TMP_DIR,
    }
    return [{"name": k, "value": v} for k, v in env.items()]


def service_role_policy(
    secret_arns: Sequence[str], secrets_key_arn: str, model_ids: Sequence[str], region: str, account_id: str
) -> dict[str, Any]:
    """The scoring service's permissions, exactly: read its secrets, invoke its models, publish metrics."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadServiceSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": sorted(secret_arns),
            },
            {
                # The secrets are encrypted with our key; decrypting is allowed only on
                # Secrets Manager's behalf, never directly.
                "Sid": "DecryptSecretsThroughSecretsManager",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": secrets_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
            },
            {
                "Sid": "InvokeConfiguredModels",
                "Effect": "Allow",
                "Action": "bedrock:InvokeModel",
                "Resource": bedrock_model_arns(model_ids, region, account_id),
            },
            {
                # PutMetricData has no resource; the namespace condition is the only scope.
                "Sid": "PublishServiceMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            },
        ],
    }


def lb_controller_policy(cluster_name: str, region: str, account_id: str, vpc_id: str) -> dict[str, Any]:
    """The AWS Load Balancer Controller's IAM policy, narrowed to this cluster and VPC.

    Starts from the upstream minimal policy (kubernetes-sigs/aws-load-balancer-controller,
    docs/install/iam_policy.json) and drops what this stack never uses (Cognito
    authentication, WAF Classic, IAM server certificates, Shield Advanced protections).
    Every write is scoped: ARNs of this account and region, security groups of this VPC,
    load balancers and target groups the controller tagged with this cluster's name.
    """
    arn = f"arn:aws:elasticloadbalancing:{region}:{account_id}"
    sg = f"arn:aws:ec2:{region}:{account_id}:security-group/*"
    in_vpc = {"ArnEquals": {"ec2:Vpc": f"arn:aws:ec2:{region}:{account_id}:vpc/{vpc_id}"}}
    own = {"StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": cluster_name}}
    balancers = [f"{arn}:loadbalancer/app/*/*", f"{arn}:loadbalancer/net/*/*"]
    target_groups = f"{arn}:targetgroup/*/*"
    listeners = [f"{arn}:listener/app/*/*/*", f"{arn}:listener/net/*/*/*"]
    listener_rules = [f"{arn}:listener-rule/app/*/*/*/*", f"{arn}:listener-rule/net/*/*/*/*"]
    read_only = [
        "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
        "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
        "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
        "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeRouteTables", "ec2:DescribeIpamPools",
        "ec2:GetCoipPoolUsage", "ec2:DescribeCoipPools", "ec2:GetSecurityGroupsForVpc",
        "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerCertificates",
        "elasticloadbalancing:DescribeSSLPolicies", "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeTrustStores", "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:DescribeCapacityReservation",
        "acm:ListCertificates", "acm:DescribeCertificate",
        "wafv2:GetWebACL", "wafv2:GetWebACLForResource",
        "shield:GetSubscriptionState", "shield:DescribeProtection",
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
            },
            # Describe/Get/List calls support no resource-level permissions.
            {"Sid": "ReadOnly", "Effect": "Allow", "Action": read_only, "Resource": "*"},
            {
                "Sid": "SecurityGroupsInThisVpc",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
                ],
                "Resource": sg,
                "Condition": in_vpc,
            },
            {
                "Sid": "CreateSecurityGroupInThisVpc",
                "Effect": "Allow",
                "Action": "ec2:CreateSecurityGroup",
                "Resource": f"arn:aws:ec2:{region}:{account_id}:vpc/{vpc_id}",
            },
            {
                "Sid": "TagNewSecurityGroups",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": sg,
                "Condition": {
                    "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"},
                    "Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"},
                },
            },
            {
                "Sid": "ManageOwnSecurityGroups",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags", "ec2:DeleteTags", "ec2:DeleteSecurityGroup"],
                "Resource": sg,
                "Condition": own,
            },
            {
                "Sid": "CreateTaggedLoadBalancers",
                "Effect": "Allow",
                "Action": ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
                "Resource": [*balancers, target_groups],
                "Condition": {"StringEquals": {"aws:RequestTag/elbv2.k8s.aws/cluster": cluster_name}},
            },
            {
                "Sid": "TagOnCreate",
                "Effect": "Allow",
                "Action": "elasticloadbalancing:AddTags",
                "Resource": [*balancers, target_groups],
                "Condition": {
                    "StringEquals": {"elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"]},
                    "Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"},
                },
            },
            {
                "Sid": "ManageOwnLoadBalancers",
                "Effect": "Allow",
                "Action": [
                    "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
                    "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
                    "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
                    "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
                    "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
                    "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyCapacityReservation",
                    "elasticloadbalancing:ModifyIpPools",
                ],
                "Resource": [*balancers, target_groups],
                "Condition": own,
            },
            {
                "Sid": "Targets",
                "Effect": "Allow",
                "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
                "Resource": target_groups,
            },
            {
                "Sid": "ListenersAndRules",
                "Effect": "Allow",
                "Action": [
                    "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
                    "elasticloadbalancing:ModifyListener", "elasticloadbalancing:AddListenerCertificates",
                    "elasticloadbalancing:RemoveListenerCertificates", "elasticloadbalancing:CreateRule",
                    "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyRule",
                    "elasticloadbalancing:SetRulePriorities", "elasticloadbalancing:SetWebAcl",
                ],
                "Resource": [*balancers, *listeners, *listener_rules],
            },
            {
                "Sid": "WebAclAssociation",
                "Effect": "Allow",
                "Action": ["wafv2:AssociateWebACL", "wafv2:DisassociateWebACL"],
                "Resource": [f"arn:aws:wafv2:{region}:{account_id}:regional/webacl/*/*", *balancers],
            },
        ],
    }


def access_log_bucket_policy(bucket_arn: str, region: str, account_id: str) -> dict[str, Any]:
    """TLS-only access, and ALB log delivery into this account's prefix only."""
    objects = f"{bucket_arn}/*/AWSLogs/{account_id}/*"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "AlbLogDeliveryService",
            "Effect": "Allow",
            "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": objects,
        },
    ]
    elb_account = ELB_LOG_ACCOUNTS.get(region)
    if elb_account:
        statements.append(
            {
                "Sid": "AlbLogDeliveryRegionalAccount",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{elb_account}:root"},
                "Action": "s3:PutObject",
                "Resource": objects,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def alb_annotations(
    args: ScoringAppArgs, bucket: str, subnet_ids: Sequence[str], waf_acl_arn: str | None
) -> dict[str, str]:
    """The Ingress annotations that configure the ALB (AWS Load Balancer Controller v2)."""
    attributes = ",".join(
        [
            "deletion_protection.enabled=true",
            "routing.http.drop_invalid_header_fields.enabled=true",
            "routing.http.desync_mitigation_mode=strictest",
            "routing.http.x_amzn_tls_version_and_cipher_suite.enabled=true",
            "idle_timeout.timeout_seconds=60",
            "access_logs.s3.enabled=true",
            f"access_logs.s3.bucket={bucket}",
            f"access_logs.s3.prefix={args.name}",
        ]
    )
    annotations = {
        # One ALB per stack; ALB names are at most 32 characters.
        ALB + "load-balancer-name": f"{args.name_prefix}-alb",
        ALB + "scheme": "internet-facing" if args.internet_facing else "internal",
        ALB + "subnets": ",".join(subnet_ids),
        ALB + "target-type": "ip",
        ALB + "backend-protocol": "HTTP",
        ALB + "listen-ports": json.dumps([{"HTTP": 80}, {"HTTPS": 443}]),
        ALB + "ssl-redirect": "443",
        ALB + "certificate-arn": args.certificate_arn,
        ALB + "ssl-policy": args.ssl_policy,
        ALB + "healthcheck-path": "/health/ready",
        ALB + "healthcheck-port": "traffic-port",
        ALB + "success-codes": "200",
        ALB + "load-balancer-attributes": attributes,
        # Long enough for in-flight scores to finish; matches the pods' preStop pause.
        ALB + "target-group-attributes": "deregistration_delay.timeout_seconds=30",
        ALB + "tags": ",".join(f"{k}={v}" for k, v in sorted(args.tags.items())),
    }
    if not args.internet_facing:
        annotations[ALB + "inbound-cidrs"] = args.vpc_cidr
    if waf_acl_arn is not None:
        annotations[ALB + "wafv2-acl-arn"] = waf_acl_arn
    return annotations


def network_policies(args: ScoringAppArgs) -> dict[str, dict[str, Any]]:
    """NetworkPolicy specs by name: default deny both ways, then the allow-lists.

    Ingress reaches the service port only from the ALB's subnets (target type ``ip``: the
    ALB connects to pod IPs from its nodes in those subnets). Egress: cluster DNS,
    PostgreSQL and Redis in the isolated subnets, and 443 to the interface endpoints in
    the private subnets (Secrets Manager, STS, Bedrock, CloudWatch, ECR).
    """
    lb_cidrs = args.public_subnet_cidrs if args.internet_facing else args.private_subnet_cidrs

    def blocks(cidrs: Sequence[str]) -> list[dict[str, Any]]:
        return [{"ipBlock": {"cidr": c}} for c in cidrs]

    def tcp(port: int | str) -> dict[str, Any]:
        return {"protocol": "TCP", "port": port}

    dns = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, tcp(DNS_PORT)],
    }
    part_of = {"matchLabels": {"app.kubernetes.io/part-of": "fraudstack"}}
    return {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-ingress-from-alb": {
            "podSelector": {"matchLabels": selector(args)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": blocks(lb_cidrs), "ports": [tcp(CONTAINER_PORT)]}],
        },
        "allow-egress": {
            "podSelector": part_of,
            "policyTypes": ["Egress"],
            "egress": [
                dns,
                {"to": blocks(args.isolated_subnet_cidrs), "ports": [tcp(POSTGRES_PORT)]},
                {"to": blocks(args.isolated_subnet_cidrs), "ports": [tcp(REDIS_PORT)]},
                {"to": blocks(args.private_subnet_cidrs), "ports": [tcp(HTTPS_PORT)]},
            ],
        },
    }


def checkov_skips(*skips: tuple[str, str]) -> dict[str, str]:
    """checkov's per-object suppressions (``checkov.io/skipN: CHECK=reason``)."""
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(skips, start=1)}


# --------------------------------------------------------------------------- the component


class ScoringApp(pulumi.ComponentResource):
    """The scoring service deployed on the cluster behind an ALB.

    Outputs: ``namespace``, ``service_account_role_arn``, ``lb_controller_role_arn``,
    ``access_log_bucket``, ``waf_acl_arn`` (None when internal), ``image``.
    """

    def __init__(self, name: str, args: ScoringAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:ScoringApp", name, None, opts)
        if args.max_replicas < args.min_replicas or args.min_replicas < 2:
            raise ValueError("need 2 <= min_replicas <= max_replicas")
        if not args.bedrock_model_ids:
            raise ValueError("at least one Bedrock model id is required")
        if len(f"{args.name_prefix}-alb") > 32:
            raise ValueError(f"ALB name {args.name_prefix}-alb is longer than 32 characters; shorten the service name")
        self._args = args
        child = pulumi.ResourceOptions(parent=self)

        def aws_tags(suffix: str) -> dict[str, str]:
            return {**args.tags, "Name": f"{args.name_prefix}-{suffix}"}

        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=args.kubeconfig,
            # Server-side apply: field ownership is tracked, so kubectl edits show up as drift.
            enable_server_side_apply=True,
            opts=child,
        )
        kube = pulumi.ResourceOptions(parent=self, provider=self.provider)

        def kopts(*depends: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(depends))

        ns = args.namespace
        app_labels = labels(args)

        def meta(obj_name: str, obj_labels: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
            return {"name": obj_name, "namespace": ns, "labels": dict(obj_labels or app_labels), **extra}

        # --- Namespace, quota, limits, default deny.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": ns,
                "labels": {
                    **{f"pod-security.kubernetes.io/{mode}": PSS_LEVEL for mode in ("enforce", "audit", "warn")},
                    **{f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")},
                    # The controller injects readiness gates: a pod takes traffic only once
                    # the ALB sees it healthy, so a rollout never outruns the load balancer.
                    "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
                    "app.kubernetes.io/part-of": "fraudstack",
                },
            },
            opts=kube,
        )
        in_ns = kopts(self.namespace)
        per_pod = container_resources(args.resources, args.gpu)["limits"]
        # Room for maxReplicas, a surge of 25 % and the migration Job.
        pods = args.max_replicas + max(1, args.max_replicas // 4) + 1
        hard = {
            "pods": str(pods),
            "requests.cpu": _times(args.resources.cpu, pods),
            "limits.cpu": _times(args.resources.cpu, pods),
            "requests.memory": _times(args.resources.memory, pods),
            "limits.memory": _times(args.resources.memory, pods),
            "requests.ephemeral-storage": _times(args.resources.ephemeral_storage, pods),
            "limits.ephemeral-storage": _times(args.resources.ephemeral_storage, pods),
            "services.loadbalancers": "0",
            "services.nodeports": "0",
        }
        if args.gpu:
            hard["requests.nvidia.com/gpu"] = str(pods)
        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota", metadata=meta("quota"), spec={"hard": hard}, opts=in_ns
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
            opts=in_ns,
        )
        self.network_policies = {
            policy: k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{policy}", metadata=meta(policy), spec=spec, opts=in_ns
            )
            for policy, spec in network_policies(args).items()
        }

        # --- Identity: IRSA role with exactly the service's permissions.
        secret_arns = [*args.secret_arns.values(), args.database_secret_arn]
        policy_json = pulumi.Output.all(args.secrets_key_arn, args.account_id, *secret_arns).apply(
            lambda v: json.dumps(service_role_policy(v[2:], v[0], args.bedrock_model_ids, args.region, v[1]), sort_keys=True)
        )
        self.service_role = service_account_role(
            f"{name}-irsa",
            ns,
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
            opts=in_ns,
        )

        # --- Load balancer controller, with its own IRSA role.
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
            opts=kube,
        )

        # --- Access logs bucket (SSE-S3: ALB log delivery does not support KMS keys).
        # Bucket names are global: account and region make this one unique and recognisable.
        self.access_logs = aws.s3.Bucket(
            f"{name}-alb-logs",
            bucket=pulumi.Output.from_input(args.account_id).apply(
                lambda account: f"{args.name_prefix}-alb-logs-{account}-{args.region}"
            ),
            force_destroy=False,
            tags=aws_tags("alb-logs"),
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-alb-logs-public-access",
            bucket=self.access_logs.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-alb-logs-ownership",
            bucket=self.access_logs.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-alb-logs-encryption",
            bucket=self.access_logs.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}, "bucket_key_enabled": True}],
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-alb-logs-versioning",
            bucket=self.access_logs.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
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
            opts=child,
        )
        bucket_policy = aws.s3.BucketPolicy(
            f"{name}-alb-logs-policy",
            bucket=self.access_logs.id,
            policy=pulumi.Output.all(self.access_logs.arn, args.account_id).apply(
                lambda v: json.dumps(access_log_bucket_policy(v[0], args.region, v[1]), sort_keys=True)
            ),
            opts=child,
        )

        # --- WAF in front of an internet-facing ALB.
        self.waf_acl: aws.wafv2.WebAcl | None = None
        if args.internet_facing:
            self.waf_acl = self._web_acl(name, args, aws_tags)

        # --- Workload: the migrations Job first, then the Deployment.
        image = pulumi.Output.from_input(args.repository_url).apply(lambda url: image_ref(url, args.image))
        env = pulumi.Output.all(
            pulumi.Output.all(args.database_address, args.database_port, args.database_name).apply(
                lambda v: database_url(args.database_username, v[0], v[1], v[2])
            ),
            pulumi.Output.all(args.cache_address, args.cache_port).apply(lambda v: redis_url(v[0], v[1])),
            pulumi.Output.all(**args.secret_arns),
            args.database_secret_arn,
        ).apply(lambda v: environment(args, v[0], v[1], v[2], v[3]))
        volumes = [
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            {"name": "data", "emptyDir": {"sizeLimit": "512Mi"}},
        ]
        mounts = [{"name": "tmp", "mountPath": TMP_DIR}, {"name": "data", "mountPath": DATA_DIR}]
        resources = container_resources(args.resources, args.gpu)
        scheduling = gpu_scheduling() if args.gpu else {"nodeSelector": dict(CPU_LABELS)}

        def pod_spec(container: dict[str, Any], **extra: Any) -> dict[str, Any]:
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
            "image": image,
            "imagePullPolicy": "Always",
            "env": env,
            "resources": resources,
            "securityContext": security_context(),
            "volumeMounts": mounts,
        }
        job_labels = labels(args, "migrate")
        # checkov wants digests; a tag is as fixed here, so the check is suppressed only then.
        image_skips: dict[str, Any] = {} if args.image.startswith("sha256:") else {
            "annotations": checkov_skips(
                ("CKV_K8S_43", "pinned by an immutable tag: the ECR repository refuses to overwrite tags (imageTagMutability IMMUTABLE)")
            )
        }
        self.migrations = k8s.batch.v1.Job(
            f"{name}-migrate",
            metadata=meta(
                # A new image is a new Job: Jobs are immutable, and each release migrates once.
                f"{args.name}-migrate-{_short(args.image)}",
                job_labels,
                **image_skips,
            ),
            spec={
                "backoffLimit": 3,
                "activeDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": job_labels},
                    "spec": pod_spec(
                        {**base_container, "name": "migrate", "command": ["python", "-m", "app.migrate"]},
                        restartPolicy="Never",
                    ),
                },
            },
            opts=kopts(self.namespace, self.service_account, *self.network_policies.values()),
        )

        container = {
            **base_container,
            "name": "scoring",
            "args": ["--workers", str(args.workers)],
            "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
            **probes(),
            # Stop taking new requests before the ALB stops sending them.
            "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
        }
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(args.name, **image_skips),
            spec={
                "revisionHistoryLimit": 5,
                "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": selector(args)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": app_labels},
                    "spec": pod_spec(
                        container,
                        terminationGracePeriodSeconds=45,
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
            opts=in_ns,
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
            opts=in_ns,
        )

        subnet_ids = args.public_subnet_ids if args.internet_facing else args.private_subnet_ids
        annotations = pulumi.Output.all(
            self.access_logs.bucket,
            pulumi.Output.from_input(subnet_ids),
            self.waf_acl.arn if self.waf_acl is not None else None,
        ).apply(lambda v: alb_annotations(args, v[0], v[1], v[2]))
        rule: dict[str, Any] = {
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": args.name, "port": {"name": "http"}}},
                    }
                ]
            }
        }
        if args.hostname:
            rule["host"] = args.hostname
        spec: dict[str, Any] = {"ingressClassName": "alb", "rules": [rule]}
        if args.hostname:
            spec["tls"] = [{"hosts": [args.hostname]}]
        self.ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=meta(args.name, annotations=annotations),
            spec=spec,
            opts=kopts(self.lb_controller, self.service, bucket_policy, *([self.waf_acl] if self.waf_acl else [])),
        )
        self.load_balancer_hostname = self.ingress.status.apply(
            lambda s: (s.load_balancer.ingress[0].hostname if s and s.load_balancer and s.load_balancer.ingress else None)
        )

        self.service_account_role_arn = self.service_role.arn
        self.image = image
        self.register_outputs(
            {
                "namespace": ns,
                "service_account_role_arn": self.service_role.arn,
                "lb_controller_role_arn": self.lb_controller_role.arn,
                "access_log_bucket": self.access_logs.bucket,
                "waf_acl_arn": self.waf_acl.arn if self.waf_acl is not None else None,
                "image": image,
            }
        )

    def _web_acl(self, name: str, args: ScoringAppArgs, aws_tags) -> aws.wafv2.WebAcl:
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
            tags=aws_tags("waf"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # WAF only logs to log groups named aws-waf-logs-*.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-waf-logs",
            name=f"aws-waf-logs-{args.name_prefix}-{args.name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_key_arn,
            tags=aws_tags("waf-logs"),
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


def _short(image: str) -> str:
    """A DNS-label-safe suffix naming an image tag or digest (Job names are at most 63 characters)."""
    text = image.removeprefix("sha256:")[:12] if image.startswith("sha256:") else image
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:20]


def _times(quantity: str, n: int) -> str:
    """``n`` times a Kubernetes quantity of this module's forms (``500m``, ``2``, ``1Gi``, ``512Mi``)."""
    if quantity.endswith(("Mi", "Gi")):
        return f"{int(quantity[:-2]) * n}{quantity[-2:]}"
    if quantity.endswith("m"):
        return f"{int(quantity[:-1]) * n}m"
    value = float(quantity) * n
    return str(int(value)) if value.is_integer() else f"{round(value * 1000)}m"
