"""The mock runtime that lets the whole program run without the Pulumi CLI or AWS.

:class:`FraudstackMocks` answers invokes (AZs, region, partition, caller identity, IAM
policy documents, SSM parameters, ...) deterministically and realistically, and refuses
any invoke it does not know, naming the token: an invoke answered with ``{}`` gives
``None`` fields that fail far from the cause. Resource outputs are the inputs plus
realistic ids, ARNs, endpoints, ports and OIDC issuers so ``.apply`` chains run.

:class:`RecordingMonitor` records each registration as the plan resource a policy
sees: type, name, parent's name, custom, provider's name, camelCase inputs with every
secret replaced by ``"[secret]"``, and dependencies.

Adding an answer: put the token in ``FraudstackMocks.INVOKES`` (an invoke) or a type in
``_OUTPUTS`` (extra outputs of a resource type). Both are tested in tests/infra.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks
from google.protobuf import json_format

ACCOUNT_ID = "123456789012"
PARTITION = "aws"
SECRET_MARKER = "[secret]"

#: AZ ids per region (the stable identifiers; names are mapped per account by AWS).
REGION_AZS: dict[str, tuple[str, int]] = {
    "us-east-1": ("use1", 6),
    "us-east-2": ("use2", 3),
    "us-west-2": ("usw2", 4),
    "ca-central-1": ("cac1", 3),
    "eu-west-1": ("euw1", 3),
    "eu-west-2": ("euw2", 3),
    "eu-west-3": ("euw3", 3),
    "eu-central-1": ("euc1", 3),
    "eu-north-1": ("eun1", 3),
    "eu-south-1": ("eus1", 3),
    "ap-southeast-1": ("apse1", 3),
    "ap-southeast-2": ("apse2", 3),
    "ap-northeast-1": ("apne1", 3),
    "ap-south-1": ("aps1", 3),
    "sa-east-1": ("sae1", 3),
}


class UnknownInvokeError(NotImplementedError):
    """The program called an invoke the mocks have no answer for."""


def _hex(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _uuid(*parts: str) -> str:
    return str(uuid.UUID(_hex(*parts, length=32)))


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _one_or_list(values: list[Any]) -> Any:
    # The AWS provider's renderer collapses one-element lists to a scalar, as AWS does.
    return values[0] if len(values) == 1 else sorted(values) if all(isinstance(v, str) for v in values) else values


def render_policy_document(args: dict[str, Any]) -> str:
    """Render ``aws.iam.get_policy_document`` arguments to the JSON policy AWS would get."""
    statements: list[dict[str, Any]] = []
    for source in _listify(args.get("sourcePolicyDocuments")):
        statements.extend(_listify(json.loads(source).get("Statement")))
    for st in _listify(args.get("statements")):
        out: dict[str, Any] = {}
        if st.get("sid"):
            out["Sid"] = st["sid"]
        out["Effect"] = st.get("effect") or "Allow"
        for key, field in (("actions", "Action"), ("notActions", "NotAction"), ("resources", "Resource"), ("notResources", "NotResource")):
            values = _listify(st.get(key))
            if values:
                out[field] = _one_or_list(values)
        for key, field in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
            principals = _listify(st.get(key))
            if not principals:
                continue
            if len(principals) == 1 and principals[0]["type"] == "*":
                out[field] = "*"
                continue
            block: dict[str, Any] = {}
            for p in principals:
                block.setdefault(p["type"], []).extend(_listify(p["identifiers"]))
            out[field] = {k: _one_or_list(v) for k, v in block.items()}
        conditions = _listify(st.get("conditions"))
        if conditions:
            cond: dict[str, dict[str, Any]] = {}
            for c in conditions:
                cond.setdefault(c["test"], {})[c["variable"]] = _one_or_list(_listify(c["values"]))
            out["Condition"] = cond
        statements = [s for s in statements if not (out.get("Sid") and s.get("Sid") == out["Sid"])]
        statements.append(out)
    for override in _listify(args.get("overridePolicyDocuments")):
        for st in _listify(json.loads(override).get("Statement")):
            statements = [s for s in statements if not (st.get("Sid") and s.get("Sid") == st["Sid"])]
            statements.append(st)
    doc: dict[str, Any] = {"Version": args.get("version") or "2012-10-17"}
    if args.get("policyId"):
        doc["Id"] = args["policyId"]
    doc["Statement"] = statements
    return json.dumps(doc, indent=2)


class FraudstackMocks(pulumi_mocks.Mocks):
    """Deterministic answers for the invokes and resources fraudstack uses."""

    def __init__(self, region: str = "eu-west-1", account_id: str = ACCOUNT_ID) -> None:
        self.region = region
        self.account_id = account_id
        self.calls: list[str] = []
        self._provider_regions: dict[str, str] = {}
        self.INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "aws:index/getAvailabilityZones:getAvailabilityZones": self._azs,
            "aws:index/getRegion:getRegion": self._region,
            "aws:index/getPartition:getPartition": self._partition,
            "aws:index/getCallerIdentity:getCallerIdentity": self._identity,
            "aws:iam/getPolicyDocument:getPolicyDocument": self._policy_document,
            "aws:ssm/getParameter:getParameter": self._ssm_parameter,
        }

    # ------------------------------------------------------------------ invokes
    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, list]:
        """Answer an invoke by token; raise :class:`UnknownInvokeError` for any other."""
        handler = self.INVOKES.get(args.token)
        if handler is None:
            raise UnknownInvokeError(
                f"no mock answer for invoke {args.token!r}: add one to tools/mocks.py (FraudstackMocks.INVOKES)"
            )
        self.calls.append(args.token)
        return handler(args.args), []

    def _azs(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.region not in REGION_AZS:
            raise UnknownInvokeError(f"no mock availability zones for region {self.region!r}: add it to tools/mocks.py REGION_AZS")
        prefix, count = REGION_AZS[self.region]
        names = [f"{self.region}{chr(ord('a') + i)}" for i in range(count)]
        ids = [f"{prefix}-az{i + 1}" for i in range(count)]
        return {
            "id": self.region,
            "names": names,
            "zoneIds": ids,
            "groupNames": [self.region] * count,
            "state": args.get("state"),
            "allAvailabilityZones": args.get("allAvailabilityZones"),
            "filters": args.get("filters"),
            "excludeNames": [],
            "excludeZoneIds": [],
        }

    def _region(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.region,
            "name": self.region,
            "region": self.region,
            "endpoint": f"ec2.{self.region}.amazonaws.com",
            "description": f"mock region {self.region}",
        }

    def _partition(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"id": PARTITION, "partition": PARTITION, "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws"}

    def _identity(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.account_id,
            "accountId": self.account_id,
            "arn": f"arn:aws:sts::{self.account_id}:assumed-role/fraudstack-deployer/mock-session",
            "userId": "AROAMOCKMOCKMOCKMOCK:mock-session",
        }

    def _policy_document(self, args: dict[str, Any]) -> dict[str, Any]:
        text = render_policy_document(args)
        return {"id": _hex(text, length=10), "json": text, "minifiedJson": json.dumps(json.loads(text), separators=(",", ":"))}

    def _ssm_parameter(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("name", "")
        if name.startswith(("/aws/service/eks/optimized-ami/", "/aws/service/bottlerocket/", "/aws/service/ami-amazon-linux-latest/")):
            value = f"ami-{_hex(self.region, name)}"
        else:
            raise UnknownInvokeError(f"no mock answer for SSM parameter {name!r} (aws:ssm/getParameter:getParameter): add it to tools/mocks.py")
        return {
            "id": name,
            "name": name,
            "arn": f"arn:aws:ssm:{self.region}::parameter{name}",
            "type": "String",
            "value": value,
            "insecureValue": value,
            "version": 1,
            "withDecryption": args.get("withDecryption", True),
        }

    # ------------------------------------------------------------------ resources
    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        """The inputs plus realistic outputs (id, arn, endpoints, ...) for a resource type."""
        typ, name = args.typ, args.name
        outputs = dict(args.inputs)
        if typ.startswith("kubernetes:"):
            meta = outputs.get("metadata") or {}
            ns = meta.get("namespace")
            rid = f"{ns}/{meta.get('name', name)}" if ns else str(meta.get("name", name))
            return rid, outputs
        if typ.startswith("pulumi:providers:"):
            if typ == "pulumi:providers:aws" and outputs.get("region"):
                self._provider_regions[f"{name}-provider-id"] = outputs["region"]
            return f"{name}-provider-id", outputs
        # A resource created through an explicit AWS provider for another region (e.g.
        # the backup replication's) gets ARNs and endpoints in that region.
        m = self._in_region(self._provider_regions.get((args.provider or "").rsplit("::", 1)[-1], self.region))
        extra = _OUTPUTS.get(typ)
        physical = outputs.get("name") or f"{name}-{_hex(typ, name, length=7)}"
        rid = _default_id(typ, name, physical)
        if extra is not None:
            produced = extra(m, name, physical, outputs)
            rid = produced.pop("__id__", rid)
            outputs.update(produced)
        if typ.startswith("aws:"):
            outputs.setdefault("arn", m._generic_arn(typ, rid))
            if "tags" in outputs:
                outputs.setdefault("tagsAll", outputs["tags"])
            outputs.setdefault("region", m.region)
        return rid, outputs

    def _in_region(self, region: str) -> FraudstackMocks:
        if region == self.region:
            return self
        other = copy.copy(self)
        other.region = region
        return other

    def _generic_arn(self, typ: str, rid: str) -> str:
        module, kind = typ.split(":")[1].split("/")
        return f"arn:aws:{module}:{self.region}:{self.account_id}:{_kebab(kind)}/{rid}"

    def arn(self, service: str, resource: str, regional: bool = True) -> str:
        """An ARN in the mock account (and region unless ``regional`` is false)."""
        return f"arn:aws:{service}:{self.region if regional else ''}:{self.account_id}:{resource}"


def _kebab(text: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in text).lstrip("-")


_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/flowLog:FlowLog": "fl",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
}


def _default_id(typ: str, name: str, physical: str) -> str:
    prefix = _ID_PREFIX.get(typ)
    if prefix:
        return f"{prefix}-{_hex(typ, name)}"
    return physical


def _ec2(kind: str) -> Callable[[FraudstackMocks, str, str, dict], dict]:
    def produce(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
        rid = _default_id(_KIND_TYPES[kind], name, physical)
        out: dict[str, Any] = {"__id__": rid, "arn": m.arn("ec2", f"{kind}/{rid}"), "ownerId": m.account_id}
        if kind == "vpc":
            out.update(defaultSecurityGroupId=f"sg-{_hex('default-sg', name)}", mainRouteTableId=f"rtb-{_hex('main', name)}",
                       defaultNetworkAclId=f"acl-{_hex('acl', name)}", dhcpOptionsId=f"dopt-{_hex('dopt', name)}")
        if kind == "subnet":
            out["availabilityZone"] = _az_name(m.region, inputs.get("availabilityZoneId"))
        if kind == "elastic-ip":
            octets = int(_hex("eip", name, length=4), 16)
            out.update(allocationId=rid, publicIp=f"203.0.113.{octets % 250 + 1}", domain=inputs.get("domain", "vpc"))
        if kind == "natgateway":
            out.update(privateIp="10.0.0.10", publicIp="203.0.113.200", networkInterfaceId=f"eni-{_hex('eni', name)}")
        if kind == "vpc-endpoint":
            out.update(prefixListId=f"pl-{_hex('pl', name, length=8)}", state="available",
                       dnsEntries=[{"dnsName": f"{rid}.{inputs.get('serviceName', 'svc')}.vpce.amazonaws.com", "hostedZoneId": "Z7HUB22UULQXV"}],
                       networkInterfaceIds=[f"eni-{_hex('vpce-eni', name, str(i))}" for i in range(len(inputs.get("subnetIds") or []))])
        if kind == "security-group":
            out["name"] = inputs.get("name") or physical
        if kind == "launch-template":
            # EKS node groups pin a template version; the first one is 1.
            out.update(latestVersion=1, defaultVersion=1)
        return out

    return produce


_KIND_TYPES = {
    "vpc": "aws:ec2/vpc:Vpc",
    "subnet": "aws:ec2/subnet:Subnet",
    "internet-gateway": "aws:ec2/internetGateway:InternetGateway",
    "natgateway": "aws:ec2/natGateway:NatGateway",
    "elastic-ip": "aws:ec2/eip:Eip",
    "route-table": "aws:ec2/routeTable:RouteTable",
    "security-group": "aws:ec2/securityGroup:SecurityGroup",
    "vpc-endpoint": "aws:ec2/vpcEndpoint:VpcEndpoint",
    "vpc-flow-log": "aws:ec2/flowLog:FlowLog",
    "launch-template": "aws:ec2/launchTemplate:LaunchTemplate",
}


def _az_name(region: str, zone_id: str | None) -> str | None:
    if not zone_id or "-az" not in zone_id:
        return None
    return f"{region}{chr(ord('a') + int(zone_id.rsplit('-az', 1)[1]) - 1)}"


def _kms_key(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    key_id = _uuid("kms", name)
    return {"__id__": key_id, "keyId": key_id, "arn": m.arn("kms", f"key/{key_id}")}


def _kms_alias(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    alias = inputs.get("name") or f"alias/{physical}"
    return {"__id__": alias, "name": alias, "arn": m.arn("kms", alias), "targetKeyArn": m.arn("kms", f"key/{inputs.get('targetKeyId', '')}")}


def _iam(kind: str) -> Callable[[FraudstackMocks, str, str, dict], dict]:
    def produce(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
        path = inputs.get("path") or "/"
        out: dict[str, Any] = {"__id__": physical, "name": physical, "arn": m.arn("iam", f"{kind}{path}{physical}", regional=False)}
        if kind == "role":
            out["uniqueId"] = "AROA" + _hex("role", name, length=16).upper()
        if kind == "policy":
            out["__id__"] = out["arn"]
            out["policyId"] = "ANPA" + _hex("policy", name, length=16).upper()
        return out

    return produce


def _oidc_provider(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    url = (inputs.get("url") or "").removeprefix("https://")
    arn = m.arn("iam", f"oidc-provider/{url}", regional=False)
    return {"__id__": arn, "arn": arn}


def _log_group(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    group = inputs.get("name") or physical
    return {"__id__": group, "name": group, "arn": m.arn("logs", f"log-group:{group}")}


def _rds_instance(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    ident = inputs.get("identifier") or physical
    address = f"{ident}.c{_hex('rds', m.account_id, length=11)}.{m.region}.rds.amazonaws.com"
    port = int(inputs.get("port") or 5432)
    return {"__id__": ident, "identifier": ident, "arn": m.arn("rds", f"db:{ident}"), "address": address, "port": port,
            "endpoint": f"{address}:{port}", "resourceId": "db-" + _hex("dbi", name, length=26).upper(),
            "hostedZoneId": "Z29XKXDKYMONMX", "status": "available",
            # RDS names the secret it manages "rds!db-<uuid>" and encrypts it with the given key.
            "masterUserSecrets": [{"secretArn": m.arn("secretsmanager", f"secret:rds!db-{_uuid('rds-secret', name)}-{_hex('s', name, length=6)}"),
                                   "kmsKeyId": inputs.get("masterUserSecretKmsKeyId"), "secretStatus": "active"}]
            if inputs.get("manageMasterUserPassword") else []}


def _rds_named(kind: str) -> Callable[[FraudstackMocks, str, str, dict], dict]:
    def produce(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
        return {"__id__": physical, "name": physical, "arn": m.arn("rds", f"{kind}:{physical}")}

    return produce


def _replication_group(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    rg = inputs.get("replicationGroupId") or physical
    suffix = f"{_hex('cache', m.account_id, length=6)}.{REGION_AZS.get(m.region, ('cache', 0))[0]}.cache.amazonaws.com"
    return {"__id__": rg, "replicationGroupId": rg, "arn": m.arn("elasticache", f"replicationgroup:{rg}"),
            "primaryEndpointAddress": f"master.{rg}.{suffix}", "readerEndpointAddress": f"replica.{rg}.{suffix}",
            "configurationEndpointAddress": None, "port": int(inputs.get("port") or 6379),
            "memberClusters": [f"{rg}-00{i + 1}" for i in range(int(inputs.get("numCacheClusters") or 1))]}


def _elasticache_named(kind: str) -> Callable[[FraudstackMocks, str, str, dict], dict]:
    def produce(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
        return {"__id__": physical, "name": physical, "arn": m.arn("elasticache", f"{kind}:{physical}")}

    return produce


def _secret(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    arn = m.arn("secretsmanager", f"secret:{physical}-{_hex('secret', name, length=6)}")
    return {"__id__": arn, "name": physical, "arn": arn}


def _secret_version(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    version = _uuid("secret-version", name)
    return {"__id__": f"{inputs.get('secretId')}|{version}", "versionId": version, "arn": inputs.get("secretId")}


def _sns_topic(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    arn = m.arn("sns", physical)
    return {"__id__": arn, "name": physical, "arn": arn}


def _sns_subscription(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    arn = f"{inputs.get('topic')}:{_uuid('sub', name)}"
    return {"__id__": arn, "arn": arn}


def _ecr_repository(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    return {"__id__": physical, "name": physical, "registryId": m.account_id, "arn": m.arn("ecr", f"repository/{physical}"),
            "repositoryUrl": f"{m.account_id}.dkr.ecr.{m.region}.amazonaws.com/{physical}"}


def _s3_bucket(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    # Bucket names are global and their ARNs carry neither region nor account.
    bucket = inputs.get("bucket") or physical
    return {"__id__": bucket, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}",
            "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{bucket}.s3.{m.region}.amazonaws.com"}


def _eks_cluster(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    ident = _hex("eks", name, length=32).upper()
    vpc = dict(inputs.get("vpcConfig") or {})
    vpc.update(clusterSecurityGroupId=f"sg-{_hex('eks-cluster-sg', name)}", vpcId=f"vpc-{_hex('eks-vpc', name)}")
    ca = base64.b64encode(f"mock certificate authority for {physical}".encode()).decode()
    return {"__id__": physical, "name": physical, "arn": m.arn("eks", f"cluster/{physical}"),
            "endpoint": f"https://{ident}.gr7.{m.region}.eks.amazonaws.com",
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{m.region}.amazonaws.com/id/{ident}"}]}],
            "certificateAuthority": {"data": ca}, "vpcConfig": vpc, "status": "ACTIVE",
            "platformVersion": "eks.1", "version": inputs.get("version") or "1.33",
            # What EKS chooses for a VPC in 10.0.0.0/8 when no Service range is given.
            "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16",
                                        **dict(inputs.get("kubernetesNetworkConfig") or {})}}


def _eks_node_group(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    ng = inputs.get("nodeGroupName") or physical
    cluster = inputs.get("clusterName", "cluster")
    return {"__id__": f"{cluster}:{ng}", "nodeGroupName": ng, "status": "ACTIVE",
            "arn": m.arn("eks", f"nodegroup/{cluster}/{ng}/{_uuid('ng', name)}"),
            "resources": [{"autoscalingGroups": [{"name": f"eks-{ng}-{_hex('asg', name, length=8)}"}], "remoteAccessSecurityGroupId": ""}]}


def _eks_addon(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    cluster, addon = inputs.get("clusterName", "cluster"), inputs.get("addonName", name)
    return {"__id__": f"{cluster}:{addon}", "arn": m.arn("eks", f"addon/{cluster}/{addon}/{_uuid('addon', name)}")}


def _alarm(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    alarm = inputs.get("name") or physical
    return {"__id__": alarm, "name": alarm, "arn": m.arn("cloudwatch", f"alarm:{alarm}")}


def _random_password(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    length = int(inputs.get("length") or 32)
    value = ("mock-password-not-a-secret-" + _hex("password", name, length=64))[:length]
    return {"__id__": "none", "result": value, "bcryptHash": "$2a$10$" + _hex("bcrypt", name, length=53)}


def _random_id(m: FraudstackMocks, name: str, physical: str, inputs: dict) -> dict:
    n = int(inputs.get("byteLength") or 8)
    raw = bytes.fromhex(_hex("randomid", name, length=2 * n))
    return {"__id__": base64.urlsafe_b64encode(raw).decode().rstrip("="), "hex": raw.hex(), "dec": str(int.from_bytes(raw, "big")),
            "b64Url": base64.urlsafe_b64encode(raw).decode().rstrip("="), "b64Std": base64.b64encode(raw).decode()}


_OUTPUTS: dict[str, Callable[[FraudstackMocks, str, str, dict], dict]] = {
    **{typ: _ec2(kind) for kind, typ in _KIND_TYPES.items()},
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": lambda m, n, p, i: {
        "arn": m.arn("ec2", f"security-group/sg-{_hex('aws:ec2/defaultSecurityGroup:DefaultSecurityGroup', n)}"), "name": "default"},
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:iam/role:Role": _iam("role"),
    "aws:iam/policy:Policy": _iam("policy"),
    "aws:iam/instanceProfile:InstanceProfile": _iam("instance-profile"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:rds/instance:Instance": _rds_instance,
    "aws:rds/subnetGroup:SubnetGroup": _rds_named("subgrp"),
    "aws:rds/parameterGroup:ParameterGroup": _rds_named("pg"),
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:elasticache/subnetGroup:SubnetGroup": _elasticache_named("subnetgroup"),
    "aws:elasticache/parameterGroup:ParameterGroup": _elasticache_named("parametergroup"),
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:sns/topicSubscription:TopicSubscription": _sns_subscription,
    "aws:ecr/repository:Repository": _ecr_repository,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _eks_node_group,
    "aws:eks/addon:Addon": _eks_addon,
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomId:RandomId": _random_id,
}


# --------------------------------------------------------------------------- recording

# The wire format's signatures (sdk/go/common/resource/properties.go), stable across SDKs.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"


def urn_name(urn: str) -> str:
    """The logical name at the end of a URN (``urn:pulumi:stack::project::type::name``)."""
    return urn.split("::")[-1]


def redact(value: Any) -> Any:
    """Inputs as a policy sees them: secrets replaced by the marker, integral floats as ints."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return SECRET_MARKER
        if sig == _RESOURCE_SIG:
            return value.get("urn", "")
        # "__defaults" and friends are engine bookkeeping, not inputs.
        # Sorted: the wire struct's map order is arbitrary and plans should diff cleanly.
        return {k: redact(v) for k, v in sorted(value.items()) if not k.startswith("__")}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that records every registration as a plan resource."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.records: list[dict[str, Any]] = []
        self.stack_outputs_urn: str | None = None
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        """Register through the base mock monitor, then record what a policy would see."""
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        parent = request.parent
        parent_name = None if not parent or "::pulumi:pulumi:Stack::" in parent else urn_name(parent)
        # A provider reference is "<urn>::<id>": its name is the segment before the id.
        provider = request.provider.rsplit("::", 1)[0].split("::")[-1] if request.provider else ""
        # The raw wire struct keeps secrets wrapped, so they can be redacted reliably.
        inputs = json_format.MessageToDict(request.object)
        record = {
            "type": request.type,
            "name": request.name,
            "parent": parent_name,
            "custom": bool(request.custom),
            "provider": provider,
            "inputs": redact(inputs),
            "dependencies": sorted({urn_name(u) for u in request.dependencies}),
            "protect": bool(request.protect),
            "urn": response.urn,
        }
        with self._lock:
            self.records.append(record)
        return response
