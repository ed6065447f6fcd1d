"""The whole program with the cluster tier wired in, for both stacks."""

from __future__ import annotations

import pytest

from tests.infra.cluster_helpers import of_type, one, policy
from tools.plan import run_program

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    return {stack: run_program(stack) for stack in ("staging", "production")}


def test_production_has_at_least_8_alarms_all_notifying_the_topic(plans):
    plan = plans["production"]
    topic = one(plan["resources"], "aws:sns/topic:Topic", "alarms-topic")["inputs"]
    topic_arn = f"arn:aws:sns:eu-west-1:123456789012:{topic['name']}"
    alarms = of_type(plan["resources"], ALARM)
    # 6 database + 4 per cache node (primary + 2 replicas) + 4 node/pod + 3 service + 6 model drift/quality.
    assert len(alarms) == 6 + 4 * 3 + 4 + 3 + 6 >= 8
    for alarm in alarms:
        assert alarm["inputs"]["alarmActions"] == [topic_arn], alarm["name"]
        assert alarm["inputs"]["okActions"] == [topic_arn], alarm["name"]
    assert topic["kmsMasterKeyId"] == plan["outputs"]["kmsKeyArns"]["sns"]
    by_key = {a["name"].removeprefix("alarms-"): a["inputs"] for a in alarms}
    assert by_key["db-cpu"]["threshold"] == 75
    assert by_key["db-cpu"]["dimensions"] == {"DBInstanceIdentifier": "fraudstack-production-audit"}
    assert by_key["cache-3-replication-lag"]["dimensions"] == {"CacheClusterId": "fraudstack-production-velocity-003"}
    assert by_key["service-p99-latency"]["threshold"] == 50
    # The per-node cache alarms watch exactly the replication group's member clusters.
    watched = sorted({a["dimensions"]["CacheClusterId"] for k, a in by_key.items() if k.startswith("cache-")})
    assert watched == plan["outputs"]["cacheMemberClusterIds"]
    assert by_key["service-p99-latency"]["dimensions"] == {"Environment": "production", "Service": "scoring-api"}
    assert by_key["nodes-cpu"]["dimensions"] == {"ClusterName": "fraudstack-production"}
    # Model drift/quality alarms run on hourly datapoints (tests/lifecycle/test_model_store.py).
    platform = {k: a for k, a in by_key.items() if not k.startswith("model-")}
    assert {a["evaluationPeriods"] for k, a in platform.items() if k != "service-audit-backlog"} == {5}
    assert {a.get("period", 60) for a in platform.values()} == {60}
    # The audit backlog alarm: 3 minutes (production's spool fills in about 6.5 at full load).
    backlog = by_key["service-audit-backlog"]
    assert (backlog["metricName"], backlog["statistic"], backlog["threshold"], backlog["evaluationPeriods"]) == (
        "AuditBacklog", "Maximum", 10000, 3)
    assert backlog["dimensions"] == {"Environment": "production", "Service": "scoring-api"}
    sub = one(plan["resources"], "aws:sns/topicSubscription:TopicSubscription", "alarms-email")["inputs"]
    assert sub["endpoint"] == "fraud-oncall@example.com"


def test_staging_alarm_count(plans):
    # One cache node in staging.
    assert len(of_type(plans["staging"]["resources"], ALARM)) == 6 + 4 + 4 + 3 + 6
    # Staging's 300 s period: the 3-minute audit backlog window is one period.
    backlog = one(plans["staging"]["resources"], ALARM, "alarms-service-audit-backlog")["inputs"]
    assert (backlog["period"], backlog["evaluationPeriods"]) == (300, 1)


def test_gpu_node_group_tainted_in_private_subnets(plans):
    for stack, min_size in (("staging", 0), ("production", 1)):
        plan = plans[stack]
        gpu = one(plan["resources"], "aws:eks/nodeGroup:NodeGroup", "eks-gpu-group")["inputs"]
        assert gpu["amiType"] == "AL2023_x86_64_NVIDIA"
        assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
        assert gpu["scalingConfig"]["minSize"] == min_size
        assert gpu["subnetIds"] == plan["outputs"]["privateSubnetIds"]
        cpu = one(plan["resources"], "aws:eks/nodeGroup:NodeGroup", "eks-cpu-group")["inputs"]
        assert cpu["subnetIds"] == plan["outputs"]["privateSubnetIds"]
        lt = one(plan["resources"], "aws:ec2/launchTemplate:LaunchTemplate", "eks-gpu-lt")["inputs"]
        assert lt["blockDeviceMappings"][0]["ebs"]["kmsKeyId"] == plan["outputs"]["kmsKeyArns"]["ebs"]


def test_endpoint_access_per_stack(plans):
    prod = one(plans["production"]["resources"], "aws:eks/cluster:Cluster", "eks-cluster")["inputs"]
    assert prod["vpcConfig"]["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in prod["vpcConfig"]
    assert prod["encryptionConfig"]["provider"]["keyArn"] == plans["production"]["outputs"]["kmsKeyArns"]["eks"]
    staging = one(plans["staging"]["resources"], "aws:eks/cluster:Cluster", "eks-cluster")["inputs"]
    assert staging["vpcConfig"]["endpointPublicAccess"] is True
    assert staging["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    for inputs in (prod, staging):
        assert inputs["vpcConfig"]["endpointPrivateAccess"] is True
        assert len(inputs["enabledClusterLogTypes"]) == 5


def test_bedrock_endpoint_private_dns_in_every_az(plans):
    plan = plans["production"]
    bedrock = one(plan["resources"], "aws:ec2/vpcEndpoint:VpcEndpoint", "endpoints-bedrock-runtime")["inputs"]
    assert bedrock["serviceName"] == "com.amazonaws.eu-west-1.bedrock-runtime"
    assert bedrock["privateDnsEnabled"] is True
    assert bedrock["subnetIds"] == plan["outputs"]["privateSubnetIds"]
    assert len(bedrock["subnetIds"]) == 3
    assert policy({"inputs": bedrock})["Statement"][0]["Resource"] == [
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0",
    ]
    assert len(of_type(plan["resources"], "aws:ec2/vpcEndpoint:VpcEndpoint")) == 7 + 1  # + the network's S3 gateway


def test_node_security_group_is_what_the_data_tier_and_endpoints_admit(plans):
    for plan in plans.values():
        node_sg = plan["outputs"]["nodeSecurityGroupId"]
        rules = {r["name"]: r["inputs"] for r in of_type(plan["resources"], "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")}
        assert rules["database-sg-from-cluster-nodes"]["referencedSecurityGroupId"] == node_sg
        assert rules["database-sg-from-cluster-nodes"]["fromPort"] == 5432
        assert rules["cache-sg-from-cluster-nodes"]["referencedSecurityGroupId"] == node_sg
        assert rules["cache-sg-from-cluster-nodes"]["fromPort"] == 6379
        assert rules["endpoints-https-from-nodes"]["referencedSecurityGroupId"] == node_sg
        assert rules["database-sg-from-cluster-nodes"]["securityGroupId"] == plan["outputs"]["databaseSecurityGroupId"]


def test_registry_and_outputs(plans):
    plan = plans["production"]
    repo = one(plan["resources"], "aws:ecr/repository:Repository", "registry-repository")["inputs"]
    assert repo["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": plan["outputs"]["kmsKeyArns"]["ecr"]}]
    assert plan["outputs"]["repositoryUrl"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fraudstack/scoring"
    assert plan["outputs"]["clusterName"] == "fraudstack-production"
    assert plan["outputs"]["dashboardName"] == "fraudstack-production"
    assert len(plan["outputs"]["alarmNames"]) == 6 + 4 * 3 + 4 + 3 + 6
    assert set(plan["outputs"]["vpcEndpointIds"]) == {"bedrock_runtime", "ecr_api", "ecr_dkr", "sts", "logs", "secrets_manager", "monitoring"}


def test_disabled_endpoints_are_not_created():
    plan = run_program("staging", {"fraudstack:endpoints": {"logs": False, "secretsManager": False}})
    names = {r["inputs"]["serviceName"].rsplit(".", 1)[-1] for r in of_type(plan["resources"], "aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert "logs" not in names and "secretsmanager" not in names and "bedrock-runtime" in names
