"""Rules over the whole stack that no single resource can answer (secrets, tags, AZs, credentials)."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pulumi_policy.proxy import UnknownValueError

from ..model import Param, Rule
from ._util import get, is_secret, present

# camelCase input names that hold a credential (manageMasterUserPassword is a boolean
# and is skipped because only strings are judged).
_SENSITIVE = re.compile(
    r"(?:^|[a-z])(?:[Pp]assword|[Pp]asswd|[Aa]uthToken|[Ss]ecretString|[Ss]ecretBinary|[Ss]ecretKey|"
    r"[Aa]ccessKey|[Pp]rivateKey|[Aa]piKey|[Cc]lientSecret|^token|Token)$"
)
_K8S_SECRET = "kubernetes:core/v1:Secret"


def _walk(value, path):
    """Yield (path, key, value) for every mapping entry; unknown values are skipped
    (a value computed at deploy time is generated, not plaintext)."""
    if isinstance(value, Mapping):
        for key in list(value):
            try:
                child = value[key]
            except UnknownValueError:
                continue
            yield path, key, child, value
            yield from _walk(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for i in range(len(value)):
            try:
                child = value[i]
            except UnknownValueError:
                continue
            yield from _walk(child, f"{path}[{i}]")


def _plaintext(value) -> bool:
    return isinstance(value, str) and value != "" and not is_secret(value)


# Credential shapes recognisable without knowing which inputs are secret.
_SHAPED = [(re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
           (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key")]
# Inputs meant to hold a secret (pulumi-aws marks them secret; judged only when redacted).
_SECRET_HOLDERS = ("secretString", "secretBinary", "data", "stringData")


def _no_plaintext_secrets(stack, cfg):
    redacted = cfg["inputsRedacted"]
    for r in stack.resources:
        is_k8s_secret = r.resource_type == _K8S_SECRET
        for path, key, value, parent in _walk(r.props, ""):
            where = f"{path}.{key}" if path else str(key)
            if not redacted:
                # The CLI's analyzer sees secret inputs decrypted: only credential-shaped
                # literals outside inputs meant to hold secrets can be told apart.
                if isinstance(value, str) and key not in _SECRET_HOLDERS and not path.startswith(_SECRET_HOLDERS):
                    for pattern, what in _SHAPED:
                        if pattern.search(value):
                            yield r, f"{where} holds {what} in the program"
                continue
            if is_k8s_secret and path in ("data", "stringData"):
                continue  # judged below, every key of a Secret is sensitive
            if isinstance(key, str) and _SENSITIVE.search(key) and _plaintext(value):
                yield r, f"{where} is a plaintext credential: make it a Pulumi secret or generate it"
            # Kubernetes env vars: {"name": "DB_PASSWORD", "value": "..."}
            if key == "value" and isinstance(parent, Mapping) and _plaintext(value):
                name = parent.get("name") if "name" in parent else None
                # The credential word ends the name: DB_SECRET_ARN or MAX_TOKENS point at or
                # count something, and an ARN is a pointer (the service reads Secrets Manager).
                if (isinstance(name, str) and re.search(r"(?i)(password|passwd|secret|token|api_?key|private_?key)$", name)
                        and not value.startswith("arn:")):
                    yield r, f"{where} sets {name} in plaintext: read it from Secrets Manager at start-up"
        if is_k8s_secret and redacted:
            for field in ("data", "stringData"):
                entries = r.props.get(field) if field in r.props else None
                if isinstance(entries, Mapping):
                    for k in list(entries):
                        try:
                            v = entries[k]
                        except UnknownValueError:
                            continue
                        if _plaintext(v):
                            yield r, f"{field}.{k} of a Kubernetes Secret is plaintext in the program"


_PROVIDER_CREDS = ("accessKey", "secretKey", "token", "profile", "sharedCredentialsFiles")


def _provider_creds(props, cfg):
    for key in ("accessKey", "secretKey", "token"):
        if present(props, key):
            yield f"the AWS provider is given {key}: use the environment's role (OIDC in CI, SSO locally), not static keys"


# Resource types of this platform that take tags (X20).
TAGGABLE = tuple(f"aws:{t}" for t in (
    "ec2/vpc:Vpc", "ec2/subnet:Subnet", "ec2/routeTable:RouteTable", "ec2/internetGateway:InternetGateway",
    "ec2/natGateway:NatGateway", "ec2/eip:Eip", "ec2/securityGroup:SecurityGroup",
    "ec2/defaultSecurityGroup:DefaultSecurityGroup", "ec2/vpcEndpoint:VpcEndpoint", "ec2/flowLog:FlowLog",
    "ec2/launchTemplate:LaunchTemplate", "eks/cluster:Cluster", "eks/nodeGroup:NodeGroup", "eks/addon:Addon",
    "rds/instance:Instance", "rds/subnetGroup:SubnetGroup", "rds/parameterGroup:ParameterGroup",
    "elasticache/replicationGroup:ReplicationGroup", "elasticache/subnetGroup:SubnetGroup",
    "secretsmanager/secret:Secret", "kms/key:Key", "cloudwatch/logGroup:LogGroup",
    "cloudwatch/metricAlarm:MetricAlarm", "sns/topic:Topic", "ecr/repository:Repository", "iam/role:Role",
    "iam/policy:Policy", "iam/openIdConnectProvider:OpenIdConnectProvider", "lb/loadBalancer:LoadBalancer",
    "wafv2/webAcl:WebAcl", "acm/certificate:Certificate"))


def _required_tags(props, cfg):
    missing = [t for t in cfg["requiredTags"] if not present(props, f"tags.{t}")]
    if missing:
        yield f"missing required tags: {', '.join(missing)}"


RULES = [
    Rule(
        id="no-plaintext-secrets", name="No plaintext secret in any input",
        description="No resource input holds a password, token or key in plaintext: credentials are Pulumi secrets or generated.",
        severity="critical", enforcement="mandatory", resource_types=(), stack=True,
        references=("X10", "A105", "A25"),
        remediation="Use `pulumi config set --secret`, pulumi.Output.secret(...) or pulumi_random.RandomPassword "
                    "(or manage_master_user_password for RDS); never a literal in code or a stack file.",
        params=(Param("inputsRedacted", "boolean", False,
                      "secret inputs arrive as the '[secret]' marker (set by the offline engine, which redacts them); "
                      "the CLI's analyzer sees them decrypted, so only credential-shaped literals are judged there"),),
        check=_no_plaintext_secrets,
    ),
    Rule(
        id="provider-no-static-credentials", name="No static AWS credentials in the provider",
        description="The AWS provider takes no access key, secret key or session token: credentials come from the environment.",
        severity="critical", enforcement="mandatory", resource_types=("pulumi:providers:aws",), references=("A105",),
        remediation="Remove access_key/secret_key/token from aws.Provider; use OIDC (CI) or SSO profiles.",
        check=_provider_creds,
    ),
    Rule(
        id="required-tags", name="Required tags",
        description="Every taggable AWS resource carries environment, service, owner, data-classification and pci-scope.",
        severity="low", enforcement="mandatory", resource_types=TAGGABLE, references=("X20",),
        params=(Param("requiredTags", "array", ["environment", "service", "owner", "data-classification", "pci-scope"],
                      "tag keys every taggable resource must carry"),),
        remediation="Pass required_tags(cfg) (components/tags.py) through the component's Args to tags=.",
        check=_required_tags,
    ),
]
