"""What the scoring service's Kubernetes objects and IAM policies contain, as pure functions.

:class:`components.scoring_app.ScoringApp` turns these into resources; tests and docs use
them to state exactly what the cluster and AWS receive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from components.cluster import GPU_LABELS, GPU_TAINT
from components.endpoints import bedrock_model_arns
from components.metrics_adapter import dns_egress

if TYPE_CHECKING:
    from components.scoring_app import Resources, ScoringAppArgs

#: UID/GID of the image's user (app/Dockerfile); >= 10000 so it maps to no host user.
RUN_AS = 10001
CONTAINER_PORT = 8080
SERVICE_PORT = 80
POSTGRES_PORT = 5432
REDIS_PORT = 6379
HTTPS_PORT = 443
#: CloudWatch namespace the service publishes to (components/alarms.py reads the same).
METRIC_NAMESPACE = "fraudstack"
#: Pods metric the HPA scales on; a metrics adapter derives it from the service's
#: ``fraudstack_request_seconds_count`` (see docs/deploy-service.md).
REQUEST_RATE_METRIC = "fraudstack_requests_per_second"
#: Where the service keeps its audit spool (FRAUDSTACK_DATA_DIR) and temp files.
DATA_DIR = "/var/lib/fraudstack"
TMP_DIR = "/tmp"
#: Size of the /tmp emptyDir, and what the container's ephemeral storage keeps for its
#: logs and (read-only) writable layer; the rest of it is the audit spool's
#: (:func:`spool_size_mib`).
TMP_MIB = 256
LOG_HEADROOM_MIB = 256

# The pod's shutdown budget (docs/deploy-service.md, "The audit spool and shutdown"): a
# deleted pod first pauses (the ALB stops sending), then SIGTERM lets uvicorn finish
# in-flight requests, then the lifespan shutdown flushes the audit queue to PostgreSQL,
# or to the spool when one batch write times out. The grace period covers all of it.
PRE_STOP_SECONDS = 10
#: app/__main__.py GRACEFUL_SHUTDOWN_SECONDS (uvicorn's timeout_graceful_shutdown).
IN_FLIGHT_SECONDS = 30
#: app/audit.py WRITE_TIMEOUT_SECONDS: one batch that times out before it is spooled.
AUDIT_FLUSH_SECONDS = 10
#: Closing the database and Redis connections, fsync of the spool, thread pools.
SHUTDOWN_MARGIN_SECONDS = 10
LB_CONTROLLER_CHART_REPO = "https://aws.github.io/eks-charts"
LB_CONTROLLER_NAMESPACE = "kube-system"
LB_CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
ALB = "alb.ingress.kubernetes.io/"
PSS_LEVEL = "restricted"
#: The service's operator routes (app/lifecycle.py, ``POST /admin/model/reload``): the ALB
#: answers everything under this prefix itself, so they are reachable only from inside the
#: cluster (``kubectl port-forward``, docs/operations.md "Admin key").
ADMIN_PATH_PREFIX = "/admin"
#: The ALB action that answers them: ``alb.ingress.kubernetes.io/actions.<name>``, named by
#: the Ingress rule as its backend service with port ``use-annotation``.
BLOCK_ADMIN_ACTION = "block-admin"
#: What the ALB answers: the service's own 404 body (app/errors.py), so the route looks
#: like any unknown path.
BLOCKED_BODY = {"error": {"code": "not_found", "message": "not found", "field": "path"}}
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


def namespace_labels() -> dict[str, str]:
    """Labels of every namespace the program declares: the restricted Pod Security Standard
    enforced, audited and warned about (at the cluster's version), and the project."""
    return {
        **{f"pod-security.kubernetes.io/{mode}": PSS_LEVEL for mode in ("enforce", "audit", "warn")},
        **{f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")},
        "app.kubernetes.io/part-of": "fraudstack",
    }


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


def termination_grace_seconds() -> int:
    """The pod's terminationGracePeriodSeconds: pre-stop pause, in-flight requests, one
    audit batch timing out into the spool, and a margin (SIGKILL comes after it)."""
    return PRE_STOP_SECONDS + IN_FLIGHT_SECONDS + AUDIT_FLUSH_SECONDS + SHUTDOWN_MARGIN_SECONDS


def spool_size_mib(resources: Resources) -> int:
    """sizeLimit of the audit spool's emptyDir: the container's ephemeral storage less
    /tmp and the logs' headroom. The kubelet evicts a pod whose emptyDir outgrows its
    limit, spool and all, so the spool gets all the room the pod is allowed."""
    total = int(resources.ephemeral_storage[:-2]) * (1024 if resources.ephemeral_storage.endswith("Gi") else 1)
    return total - TMP_MIB - LOG_HEADROOM_MIB


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


#: The RDS CA bundle baked into the image (app/Dockerfile).
RDS_CA_BUNDLE = "/opt/fraudstack/rds-global-bundle.pem"


def database_url(username: str, address: str, port: int, database: str) -> str:
    """PostgreSQL URL without a password (read from the RDS-managed secret); TLS verified against the RDS CAs."""
    return f"postgresql://{username}@{address}:{int(port)}/{database}?sslmode=verify-full&sslrootcert={RDS_CA_BUNDLE}"


def environment(
    args: ScoringAppArgs, database: str, cache: str, secrets: Mapping[str, str], database_secret: str,
    model_store: str | None = None,
) -> list[dict[str, str]]:
    """The container's environment: the service's ``FRAUDSTACK_*`` settings (app/settings.py).

    No value is a credential: keys, tokens and passwords are read from Secrets Manager
    through the IRSA role, by ARN (app/credentials.py).
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
        "FRAUDSTACK_DATA_DIR": DATA_DIR,
        "FRAUDSTACK_BEDROCK_REGION": args.region,
        "FRAUDSTACK_BEDROCK_MODEL_ID": args.bedrock_model_ids[0],
        # The service's CloudWatch metrics (app/cloudwatch.py), read by the alarms with
        # dimensions Environment and Service (= alarms.service.deployment = app.name).
        "FRAUDSTACK_CLOUDWATCH_NAMESPACE": METRIC_NAMESPACE,
        "FRAUDSTACK_CLOUDWATCH_SERVICE": args.name,
        # The SDK's region for STS (IRSA) and Secrets Manager: the private endpoints' region.
        "AWS_REGION": args.region,
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "TMPDIR": TMP_DIR,
    }
    if args.signed_requests:
        env["FRAUDSTACK_HMAC_SECRET_ID"] = secrets["hmac-signing-key"]
    # The admin key's hash (FRAUDSTACK_ADMIN_KEY_HASH) is derived from it at start-up.
    env["FRAUDSTACK_ADMIN_KEY_SECRET_ID"] = secrets["admin-key"]
    if model_store:
        env["FRAUDSTACK_MODEL_STORE"] = model_store
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
        # Open connections drain for up to 30 s after deregistration, within the pods'
        # termination grace period (termination_grace_seconds): they end before the pod does.
        ALB + "target-group-attributes": "deregistration_delay.timeout_seconds=30",
        ALB + "tags": ",".join(f"{k}={v}" for k, v in sorted(args.tags.items())),
        # The rule that keeps the admin routes off the load balancer (ingress_paths).
        ALB + f"actions.{BLOCK_ADMIN_ACTION}": json.dumps(block_admin_action(), separators=(",", ":")),
    }
    if not args.internet_facing:
        annotations[ALB + "inbound-cidrs"] = args.vpc_cidr
    if waf_acl_arn is not None:
        annotations[ALB + "wafv2-acl-arn"] = waf_acl_arn
    return annotations


def block_admin_action() -> dict[str, Any]:
    """The ALB fixed-response action for :data:`ADMIN_PATH_PREFIX` (a 404, never forwarded)."""
    return {
        "type": "fixed-response",
        "fixedResponseConfig": {
            "contentType": "application/json",
            "statusCode": "404",
            "messageBody": json.dumps(BLOCKED_BODY, separators=(",", ":")),
        },
    }


def ingress_paths(args: ScoringAppArgs) -> list[dict[str, Any]]:
    """The Ingress rule's paths: the admin prefix (ALB patterns ``/admin`` and ``/admin/*``)
    to the 404 action, then ``/`` to the service.

    The ALB applies the first matching rule, so ``/admin`` must get the higher priority.
    Controllers before v2.4.3 number a rule's paths in manifest order; later ones put Exact
    paths first, then Prefix paths longest first (kubernetes-sigs/aws-load-balancer-controller
    PR 2409). Two Prefix paths, the longer one first, come out in this order either way;
    an Exact or ImplementationSpecific path here would not.
    """
    return [
        {
            "path": ADMIN_PATH_PREFIX,
            "pathType": "Prefix",
            "backend": {"service": {"name": BLOCK_ADMIN_ACTION, "port": {"name": "use-annotation"}}},
        },
        {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": args.name, "port": {"name": "http"}}},
        },
    ]


def network_policies(args: ScoringAppArgs) -> dict[str, dict[str, Any]]:
    """NetworkPolicy specs by name: default deny both ways, then the allow-lists.

    Ingress reaches the service port only from the ALB's subnets (target type ``ip``: the
    ALB connects to pod IPs from its nodes in those subnets) and, when configured, from the
    metrics scrapers' namespaces. Egress: cluster DNS,
    PostgreSQL and Redis in the isolated subnets, and 443 to the interface endpoints in
    the private subnets (Secrets Manager, STS, Bedrock, CloudWatch, ECR).
    """
    lb_cidrs = args.public_subnet_cidrs if args.internet_facing else args.private_subnet_cidrs

    def blocks(cidrs: Sequence[str]) -> list[dict[str, Any]]:
        return [{"ipBlock": {"cidr": c}} for c in cidrs]

    def tcp(port: int | str) -> dict[str, Any]:
        return {"protocol": "TCP", "port": port}

    dns = dns_egress()
    part_of = {"matchLabels": {"app.kubernetes.io/part-of": "fraudstack"}}
    return {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-ingress-from-alb": {
            "podSelector": {"matchLabels": selector(args)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": blocks(lb_cidrs), "ports": [tcp(CONTAINER_PORT)]},
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                        # The request-rate metric's Prometheus always scrapes; others when listed.
                        for ns in dict.fromkeys((args.monitoring_namespace, *args.metrics_scrapers))
                    ],
                    "ports": [tcp(CONTAINER_PORT)],
                },
            ],
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


def short_name(image: str) -> str:
    """A DNS-label-safe suffix naming an image tag or digest (Job names are at most 63 characters)."""
    text = image.removeprefix("sha256:")[:12] if image.startswith("sha256:") else image
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:20]


def times(quantity: str, n: int) -> str:
    """``n`` times a Kubernetes quantity of this module's forms (``500m``, ``2``, ``1Gi``, ``512Mi``)."""
    if quantity.endswith(("Mi", "Gi")):
        return f"{int(quantity[:-2]) * n}{quantity[-2:]}"
    if quantity.endswith("m"):
        return f"{int(quantity[:-1]) * n}m"
    value = float(quantity) * n
    return str(int(value)) if value.is_integer() else f"{round(value * 1000)}m"
