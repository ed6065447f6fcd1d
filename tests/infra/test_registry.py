"""The Registry component: immutable, scanned, encrypted with our key, with a lifecycle."""

from __future__ import annotations

import json

from components.registry import Registry, RegistryArgs
from tests.infra.cluster_helpers import ACCOUNT, TAGS, one
from tools.plan import run_component

KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/ecr"


def test_repository_and_lifecycle():
    records = run_component(
        lambda: Registry("registry", RegistryArgs("fraudstack/scoring", KEY, keep_last_images=25, untagged_expiry_days=3, tags=TAGS))
    )
    repo = one(records, "aws:ecr/repository:Repository", "registry-repository")
    assert repo["parent"] == "registry"
    inputs = repo["inputs"]
    assert inputs["name"] == "fraudstack/scoring"
    assert inputs["imageTagMutability"] == "IMMUTABLE"
    assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": KEY}]
    assert inputs["forceDelete"] is False
    assert inputs["tags"] == {**TAGS, "Name": "fraudstack/scoring"}
    lifecycle = one(records, "aws:ecr/lifecyclePolicy:LifecyclePolicy", "registry-lifecycle")["inputs"]
    assert lifecycle["repository"] == "fraudstack/scoring"
    rules = json.loads(lifecycle["policy"])["rules"]
    assert [r["selection"] for r in rules] == [
        {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 3},
        {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 25},
    ]
    assert all(r["action"] == {"type": "expire"} for r in rules)
