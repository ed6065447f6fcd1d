"""Helpers for the cluster-tier tests: component fixtures' args and record lookups."""

from __future__ import annotations

import json
from typing import Any

from components.cluster import AddonVersionsSpec, ClusterArgs, NodeGroupSpec

ACCOUNT = "123456789012"
SECRETS_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/eks-secrets"
EBS_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/ebs"
LOGS_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/logs"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/platform-admin"
TAGS = {"environment": "test", "service": "fraudstack", "owner": "platform", "data-classification": "confidential", "pci-scope": "in-scope"}


def cluster_args(**changes: Any) -> ClusterArgs:
    """A complete ClusterArgs with test values; ``changes`` replace fields."""
    values: dict[str, Any] = dict(
        cluster_name="fraudstack-test",
        kubernetes_version="1.34",
        region="eu-west-1",
        vpc_id="vpc-0test",
        vpc_cidr="10.0.0.0/16",
        private_subnet_ids=["subnet-priv-a", "subnet-priv-b", "subnet-priv-c"],
        secrets_key_arn=SECRETS_KEY,
        ebs_key_arn=EBS_KEY,
        logs_key_arn=LOGS_KEY,
        admin_role_arns=[ADMIN],
        cpu_nodes=NodeGroupSpec(["m7i.large", "m6i.large"], 2, 3, 6, 50),
        gpu_nodes=NodeGroupSpec(["g6.xlarge"], 0, 0, 2, 100),
        addon_versions=AddonVersionsSpec("v1.20.4-eksbuild.1", "v1.12.3-eksbuild.1", "v1.34.1-eksbuild.2", "v4.5.0-eksbuild.1"),
        nvidia_device_plugin_version="0.17.4",
        cluster_autoscaler_version="9.46.6",
        tags=TAGS,
    )
    values.update(changes)
    return ClusterArgs(**values)


def of_type(records: list[dict[str, Any]], typ: str) -> list[dict[str, Any]]:
    """Every recorded resource of one type."""
    return [r for r in records if r["type"] == typ]


def one(records: list[dict[str, Any]], typ: str, name: str) -> dict[str, Any]:
    """The single recorded resource of ``typ`` named ``name``."""
    found = [r for r in records if r["type"] == typ and r["name"] == name]
    assert len(found) == 1, f"expected one {typ} named {name}, found {[r['name'] for r in of_type(records, typ)]}"
    return found[0]


def policy(record: dict[str, Any], key: str = "policy") -> dict[str, Any]:
    """A JSON policy input parsed."""
    return json.loads(record["inputs"][key])
