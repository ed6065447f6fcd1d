"""Small helpers shared by the rule modules (property access, policy documents, CIDRs)."""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_MARKER = "[secret]"
WORLD = {"0.0.0.0/0", "::/0"}
#: Stands for a list element unknown during preview (an id or ARN of a resource not created yet).
UNKNOWN = "<unknown during preview>"


def get(props: Any, path: str, default: Any = None) -> Any:
    """``get(props, "vpcConfig.endpointPublicAccess")``: nested lookup, ``default`` when
    any step is missing or null. Unknown values still raise (as under preview)."""
    cur = props
    for key in path.split("."):
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
        if cur is None:
            return default
    return cur


def as_list(value: Any) -> list:
    """A value that may be one item or a list, as a list (None -> []). Elements unknown
    during preview (ids of resources not created yet) read as :data:`UNKNOWN`: a list of
    references is judged by its length and known members, as under ``pulumi preview``."""
    from pulumi_policy.proxy import UnknownValueError

    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)):
        return [value]
    if isinstance(value, Sequence):
        out = []
        for i in range(len(value)):
            try:
                out.append(value[i])
            except UnknownValueError:
                out.append(UNKNOWN)
        return out
    return [value]


def present(props: Any, path: str) -> bool:
    """Whether an input is set (non-empty); a value unknown during preview is set (it is the
    output of another resource, e.g. a key ARN)."""
    from pulumi_policy.proxy import UnknownValueError

    cur = props
    for key in path.split("."):
        try:
            # ``in`` on a proxy reads the value, so it raises for an unknown one too.
            if not isinstance(cur, Mapping) or key not in cur:
                return False
            cur = cur[key]
        except UnknownValueError:
            return True
        if cur is None:
            return False
    return cur not in ("", [], {}) and not (isinstance(cur, Sequence) and not isinstance(cur, str) and len(cur) == 0)


def known(props: Any, path: str, default: Any = None) -> Any:
    """``get`` that reads a value unknown during preview as :data:`UNKNOWN`."""
    from pulumi_policy.proxy import UnknownValueError

    try:
        return get(props, path, default)
    except UnknownValueError:
        return UNKNOWN


def parse_json(value: Any) -> Any:
    """A JSON document given as text (how IAM/KMS/SNS/ECR policies are recorded) or as a
    structure; None when absent, the marker string when it cannot be parsed."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def statements(doc: Any) -> list[Mapping]:
    """The statements of a policy document (a single statement object is allowed)."""
    if not isinstance(doc, Mapping):
        return []
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, Mapping)]


def principals(stmt: Mapping) -> list[str]:
    """All principal values of a statement; ``"*"`` for ``Principal: "*"``."""
    p = stmt.get("Principal")
    if p is None:
        return []
    if isinstance(p, str):
        return [p]
    out: list[str] = []
    if isinstance(p, Mapping):
        for v in p.values():
            out.extend(str(x) for x in as_list(v))
    return out


def is_world(cidr: Any) -> bool:
    """True for a CIDR that means 'anywhere' (0.0.0.0/0, ::/0)."""
    return isinstance(cidr, str) and cidr.strip() in WORLD


def covers_port(from_port: Any, to_port: Any, protocol: Any, port: int) -> bool:
    """Whether a rule's port range / protocol admits ``port`` over TCP."""
    if str(protocol) in ("-1", "all"):
        return True
    if str(protocol).lower() not in ("tcp", "6"):
        return False
    try:
        return int(from_port) <= port <= int(to_port)
    except (TypeError, ValueError):
        return False


def is_private_cidr(cidr: Any) -> bool:
    """True for an RFC 1918 / ULA network."""
    try:
        return ipaddress.ip_network(str(cidr), strict=False).is_private
    except ValueError:
        return False


def is_secret(value: Any) -> bool:
    """A value that reached the policy as a secret (the redaction marker or a
    pulumi_policy ``Secret``)."""
    return value == SECRET_MARKER or type(value).__name__ == "Secret"


def safe(props: Any, path: str, default: Any = None) -> Any:
    """``get`` for stack rules: a value unknown during preview reads as ``default``
    (a stack rule judges what is known instead of giving up on the whole stack)."""
    from pulumi_policy.proxy import UnknownValueError

    try:
        return get(props, path, default)
    except UnknownValueError:
        return default


def identities(r: Any) -> set[str]:
    """Strings other resources use to reference ``r``: its id, ARN and name-like outputs
    (present when the plan records outputs, or after ``pulumi up``)."""
    out = set()
    for key in ("id", "arn", "name", "identifier", "replicationGroupId", "keyId"):
        v = safe(r.props, key)
        if isinstance(v, str) and v:
            out.add(v)
    return out


def refs(r: Any, *paths: str) -> set[str]:
    """The string values (one or a list) at the given input paths of ``r``."""
    out: set[str] = set()
    for path in paths:
        for v in as_list(safe(r.props, path)):
            if isinstance(v, str) and v and v != UNKNOWN:
                out.add(v)
    return out


def linked(stack: Any, r: Any, wanted: set[str], types: tuple[str, ...]) -> list:
    """Resources of ``types`` tied to ``r``: through dependencies when the stack has them
    (one depends on the other), else those whose id/ARN/name ``wanted`` references; when
    no resource of those types can be identified (a plan without outputs or
    dependencies), the ones declared in the same component as ``r``."""
    candidates = stack.of_type(*types)
    if stack.has_dependencies:
        return [c for c in candidates
                if any(d is r for d in c.dependencies) or any(d is c for d in r.dependencies)]
    by_id = [c for c in candidates if identities(c) & wanted] if wanted else []
    if by_id or any(safe(c.props, "id") for c in candidates):
        return by_id
    parent = r.parent.urn if r.parent is not None else r.opts.parent
    return [c for c in candidates
            if parent and (c.parent.urn if c.parent is not None else c.opts.parent) == parent]


def tags_of(props: Any) -> dict:
    """The resource's tags (``tags`` input) as a plain dict."""
    t = safe(props, "tags") or {}
    return {k: safe(t, k) for k in t} if isinstance(t, Mapping) else {}


def truthy(value: Any) -> bool:
    """Launch templates record booleans as strings ("true"); accept both."""
    return value is True or (isinstance(value, str) and value.lower() == "true")
