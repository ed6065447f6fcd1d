"""EKS control plane: logging, endpoint exposure, secrets encryption, version, access, network policy."""
from __future__ import annotations

import json

from ..model import Param, Rule
from ._util import as_list, get, is_world, present, safe

EKS = "aws:eks/cluster:Cluster"
ADDON = "aws:eks/addon:Addon"
LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


def _logs(props, cfg):
    enabled = {str(t) for t in as_list(get(props, "enabledClusterLogTypes"))}
    missing = [t for t in LOG_TYPES if t not in enabled]
    if missing:
        yield f"control-plane log types missing: {', '.join(missing)}"


def _no_public_endpoint(props, cfg):
    if get(props, "vpcConfig.endpointPublicAccess", True) is not False:
        yield "vpcConfig.endpointPublicAccess is not false: the Kubernetes API is reachable from the internet"
    if get(props, "vpcConfig.endpointPrivateAccess") is not True:
        yield "vpcConfig.endpointPrivateAccess is not true: nodes reach the API through the internet"


def _public_cidrs(props, cfg):
    if get(props, "vpcConfig.endpointPublicAccess", True) is False:
        return
    cidrs = as_list(get(props, "vpcConfig.publicAccessCidrs"))
    if not cidrs:
        yield "public endpoint with no publicAccessCidrs: AWS defaults to 0.0.0.0/0"
    elif any(is_world(c) for c in cidrs):
        yield "publicAccessCidrs contains 0.0.0.0/0"


def _secrets_kms(props, cfg):
    enc = get(props, "encryptionConfig")
    if not enc or "secrets" not in [str(r) for r in as_list(get(enc, "resources"))] or not present(enc, "provider.keyArn"):
        yield "encryptionConfig does not envelope-encrypt 'secrets' with a KMS key"


def _version_tuple(v) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(v).split(".")[:2])
    except ValueError:
        return ()


def _version(props, cfg):
    v = get(props, "version")
    if not v:
        yield "version is not pinned: the cluster gets whatever EKS defaults to and upgrades are unplanned"
    elif _version_tuple(v) < _version_tuple(cfg["minimumVersion"]):
        yield f"Kubernetes {v} is older than {cfg['minimumVersion']} (out of EKS standard support)"


def _access(props, cfg):
    mode = get(props, "accessConfig.authenticationMode")
    if mode not in ("API", "API_AND_CONFIG_MAP"):
        yield f"accessConfig.authenticationMode is {mode!r}: use API (access entries) so access is declared, not in aws-auth"
    if get(props, "accessConfig.bootstrapClusterCreatorAdminPermissions", True) is not False:
        yield "bootstrapClusterCreatorAdminPermissions is not false: whoever ran `pulumi up` stays cluster-admin invisibly"


def _network_policy(stack, cfg):
    clusters = stack.of_type(EKS)
    if not clusters:
        return
    for addon in stack.of_type(ADDON):
        if safe(addon.props, "addonName") != "vpc-cni":
            continue
        raw = safe(addon.props, "configurationValues")
        try:
            conf = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            conf = {}
        if str(conf.get("enableNetworkPolicy", "")).lower() == "true":
            return
        yield addon, "the vpc-cni add-on does not set enableNetworkPolicy=true: NetworkPolicies are not enforced"
        return
    for c in clusters:
        yield c, "no vpc-cni add-on with enableNetworkPolicy=true: the cluster's NetworkPolicies would do nothing"


RULES = [
    Rule(id="eks-control-plane-logs", name="EKS control-plane logging",
         description="All five EKS control-plane log types are sent to CloudWatch.", severity="medium",
         enforcement="mandatory", resource_types=(EKS,), references=("A17",),
         remediation=f"enabled_cluster_log_types={list(LOG_TYPES)}.", check=_logs),
    Rule(id="eks-private-endpoint", name="EKS API endpoint private",
         description="The EKS API endpoint is private (public access off, private access on).", severity="high",
         enforcement="mandatory", resource_types=(EKS,), references=("A18",),
         remediation="vpc_config endpoint_public_access=False, endpoint_private_access=True; deploy from inside the VPC "
                     "(CI runner, VPN or SSM tunnel). Staging config makes this advisory.",
         check=_no_public_endpoint),
    Rule(id="eks-public-cidrs-restricted", name="EKS public endpoint restricted",
         description="If the EKS API endpoint is public, it is limited to listed CIDRs, never 0.0.0.0/0.",
         severity="high", enforcement="mandatory", resource_types=(EKS,), references=("A19",),
         remediation="vpc_config public_access_cidrs=[<office/CI egress CIDRs>].", check=_public_cidrs),
    Rule(id="eks-secrets-encrypted", name="EKS secrets envelope encryption",
         description="Kubernetes Secrets are envelope-encrypted with a customer-managed KMS key.", severity="high",
         enforcement="mandatory", resource_types=(EKS,), references=("A20",),
         remediation="encryption_config={'provider': {'key_arn': <key>}, 'resources': ['secrets']}.", check=_secrets_kms),
    Rule(id="eks-supported-version", name="EKS version supported",
         description="The cluster pins a Kubernetes version still in EKS standard support.", severity="medium",
         enforcement="mandatory", resource_types=(EKS,), references=("A21",),
         params=(Param("minimumVersion", "string", "1.32", "oldest Kubernetes minor version accepted"),),
         remediation="Set version= to a supported minor (fraudstack:eks.version) and upgrade in place.", check=_version),
    Rule(id="eks-access-api", name="EKS access entries, no creator admin",
         description="Cluster access uses the access-entry API and the creator gets no implicit admin.",
         severity="high", enforcement="mandatory", resource_types=(EKS,), references=("X15",),
         remediation="access_config={'authentication_mode': 'API', 'bootstrap_cluster_creator_admin_permissions': False} "
                     "plus aws.eks.AccessEntry for each admin role.", check=_access),
    Rule(id="eks-network-policy-enforced", name="VPC CNI enforces NetworkPolicies",
         description="The vpc-cni add-on runs with network policy enforcement on, otherwise NetworkPolicies do nothing.",
         severity="high", enforcement="mandatory", resource_types=(EKS, ADDON), stack=True, references=("X15",),
         remediation="aws.eks.Addon(addon_name='vpc-cni', configuration_values=json.dumps({'enableNetworkPolicy': 'true'})).",
         check=_network_policy),
]
