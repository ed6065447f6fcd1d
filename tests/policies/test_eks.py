"""EKS control-plane rules."""
import json

import pytest

from tests.policies.helpers import Case, check_case, res, run_rule

EKS, ADDON = "aws:eks/cluster:Cluster", "aws:eks/addon:Addon"
LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]


def cluster(**kw):
    base = dict(version="1.33", enabledClusterLogTypes=LOGS,
                vpcConfig={"endpointPublicAccess": False, "endpointPrivateAccess": True, "subnetIds": ["a", "b"]},
                encryptionConfig={"provider": {"keyArn": "arn:k"}, "resources": ["secrets"]},
                accessConfig={"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False})
    base.update(kw)
    return res(EKS, "eks", **base)


def cni(conf):
    return res(ADDON, "vpc-cni", clusterName="c", addonName="vpc-cni", configurationValues=json.dumps(conf))


CASES = [
    Case("eks-control-plane-logs", cluster(enabledClusterLogTypes=["api", "audit"]), ["eks"]),
    Case("eks-control-plane-logs", cluster()),
    Case("eks-private-endpoint", cluster(vpcConfig={"endpointPublicAccess": True, "endpointPrivateAccess": True}), ["eks"]),
    Case("eks-private-endpoint", cluster(vpcConfig={"endpointPrivateAccess": True}), ["eks"], id="default-public"),
    Case("eks-private-endpoint", cluster()),
    Case("eks-public-cidrs-restricted", cluster(vpcConfig={"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}), ["eks"]),
    Case("eks-public-cidrs-restricted", cluster(vpcConfig={"endpointPublicAccess": True}), ["eks"], id="unset"),
    Case("eks-public-cidrs-restricted", cluster(vpcConfig={"endpointPublicAccess": True, "publicAccessCidrs": ["198.51.100.0/24"]})),
    Case("eks-public-cidrs-restricted", cluster(), id="private"),
    Case("eks-secrets-encrypted", cluster(encryptionConfig=None), ["eks"]),
    Case("eks-secrets-encrypted", cluster()),
    Case("eks-supported-version", cluster(version="1.29"), ["eks"]),
    Case("eks-supported-version", cluster(version=None), ["eks"], id="unpinned"),
    Case("eks-supported-version", cluster(version="1.33")),
    Case("eks-access-api", cluster(accessConfig={"authenticationMode": "CONFIG_MAP"}), ["eks"]),
    Case("eks-access-api", cluster(accessConfig={"authenticationMode": "API"}), ["eks"], id="creator-admin-default"),
    Case("eks-access-api", cluster()),
    Case("eks-network-policy-enforced", [cluster(), cni({})], ["vpc-cni"]),
    Case("eks-network-policy-enforced", [cluster()], ["eks"], id="no-addon"),
    Case("eks-network-policy-enforced", [cluster(), cni({"enableNetworkPolicy": "true"})]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_eks_rule(case):
    check_case(case)


def test_private_endpoint_advisory_in_staging():
    open_cluster = cluster(vpcConfig={"endpointPublicAccess": True, "endpointPrivateAccess": True, "publicAccessCidrs": ["198.51.100.0/24"]})
    assert [v["enforcement"] for v in run_rule("eks-private-endpoint", open_cluster, "staging")] == ["advisory"]
