"""IAM: least-privilege policy documents, trust policies, managed-policy attachments."""
from __future__ import annotations

import fnmatch

from ..model import Rule, with_type
from ._util import as_list, get, identities, known, linked, parse_json, principals, refs, safe, statements

ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICY_ATTACH = "aws:iam/policyAttachment:PolicyAttachment"
DOC_TYPES = (ROLE, POLICY, ROLE_POLICY)

# Actions that support no resource-level permissions: "*" is the only possible resource.
_UNSCOPABLE = ("ec2:describe*", "ec2:get*", "elasticloadbalancing:describe*", "autoscaling:describe*",
               "ecr:getauthorizationtoken", "sts:getcalleridentity", "cloudwatch:putmetricdata",
               "cloudwatch:get*", "cloudwatch:list*", "cloudwatch:describe*", "logs:describe*",
               "kms:listaliases", "kms:listkeys", "xray:put*", "xray:get*", "iam:list*", "tag:get*",
               "acm:listcertificates", "acm:describecertificate", "waf*:get*", "waf*:list*", "shield:describe*",
               "shield:get*", "bedrock:listfoundationmodels", "eks:describe*", "eks:list*")
_ESCALATION = ("iam:createpolicyversion", "iam:setdefaultpolicyversion", "iam:attachuserpolicy",
               "iam:attachrolepolicy", "iam:attachgrouppolicy", "iam:putuserpolicy", "iam:putrolepolicy",
               "iam:putgrouppolicy", "iam:createaccesskey", "iam:createloginprofile", "iam:updateloginprofile",
               "iam:updateassumerolepolicy", "iam:addusertogroup", "iam:passrole", "lambda:updatefunctioncode",
               "glue:updatedevendpoint", "cloudformation:createstack", "ec2:runinstances")
_CREDENTIALS = ("iam:createaccesskey", "iam:updateaccesskey", "iam:createloginprofile",
                "iam:createservicespecificcredential", "iam:resetservicespecificcredential", "ec2:getpassworddata",
                "redshift:getclustercredentials", "rds-db:connect", "sso:getrolecredentials",
                "sts:getfederationtoken", "sts:getsessiontoken", "sts:assumerole", "lightsail:getinstanceaccessdetails",
                "lightsail:getrelationaldatabasemasteruserpassword", "cognito-identity:getcredentialsforidentity")
_EXFILTRATION = ("s3:getobject", "ssm:getparameter", "ssm:getparameters", "ssm:getparametersbypath",
                 "secretsmanager:getsecretvalue", "kms:decrypt")
_PERMISSIONS = ("iam:attach*", "iam:detach*", "iam:put*policy", "iam:delete*policy", "iam:createpolicy*",
                "iam:setdefaultpolicyversion", "iam:updateassumerolepolicy", "s3:putbucketpolicy", "s3:putbucketacl",
                "s3:putobjectacl", "kms:putkeypolicy", "kms:creategrant", "secretsmanager:putresourcepolicy",
                "sns:settopicattributes", "sns:addpermission", "ecr:setrepositorypolicy", "lambda:addpermission")
_WRITE_VERBS = ("put", "create", "delete", "update", "attach", "detach", "modify", "set", "add", "remove",
                "terminate", "run", "start", "stop", "reboot", "associate", "disassociate", "tag", "untag",
                "invoke", "publish", "send", "write", "replace", "restore", "revoke", "authorize", "enable", "disable")


@with_type
def _docs(props, cfg, rtype):
    """(label, document) pairs of the permission policies a resource carries."""
    if rtype in (POLICY, ROLE_POLICY):
        yield "policy", parse_json(get(props, "policy"))
    if rtype == ROLE:
        for p in as_list(get(props, "inlinePolicies")):
            yield f"inline policy {get(p, 'name')!r}", parse_json(get(p, "policy"))


def _allows(doc):
    """(statement, lower-cased actions, resources) of every Allow; NotAction/NotResource
    read as '*' (they grant everything else)."""
    for st in statements(doc):
        if st.get("Effect") != "Allow":
            continue
        actions = ["*"] if "NotAction" in st else [str(a).lower() for a in as_list(st.get("Action"))]
        resources = ["*"] if "NotResource" in st else [str(r) for r in as_list(st.get("Resource"))]
        yield st, actions, resources


def _matches(action: str, patterns) -> bool:
    """Whether a granted action (maybe a wildcard) covers any listed action pattern."""
    return any(fnmatch.fnmatch(p.replace("*", "x"), action) or fnmatch.fnmatch(action, p) for p in patterns)


def _doc_rule(judge):
    @with_type
    def check(props, cfg, rtype):
        for label, doc in _docs(props, cfg, rtype):
            for st, actions, resources in _allows(doc):
                message = judge(st, actions, resources)
                if message:
                    yield f"{label}: {message}"
    return check


def _star_resource(resources) -> bool:
    return "*" in resources


def _admin(st, actions, resources):
    if "*" in actions and _star_resource(resources):
        return "allows Action '*' on Resource '*' (full administrator)"


def _wildcard_action(st, actions, resources):
    bad = [a for a in actions if a == "*" or a.endswith(":*")]
    if bad:
        return f"allows every action of a service ({bad[0]}): list the actions needed"


def _unscoped_resource(st, actions, resources):
    if not _star_resource(resources) or st.get("Condition"):
        return None
    scopable = [a for a in actions if not any(fnmatch.fnmatch(a, u) for u in _UNSCOPABLE)]
    if scopable:
        return f"{scopable[0]} on Resource '*': scope it to the ARNs it needs"


def _on_star(names, what):
    def judge(st, actions, resources):
        if not _star_resource(resources) or st.get("Condition"):
            return None
        hit = [a for a in actions if _matches(a, names)]
        if hit:
            return f"{hit[0]} on Resource '*' allows {what}"
    return judge


def _iam_star(st, actions, resources):
    if "iam:*" in actions or "*" in actions:
        return "allows iam:* (anyone with this policy can grant themselves anything)"


def _passrole(st, actions, resources):
    if any(fnmatch.fnmatch("iam:passrole", a) for a in actions) and _star_resource(resources):
        return "iam:PassRole on Resource '*': any role (including admin roles) can be handed to a service"


def _write_star(st, actions, resources):
    if not _star_resource(resources) or st.get("Condition"):
        return None
    for a in actions:
        verb = a.split(":", 1)[-1]
        if verb == "*" or any(verb.startswith(v) for v in _WRITE_VERBS):
            if not any(fnmatch.fnmatch(a, u) for u in _UNSCOPABLE):
                return f"write action {a} on Resource '*' without a condition"


_ADMIN_ARNS = (":policy/AdministratorAccess",)
_IAMFULL_ARNS = (":policy/IAMFullAccess",)


def _attached(suffixes, what):
    @with_type
    def check(props, cfg, rtype):
        arns = [str(known(props, "policyArn", ""))] if rtype in (ATTACH, POLICY_ATTACH) else \
            [str(a) for a in as_list(get(props, "managedPolicyArns"))]
        for arn in arns:
            if arn.endswith(suffixes):
                yield f"{arn} grants {what}"
    return check


def _trust_specific(props, cfg):
    for st in statements(parse_json(get(props, "assumeRolePolicy"))):
        if st.get("Effect") != "Allow":
            continue
        p = st.get("Principal")
        aws = as_list(p.get("AWS")) if isinstance(p, dict) else []
        if p == "*" or "*" in [str(x) for x in aws]:
            yield "the trust policy lets any AWS principal ('*') assume the role"
        elif any(str(x).endswith(":root") or str(x).isdigit() for x in aws) and not st.get("Condition"):
            yield "the trust policy trusts a whole account (':root') without conditions: name the roles"


def _trust_services(props, cfg):
    for st in statements(parse_json(get(props, "assumeRolePolicy"))):
        p = st.get("Principal")
        if st.get("Effect") == "Allow" and isinstance(p, dict) and "*" in [str(s) for s in as_list(p.get("Service"))]:
            yield "the trust policy lets every AWS service assume the role"


def _policy_conflicts(stack, cfg):
    standalone = stack.of_type(ROLE_POLICY, ATTACH)
    for role in stack.of_type(ROLE):
        managed = [k for k in ("inlinePolicies", "managedPolicyArns") if safe(role.props, k) is not None]
        if not managed:
            continue
        ids = identities(role) | refs(role, "name")
        if stack.has_dependencies:
            mine = linked(stack, role, set(), (ROLE_POLICY, ATTACH))
        else:
            mine = [r for r in standalone if refs(r, "role") & ids] if ids else linked(stack, role, set(), (ROLE_POLICY, ATTACH))
        kinds = {"inlinePolicies": ROLE_POLICY, "managedPolicyArns": ATTACH}
        clash = [r for r in mine if any(kinds[k] == r.resource_type for k in managed)]
        if clash:
            yield role, (f"the role declares {'/'.join(managed)} and {len(clash)} standalone policy resource(s) "
                         "manage the same thing: each update removes the other's policies")


def _doc(id_, name, desc, sev, refs_, judge, remediation):
    return Rule(id=id_, name=name, description=desc, severity=sev, enforcement="mandatory",
                resource_types=DOC_TYPES, references=refs_, remediation=remediation, check=_doc_rule(judge))


RULES = [
    _doc("iam-no-admin-policy", "No full-admin policy", "No policy allows Action '*' on Resource '*'.", "critical",
         ("A75",), _admin, "List the actions and resources the role needs."),
    _doc("iam-no-wildcard-action", "No wildcard actions", "No policy allows '*' or '<service>:*'.", "high",
         ("A76",), _wildcard_action, "Replace service:* with the specific actions."),
    _doc("iam-no-wildcard-resource", "No unscoped resources",
         "Actions that support resource-level permissions are not granted on Resource '*' without a condition.",
         "high", ("A77",), _unscoped_resource, "Scope Resource to the ARNs (or add a tag/resource condition)."),
    _doc("iam-no-privilege-escalation", "No privilege escalation",
         "No policy grants unconstrained actions that let a principal raise its own privileges.", "critical",
         ("A78",), _on_star(_ESCALATION, "privilege escalation"), "Scope these IAM actions to specific ARNs, or drop them."),
    _doc("iam-no-credentials-exposure", "No credentials exposure",
         "No policy grants unconstrained actions that mint or reveal credentials.", "high",
         ("A79",), _on_star(_CREDENTIALS, "credentials exposure"), "Scope to specific ARNs."),
    _doc("iam-no-data-exfiltration", "No data exfiltration",
         "No policy grants unconstrained reads of secrets, parameters, objects or decryption.", "high",
         ("A80",), _on_star(_EXFILTRATION, "reading every secret/object in the account"),
         "Scope GetSecretValue/GetParameter/Decrypt to the project's secrets, parameters and keys."),
    _doc("iam-no-permissions-management", "No unconstrained permissions management",
         "No policy grants unconstrained changes to IAM policies or resource policies.", "critical",
         ("A81",), _on_star(_PERMISSIONS, "rewriting permissions"), "Scope to specific ARNs."),
    _doc("iam-no-unconstrained-write", "No unconstrained write",
         "No policy grants write actions on Resource '*' without a condition.", "high",
         ("A82",), _write_star, "Scope writes to the project's resources or add tag conditions."),
    _doc("iam-no-iam-star", "No iam:*", "No policy allows iam:*.", "critical", ("A83",), _iam_star,
         "List the IAM actions needed (usually none)."),
    _doc("iam-passrole-scoped", "iam:PassRole scoped", "iam:PassRole is never granted on Resource '*'.", "high",
         ("A84",), _passrole, "Resource: the ARNs of the roles that may be passed, plus an iam:PassedToService condition."),
    Rule(id="iam-no-administrator-access", name="No AdministratorAccess",
         description="No role has the AdministratorAccess managed policy.", severity="critical", enforcement="mandatory",
         resource_types=(ROLE, ATTACH, POLICY_ATTACH), references=("A85",),
         remediation="Attach a least-privilege policy instead.", check=_attached(_ADMIN_ARNS, "full administrator access")),
    Rule(id="iam-no-iam-full-access", name="No IAMFullAccess",
         description="No role has the IAMFullAccess managed policy.", severity="critical", enforcement="mandatory",
         resource_types=(ROLE, ATTACH, POLICY_ATTACH), references=("A86",),
         remediation="Attach a least-privilege policy instead.", check=_attached(_IAMFULL_ARNS, "full IAM control")),
    Rule(id="iam-trust-specific-principals", name="Trust names specific principals",
         description="Trust policies never allow '*' and never a whole account without conditions.", severity="critical",
         enforcement="mandatory", resource_types=(ROLE,), references=("A87",),
         remediation="Trust the specific service, role ARN or OIDC provider, with conditions.", check=_trust_specific),
    Rule(id="iam-trust-not-all-services", name="Trust not every service",
         description="Trust policies never allow Service '*'.", severity="high", enforcement="mandatory",
         resource_types=(ROLE,), references=("A88",), remediation="Name the service principal.", check=_trust_services),
    Rule(id="iam-role-no-policy-conflicts", name="No inline and standalone role policies",
         description="A role's policies are declared either on the role (inline_policies/managed_policy_arns) or as "
                     "RolePolicy/RolePolicyAttachment resources, never both.", severity="medium",
         enforcement="mandatory", resource_types=(ROLE, ROLE_POLICY, ATTACH), stack=True, references=("A89",),
         remediation="Use aws.iam.RolePolicy / RolePolicyAttachment only.", check=_policy_conflicts),
]
