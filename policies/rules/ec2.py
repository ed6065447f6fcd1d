"""Security groups (exposure, descriptions, attachment, data-tier reachability) and the
node groups' launch templates."""
from __future__ import annotations

import base64
import re

from pulumi_policy.proxy import UnknownValueError

from ..model import Rule, with_type
from ._util import UNKNOWN, as_list, covers_port, get, identities, is_world, known, linked, present, refs, safe, truthy

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS = "aws:eks/cluster:Cluster"
RDS = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SG_TYPES = (SG, SG_RULE, INGRESS, EGRESS)


def sg_entries(rtype: str, props, direction: str):
    """Normalised rules of one direction from any SG-shaped resource:
    dicts with from/to/protocol, cidrs (list) and sources (SG ids), description."""
    if rtype in (SG, DEFAULT_SG):
        for e in as_list(get(props, direction)):
            yield {"from": get(e, "fromPort"), "to": get(e, "toPort"), "protocol": get(e, "protocol"),
                   "cidrs": as_list(get(e, "cidrBlocks")) + as_list(get(e, "ipv6CidrBlocks")),
                   "sources": as_list(get(e, "securityGroups")) + (["self"] if get(e, "self") else []),
                   "prefix": as_list(get(e, "prefixListIds")), "description": known(e, "description")}
    elif rtype == SG_RULE and get(props, "type") == direction:
        yield {"from": get(props, "fromPort"), "to": get(props, "toPort"), "protocol": get(props, "protocol"),
               "cidrs": as_list(get(props, "cidrBlocks")) + as_list(get(props, "ipv6CidrBlocks")),
               "sources": as_list(known(props, "sourceSecurityGroupId")) + (["self"] if get(props, "self") else []),
               "prefix": as_list(get(props, "prefixListIds")), "description": known(props, "description")}
    elif (rtype == INGRESS and direction == "ingress") or (rtype == EGRESS and direction == "egress"):
        proto = get(props, "ipProtocol")
        yield {"from": get(props, "fromPort", 0 if str(proto) == "-1" else None),
               "to": get(props, "toPort", 65535 if str(proto) == "-1" else None), "protocol": proto,
               "cidrs": as_list(get(props, "cidrIpv4")) + as_list(get(props, "cidrIpv6")),
               "sources": as_list(known(props, "referencedSecurityGroupId")),
               "prefix": as_list(known(props, "prefixListId")), "description": known(props, "description")}


def _make_world_ingress(port: int | None, label: str):
    @with_type
    def check(props, cfg, rtype):
        for e in sg_entries(rtype, props, "ingress"):
            world = [c for c in e["cidrs"] if is_world(c)]
            if not world:
                continue
            if port is None:
                if _all_ports(e):
                    yield f"ingress from {world[0]} on all ports/protocols"
            elif covers_port(e["from"], e["to"], e["protocol"], port):
                yield f"ingress from {world[0]} reaches {label} (port {port})"
    return check


def _all_ports(e) -> bool:
    return str(e["protocol"]) in ("-1", "all") or (
        covers_port(e["from"], e["to"], e["protocol"], 0) and covers_port(e["from"], e["to"], e["protocol"], 65535))


@with_type
def _world_egress(props, cfg, rtype):
    for e in sg_entries(rtype, props, "egress"):
        if any(is_world(c) for c in e["cidrs"]) and _all_ports(e):
            yield "egress to 0.0.0.0/0 on all ports and protocols: allow only what the workload needs (443, DNS, ...)"


@with_type
def _descriptions(props, cfg, rtype):
    if rtype == SG:
        desc = get(props, "description")
        if not desc or desc == "Managed by Pulumi":
            yield "the security group has no description of its purpose"
    for direction in ("ingress", "egress"):
        for e in sg_entries(rtype, props, direction):
            if not e["description"]:
                yield f"an {direction} rule has no description"


def _rule_targets(r) -> set[str]:
    return refs(r, "securityGroupId")


_ATTACH_PATHS = ("securityGroupIds", "vpcSecurityGroupIds", "securityGroups", "vpcConfig.securityGroupIds",
                 "networkInterfaces", "referencedSecurityGroupId", "sourceSecurityGroupId",
                 "remoteAccess.sourceSecurityGroupIds")


def _sg_attached(stack, cfg):
    used: set[str] = set()
    users_by_parent: set = set()
    for r in stack.resources:
        if r.resource_type in (SG,):
            try:
                for e in sg_entries(SG, r.props, "ingress"):
                    used |= {s for s in e["sources"] if isinstance(s, str)}
            except UnknownValueError:
                pass
            continue
        found = set()
        for p in _ATTACH_PATHS:
            if p == "networkInterfaces":
                for ni in as_list(safe(r.props, p)):
                    found |= {s for s in as_list(safe(ni, "securityGroups")) if isinstance(s, str)}
            else:
                found |= refs(r, p)
        uses_groups = found or any(present(r.props, p) for p in _ATTACH_PATHS if p != "networkInterfaces")
        if uses_groups and r.resource_type not in (SG_RULE, INGRESS, EGRESS):
            users_by_parent.add(r.parent.urn if r.parent is not None else r.opts.parent)
        if r.resource_type in (SG_RULE, INGRESS, EGRESS):
            # A rule referencing a source group makes that group "used" as a source.
            found = refs(r, "referencedSecurityGroupId", "sourceSecurityGroupId")
        used |= found
    for sg in stack.of_type(SG):
        if stack.has_dependencies:
            users = [r for r in stack.resources if r.resource_type not in (SG_RULE, INGRESS, EGRESS)
                     and any(d is sg for d in r.dependencies)]
            if not users:
                yield sg, "no resource uses this security group (dead rules hide real exposure)"
            continue
        ids = {safe(sg.props, "id"), safe(sg.props, "arn")} - {None}
        if ids:
            if not ids & used:
                yield sg, "the security group is not attached to anything (dead rules hide real exposure)"
        elif (sg.parent.urn if sg.parent is not None else sg.opts.parent) not in users_by_parent:
            yield sg, "no resource in this component uses a security group: this one looks unattached"


def _parent(r):
    return r.parent.urn if r.parent is not None else r.opts.parent


def _rule_conflicts(stack, cfg):
    standalone = stack.of_type(SG_RULE, INGRESS, EGRESS)
    for sg in stack.of_type(SG):
        inline = [d for d in ("ingress", "egress") if d in sg.props and safe(sg.props, d) is not None]
        if not inline:
            continue
        ids = {safe(sg.props, "id")} - {None}
        # Standalone rules name their group by id; without ids, a rule of the same component
        # that depends on the group (a rule elsewhere depending on it uses it as a source).
        if ids:
            mine = [r for r in standalone if _rule_targets(r) & ids]
        else:
            mine = [r for r in standalone if _parent(r) and _parent(r) == _parent(sg)
                    and (not stack.has_dependencies or any(d is sg for d in r.dependencies))]
        if mine:
            yield sg, (f"inline {'/'.join(inline)} rules and {len(mine)} standalone rule resource(s) manage the same "
                       "group: each update undoes the other")


def _node_sg_ids(stack) -> set[str]:
    ids: set[str] = set()
    for c in stack.of_type(EKS):
        ids |= refs(c, "vpcConfig.securityGroupIds", "vpcConfig.clusterSecurityGroupId")
    for lt in stack.of_type(LT):
        ids |= refs(lt, "vpcSecurityGroupIds")
        for ni in as_list(safe(lt.props, "networkInterfaces")):
            ids |= {s for s in as_list(safe(ni, "securityGroups")) if isinstance(s, str)}
    return ids


def _reachable_only_from_nodes(kinds: tuple[tuple[str, str, int, str], ...]):
    def check(stack, cfg):
        node_sgs = _node_sg_ids(stack)
        rule_targets = [(r, _rule_targets(r)) for r in stack.of_type(SG_RULE, INGRESS)]
        for rtype, path, port, what in kinds:
            for target in stack.of_type(rtype):
                if rtype == ENDPOINT and not str(safe(target.props, "serviceName", "")).endswith("bedrock-runtime"):
                    continue
                sg_ids = refs(target, path)
                groups = linked(stack, target, sg_ids, (SG,))
                # Standalone rules name their group by id in their inputs: a direct match; ids
                # unknown (first preview): a rule of the group's component depending on it.
                rules = [r for r, targets in rule_targets if targets & sg_ids]
                if stack.has_dependencies:
                    for g in groups:
                        rules += [r for r, _ in rule_targets if r not in rules and _parent(r) == _parent(g)
                                  and any(d is g for d in r.dependencies)]
                for holder in [*groups, *rules]:
                    try:
                        entries = list(sg_entries(holder.resource_type, holder.props, "ingress"))
                    except UnknownValueError:
                        continue  # judged when known (after the update)
                    for e in entries:
                        if e["cidrs"] or e["prefix"]:
                            yield holder, f"{what} accepts traffic from CIDR {(e['cidrs'] or e['prefix'])[0]}: allow only the node security group"
                        if not (str(e["from"]) == str(e["to"]) and covers_port(e["from"], e["to"], e["protocol"], port)):
                            yield holder, f"{what} ingress {e['protocol']}/{e['from']}-{e['to']}: only tcp/{port} is needed"
                        if node_sgs:
                            others = [s for s in e["sources"] if s not in node_sgs and s not in ("self", UNKNOWN)]
                            if others:
                                yield holder, f"{what} accepts traffic from {others[0]}, which is not the cluster/node security group"
    return check


def _lt_imdsv2(props, cfg):
    if get(props, "metadataOptions.httpTokens") != "required":
        yield "metadataOptions.httpTokens is not 'required': IMDSv1 lets SSRF steal the node role's credentials"


def _lt_hop_limit(props, cfg):
    hops = get(props, "metadataOptions.httpPutResponseHopLimit")
    if hops is None or float(hops) > 1:
        yield f"metadataOptions.httpPutResponseHopLimit is {hops}: set 1 so pods cannot reach the node's IMDS (they use IRSA)"


_SECRET_PATTERNS = [
    (re.compile(r"AKIA[0-9A-Z]{16}"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"(?i)(aws_secret_access_key|password|passwd|secret|token)\s*[=:]\s*['\"]?[^\s'\"$]{6,}"), "a credential assignment"),
]


def _lt_user_data(props, cfg):
    data = get(props, "userData")
    if not isinstance(data, str) or not data:
        return
    texts = [data]
    try:
        texts.append(base64.b64decode(data, validate=True).decode("utf-8", "replace"))
    except ValueError:
        pass
    for text in texts:
        for pattern, what in _SECRET_PATTERNS:
            if pattern.search(text):
                yield f"userData contains {what}: user data is readable by anything on the node and in the console"
                return


def _lt_no_public_ip(props, cfg):
    for ni in as_list(get(props, "networkInterfaces")):
        if truthy(get(ni, "associatePublicIpAddress")):
            yield "a network interface associates a public IP: nodes stay private behind NAT"


def _lt_ebs(props, cfg):
    mappings = as_list(get(props, "blockDeviceMappings"))
    if not mappings:
        yield "no blockDeviceMappings: the root volume's encryption depends on an account setting; declare it encrypted with the CMK"
    for m in mappings:
        ebs = get(m, "ebs")
        if ebs is None:
            continue
        if not truthy(get(ebs, "encrypted")):
            yield f"volume {get(m, 'deviceName')} is not encrypted"
        elif not present(ebs, "kmsKeyId"):
            yield f"volume {get(m, 'deviceName')} uses the AWS-managed EBS key, not the platform CMK"


def _ng_ssh(props, cfg):
    ra = get(props, "remoteAccess")
    if ra and present(ra, "ec2SshKey") and not as_list(get(ra, "sourceSecurityGroupIds")):
        yield "remoteAccess with an SSH key and no sourceSecurityGroupIds opens port 22 to 0.0.0.0/0"


_GPU_FAMILY = re.compile(r"^(p\d|g\d|gr\d|inf\d|trn\d|dl\d)[a-z]*\.")


def _ng_gpu_taint(props, cfg):
    types = [str(t) for t in as_list(get(props, "instanceTypes"))]
    ami = str(get(props, "amiType", ""))
    labels = get(props, "labels") or {}
    gpu = (any(_GPU_FAMILY.match(t) for t in types) or "GPU" in ami or "NVIDIA" in ami
           or any("gpu" in str(k).lower() or "gpu" in str(labels[k]).lower() for k in labels))
    if not gpu:
        return
    taints = as_list(get(props, "taints"))
    if not any(get(t, "key") == "nvidia.com/gpu" and get(t, "effect") == "NO_SCHEDULE" for t in taints):
        yield "a GPU node group without the nvidia.com/gpu NoSchedule taint: ordinary pods will land on expensive GPU nodes"


RULES = [
    Rule(id="sg-no-world-ssh", name="No SSH from the internet", description="No security group admits 0.0.0.0/0 or ::/0 on port 22.",
         severity="critical", enforcement="mandatory", resource_types=SG_TYPES, references=("A10",),
         remediation="Remove the rule; reach nodes through SSM Session Manager.", check=_make_world_ingress(22, "SSH")),
    Rule(id="sg-no-world-rdp", name="No RDP from the internet", description="No security group admits 0.0.0.0/0 or ::/0 on port 3389.",
         severity="critical", enforcement="mandatory", resource_types=SG_TYPES, references=("A11",),
         remediation="Remove the rule.", check=_make_world_ingress(3389, "RDP")),
    Rule(id="sg-no-world-http", name="No plain HTTP from the internet",
         description="No security group we declare admits 0.0.0.0/0 on port 80 (the ALB, managed by the load balancer controller, redirects to 443).",
         severity="high", enforcement="mandatory", resource_types=SG_TYPES, references=("A12",),
         remediation="Expose only 443 through the Ingress; never open 80 on node or data security groups.",
         check=_make_world_ingress(80, "HTTP")),
    Rule(id="sg-no-world-all-ports", name="No all-ports ingress from the internet",
         description="No security group admits 0.0.0.0/0 on all ports or protocols.",
         severity="critical", enforcement="mandatory", resource_types=SG_TYPES, references=("A13",),
         remediation="Allow specific ports from specific security groups.", check=_make_world_ingress(None, "all ports")),
    Rule(id="sg-no-world-egress-all", name="No unrestricted egress",
         description="No security group allows egress to 0.0.0.0/0 on all ports and protocols.",
         severity="medium", enforcement="mandatory", resource_types=SG_TYPES, references=("A14",),
         remediation="Allow egress per need: 443 to the internet through NAT, 5432/6379 to the data tier, 53 to DNS.",
         check=_world_egress),
    Rule(id="sg-descriptions", name="Security groups and rules described",
         description="Every security group and every rule says what it is for.", severity="low", enforcement="mandatory",
         resource_types=SG_TYPES, references=("A9",),
         remediation="Pass description= on the group and on each rule.", check=_descriptions),
    Rule(id="sg-attached", name="Security groups attached", description="Every security group is attached to something.",
         severity="low", enforcement="advisory", resource_types=(SG,), stack=True, references=("A15",),
         advisory_reason="An unattached group grants nothing; it is clutter that hides the real rules, not exposure.",
         remediation="Delete unused security groups.", check=_sg_attached),
    Rule(id="sg-no-rule-conflicts", name="No inline and standalone rules on one group",
         description="A security group's rules are managed either inline or as separate rule resources, never both.",
         severity="medium", enforcement="mandatory", resource_types=SG_TYPES, stack=True, references=("A16",),
         remediation="Drop the inline ingress/egress and declare aws.vpc.SecurityGroupIngressRule/EgressRule resources.",
         check=_rule_conflicts),
    Rule(id="data-tier-from-nodes-only", name="Data tier reachable only from the nodes",
         description="The database accepts only tcp/5432 and the cache only tcp/6379, and only from the cluster/node "
                     "security group (no CIDR ranges).",
         severity="critical", enforcement="mandatory", resource_types=(RDS, CACHE, SG, SG_RULE, INGRESS), stack=True,
         references=("X4",),
         remediation="Give the data security groups one aws.vpc.SecurityGroupIngressRule each, "
                     "referenced_security_group_id=<node security group>, port 5432 / 6379.",
         check=_reachable_only_from_nodes(((RDS, "vpcSecurityGroupIds", 5432, "the database"),
                                          (CACHE, "securityGroupIds", 6379, "the cache")))),
    Rule(id="bedrock-endpoint-from-nodes-only", name="Bedrock endpoint reachable only from the nodes",
         description="The bedrock-runtime endpoint's security group accepts only tcp/443 from the cluster/node security group.",
         severity="high", enforcement="mandatory", resource_types=(ENDPOINT, SG, SG_RULE, INGRESS), stack=True,
         references=("X1",),
         remediation="One ingress rule on the endpoint SG: tcp/443 from the node security group.",
         check=_reachable_only_from_nodes(((ENDPOINT, "securityGroupIds", 443, "the Bedrock endpoint"),))),
    Rule(id="lt-imdsv2", name="IMDSv2 required", description="Launch templates require IMDSv2 session tokens.",
         severity="high", enforcement="mandatory", resource_types=(LT,), references=("A23",),
         remediation="metadata_options={'http_tokens': 'required', 'http_endpoint': 'enabled', 'http_put_response_hop_limit': 1}.",
         check=_lt_imdsv2),
    Rule(id="lt-imds-hop-limit", name="IMDS hop limit 1",
         description="Launch templates set the IMDS response hop limit to 1 so containers cannot reach the node's credentials.",
         severity="medium", enforcement="mandatory", resource_types=(LT,), references=("A24",),
         remediation="Set metadata_options.http_put_response_hop_limit=1 (pods use IRSA).", check=_lt_hop_limit),
    Rule(id="lt-no-secrets-in-user-data", name="No secrets in user data",
         description="Launch template user data contains no access keys, private keys or credential assignments.",
         severity="critical", enforcement="mandatory", resource_types=(LT,), references=("A25",),
         remediation="Fetch secrets at runtime from Secrets Manager with the node or pod role.", check=_lt_user_data),
    Rule(id="lt-no-public-ip", name="No public IP on nodes",
         description="Launch templates never associate public IP addresses.", severity="high", enforcement="mandatory",
         resource_types=(LT,), references=("A26",),
         remediation="Leave associate_public_ip_address unset/false; nodes live in private subnets.", check=_lt_no_public_ip),
    Rule(id="lt-ebs-encrypted-cmk", name="Node volumes encrypted with the CMK",
         description="Every EBS volume of a launch template is encrypted with a customer-managed key.",
         severity="high", enforcement="mandatory", resource_types=(LT,), references=("A27",),
         remediation="block_device_mappings=[{'device_name': '/dev/xvda', 'ebs': {'encrypted': 'true', 'kms_key_id': <key>}}].",
         check=_lt_ebs),
    Rule(id="eks-nodegroup-no-open-ssh", name="Node groups have no open SSH",
         description="Node groups do not configure SSH remote access without source security groups.",
         severity="high", enforcement="mandatory", resource_types=(NODE_GROUP,), references=("A22",),
         remediation="Drop remote_access (use SSM) or restrict it with source_security_group_ids.", check=_ng_ssh),
    Rule(id="eks-gpu-nodegroup-tainted", name="GPU node group tainted",
         description="GPU node groups carry the nvidia.com/gpu=NoSchedule taint so only GPU workloads (which tolerate it) land there.",
         severity="medium", enforcement="mandatory", resource_types=(NODE_GROUP,), references=("X7",),
         remediation="taints=[{'key': 'nvidia.com/gpu', 'value': 'true', 'effect': 'NO_SCHEDULE'}].", check=_ng_gpu_taint),
]
