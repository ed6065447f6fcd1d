"""The rules read the property names pulumi-aws 7 really records.

A small, compliant platform is declared with real ``pulumi_aws`` resources under the
SDK's mock runtime; the inputs the mock sees (camelCase, secrets wrapped) become plan
resources and the whole pack must find nothing. Flipping one security property on the
same real resources must then be caught, which proves the rule reads the real name.
"""
import json

import pulumi
import pulumi_aws as aws
import pytest

from policies.engine import evaluate, load_config

TAGS = {"environment": "production", "service": "fraudstack", "owner": "payments-platform",
        "data-classification": "confidential", "pci-scope": "in-scope"}
ACCOUNT = "111122223333"
MODEL = "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources = []

    def new_resource(self, args):
        rid = f"{args.name}-id"
        service = args.typ.split(":")[1].split("/")[0]
        outputs = {"arn": f"arn:aws:{service}:eu-west-1:{ACCOUNT}:{args.name}", "name": args.inputs.get("name", args.name)}
        self.resources.append({"type": args.typ, "name": args.name, "parent": "platform", "custom": True,
                               "provider": "", "id": rid, "inputs": args.inputs, "outputs": outputs})
        return rid, {**args.inputs, **outputs}

    def call(self, args):
        raise NotImplementedError(args.token)


def _tags(name):
    return {**TAGS, "Name": name}


def _declare(flip: dict):
    """The mini platform; ``flip`` maps a resource name to input overrides (snake_case)."""
    def kw(_resource, **values):
        values.update(flip.get(_resource, {}))
        return values

    key = aws.kms.Key("key", **kw("key", enable_key_rotation=True, deletion_window_in_days=30, tags=_tags("key"),
                      policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
                          "AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}]})))
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16", tags=_tags("vpc"))
    aws.ec2.DefaultSecurityGroup("default-sg", vpc_id=vpc.id, tags=_tags("default-sg"))
    logs = aws.cloudwatch.LogGroup("flow-logs", **kw("flow-logs", retention_in_days=400, kms_key_id=key.arn, tags=_tags("flow")))
    aws.ec2.FlowLog("flow", **kw("flow", vpc_id=vpc.id, traffic_type="ALL", log_destination=logs.arn,
                    log_destination_type="cloud-watch-logs", tags=_tags("flow")))
    subnets = {}
    for tier in ("public", "private", "isolated"):
        for i, az in enumerate(("euw1-az1", "euw1-az2")):
            name = f"{tier}-{i}"
            subnets[name] = aws.ec2.Subnet(name, **kw(name, vpc_id=vpc.id, availability_zone_id=az,
                                           cidr_block=f"10.0.{len(subnets)}.0/24", map_public_ip_on_launch=False,
                                           tags={**_tags(name), "tier": tier}))
    for i in range(2):
        eip = aws.ec2.Eip(f"nat-eip-{i}", domain="vpc", tags=_tags("eip"))
        nat = aws.ec2.NatGateway(f"nat-{i}", allocation_id=eip.id, subnet_id=subnets[f"public-{i}"].id, tags=_tags("nat"))
        aws.ec2.RouteTable(f"private-rt-{i}", **kw(f"private-rt-{i}", vpc_id=vpc.id, tags={**_tags("rt"), "tier": "private"},
                           routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}]))
    node_sg = aws.ec2.SecurityGroup("nodes", vpc_id=vpc.id, description="EKS nodes", tags=_tags("nodes"))
    aws.vpc.SecurityGroupEgressRule("nodes-https", **kw("nodes-https", security_group_id=node_sg.id, ip_protocol="tcp",
                                    from_port=443, to_port=443, cidr_ipv4="0.0.0.0/0", description="HTTPS via NAT", tags=_tags("r")))
    cluster = aws.eks.Cluster("eks", **kw("eks", role_arn=f"arn:aws:iam::{ACCOUNT}:role/eks", version="1.33",
                              enabled_cluster_log_types=["api", "audit", "authenticator", "controllerManager", "scheduler"],
                              vpc_config={"subnet_ids": [subnets["private-0"].id, subnets["private-1"].id],
                                          "endpoint_private_access": True, "endpoint_public_access": False,
                                          "security_group_ids": [node_sg.id]},
                              encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
                              access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False},
                              tags=_tags("eks")))
    aws.eks.Addon("vpc-cni", cluster_name=cluster.name, addon_name="vpc-cni",
                  configuration_values=json.dumps({"enableNetworkPolicy": "true"}), tags=_tags("cni"))
    lt = aws.ec2.LaunchTemplate("nodes-lt", **kw("nodes-lt", vpc_security_group_ids=[node_sg.id], tags=_tags("lt"),
                                metadata_options={"http_tokens": "required", "http_put_response_hop_limit": 1, "http_endpoint": "enabled"},
                                block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {"encrypted": "true", "kms_key_id": key.arn, "volume_size": 50}}]))
    aws.eks.NodeGroup("gpu", **kw("gpu", cluster_name=cluster.name, node_role_arn=f"arn:aws:iam::{ACCOUNT}:role/nodes",
                      subnet_ids=[subnets["private-0"].id, subnets["private-1"].id], instance_types=["g5.xlarge"],
                      scaling_config={"desired_size": 0, "max_size": 2, "min_size": 0},
                      launch_template={"id": lt.id, "version": "1"}, tags=_tags("gpu"),
                      taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]))
    db_sg = aws.ec2.SecurityGroup("db", vpc_id=vpc.id, description="PostgreSQL from nodes", tags=_tags("db"))
    aws.vpc.SecurityGroupIngressRule("db-from-nodes", **kw("db-from-nodes", security_group_id=db_sg.id, ip_protocol="tcp",
                                     from_port=5432, to_port=5432, referenced_security_group_id=node_sg.id,
                                     description="PostgreSQL from nodes", tags=_tags("r")))
    pg = aws.rds.ParameterGroup("audit", family="postgres16", tags=_tags("pg"), parameters=[
        {"name": n, "value": v} for n, v in (("rds.force_ssl", "1"), ("log_statement", "ddl"), ("log_min_duration_statement", "500"))])
    sng = aws.rds.SubnetGroup("audit-subnets", subnet_ids=[subnets["isolated-0"].id, subnets["isolated-1"].id], tags=_tags("sng"))
    aws.rds.Instance("audit-db", **kw("audit-db", identifier="fraudstack-audit", engine="postgres", engine_version="16.6",
                     instance_class="db.r6g.large", allocated_storage=50, storage_encrypted=True, kms_key_id=key.arn,
                     publicly_accessible=False, multi_az=True, backup_retention_period=14, deletion_protection=True,
                     iam_database_authentication_enabled=True, monitoring_interval=60,
                     monitoring_role_arn=f"arn:aws:iam::{ACCOUNT}:role/rds-monitoring",
                     enabled_cloudwatch_logs_exports=["postgresql", "upgrade"], parameter_group_name=pg.name,
                     ca_cert_identifier="rds-ca-rsa2048-g1", auto_minor_version_upgrade=True,
                     performance_insights_enabled=True, performance_insights_kms_key_id=key.arn, copy_tags_to_snapshot=True,
                     skip_final_snapshot=False, final_snapshot_identifier="fraudstack-audit-final", username="fraudstack_admin",
                     manage_master_user_password=True, db_subnet_group_name=sng.name, vpc_security_group_ids=[db_sg.id],
                     tags=_tags("db")))
    cache_sg = aws.ec2.SecurityGroup("cache", vpc_id=vpc.id, description="Redis from nodes", tags=_tags("cache"))
    aws.vpc.SecurityGroupIngressRule("cache-from-nodes", security_group_id=cache_sg.id, ip_protocol="tcp", from_port=6379,
                                     to_port=6379, referenced_security_group_id=node_sg.id, description="Redis from nodes",
                                     tags=_tags("r"))
    csg = aws.elasticache.SubnetGroup("velocity-subnets", subnet_ids=[subnets["isolated-0"].id, subnets["isolated-1"].id], tags=_tags("csg"))
    aws.elasticache.ReplicationGroup("velocity", **kw("velocity", replication_group_id="fraudstack-velocity", description="velocity",
                                     engine="redis", engine_version="7.1", node_type="cache.r7g.large", num_cache_clusters=2,
                                     at_rest_encryption_enabled=True, kms_key_id=key.arn, transit_encryption_enabled=True,
                                     auth_token=pulumi.Output.secret("test-key-not-a-secret"), automatic_failover_enabled=True,
                                     multi_az_enabled=True, snapshot_retention_limit=7, auto_minor_version_upgrade=True,
                                     subnet_group_name=csg.name, security_group_ids=[cache_sg.id], tags=_tags("velocity")))
    secret = aws.secretsmanager.Secret("api-keys", **kw("api-keys", kms_key_id=key.arn, tags=_tags("secret")))
    aws.secretsmanager.SecretRotation("api-keys", secret_id=secret.id, rotation_lambda_arn=f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:rotate",
                                      rotation_rules={"automatically_after_days": 30})
    topic = aws.sns.Topic("alerts", **kw("alerts", kms_master_key_id=key.arn, tags=_tags("alerts")))
    topic_arn = f"arn:aws:sns:eu-west-1:{ACCOUNT}:alerts"  # what the mock returns
    aws.sns.TopicPolicy("alerts", arn=topic.arn, policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish", "Resource": topic_arn,
         "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}},
        {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": topic_arn,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    for name, ns, dims in (("db-cpu", "AWS/RDS", {"DBInstanceIdentifier": "fraudstack-audit"}),
                           ("cache-cpu", "AWS/ElastiCache", {"ReplicationGroupId": "fraudstack-velocity"})):
        aws.cloudwatch.MetricAlarm(name, **kw(name, namespace=ns, metric_name="CPUUtilization", dimensions=dims,
                                   comparison_operator="GreaterThanThreshold", evaluation_periods=3, period=60,
                                   statistic="Average", threshold=80, alarm_actions=[topic.arn], ok_actions=[topic.arn],
                                   tags=_tags(name)))
    repo = aws.ecr.Repository("scoring", **kw("ecr-scoring", name="fraudstack-scoring", image_tag_mutability="IMMUTABLE",
                              image_scanning_configuration={"scan_on_push": True},
                              encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}], tags=_tags("ecr")))
    aws.ecr.LifecyclePolicy("scoring", repository=repo.name, policy=json.dumps({"rules": []}))
    role = aws.iam.Role("scoring", **kw("role-scoring", name="fraudstack-scoring", tags=_tags("role"),
                        assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})))
    aws.iam.RolePolicy("scoring", **kw("scoring-policy", role=role.name, policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:x"}]})))
    ep_sg = aws.ec2.SecurityGroup("bedrock", vpc_id=vpc.id, description="Bedrock endpoint", tags=_tags("ep"))
    aws.vpc.SecurityGroupIngressRule("bedrock-from-nodes", security_group_id=ep_sg.id, ip_protocol="tcp", from_port=443,
                                     to_port=443, referenced_security_group_id=node_sg.id, description="HTTPS from nodes", tags=_tags("r"))
    aws.ec2.VpcEndpoint("bedrock", **kw("bedrock", vpc_id=vpc.id, service_name="com.amazonaws.eu-west-1.bedrock-runtime",
                        vpc_endpoint_type="Interface", private_dns_enabled=True,
                        subnet_ids=[subnets["private-0"].id, subnets["private-1"].id], security_group_ids=[ep_sg.id],
                        tags=_tags("ep"), policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                            "Principal": "*", "Action": ["bedrock:InvokeModel"], "Resource": MODEL,
                            "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}}]})))


def _plan(flip=None):
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, project="fraudstack", stack="production", preview=False)

    @pulumi.runtime.test
    def run():
        _declare(flip or {})

    run()
    return mocks.resources


@pytest.fixture(scope="module")
def compliant_plan():
    return _plan()


def test_compliant_platform_has_no_violations(compliant_plan):
    assert len(compliant_plan) > 40
    assert evaluate(compliant_plan, load_config("production"), stack="production") == []


@pytest.mark.parametrize("name, flip_key, override, policies", [
    ("audit-db", "audit-db", {"publicly_accessible": True}, {"rds-not-public"}),
    ("audit-db", "audit-db", {"storage_encrypted": False}, {"rds-storage-encrypted"}),
    ("velocity", "velocity", {"transit_encryption_enabled": False}, {"cache-in-transit-tls", "cache-auth"}),
    ("db-from-nodes", "db-from-nodes", {"referenced_security_group_id": None, "cidr_ipv4": "10.0.0.0/16"}, {"data-tier-from-nodes-only"}),
    ("eks", "eks", {"vpc_config": {"subnet_ids": ["a"], "endpoint_public_access": True, "endpoint_private_access": True}},
     {"eks-private-endpoint", "eks-public-cidrs-restricted"}),
    ("nodes-lt", "nodes-lt", {"metadata_options": {"http_tokens": "optional", "http_put_response_hop_limit": 1}}, {"lt-imdsv2"}),
    ("gpu", "gpu", {"taints": []}, {"eks-gpu-nodegroup-tainted"}),
    ("scoring", "ecr-scoring", {"image_tag_mutability": "MUTABLE"}, {"ecr-immutable-tags"}),
    ("key", "key", {"enable_key_rotation": False}, {"kms-rotation"}),
    ("flow-logs", "flow-logs", {"retention_in_days": 30}, {"log-group-retention-minimum"}),
    ("alerts", "alerts", {"kms_master_key_id": None}, {"sns-encrypted"}),
    ("bedrock", "bedrock", {"private_dns_enabled": False}, {"bedrock-endpoint-private"}),
    ("public-0", "public-0", {"map_public_ip_on_launch": True}, {"subnet-no-public-ip"}),
    ("api-keys", "api-keys", {"kms_key_id": None}, {"secret-cmk"}),
    ("db-cpu", "db-cpu", {"ok_actions": []}, {"alarm-notifies-sns"}),
    ("scoring", "role-scoring", {"assume_role_policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})}, {"iam-trust-specific-principals"}),
])
def test_one_flipped_property_is_caught(name, flip_key, override, policies):
    found = evaluate(_plan({flip_key: override}), load_config("production"), stack="production")
    assert {(v["policy"], v["name"], v["enforcement"]) for v in found} == {(p, name, "mandatory") for p in policies}


def test_schema_secret_inputs_arrive_wrapped():
    """pulumi-aws marks auth_token secret itself: even a literal reaches the policy as a secret."""
    plan = _plan({"velocity": {"auth_token": "plain-token-not-a-secret"}})
    token = next(r for r in plan if r["name"] == "velocity")["inputs"]["authToken"]
    assert token["value"] == "plain-token-not-a-secret" and len(token) == 2
    assert evaluate(plan, load_config("production"), stack="production") == []


def _redacted(value):
    """What ``tools.preview --json`` writes: wrapped secrets become the "[secret]" marker."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
            return "[secret]"
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


@pytest.mark.parametrize("name, key, value, policies", [
    ("audit-db", "publiclyAccessible", True, {"rds-not-public"}),
    ("velocity", "atRestEncryptionEnabled", False, {"cache-encrypted-at-rest"}),
    ("velocity", "authToken", "hand-edited-plaintext", {"no-plaintext-secrets"}),
    ("nodes-lt", "metadataOptions", {"httpTokens": "optional", "httpPutResponseHopLimit": 1}, {"lt-imdsv2"}),
])
def test_hand_edited_plan_file(compliant_plan, tmp_path, name, key, value, policies):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"project": "fraudstack", "stack": "production", "resources": _redacted(compliant_plan)}))
    plan = json.loads(path.read_text())
    assert "test-key-not-a-secret" not in path.read_text()
    assert evaluate(plan["resources"], load_config("production"), stack="production") == []
    next(r for r in plan["resources"] if r["name"] == name)["inputs"][key] = value
    found = evaluate(plan["resources"], load_config("production"), stack="production")
    assert {(v["policy"], v["name"], v["enforcement"]) for v in found} == {(p, name, "mandatory") for p in policies}


def _unknown_ids(value):
    """A first `pulumi preview`: ids and ARNs of resources not created yet are unknown."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
    if isinstance(value, dict):
        return {k: _unknown_ids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknown_ids(v) for v in value]
    if isinstance(value, str) and (value.endswith("-id") or value.startswith("arn:aws:")):
        return UNKNOWN_STRING_VALUE
    return value


def _with_dependencies(plan):
    """Dependencies as the engine records them: the resources whose id/ARN/name an input holds."""
    owners = {}
    for r in plan:
        for value in (r["id"], r["outputs"]["arn"], r["inputs"].get("name")):
            if value:
                owners[value] = r["name"]

    def refs(value):
        if isinstance(value, dict):
            return [x for v in value.values() for x in refs(v)]
        if isinstance(value, list):
            return [x for v in value for x in refs(v)]
        return [owners[value]] if isinstance(value, str) and value in owners else []

    # Names may repeat across types (a topic and its policy): the engine skips the resource itself.
    return [dict(r, dependencies=sorted(set(refs(r["inputs"])))) for r in plan]


def test_first_preview_with_unknown_ids_reports_no_mandatory_violation(compliant_plan):
    plan = [dict(r, inputs=_unknown_ids(r["inputs"])) for r in _with_dependencies(compliant_plan)]
    for r in plan:
        r.pop("id"), r.pop("outputs")
    # A reference not known yet (key ARN, group id) counts as set: no false alarm on a first preview.
    assert evaluate(plan, load_config("production"), stack="production") == []
    # Problems in known values are still caught next to the unknown ones.
    next(r for r in plan if r["name"] == "audit-db")["inputs"]["publiclyAccessible"] = True
    next(r for r in plan if r["name"] == "db-from-nodes")["inputs"]["cidrIpv4"] = "0.0.0.0/0"
    found = evaluate(plan, load_config("production"), stack="production")
    assert {(v["policy"], v["name"]) for v in found} == {
        ("rds-not-public", "audit-db"), ("data-tier-from-nodes-only", "db-from-nodes")}


def test_policy_document_unknown_during_preview_cannot_be_judged(compliant_plan):
    """A rule that needs the value says it cannot run (advisory), as `pulumi preview` prints it."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
    plan = [dict(r, inputs={**r["inputs"], "policy": UNKNOWN_STRING_VALUE}) if r["name"] == "key" else r
            for r in compliant_plan]
    found = evaluate(plan, load_config("production"), stack="production")
    assert {(v["policy"], v["enforcement"]) for v in found} == {("kms-no-wildcard-principal", "advisory")}
    assert found[0]["message"].endswith("string value at .policy can't be known during preview")
