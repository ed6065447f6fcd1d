"""The scoring service on EKS (components/scoring_app.py) under the mock runtime, both stacks.

Exact values: what the cluster and AWS receive is the contract, so every assertion is
the literal object, not a property of it.
"""

from __future__ import annotations

import json

import pulumi
import pytest

from components.scoring_app_specs import image_ref, lb_controller_policy, times as _times
from tests.infra.conftest import load_config
from tests.infra.scoring_app_helpers import ACCOUNT, STACKS, env, inputs, objects, plan, pod

PER_STACK = {
    "staging": {
        "cpu": "1", "memory": "1Gi", "storage": "1Gi", "min": 2, "max": 4, "cpu_target": 70, "rps": "1000",
        "scheme": "internal", "workers": "1", "image_suffix": ":2026.11.0",
        "private": ["10.20.0.0/19", "10.20.32.0/19"], "public": ["10.20.64.0/24", "10.20.65.0/24"],
        "isolated": ["10.20.66.0/24", "10.20.67.0/24"], "vpc": "10.20.0.0/16",
        "cert": "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-8000-000000000002",
        "log_days": 90, "pods": 4 + 1 + 1, "spool": f"{1024 - 256 - 256}Mi",
    },
    "production": {
        "cpu": "2", "memory": "2Gi", "storage": "2Gi", "min": 3, "max": 24, "cpu_target": 60, "rps": "2500",
        "scheme": "internet-facing", "workers": "2",
        "image_suffix": "@sha256:3f1c0d2e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "private": ["10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19"],
        "public": ["10.30.96.0/24", "10.30.97.0/24", "10.30.98.0/24"],
        "isolated": ["10.30.99.0/24", "10.30.100.0/24", "10.30.101.0/24"], "vpc": "10.30.0.0/16",
        "cert": "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-8000-000000000001",
        "log_days": 365, "pods": 24 + 6 + 1, "spool": f"{2048 - 256 - 256}Mi",
    },
}
SELECTOR = {"app.kubernetes.io/name": "scoring-api", "app.kubernetes.io/component": "api"}
LABELS = {**SELECTOR, "app.kubernetes.io/part-of": "fraudstack"}
CONTAINER_SC = {
    "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
    "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SC = {
    "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
    "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"},
}
#: The GPU build of each stack (app/Dockerfile target runtime-gpu): a tag in staging, a digest in production.
GPU_IMAGES = {"staging": "2026.11.0-gpu", "production": "sha256:" + "9a" * 32}
GPU = {"app": {"gpu": True, "maxReplicas": 4}}


def _gpu_plan(stack):
    overrides = {"fraudstack:app": {**GPU["app"], "gpuImage": GPU_IMAGES[stack]}}
    if stack == "staging":
        # Staging's GPU group stops at one node; two GPU replicas (the HPA minimum) need two.
        overrides["fraudstack:app"]["maxReplicas"] = 2
        overrides["fraudstack:cluster"] = {"gpuNodes": {"maxSize": 2}}
    return plan(stack, overrides)


def _args(**changes):
    """ScoringAppArgs with placeholder values, for the pure builders."""
    from components.scoring_app import Resources, ScoringAppArgs

    values = dict(
        name_prefix="fraudstack-test", environment="staging", region="eu-west-1", account_id=ACCOUNT,
        cluster_name="c", kubeconfig="{}", oidc_provider_arn="arn", oidc_issuer_url="https://issuer", kubernetes_service_cidr="172.20.0.0/16", vpc_id="vpc-1",
        vpc_cidr="10.0.0.0/16", public_subnet_cidrs=("10.0.96.0/24",), private_subnet_cidrs=("10.0.0.0/19",),
        isolated_subnet_cidrs=("10.0.99.0/24",), public_subnet_ids=[], private_subnet_ids=[], repository_url="repo",
        image="1.0.0", database_address="db", database_port=5432, database_name="fraudstack", database_username="u",
        database_secret_arn="arn:db", cache_address="cache", cache_port=6379, secret_arns={}, secrets_key_arn="arn:key",
        logs_key_arn="arn:logs", bedrock_model_ids=("m",), certificate_arn="arn:cert", resources=Resources("1", "1Gi", "1Gi"),
    )
    values.update(changes)
    return ScoringAppArgs(**values)


def _stack(stack):
    return plan(stack), PER_STACK[stack]


@pytest.mark.parametrize("stack", STACKS)
def test_namespace_enforces_restricted_pss_with_quota_and_limits(stack):
    p, exp = _stack(stack)
    ns = inputs(p, "app-namespace")
    assert ns["metadata"] == {"name": "fraudstack", "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit-version": "latest", "pod-security.kubernetes.io/warn-version": "latest",
        "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled", "app.kubernetes.io/part-of": "fraudstack"}}
    n = exp["pods"]
    assert inputs(p, "app-quota")["spec"]["hard"] == {
        "pods": str(n),
        "requests.cpu": _times(exp["cpu"], n), "limits.cpu": _times(exp["cpu"], n),
        "requests.memory": _times(exp["memory"], n), "limits.memory": _times(exp["memory"], n),
        "requests.ephemeral-storage": _times(exp["storage"], n), "limits.ephemeral-storage": _times(exp["storage"], n),
        "services.loadbalancers": "0", "services.nodeports": "0",
    }
    assert _times("2Gi", 31) == "62Gi" and _times("1", 6) == "6" and _times("500m", 3) == "1500m"
    assert inputs(p, "app-limits")["spec"]["limits"] == [{
        "type": "Container",
        "default": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "512Mi"},
        "defaultRequest": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "512Mi"},
        "max": {"cpu": exp["cpu"], "memory": exp["memory"], "ephemeral-storage": exp["storage"]},
    }]


@pytest.mark.parametrize("stack", STACKS)
def test_deployment_security_probes_resources_and_spread(stack):
    p, exp = _stack(stack)
    dep = inputs(p, "app-deployment")
    assert "replicas" not in dep["spec"], "the HPA owns the replica count"
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
    assert dep["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert dep["spec"]["template"]["metadata"] == {"labels": LABELS}
    spec = pod(p)
    assert spec["securityContext"] == POD_SC
    assert spec["serviceAccountName"] == "scoring-api"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["terminationGracePeriodSeconds"] == 60
    assert spec["nodeSelector"] == {"fraudstack.io/node-pool": "cpu"}
    assert "tolerations" not in spec
    # The audit spool gets the container's ephemeral storage less /tmp and 256Mi for logs.
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                               {"name": "data", "emptyDir": {"sizeLimit": exp["spool"]}}]
    assert spec["topologySpreadConstraints"] == [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": SELECTOR}, "matchLabelKeys": ["pod-template-hash"]}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]
    (c,) = spec["containers"]
    assert c["name"] == "scoring"
    assert c["image"] == p["outputs"]["repositoryUrl"] + exp["image_suffix"] == p["outputs"]["appImage"]
    assert c["imagePullPolicy"] == "Always"
    assert c["args"] == ["--workers", exp["workers"]]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["securityContext"] == CONTAINER_SC
    amounts = {"cpu": exp["cpu"], "memory": exp["memory"], "ephemeral-storage": exp["storage"]}
    assert c["resources"] == {"requests": amounts, "limits": amounts}
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/var/lib/fraudstack"}]

    def http(path, period, failures):
        return {"httpGet": {"path": path, "port": "http", "scheme": "HTTP"}, "periodSeconds": period,
                "timeoutSeconds": 2, "failureThreshold": failures, "successThreshold": 1}

    assert c["startupProbe"] == http("/health/live", 5, 30)
    assert c["livenessProbe"] == http("/health/live", 10, 3)
    assert c["readinessProbe"] == http("/health/ready", 5, 2)
    assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}


@pytest.mark.parametrize("stack", STACKS)
def test_environment_comes_from_the_data_tier_outputs_and_holds_no_credential(stack):
    p, _ = _stack(stack)
    out = p["outputs"]
    assert env(p) == {
        "FRAUDSTACK_ENVIRONMENT": stack,
        "FRAUDSTACK_LOG_LEVEL": "INFO",
        "FRAUDSTACK_AWS_REGION": "eu-west-1",
        "FRAUDSTACK_API_KEYS_SECRET_ID": out["secretArns"]["api-keys"],
        "FRAUDSTACK_DATABASE_URL": (
            f"postgresql://fraudstack_admin@{out['databaseAddress']}:5432/{out['databaseName']}"
            "?sslmode=verify-full&sslrootcert=/opt/fraudstack/rds-global-bundle.pem"
        ),
        "FRAUDSTACK_DATABASE_SECRET_ID": out["databaseMasterUserSecretArn"],
        "FRAUDSTACK_REDIS_URL": f"rediss://{out['cachePrimaryEndpoint']}:6379/0",
        "FRAUDSTACK_REDIS_AUTH_SECRET_ID": out["secretArns"]["redis-auth-token"],
        "FRAUDSTACK_HMAC_SECRET_ID": out["secretArns"]["hmac-signing-key"],
        "FRAUDSTACK_ADMIN_KEY_SECRET_ID": out["secretArns"]["admin-key"],
        "FRAUDSTACK_DATA_DIR": "/var/lib/fraudstack",
        "FRAUDSTACK_BEDROCK_REGION": "eu-west-1",
        "FRAUDSTACK_BEDROCK_MODEL_ID": "eu.anthropic.claude-3-haiku-20240307-v1:0",
        "FRAUDSTACK_CLOUDWATCH_NAMESPACE": "fraudstack",
        "FRAUDSTACK_CLOUDWATCH_SERVICE": "scoring-api",
        "FRAUDSTACK_MODEL_STORE": f"s3://{out['modelStoreBucket']}",
        "AWS_REGION": "eu-west-1",
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "TMPDIR": "/tmp",
    }
    # The same environment for the migrations, which must finish before the rollout.
    assert env(p, "app-migrate") == env(p)
    assert not [r for r in p["resources"] if r["type"] == "kubernetes:core/v1:Secret"]


def test_the_image_carries_the_ca_bundle_the_database_url_names():
    from pathlib import Path

    from components.scoring_app_specs import RDS_CA_BUNDLE

    runtime = (Path(__file__).parents[2] / "app" / "Dockerfile").read_text().split("AS runtime", 1)[1]
    assert f"https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem {RDS_CA_BUNDLE}" in runtime


def test_every_variable_is_a_service_setting_or_a_credential_secret_it_reads():
    from app.credentials import SECRET_VARIABLES
    from app.settings import Settings

    from app.lifecycle import LifecycleSettings

    known = {f"FRAUDSTACK_{name.upper()}" for name in (*Settings.model_fields, *LifecycleSettings.model_fields)}
    known |= set(SECRET_VARIABLES)
    names = {n for n in env(plan("staging")) if n.startswith("FRAUDSTACK_")}
    assert names <= known, names - known
    assert set(SECRET_VARIABLES) <= names


def test_unsigned_requests_leave_the_hmac_key_out():
    from components.scoring_app_specs import environment

    args = _args(signed_requests=False)
    secrets = {"api-keys": "arn:api", "redis-auth-token": "arn:redis", "hmac-signing-key": "arn:hmac", "admin-key": "arn:admin"}
    names = [e["name"] for e in environment(args, "postgresql://u@db:5432/fraudstack", "rediss://cache:6379/0", secrets, "arn:db")]
    assert "FRAUDSTACK_HMAC_SECRET_ID" not in names and "FRAUDSTACK_REDIS_AUTH_SECRET_ID" in names


@pytest.mark.parametrize("stack", STACKS)
def test_migrations_job_runs_before_the_deployment(stack):
    p, exp = _stack(stack)
    job = objects(p)["app-migrate"]
    suffix = "3f1c0d2e4b5a" if stack == "production" else "2026-11-0"
    assert job["inputs"]["metadata"]["name"] == f"scoring-api-migrate-{suffix}"
    assert job["inputs"]["spec"]["backoffLimit"] == 3
    assert job["inputs"]["spec"]["activeDeadlineSeconds"] == 600
    spec = pod(p, "app-migrate")
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"] == POD_SC
    (c,) = spec["containers"]
    assert c["command"] == ["python", "-m", "app.migrate"]
    assert c["securityContext"] == CONTAINER_SC
    assert "livenessProbe" not in c and "ports" not in c
    # Pods in the namespace need the controller's webhook (readiness gates) answering.
    assert {"app-namespace", "app-sa", "app-lb-controller", "app-netpol-default-deny"} <= set(job["dependencies"])
    deployment = objects(p)["app-deployment"]
    assert "app-migrate" in deployment["dependencies"]
    assert "app-lb-controller" in deployment["dependencies"]


@pytest.mark.parametrize("stack", STACKS)
def test_service_hpa_and_pdb(stack):
    p, exp = _stack(stack)
    assert inputs(p, "app-service")["spec"] == {
        "type": "ClusterIP", "selector": SELECTOR,
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    hpa = inputs(p, "app-hpa")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scoring-api"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (exp["min"], exp["max"])
    assert hpa["minReplicas"] >= 2
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": exp["cpu_target"]}}},
        {"type": "Pods", "pods": {"metric": {"name": "fraudstack_requests_per_second"},
                                  "target": {"type": "AverageValue", "averageValue": exp["rps"]}}},
    ]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert inputs(p, "app-hpa")["metadata"]["name"] == "scoring-api"
    assert inputs(p, "app-pdb")["spec"] == {
        "maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow", "selector": {"matchLabels": SELECTOR},
    }


@pytest.mark.parametrize("stack", STACKS)
def test_network_policies_default_deny_then_exact_allow_lists(stack):
    p, exp = _stack(stack)
    lb = exp["public"] if exp["scheme"] == "internet-facing" else exp["private"]
    assert inputs(p, "app-netpol-default-deny")["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert inputs(p, "app-netpol-allow-ingress-from-alb")["spec"] == {
        "podSelector": {"matchLabels": SELECTOR}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": c}} for c in lb], "ports": [{"protocol": "TCP", "port": 8080}]},
                    # The request-rate metric's Prometheus (components/metrics_adapter.py).
                    {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                     "ports": [{"protocol": "TCP", "port": 8080}]}],
    }
    data = [{"ipBlock": {"cidr": c}} for c in exp["isolated"]]
    assert inputs(p, "app-netpol-allow-egress")["spec"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "fraudstack"}},
        "policyTypes": ["Egress"],
        "egress": [
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {"to": data, "ports": [{"protocol": "TCP", "port": 5432}]},
            {"to": data, "ports": [{"protocol": "TCP", "port": 6379}]},
            {"to": [{"ipBlock": {"cidr": c}} for c in exp["private"]], "ports": [{"protocol": "TCP", "port": 443}]},
        ],
    }


def test_metrics_scrapers_may_reach_the_service_port():
    from components.scoring_app_specs import network_policies

    def scrapers(args):
        rule = network_policies(args)["allow-ingress-from-alb"]["ingress"][1]
        assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
        return [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in rule["from"]]

    # The monitoring namespace (the HPA's Prometheus) always, first, and only once.
    assert scrapers(_args(metrics_scrapers=("monitoring", "observability"))) == ["monitoring", "observability"]
    assert scrapers(_args(metrics_scrapers=("observability",))) == ["monitoring", "observability"]
    assert scrapers(_args()) == ["monitoring"]
    assert scrapers(_args(monitoring_namespace="prom")) == ["prom"]


@pytest.mark.parametrize("stack", STACKS)
def test_ingress_annotations(stack):
    p, exp = _stack(stack)
    out = p["outputs"]
    ing = inputs(p, "app-ingress")
    bucket = out["albAccessLogBucket"]
    assert bucket == f"fraudstack-{stack}-alb-logs-{ACCOUNT}-eu-west-1"
    a = "alb.ingress.kubernetes.io/"
    expected = {
        a + "load-balancer-name": f"fraudstack-{stack}-alb",
        a + "scheme": exp["scheme"],
        a + "subnets": ",".join(out["publicSubnetIds"] if exp["scheme"] == "internet-facing" else out["privateSubnetIds"]),
        a + "target-type": "ip",
        a + "backend-protocol": "HTTP",
        a + "listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
        a + "ssl-redirect": "443",
        a + "certificate-arn": exp["cert"],
        a + "ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        a + "healthcheck-path": "/health/ready",
        a + "healthcheck-port": "traffic-port",
        a + "success-codes": "200",
        a + "load-balancer-attributes": (
            "deletion_protection.enabled=true,routing.http.drop_invalid_header_fields.enabled=true,"
            "routing.http.desync_mitigation_mode=strictest,routing.http.x_amzn_tls_version_and_cipher_suite.enabled=true,"
            f"idle_timeout.timeout_seconds=60,access_logs.s3.enabled=true,access_logs.s3.bucket={bucket},"
            "access_logs.s3.prefix=scoring-api"
        ),
        a + "target-group-attributes": "deregistration_delay.timeout_seconds=30",
        a + "tags": (
            f"cost-center=fraud-platform,data-classification={'restricted' if stack == 'production' else 'confidential'},"
            f"environment={stack},owner=fraud-platform-team,pci-scope=in-scope,service=fraudstack"
        ),
        # The admin routes are answered by the ALB itself: the service's 404 body.
        a + "actions.block-admin": (
            '{"type":"fixed-response","fixedResponseConfig":{"contentType":"application/json","statusCode":"404",'
            '"messageBody":"{\\"error\\":{\\"code\\":\\"not_found\\",\\"message\\":\\"not found\\",'
            '\\"field\\":\\"path\\"}}"}}'
        ),
    }
    if stack == "production":
        expected[a + "wafv2-acl-arn"] = out["wafWebAclArn"]
        assert out["wafWebAclArn"].startswith("arn:aws:wafv2:")
    else:
        expected[a + "inbound-cidrs"] = exp["vpc"]
        assert out["wafWebAclArn"] is None
    assert ing["metadata"]["annotations"] == expected
    assert json.loads(json.loads(expected[a + "actions.block-admin"])["fixedResponseConfig"]["messageBody"]) == {
        "error": {"code": "not_found", "message": "not found", "field": "path"}}
    # /admin ahead of "/" in manifest order and in the controller's (Prefix, longest first):
    # otherwise "/" forwards the admin routes to the service.
    rule = {"http": {"paths": [
        {"path": "/admin", "pathType": "Prefix",
         "backend": {"service": {"name": "block-admin", "port": {"name": "use-annotation"}}}},
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "scoring-api", "port": {"name": "http"}}}},
    ]}}
    if stack == "production":
        rule["host"] = "score.fraudstack.example.com"
        assert ing["spec"] == {"ingressClassName": "alb", "rules": [rule], "tls": [{"hosts": ["score.fraudstack.example.com"]}]}
    else:
        assert ing["spec"] == {"ingressClassName": "alb", "rules": [rule]}


@pytest.mark.parametrize("stack", STACKS)
def test_service_account_role_allows_exactly_secrets_models_and_metrics(stack):
    p, _ = _stack(stack)
    out = p["outputs"]
    sa = inputs(p, "app-sa")
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": out["appServiceAccountRoleArn"]}
    trust = json.loads(inputs(p, "app-irsa")["assumeRolePolicy"])
    issuer = out["clusterOidcIssuerUrl"].removeprefix("https://")
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {
        f"{issuer}:sub": "system:serviceaccount:fraudstack:scoring-api", f"{issuer}:aud": "sts.amazonaws.com"}}
    models = ["eu.anthropic.claude-3-haiku-20240307-v1:0"] + (
        ["eu.anthropic.claude-3-5-sonnet-20240620-v1:0"] if stack == "production" else [])
    model_arns = []
    for m in models:
        model_arns += [f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:inference-profile/{m}",
                       f"arn:aws:bedrock:*::foundation-model/{m.removeprefix('eu.')}"]
    secrets = sorted([*out["secretArns"].values(), out["databaseMasterUserSecretArn"]])
    assert json.loads(inputs(p, "app-irsa-policy")["policy"]) == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadServiceSecrets", "Effect": "Allow",
         "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": secrets},
        {"Sid": "DecryptSecretsThroughSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": out["kmsKeyArns"]["secrets"],
         "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}},
        {"Sid": "InvokeConfiguredModels", "Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": model_arns},
        {"Sid": "PublishServiceMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": "fraudstack"}}},
    ]}


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer_controller_release_and_role(stack):
    p, _ = _stack(stack)
    out = p["outputs"]
    release = inputs(p, "app-lb-controller")
    assert (release["chart"], release["version"], release["namespace"]) == ("aws-load-balancer-controller", "1.14.0", "kube-system")
    assert release["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    role = objects(p)["app-lb-controller-irsa"]["inputs"]
    issuer = out["clusterOidcIssuerUrl"].removeprefix("https://")
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"][f"{issuer}:sub"] == (
        "system:serviceaccount:kube-system:aws-load-balancer-controller")
    values = release["values"]
    assert values["clusterName"] == out["clusterName"] == f"fraudstack-{stack}"
    assert values["vpcId"] == out["vpcId"]
    assert values["serviceAccount"]["name"] == "aws-load-balancer-controller"
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        f"arn:aws:iam::{ACCOUNT}:role/app-lb-controller-irsa")
    assert values["enableServiceMutatorWebhook"] is False
    assert values["nodeSelector"] == {"fraudstack.io/node-pool": "cpu"}
    policy = json.loads(inputs(p, "app-lb-controller-irsa-policy")["policy"])
    assert policy == lb_controller_policy(f"fraudstack-{stack}", "eu-west-1", ACCOUNT, out["vpcId"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["SecurityGroupsInThisVpc"]["Condition"] == {
        "ArnEquals": {"ec2:Vpc": f"arn:aws:ec2:eu-west-1:{ACCOUNT}:vpc/{out['vpcId']}"}}
    assert by_sid["ManageOwnLoadBalancers"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": f"fraudstack-{stack}"}}
    # Only read-only actions, the service-linked role (conditioned) and nothing else on "*".
    for st in policy["Statement"]:
        if st["Resource"] == "*":
            assert st["Sid"] in ("ReadOnly", "ServiceLinkedRole"), st["Sid"]


@pytest.mark.parametrize("stack", STACKS)
def test_access_log_bucket_is_private_encrypted_tls_only_and_writable_by_elb(stack):
    p, exp = _stack(stack)
    objs = objects(p)
    bucket = objs["app-alb-logs"]["inputs"]
    assert bucket["bucket"] == f"fraudstack-{stack}-alb-logs-{ACCOUNT}-eu-west-1"
    assert bucket["tags"]["Name"] == f"fraudstack-{stack}-alb-logs"
    assert {k: v for k, v in objs["app-alb-logs-public-access"]["inputs"].items() if k != "bucket"} == {
        "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True}
    assert objs["app-alb-logs-encryption"]["inputs"]["rules"] == [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}, "bucketKeyEnabled": True}]
    assert objs["app-alb-logs-ownership"]["inputs"]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    assert objs["app-alb-logs-lifecycle"]["inputs"]["rules"][0]["expiration"] == {"days": exp["log_days"]}
    statements = json.loads(objs["app-alb-logs-policy"]["inputs"]["policy"])["Statement"]
    deny, service, account = statements
    assert (deny["Effect"], deny["Action"], deny["Condition"]) == ("Deny", "s3:*", {"Bool": {"aws:SecureTransport": "false"}})
    assert service["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    assert account["Principal"] == {"AWS": "arn:aws:iam::156460612806:root"}  # eu-west-1's ELB account
    assert service["Resource"] == account["Resource"] and service["Resource"].endswith(f"/*/AWSLogs/{ACCOUNT}/*")


def test_internet_facing_alb_gets_a_waf_acl_with_managed_rules_rate_limit_and_redacted_logs():
    p = plan("production")
    objs = objects(p)
    acl = objs["app-waf"]["inputs"]
    assert (acl["scope"], acl["defaultAction"]) == ("REGIONAL", {"allow": {}})
    assert [(r["name"], r["priority"]) for r in acl["rules"]] == [
        ("AWSManagedRulesCommonRuleSet", 0), ("AWSManagedRulesKnownBadInputsRuleSet", 1),
        ("AWSManagedRulesAmazonIpReputationList", 2), ("rate-limit-per-ip", 3)]
    assert acl["rules"][3]["statement"] == {"rateBasedStatement": {"limit": 20000, "aggregateKeyType": "IP"}}
    assert acl["rules"][3]["action"] == {"block": {}}
    logging_cfg = objs["app-waf-logging"]["inputs"]
    assert logging_cfg["redactedFields"] == [{"singleHeader": {"name": n}} for n in ("x-api-key", "x-signature", "authorization")]
    logs = objs["app-waf-logs"]["inputs"]
    assert logs["name"] == "aws-waf-logs-fraudstack-production-scoring-api"
    assert logs["kmsKeyId"] == p["outputs"]["kmsKeyArns"]["logs"]
    assert not [n for n in objects(plan("staging")) if n.startswith("app-waf")]


def test_gpu_variant_tolerates_the_taint_selects_gpu_nodes_and_takes_one_gpu():
    p = _gpu_plan("production")
    spec = pod(p)
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"fraudstack.io/node-pool": "gpu"}
    amounts = {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "2Gi", "nvidia.com/gpu": "1"}
    assert spec["containers"][0]["resources"] == {"requests": amounts, "limits": amounts}
    assert inputs(p, "app-hpa")["spec"]["maxReplicas"] == 4
    # Four replicas and a surge of one hold GPUs; the migration Job holds none.
    assert inputs(p, "app-quota")["spec"]["hard"]["requests.nvidia.com/gpu"] == str(4 + 1)
    assert inputs(p, "app-quota")["spec"]["hard"]["pods"] == str(4 + 1 + 1)


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_deployment_runs_the_gpu_image_and_the_job_the_cpu_image_on_a_cpu_node(stack):
    p, exp = _gpu_plan(stack), PER_STACK[stack]
    repo = p["outputs"]["repositoryUrl"]
    gpu_ref = f"{repo}@{GPU_IMAGES[stack]}" if stack == "production" else f"{repo}:{GPU_IMAGES[stack]}"
    (scoring,) = pod(p)["containers"]
    assert scoring["image"] == gpu_ref == p["outputs"]["appImage"]
    job = pod(p, "app-migrate")
    (migrate,) = job["containers"]
    assert migrate["image"] == repo + exp["image_suffix"]
    assert job["nodeSelector"] == {"fraudstack.io/node-pool": "cpu"} and "tolerations" not in job
    cpu_amounts = {"cpu": exp["cpu"], "memory": exp["memory"], "ephemeral-storage": exp["storage"]}
    assert migrate["resources"] == {"requests": cpu_amounts, "limits": cpu_amounts}
    # The migrations belong to the release (the CPU image's tag or digest), not to the GPU build.
    suffix = "3f1c0d2e4b5a" if stack == "production" else "2026-11-0"
    assert inputs(p, "app-migrate")["metadata"]["name"] == f"scoring-api-migrate-{suffix}"
    # checkov's digest check is suppressed exactly where an object runs a tag.
    skip = {"checkov.io/skip1": "CKV_K8S_43=pinned by an immutable tag: the ECR repository refuses to overwrite "
                                "tags (imageTagMutability IMMUTABLE)"}
    for workload in ("app-deployment", "app-migrate"):
        annotations = inputs(p, workload)["metadata"].get("annotations")
        assert annotations == (None if stack == "production" else skip), workload


def test_without_gpu_the_gpu_image_is_not_deployed():
    p = plan("staging", {"fraudstack:app": {"gpuImage": GPU_IMAGES["staging"]}})
    assert pod(p)["containers"][0]["image"].endswith(":2026.11.0")
    assert "tolerations" not in pod(p)


def test_every_app_resource_is_a_child_of_the_component():
    p = plan("production")
    kinds = {r["type"] for r in p["resources"] if r["parent"] == "app"}
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job", "aws:iam/role:Role",
            "kubernetes:helm.sh/v3:Release", "aws:s3/bucket:Bucket", "pulumi:providers:kubernetes"} <= kinds
    provider = objects(p)["app-k8s"]
    assert {"eks-cpu-group", "eks-gpu-group"} <= set(provider["dependencies"]), "nothing reaches the cluster before its nodes"
    k8s_objects = [r for r in p["resources"] if r["parent"] == "app" and r["type"].startswith("kubernetes:")]
    assert k8s_objects and all(r["provider"].split("::")[-1].startswith("app-k8s") for r in k8s_objects)


def test_image_reference_by_digest_or_tag():
    repo = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/fraudstack/scoring"
    assert image_ref(repo, "sha256:" + "a" * 64) == f"{repo}@sha256:{'a' * 64}"
    assert image_ref(repo, "2026.11.0") == f"{repo}:2026.11.0"


@pytest.mark.parametrize("stack", STACKS)
def test_the_grace_period_covers_the_pre_stop_pause_the_drain_and_the_audit_flush(stack, tmp_path):
    """A deleted pod pauses 10 s (the ALB deregisters it), then SIGTERM: uvicorn finishes
    in-flight requests (up to 30 s), the lifespan shutdown flushes the audit queue (one
    batch may wait 10 s for the database before it is spooled); 10 s margin, then SIGKILL."""
    from app.__main__ import GRACEFUL_SHUTDOWN_SECONDS
    from app.audit import WRITE_TIMEOUT_SECONDS, AuditWriter, Spool
    from components.scoring_app_specs import AUDIT_FLUSH_SECONDS, IN_FLIGHT_SECONDS

    spec = pod(plan(stack))
    (c,) = spec["containers"]
    assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert spec["terminationGracePeriodSeconds"] == 60 == 10 + 30 + 10 + 10
    # The budget's parts are the service's own timeouts.
    assert IN_FLIGHT_SECONDS == GRACEFUL_SHUTDOWN_SECONDS == 30
    assert AUDIT_FLUSH_SECONDS == WRITE_TIMEOUT_SECONDS == 10
    assert AuditWriter(None, Spool(tmp_path)).write_timeout == WRITE_TIMEOUT_SECONDS
    # Connections the ALB drains after deregistration end within the grace period.
    deregistration = inputs(plan(stack), "app-ingress")["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/target-group-attributes"]
    assert deregistration == "deregistration_delay.timeout_seconds=30"
    assert 10 + 30 <= spec["terminationGracePeriodSeconds"]


def test_the_spool_gets_the_ephemeral_storage_left_after_tmp_and_logs():
    from components.scoring_app import Resources
    from components.scoring_app_specs import spool_size_mib

    assert spool_size_mib(Resources("1", "1Gi", "1Gi")) == 512
    assert spool_size_mib(Resources("2", "2Gi", "2Gi")) == 1536
    assert spool_size_mib(Resources("1", "1Gi", "768Mi")) == 256
    p = plan("staging", {"fraudstack:app": {"resources": {"ephemeralStorage": "4Gi"}}})
    assert pod(p)["volumes"][1] == {"name": "data", "emptyDir": {"sizeLimit": "3584Mi"}}


BAD_APP = [
    ({"image": "latest"}, "fraudstack:app.image: 'latest' is a moving tag; use a release tag or a digest"),
    ({"image": "sha256:abc"}, "fraudstack:app.image: 'sha256:abc' is not a digest sha256:<64 lowercase hex>"),
    ({"image": "repo/x:1.0"}, "fraudstack:app.image: 'repo/x:1.0': give only the tag or the digest; the repository comes from the stack"),
    ({"image": None}, "fraudstack:app.image: is required: the tag or digest of the scoring image in the stack's ECR repository"),
    ({"certificateArn": None}, "fraudstack:app.certificateArn: is required: the ALB serves HTTPS only"),
    ({"certificateArn": "arn:aws:iam::123456789012:server-certificate/x"},
     "fraudstack:app.certificateArn: 'arn:aws:iam::123456789012:server-certificate/x' is not an ACM certificate ARN"),
    ({"minReplicas": 1}, "fraudstack:app.minReplicas: Input should be greater than or equal to 2 (got 1)"),
    ({"maxReplicas": 2}, "fraudstack:app.maxReplicas: 2 is below minReplicas (3)"),
    ({"sslPolicy": "ELBSecurityPolicy-2016-08"}, "fraudstack:app.sslPolicy: 'ELBSecurityPolicy-2016-08' is not a TLS 1.2+ ALB policy"),
    ({"scheme": "public"}, "fraudstack:app.scheme: Input should be 'internal' or 'internet-facing' (got 'public')"),
    ({"namespace": "scoring"}, "fraudstack:app.namespace: 'scoring' differs from alarms.service.namespace ('fraudstack'); the alarms would watch nothing"),
    ({"namespace": "kube-system"}, "fraudstack:app.namespace: 'kube-system' is reserved; the service gets its own namespace"),
    ({"resources": {"cpu": "50m"}}, "fraudstack:app.resources.cpu: '50m' is not a CPU quantity of at least 100m (e.g. 500m, 1, 2)"),
    ({"resources": {"memory": "2G"}}, "fraudstack:app.resources.memory: '2G' is not a quantity of at least 256Mi in Mi or Gi (e.g. 512Mi, 2Gi)"),
    ({"gpu": True, "gpuImage": "2026.11.0-gpu"},
     "fraudstack:app.maxReplicas: with gpu each replica takes a GPU node, and cluster.gpuNodes.maxSize is 4; lower maxReplicas to 4 or grow the GPU group"),
    ({"gpu": True, "maxReplicas": 4}, "fraudstack:app.gpuImage: is required with app.gpu: the tag or digest of the GPU image "
                                      "(docker build --target runtime-gpu) in the stack's ECR repository"),
    ({"gpu": True, "maxReplicas": 4, "gpuImage": "sha256:3f1c0d2e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"},
     "fraudstack:app.gpuImage: 'sha256:3f1c0d2e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0' is app.image, "
     "the CPU build; the GPU Deployment needs the runtime-gpu build"),
    ({"gpuImage": "latest"}, "fraudstack:app.gpuImage: 'latest' is a moving tag; use a release tag or a digest"),
    ({"resources": {"ephemeralStorage": "512Mi"}},
     "fraudstack:app.resources.ephemeralStorage: 512Mi leaves no room for the audit spool: at least 768Mi (256Mi /tmp, 256Mi logs, the rest the spool)"),
    ({"accessLogRetentionDays": 90}, "fraudstack:app.accessLogRetentionDays: production keeps load balancer logs at least 365 days, got 90"),
    ({"metricsScrapers": ["Monitoring"]}, "fraudstack:app.metricsScrapers: 'Monitoring' is not a namespace name"),
    ({"replicas": 3}, "fraudstack:app.replicas: unknown key (check the spelling; keys are camelCase)"),
]


@pytest.mark.parametrize("change,message", BAD_APP, ids=[m.split(":")[1].split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD_APP)])
def test_bad_app_config_names_the_key(change, message):
    with pytest.raises(pulumi.RunError) as err:
        load_config("production", {"fraudstack:app": change})
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_app_config_of_both_stacks():
    prod, staging = load_config("production").app, load_config("staging").app
    assert (prod.scheme.value, prod.min_replicas, prod.max_replicas, prod.image_is_digest) == ("internet-facing", 3, 24, True)
    assert (staging.scheme.value, staging.min_replicas, staging.max_replicas, staging.image_is_digest) == ("internal", 2, 4, False)
