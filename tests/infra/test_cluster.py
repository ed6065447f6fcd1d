"""The Cluster component under the mock runtime: exact inputs of what matters."""

from __future__ import annotations

import json

import pytest

from components.cluster import Cluster, irsa_trust_policy, kubeconfig, service_account_role
from tests.infra.cluster_helpers import ADMIN, EBS_KEY, LOGS_KEY, SECRETS_KEY, cluster_args, of_type, one, policy
from tools.plan import run_component

EKS = "aws:eks/cluster:Cluster"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
NG = "aws:eks/nodeGroup:NodeGroup"
ROLE = "aws:iam/role:Role"
ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ADDON = "aws:eks/addon:Addon"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
PRIVATE = ["subnet-priv-a", "subnet-priv-b", "subnet-priv-c"]


@pytest.fixture(scope="module")
def private() -> list[dict]:
    """A cluster with no public endpoint, plus one extra IRSA role from the helper."""

    def program() -> None:
        cluster = Cluster("eks", cluster_args(private_access_cidrs=["10.8.0.0/16"]))
        cluster.service_account_role(
            "scoring-sa", "fraudstack", "scoring-api", json.dumps({"Version": "2012-10-17", "Statement": []})
        )

    return run_component(program)


@pytest.fixture(scope="module")
def public() -> list[dict]:
    """A staging-like cluster whose public endpoint admits two listed networks."""
    return run_component(lambda: Cluster("eks", cluster_args(public_access_cidrs=["198.51.100.0/24", "203.0.113.7/32"])))


def test_control_plane_is_private_logged_and_encrypted(private):
    inputs = one(private, EKS, "eks-cluster")["inputs"]
    assert inputs["name"] == "fraudstack-test"
    assert inputs["version"] == "1.34"
    assert inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in inputs["vpcConfig"]
    assert inputs["vpcConfig"]["subnetIds"] == PRIVATE
    assert inputs["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    assert inputs["encryptionConfig"] == {"resources": ["secrets"], "provider": {"keyArn": SECRETS_KEY}}
    assert inputs["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    assert inputs["upgradePolicy"] == {"supportType": "STANDARD"}
    assert inputs["deletionProtection"] is True


def test_public_endpoint_only_for_listed_cidrs(public):
    vpc = one(public, EKS, "eks-cluster")["inputs"]["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["publicAccessCidrs"] == ["198.51.100.0/24", "203.0.113.7/32"]


def test_control_plane_log_group_is_encrypted_and_expires(private):
    group = one(private, "aws:cloudwatch/logGroup:LogGroup", "eks-control-plane-logs")["inputs"]
    assert group["name"] == "/aws/eks/fraudstack-test/cluster"
    assert group["kmsKeyId"] == LOGS_KEY
    assert group["retentionInDays"] == 365
    assert "eks-control-plane-logs" in one(private, EKS, "eks-cluster")["dependencies"]
    insights = {r["inputs"]["name"] for r in of_type(private, "aws:cloudwatch/logGroup:LogGroup")} - {group["name"]}
    assert insights == {f"/aws/containerinsights/fraudstack-test/{k}" for k in ("application", "dataplane", "host", "performance")}


def test_admin_access_entries(private):
    entry = one(private, "aws:eks/accessEntry:AccessEntry", "eks-admin-0-entry")["inputs"]
    assert entry["principalArn"] == ADMIN
    assert entry["type"] == "STANDARD"
    assoc = one(private, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "eks-admin-0-policy")["inputs"]
    assert assoc["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert assoc["accessScope"] == {"type": "cluster"}
    assert len(of_type(private, "aws:eks/accessEntry:AccessEntry")) == 1


def _attached(records, role_name: str) -> set[str]:
    return {
        r["inputs"]["policyArn"]
        for r in of_type(records, ATTACH)
        if r["name"].startswith(role_name + "-") and r["parent"] == "eks"
    }


def test_iam_roles_have_minimal_managed_policies(private):
    cluster_trust = policy(one(private, ROLE, "eks-cluster-role"), "assumeRolePolicy")
    assert cluster_trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}
    ]
    node_trust = policy(one(private, ROLE, "eks-node"), "assumeRolePolicy")
    assert node_trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert _attached(private, "eks-cluster") == {"arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"}
    kms = policy(one(private, "aws:iam/rolePolicy:RolePolicy", "eks-cluster-kms"))
    assert kms["Statement"] == [
        {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"], "Resource": SECRETS_KEY}
    ]
    assert "eks-cluster-kms" in one(private, EKS, "eks-cluster")["dependencies"]
    # The CNI policy is on the CNI's own role, never on the nodes.
    assert _attached(private, "eks-node") == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    }
    assert _attached(private, "eks-vpc-cni") == {"arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"}
    assert _attached(private, "eks-cloudwatch-agent") == {"arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"}


def test_oidc_provider_and_irsa_trust(private):
    oidc = one(private, "aws:iam/openIdConnectProvider:OpenIdConnectProvider", "eks-oidc")["inputs"]
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"]
    issuer = oidc["url"].removeprefix("https://")
    assert issuer.startswith("oidc.eks.eu-west-1.amazonaws.com/id/")
    provider_arn = f"arn:aws:iam::123456789012:oidc-provider/{issuer}"
    for role, sa in (("eks-vpc-cni", "kube-system:aws-node"), ("eks-cloudwatch-agent", "amazon-cloudwatch:cloudwatch-agent"),
                     ("scoring-sa", "fraudstack:scoring-api")):
        trust = policy(one(private, ROLE, role), "assumeRolePolicy")
        assert trust["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{issuer}:sub": f"system:serviceaccount:{sa}", f"{issuer}:aud": "sts.amazonaws.com"}
                },
            }
        ], role
    # The helper's role is a child of the cluster and carries the given inline policy.
    assert one(private, ROLE, "scoring-sa")["parent"] == "eks"
    assert policy(one(private, "aws:iam/rolePolicy:RolePolicy", "scoring-sa-policy")) == {"Version": "2012-10-17", "Statement": []}


def test_launch_templates_are_hardened(private):
    for group in ("eks-cpu", "eks-gpu"):
        lt = one(private, LT, f"{group}-lt")
        inputs = lt["inputs"]
        assert lt["parent"] == group
        assert inputs["metadataOptions"] == {
            "httpEndpoint": "enabled",
            "httpTokens": "required",
            "httpPutResponseHopLimit": 1,
            "instanceMetadataTags": "disabled",
        }
        [volume] = inputs["blockDeviceMappings"]
        assert volume["ebs"]["encrypted"] == "true"
        assert volume["ebs"]["kmsKeyId"] == EBS_KEY
        assert volume["ebs"]["volumeType"] == "gp3"
        [nic] = inputs["networkInterfaces"]
        assert nic["associatePublicIpAddress"] == "false"
        assert "subnetId" not in nic
        assert "keyName" not in inputs and "userData" not in inputs and "imageId" not in inputs
    assert one(private, LT, "eks-gpu-lt")["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 100


def test_node_groups_ami_types_taints_labels(private):
    cpu = one(private, NG, "eks-cpu-group")["inputs"]
    gpu = one(private, NG, "eks-gpu-group")["inputs"]
    assert cpu["amiType"] == "AL2023_x86_64_STANDARD"
    assert gpu["amiType"] == "AL2023_x86_64_NVIDIA"
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert cpu.get("taints", []) == []
    assert gpu["labels"] == {"fraudstack.io/node-pool": "gpu", "nvidia.com/gpu.present": "true"}
    assert cpu["labels"] == {"fraudstack.io/node-pool": "cpu"}
    assert cpu["instanceTypes"] == ["m7i.large", "m6i.large"]
    assert gpu["instanceTypes"] == ["g6.xlarge"]
    assert cpu["scalingConfig"] == {"minSize": 2, "desiredSize": 3, "maxSize": 6}
    assert gpu["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 2}
    for ng in (cpu, gpu):
        assert ng["subnetIds"] == PRIVATE
        assert "remoteAccess" not in ng
        assert ng["nodeRepairConfig"] == {"enabled": True}
        assert ng["clusterName"] == "fraudstack-test"
        assert ng["launchTemplate"]["id"].startswith("lt-")
        assert ng["launchTemplate"]["version"] == "1"
    # Scale-from-zero needs the autoscaler's node-template tags.
    assert gpu["tags"]["k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"] == "true:NoSchedule"
    # Nodes wait for the CNI and their role's policies.
    deps = set(one(private, NG, "eks-gpu-group")["dependencies"])
    assert {"eks-addon-vpc-cni", "eks-addon-kube-proxy", "eks-node-amazoneksworkernodepolicy"} <= deps


def test_addons_versions_and_network_policy(private):
    addons = {r["inputs"]["addonName"]: r for r in of_type(private, ADDON)}
    assert {k: a["inputs"]["addonVersion"] for k, a in addons.items()} == {
        "vpc-cni": "v1.20.4-eksbuild.1",
        "coredns": "v1.12.3-eksbuild.1",
        "kube-proxy": "v1.34.1-eksbuild.2",
        "amazon-cloudwatch-observability": "v4.5.0-eksbuild.1",
    }
    cni = addons["vpc-cni"]["inputs"]
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert cni["serviceAccountRoleArn"].startswith("arn:aws:iam::123456789012:role/eks-vpc-cni")
    cw = addons["amazon-cloudwatch-observability"]["inputs"]
    assert cw["serviceAccountRoleArn"].startswith("arn:aws:iam::123456789012:role/eks-cloudwatch-agent")
    assert {"eks-cpu-group", "eks-gpu-group"} <= set(addons["coredns"]["dependencies"])


def test_security_groups_never_open_to_the_world_except_https_out(private):
    ingress = {r["name"]: r["inputs"] for r in of_type(private, INGRESS)}
    egress = {r["name"]: r["inputs"] for r in of_type(private, EGRESS)}
    assert all("cidrIpv4" not in i or i["cidrIpv4"] != "0.0.0.0/0" for i in ingress.values())
    assert ingress["eks-api-from-operators-0"]["cidrIpv4"] == "10.8.0.0/16"
    assert ingress["eks-api-from-operators-0"]["fromPort"] == 443
    world = {name: e for name, e in egress.items() if e.get("cidrIpv4") == "0.0.0.0/0"}
    assert world == {
        "eks-nodes-to-https": {
            **world["eks-nodes-to-https"],
            "ipProtocol": "tcp",
            "fromPort": 443,
            "toPort": 443,
        }
    }
    assert egress["eks-nodes-to-vpc"]["cidrIpv4"] == "10.0.0.0/16"
    sgs = {r["name"]: r for r in of_type(private, "aws:ec2/securityGroup:SecurityGroup")}
    assert set(sgs) == {"eks-control-plane-sg", "eks-nodes"}
    assert all("ingress" not in s["inputs"] and "egress" not in s["inputs"] for s in sgs.values())
    # Nodes carry the node security group (the one the data tier admits).
    nic = one(private, LT, "eks-cpu-lt")["inputs"]["networkInterfaces"][0]
    assert nic["securityGroups"] == [ingress["eks-nodes-from-nodes"]["securityGroupId"]]


def test_nvidia_device_plugin_release(private):
    release = one(private, "kubernetes:helm.sh/v3:Release", "eks-nvidia-device-plugin")
    inputs = release["inputs"]
    assert release["provider"] == "eks-k8s"
    assert inputs["chart"] == "nvidia-device-plugin"
    assert inputs["version"] == "0.17.4"
    assert inputs["namespace"] == "kube-system"
    assert inputs["repositoryOpts"] == {"repo": "https://nvidia.github.io/k8s-device-plugin"}
    assert inputs["values"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    assert inputs["values"]["nodeSelector"] == {"fraudstack.io/node-pool": "gpu"}


def test_kubernetes_provider_uses_get_token(private):
    config = json.loads(one(private, "pulumi:providers:kubernetes", "eks-k8s")["inputs"]["kubeconfig"])
    user = config["users"][0]["user"]
    assert user["exec"]["command"] == "aws"
    assert user["exec"]["args"] == [
        "eks", "get-token", "--cluster-name", "fraudstack-test", "--region", "eu-west-1", "--output", "json"
    ]
    assert "token" not in user and "client-key-data" not in user
    assert config["clusters"][0]["cluster"]["server"].startswith("https://")


def test_every_child_is_parented(private):
    orphans = [r["name"] for r in private if r["parent"] is None and r["type"] != "fraudstack:aws:Cluster"]
    assert orphans == []


def test_irsa_trust_policy_pure():
    doc = json.loads(irsa_trust_policy("arn:aws:iam::1:oidc-provider/x/id/A", "https://x/id/A", "ns", "sa"))
    assert doc["Statement"][0]["Condition"] == {
        "StringEquals": {"x/id/A:sub": "system:serviceaccount:ns:sa", "x/id/A:aud": "sts.amazonaws.com"}
    }


def test_kubeconfig_pure():
    doc = json.loads(kubeconfig("c", "https://e", "Q0E=", "eu-west-1"))
    assert doc["current-context"] == "c"
    assert doc["clusters"][0]["cluster"] == {"server": "https://e", "certificate-authority-data": "Q0E="}


def test_service_account_role_standalone():
    def program() -> None:
        service_account_role(
            "batch", "jobs", "scorer", None,
            oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/oidc.example/id/B",
            oidc_issuer_url="https://oidc.example/id/B",
            managed_policy_arns=["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
        )

    records = run_component(program)
    trust = policy(one(records, ROLE, "batch"), "assumeRolePolicy")
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "oidc.example/id/B:sub": "system:serviceaccount:jobs:scorer",
        "oidc.example/id/B:aud": "sts.amazonaws.com",
    }
    assert of_type(records, "aws:iam/rolePolicy:RolePolicy") == []
    assert [r["inputs"]["policyArn"] for r in of_type(records, ATTACH)] == ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]


def test_cluster_autoscaler_release_and_scoped_role(private):
    release = one(private, "kubernetes:helm.sh/v3:Release", "eks-cluster-autoscaler")
    inputs = release["inputs"]
    assert release["provider"] == "eks-k8s"
    assert (inputs["chart"], inputs["version"], inputs["namespace"]) == ("cluster-autoscaler", "9.46.6", "kube-system")
    assert inputs["repositoryOpts"] == {"repo": "https://kubernetes.github.io/autoscaler"}
    assert inputs["values"]["autoDiscovery"] == {"clusterName": "fraudstack-test"}
    sa = inputs["values"]["rbac"]["serviceAccount"]
    assert sa["name"] == "cluster-autoscaler"
    assert sa["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::123456789012:role/eks-autoscaler")
    trust = policy(one(private, ROLE, "eks-autoscaler"), "assumeRolePolicy")
    assert list(trust["Statement"][0]["Condition"]["StringEquals"].values()) == [
        "system:serviceaccount:kube-system:cluster-autoscaler", "sts.amazonaws.com"
    ]
    statements = {s["Sid"]: s for s in policy(one(private, "aws:iam/rolePolicy:RolePolicy", "eks-autoscaler-policy"))["Statement"]}
    assert statements["ResizeOwnGroupsOnly"]["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/k8s.io/cluster-autoscaler/fraudstack-test": "owned",
            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
        }
    }
    assert statements["ReadOwnNodeGroups"]["Resource"] == "arn:aws:eks:eu-west-1:123456789012:nodegroup/fraudstack-test/*/*"
    assert all(not a.endswith("*") for s in statements.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))


def test_no_autoscaler_when_not_configured():
    records = run_component(lambda: Cluster("eks", cluster_args(cluster_autoscaler_version=None)))
    assert [r["name"] for r in of_type(records, "kubernetes:helm.sh/v3:Release")] == ["eks-nvidia-device-plugin"]
