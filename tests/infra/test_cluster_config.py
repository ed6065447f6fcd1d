"""Cluster-tier stack config: both stack files' values, and each invalid value naming its key."""

from __future__ import annotations

import pulumi
import pytest

from components.cluster_config import SUPPORTED_KUBERNETES_VERSIONS
from tests.infra.conftest import load_config


def test_staging_cluster_values():
    cfg = load_config("staging")
    assert cfg.cluster.kubernetes_version in SUPPORTED_KUBERNETES_VERSIONS
    assert cfg.cluster.public_access_cidrs == ["203.0.113.0/24"]
    assert cfg.cluster.gpu_nodes.min_size == 0
    assert cfg.cluster.gpu_nodes.instance_types == ["g6.xlarge", "g5.xlarge"]
    assert cfg.cluster.deletion_protection is False
    assert cfg.alarms.email == "fraud-oncall-staging@example.com"
    assert cfg.alarms.service.p99_latency_ms == 100


def test_production_cluster_values():
    cfg = load_config("production")
    assert cfg.cluster.public_access_cidrs == []
    assert cfg.cluster.private_access_cidrs == ["10.250.0.0/16"]
    assert cfg.cluster.gpu_nodes.min_size == 1
    assert cfg.cluster.cpu_nodes.min_size == 3
    assert cfg.cluster.deletion_protection is True
    assert cfg.endpoints.bedrock_runtime is True
    assert cfg.bedrock.model_ids == [
        "eu.anthropic.claude-3-haiku-20240307-v1:0",
        "eu.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ]
    assert cfg.registry.keep_last_images == 50
    assert cfg.alarms.period_seconds == 60
    assert cfg.alarms.database.free_storage_gib == 20


INVALID = [
    ('staging', {'fraudstack:cluster': {'kubernetesVersion': '1.25'}},
     "fraudstack:cluster.kubernetesVersion: '1.25' is not a Kubernetes version in EKS standard support (1.32, 1.33, 1.34)"),
    ('staging', {'fraudstack:cluster': {'publicAccessCidrs': ['0.0.0.0/0']}},
     "fraudstack:cluster.publicAccessCidrs: '0.0.0.0/0' opens the API to the whole internet; list your own networks"),
    ('staging', {'fraudstack:cluster': {'publicAccessCidrs': ['203.0.113.5/24']}},
     "fraudstack:cluster.publicAccessCidrs: '203.0.113.5/24' is not a CIDR block (203.0.113.5/24 has host bits set)"),
    ('production', {'fraudstack:cluster': {'publicAccessCidrs': ['203.0.113.0/24']}},
     'fraudstack:cluster.publicAccessCidrs: must be empty in production (the API endpoint is private only)'),
    ('staging', {'fraudstack:cluster': {'adminRoleArns': []}},
     'fraudstack:cluster.adminRoleArns: list at least one IAM role (the cluster creator is not made admin implicitly)'),
    ('staging', {'fraudstack:cluster': {'adminRoleArns': ['arn:aws:iam::123456789012:user/bob']}},
     "fraudstack:cluster.adminRoleArns: 'arn:aws:iam::123456789012:user/bob' is not an IAM role ARN"),
    ('staging', {'fraudstack:cluster': {'gpuNodes': {'instanceTypes': ['m7i.large']}}},
     "fraudstack:cluster.gpuNodes.instanceTypes: 'm7i.large' is not an NVIDIA GPU instance type (families: g4dn, g5, g6, g6e, gr6, p4d, p4de, p5, p5e, p5en)"),
    ('staging', {'fraudstack:cluster': {'cpuNodes': {'minSize': 5}}},
     'fraudstack:cluster.cpuNodes: sizes must satisfy minSize <= desiredSize <= maxSize (got 5, 2, 4)'),
    ('staging', {'fraudstack:cluster': {'addons': {'kubeProxy': 'v1.33.0-eksbuild.1'}}},
     'fraudstack:cluster.addons.kubeProxy: v1.33.0-eksbuild.1 does not match kubernetesVersion 1.34'),
    ('staging', {'fraudstack:cluster': {'addons': {'vpcCni': 'latest'}}},
     "fraudstack:cluster.addons.vpcCni: 'latest' is not an EKS add-on version like v1.19.2-eksbuild.1"),
    ('staging', {'fraudstack:cluster': {'logRetentionDays': 10}},
     'fraudstack:cluster.logRetentionDays: 10 is not a retention CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)'),
    ('production', {'fraudstack:cluster': {'gpuNodes': {'minSize': 0, 'desiredSize': 0}}},
     'fraudstack:cluster.gpuNodes.minSize: must be at least 1 in production (GPU scoring must not wait for a cold node)'),
    ('production', {'fraudstack:cluster': {'cpuNodes': {'minSize': 1, 'desiredSize': 1}}},
     'fraudstack:cluster.cpuNodes.minSize: must be at least 2 in production (one node is a single point of failure)'),
    ('production', {'fraudstack:cluster': {'deletionProtection': False}},
     'fraudstack:cluster.deletionProtection: must be true in production'),
    ('production', {'fraudstack:endpoints': {'bedrockRuntime': False}},
     'fraudstack:endpoints.bedrockRuntime: must be true in production (Bedrock is reached only privately)'),
    ('production', {'fraudstack:alarms': {'email': None}},
     'fraudstack:alarms.email: is required in production (alarms must reach someone)'),
    ('staging', {'fraudstack:alarms': {'email': 'not-an-address'}},
     "fraudstack:alarms.email: 'not-an-address' is not an e-mail address"),
    ('staging', {'fraudstack:alarms': {'periodSeconds': 30}},
     'fraudstack:alarms.periodSeconds: Input should be 60, 300, 900 or 3600 (got 30)'),
    ('staging', {'fraudstack:alarms': {'database': {'cpuPercent': 120}}},
     'fraudstack:alarms.database.cpuPercent: Input should be less than or equal to 100 (got 120)'),
    ('staging', {'fraudstack:bedrock': {'modelIds': ['anthropic.*']}},
     "fraudstack:bedrock.modelIds: 'anthropic.*' is not a Bedrock model id like anthropic.claude-3-5-haiku-20241022-v1:0"),
    ('staging', {'fraudstack:bedrock': {'modelIds': []}},
     'fraudstack:bedrock.modelIds: List should have at least 1 item after validation, not 0'),
    ('staging', {'fraudstack:registry': {'keepLastImages': 0}},
     'fraudstack:registry.keepLastImages: Input should be greater than or equal to 1 (got 0)'),
    ('staging', {'fraudstack:registry': {'repositoryName': 'Fraud Stack'}},
     "fraudstack:registry.repositoryName: 'Fraud Stack' is not a valid ECR repository name"),
    ('staging', {'fraudstack:cluster': {'nodeCount': 3}},
     'fraudstack:cluster.nodeCount: unknown key (check the spelling; keys are camelCase)'),
    ('staging', {'fraudstack:endpoints': {'s3': True}},
     'fraudstack:endpoints.s3: unknown key (check the spelling; keys are camelCase)'),
]


@pytest.mark.parametrize(("stack", "overrides", "message"), INVALID, ids=[m.split(":")[1] for _, _, m in INVALID])
def test_invalid_cluster_value_names_its_key(stack, overrides, message):
    with pytest.raises(pulumi.RunError) as err:
        load_config(stack, overrides)
    assert str(err.value) == message
