"""The load balancer rules (catalogue rows A94-A102 'V', X17, X21), enforced on the Ingress.

The ALB is not a Pulumi resource here: the AWS Load Balancer Controller builds it from
the Ingress's ``alb.ingress.kubernetes.io/*`` annotations. So the ALB rules read those
annotations, with the controller's defaults for absent ones (scheme ``internal``,
listener ``HTTP:80`` without a certificate, SSL policy ``ELBSecurityPolicy-2016-08``
which still accepts TLS 1.0). An ARN annotation that is unknown during preview (a
certificate or WAF ACL created in the same stack) counts as set.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import Param, Rule
from .k8s_objects import INGRESS, UNKNOWN, as_list, as_map, get, is_map, peek

PREFIX = "alb.ingress.kubernetes.io/"
#: The backend port name by which an Ingress path names an ALB action
#: (``alb.ingress.kubernetes.io/actions.<backend service name>``) instead of a Service.
ACTION_PORT = "use-annotation"
ALB_CLASSES = {"alb"}
#: ELB security policies that refuse TLS 1.0 and 1.1 (TLS 1.3 ones, the TLS-1-2 and
#: forward-secrecy FS-1-2 families, FIPS and post-quantum variants).
TLS12_POLICY = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]-.+|TLS-1-2-.+|FS-1-2-.+)$")


def alb_annotations(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Ingress's annotations when the AWS Load Balancer Controller serves it (class
    ``alb``, or no class: the cluster's default class is the ALB one), else None."""
    annotations = as_map(get(props, "metadata", "annotations"))
    cls = peek(props, "spec", "ingressClassName") or peek(annotations, "kubernetes.io/ingress.class")
    if cls is not None and cls is not UNKNOWN and cls not in ALB_CLASSES:
        return None
    return annotations


def _value(annotations: Mapping[str, Any], name: str) -> Any:
    """An annotation's value; unknown during preview raises (the rule cannot run then)."""
    value = get(annotations, PREFIX + name)
    return value.strip() if isinstance(value, str) else value


def _arn(annotations: Mapping[str, Any], name: str) -> Any:
    """An ARN annotation; :data:`UNKNOWN` when it comes from a resource created in the same
    stack (an ACM certificate, a WAF ACL), which counts as set."""
    value = peek(annotations, PREFIX + name)
    return value.strip() if isinstance(value, str) else value


def listen_ports(annotations: Mapping[str, Any]) -> list[tuple[str, int]] | str:
    """(protocol, port) listeners, or an error message when the annotation is malformed.
    Absent means the controller's default: HTTPS:443 with a certificate, else HTTP:80."""
    raw = _value(annotations, "listen-ports")
    if raw is None:
        return [("HTTPS", 443)] if _arn(annotations, "certificate-arn") else [("HTTP", 80)]
    try:
        parsed = json.loads(raw)
        out = [(str(proto).upper(), int(port)) for item in parsed for proto, port in item.items()]
    except (TypeError, ValueError, AttributeError):
        return f"annotation {PREFIX}listen-ports is not a JSON list like [{{\"HTTPS\": 443}}]: {raw!r}"
    return out


def lb_attributes(annotations: Mapping[str, Any]) -> dict[str, str]:
    """``load-balancer-attributes`` ("k1=v1,k2=v2") as a dict."""
    raw = _value(annotations, "load-balancer-attributes")
    out: dict[str, str] = {}
    if isinstance(raw, str):
        for pair in raw.split(","):
            key, _, value = pair.partition("=")
            if key.strip():
                out[key.strip()] = value.strip()
    return out


def _alb_check(check):
    def run(props: Mapping[str, Any], cfg: Mapping[str, Any]) -> Iterator[str]:
        annotations = alb_annotations(props)
        if annotations is not None:
            yield from check(annotations, cfg)
    run.__doc__ = check.__doc__
    return run


def _https(a, cfg) -> Iterator[str]:
    ports = listen_ports(a)
    if isinstance(ports, str):
        yield ports
        return
    if not any(proto == "HTTPS" for proto, _ in ports):
        yield f"ALB has no HTTPS listener ({PREFIX}listen-ports: {_value(a, 'listen-ports') or 'default HTTP:80'})"
    cert = _arn(a, "certificate-arn")
    if cert is None or (cert is not UNKNOWN and not re.match(r"^arn:aws[a-z-]*:acm:", str(cert))):
        yield f"annotation {PREFIX}certificate-arn is {cert or 'unset'} (an ACM certificate ARN is required)"


def _redirect(a, cfg) -> Iterator[str]:
    ports = listen_ports(a)
    if isinstance(ports, str):
        return  # reported by the HTTPS rule
    http = [p for proto, p in ports if proto == "HTTP"]
    if not http:
        return
    target = _value(a, "ssl-redirect")
    https = {p for proto, p in ports if proto == "HTTPS"}
    if target is None:
        yield f"HTTP listener {http[0]} serves plain HTTP: set {PREFIX}ssl-redirect to the HTTPS port"
    elif not str(target).isdigit() or int(target) not in https:
        yield f"{PREFIX}ssl-redirect {target!r} is not one of the HTTPS listener ports {sorted(https)}"


def _tls_policy(a, cfg) -> Iterator[str]:
    policy = _value(a, "ssl-policy")
    if policy is None or not TLS12_POLICY.match(str(policy)):
        got = policy or "unset (controller default ELBSecurityPolicy-2016-08 accepts TLS 1.0)"
        yield f"{PREFIX}ssl-policy is {got}: use a TLS 1.2+ policy such as ELBSecurityPolicy-TLS13-1-2-2021-06"


def _attribute_check(key: str, allowed: set[str], why: str):
    def check(a, cfg) -> Iterator[str]:
        value = lb_attributes(a).get(key)
        if value not in allowed:
            yield (f"{PREFIX}load-balancer-attributes has {key}={value if value is not None else '(unset)'}; "
                   f"need {key}={'|'.join(sorted(allowed))} ({why})")
    return check


def _access_logs(a, cfg) -> Iterator[str]:
    attrs = lb_attributes(a)
    if attrs.get("access_logs.s3.enabled") != "true":
        yield f"{PREFIX}load-balancer-attributes does not set access_logs.s3.enabled=true"
    elif not attrs.get("access_logs.s3.bucket"):
        yield f"{PREFIX}load-balancer-attributes enables access logs without access_logs.s3.bucket"


def _scheme(a, cfg) -> Iterator[str]:
    if _value(a, "scheme") == "internet-facing":
        yield "ALB is internet-facing (set alb.ingress.kubernetes.io/scheme: internal unless the stack config asks for it)"


def _health_check(a, cfg) -> Iterator[str]:
    path = _value(a, "healthcheck-path")
    if not isinstance(path, str) or not path.startswith("/"):
        yield f"{PREFIX}healthcheck-path is {path or 'unset'} (point it at the service's readiness route)"


def _waf(a, cfg) -> Iterator[str]:
    if _value(a, "scheme") != "internet-facing":
        return
    acl = _arn(a, "wafv2-acl-arn")
    if acl is None or (acl is not UNKNOWN and not str(acl).startswith("arn:")):
        yield f"internet-facing ALB has no {PREFIX}wafv2-acl-arn (a WAFv2 web ACL must screen public traffic)"


# --------------------------------------------------------------------------- X21
# The controller turns each Ingress path into one ALB listener rule and numbers them in
# the order of spec.rules, then spec.defaultBackend as the listener's default action; the
# ALB applies the first rule that matches. Within one spec.rules entry, controllers before
# v2.4.3 keep the manifest's path order, and v2.4.3 and later sort the paths: Exact first,
# then Prefix longest first, then ImplementationSpecific in manifest order (upstream PR
# 2409; issue 3413 is a 404 rule that the upgrade moved behind "/*"). The rule asks that
# the admin routes be answered under both orders. Path types become ALB path patterns:
# Prefix "/p" -> "/p" and "/p/*" ("/" -> "/*"), Exact "/p" -> "/p", ImplementationSpecific
# -> the path as written, with * and ? wildcards.
_ORDERS = {
    "manifest": "in manifest order (controllers before v2.4.3)",
    "sorted": "in the controller's order since v2.4.3 (Exact, then Prefix longest first, then ImplementationSpecific)",
}
_TYPE_RANK = {"Exact": 0, "Prefix": 1}


@dataclass(frozen=True)
class _Route:
    """One ALB rule an Ingress path becomes: its host (None: any) and path, and where it sends."""

    host: str | None
    path: str | None  # None: the default backend, every path
    path_type: str
    backend: Mapping[str, Any]


def _routes(props: Mapping[str, Any], order: str) -> list[_Route]:
    """The ALB rules the Ingress becomes, in priority order (``order``: a key of _ORDERS)."""
    out: list[_Route] = []
    for rule in as_list(get(props, "spec", "rules")):
        host = get(rule, "host") or None
        routes = []
        for path in as_list(get(rule, "http", "paths")):
            backend = get(path, "backend", "service")
            routes.append(_Route(host, get(path, "path") or "/", get(path, "pathType") or "ImplementationSpecific",
                                 backend if is_map(backend) else {}))
        if order == "sorted":  # stable: equal keys keep the manifest's order
            routes.sort(key=lambda r: (_TYPE_RANK.get(r.path_type, 2),
                                       -len(r.path or "") if r.path_type == "Prefix" else 0))
        out += routes
    default = get(props, "spec", "defaultBackend", "service")
    if is_map(default):
        out.append(_Route(None, None, "Prefix", default))
    return out


def _action(annotations: Mapping[str, Any], route: _Route) -> Mapping[str, Any] | None:
    """The ALB action a path names (port ``use-annotation``), parsed; None for a Service."""
    if get(route.backend, "port", "name") != ACTION_PORT:
        return None
    raw = _value(annotations, f"actions.{get(route.backend, 'name')}")
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, Mapping) else {}


def _segment_related(a: str, b: str) -> bool:
    """Whether one of two normalised paths is the other or an ancestor of it by segments."""
    return a == b or a == "/" or b == "/" or b.startswith(a + "/") or a.startswith(b + "/")


def _reaches(route: _Route, prefix: str) -> bool:
    """Whether the route's ALB pattern matches ``prefix`` or some path under it."""
    if route.path is None:
        return True
    if route.path_type == "Prefix":
        return _segment_related(route.path.rstrip("/") or "/", prefix)
    wild = re.search(r"[*?]", route.path) if route.path_type == "ImplementationSpecific" else None
    if wild is None:  # an exact path
        return route.path == prefix or route.path.startswith(prefix + "/")
    literal = route.path[:wild.start()]  # what every match starts with
    return (prefix + "/").startswith(literal) or literal.startswith(prefix + "/")


def _covers_all(route: _Route, prefix: str) -> bool:
    """Whether the route's ALB pattern matches ``prefix`` and every path under it."""
    if route.path is None:
        return True
    if route.path_type == "Prefix":
        path = route.path.rstrip("/") or "/"
        return path == "/" or prefix == path or prefix.startswith(path + "/")
    if route.path_type == "ImplementationSpecific" and route.path.endswith("*") and not re.search(r"[*?]", route.path[:-1]):
        return prefix.startswith(route.path[:-1])
    return False


def _blocks(annotations: Mapping[str, Any], route: _Route, prefix: str) -> bool:
    """A fixed 4xx answer for everything under ``prefix``, with no extra condition narrowing it."""
    action = _action(annotations, route)
    if not action or action.get("type") != "fixed-response" or not _covers_all(route, prefix):
        return False
    status = str(as_map(action.get("fixedResponseConfig")).get("statusCode", ""))
    narrowed = _value(annotations, f"conditions.{get(route.backend, 'name')}") is not None
    return re.fullmatch(r"4\d\d", status) is not None and not narrowed


def _forwards(annotations: Mapping[str, Any], route: _Route) -> bool:
    """Whether the route sends requests on (to a Service or a forward action), not answers them."""
    action = _action(annotations, route)
    return action is None or action.get("type") not in ("fixed-response", "redirect")


def _admin_paths(props: Mapping[str, Any], cfg: Mapping[str, Any]) -> Iterator[str]:
    annotations = alb_annotations(props)
    if annotations is None:
        return
    found: dict[tuple[str, str], list[str]] = {}  # (where, prefix) -> the orders exposing it
    names: dict[tuple[str, str], str] = {}
    for order in _ORDERS:
        blocked: list[tuple[str | None, str]] = []  # (host or None for every host, prefix)
        for route in _routes(props, order):
            for prefix in cfg["adminPathPrefixes"]:
                if _blocks(annotations, route, prefix):
                    blocked.append((route.host, prefix))
                elif _forwards(annotations, route) and _reaches(route, prefix) and not any(
                        p == prefix and (h is None or h == route.host) for h, p in blocked):
                    where = "the default backend" if route.path is None else (
                        f"path {route.path} ({route.path_type}){' on ' + route.host if route.host else ''}")
                    found.setdefault((where, prefix), []).append(order)
                    names[(where, prefix)] = get(route.backend, "name")
    for (where, prefix), orders in found.items():
        when = "" if len(orders) == len(_ORDERS) else f" {_ORDERS[orders[0]]}"
        yield (f"{where} forwards {prefix} to {names[(where, prefix)]!r} with no earlier rule answering {prefix} "
               f"with a 4xx{when}: put a Prefix path {prefix} before it in the same rule, backend "
               f"{{service: {{name: <action>, port: {{name: {ACTION_PORT}}}}}}}, and annotation "
               f"{PREFIX}actions.<action> of type fixed-response")


_SNIPPET = re.compile(r"^nginx\.ingress\.kubernetes\.io/[a-z-]*snippet$")


def _nginx_snippets(props: Mapping[str, Any], cfg) -> Iterator[str]:
    for key in as_map(get(props, "metadata", "annotations")):
        if _SNIPPET.match(str(key)):
            yield f"annotation {key} injects raw nginx configuration (CVE-2021-25742: reads the controller's secrets)"


def _rule(id: str, name: str, refs: tuple[str, ...], severity: str, description: str, remediation: str,
          check, **kw: Any) -> Rule:
    return Rule(id=id, name=name, description=description, severity=severity,
                enforcement=kw.pop("enforcement", "mandatory"), resource_types=(INGRESS,),
                references=(*refs, "X17"), remediation=remediation, check=_alb_check(check), **kw)


RULES: list[Rule] = [
    _rule("k8s-alb-https-listener", "ALB serves HTTPS with an ACM certificate", ("A94",), "high",
          "The Ingress's ALB has an HTTPS listener with an ACM certificate.",
          "Annotate listen-ports '[{\"HTTP\": 80}, {\"HTTPS\": 443}]' and certificate-arn with the "
          "certificate from the stack config.", _https),
    _rule("k8s-alb-http-redirect", "ALB redirects HTTP to HTTPS", ("A95",), "high",
          "Every plain-HTTP listener of the ALB only redirects to HTTPS.",
          "Annotate ssl-redirect: '443'.", _redirect),
    _rule("k8s-alb-tls12-policy", "ALB TLS 1.2+ policy", ("A96",), "high",
          "The ALB's HTTPS listeners use a TLS 1.2+ security policy (the controller default still accepts TLS 1.0).",
          "Annotate ssl-policy: ELBSecurityPolicy-TLS13-1-2-2021-06.", _tls_policy),
    _rule("k8s-alb-drop-invalid-headers", "ALB drops invalid headers", ("A97",), "medium",
          "The ALB drops HTTP headers with invalid names (request smuggling defence).",
          "Add routing.http.drop_invalid_header_fields.enabled=true to load-balancer-attributes.",
          _attribute_check("routing.http.drop_invalid_header_fields.enabled", {"true"}, "request smuggling")),
    _rule("k8s-alb-access-logs", "ALB access logs", ("A98",), "medium",
          "The ALB writes access logs to S3 (PCI DSS 10.2.1: audit logs on all components).",
          "Add access_logs.s3.enabled=true,access_logs.s3.bucket=<bucket> to load-balancer-attributes.",
          _access_logs),
    _rule("k8s-alb-deletion-protection", "ALB deletion protection", ("A99",), "medium",
          "The ALB has deletion protection, so deleting the Ingress by mistake cannot drop all traffic.",
          "Add deletion_protection.enabled=true to load-balancer-attributes.",
          _attribute_check("deletion_protection.enabled", {"true"}, "an accidental delete drops the entry point")),
    _rule("k8s-alb-internal-scheme", "ALB internal", ("A100",), "medium",
          "The ALB is internal (reachable only from the VPC and its peers).",
          "Annotate scheme: internal, or keep internet-facing deliberately with a WAF ACL.", _scheme,
          enforcement="advisory",
          advisory_reason="the stack config may publish the scoring API to payment systems outside the "
                          "VPC; then the WAF rule (mandatory) and the TLS rules protect it, and CI lists the "
                          "exposure so it stays a visible decision."),
    _rule("k8s-alb-desync-mitigation", "ALB desync mitigation", ("A101",), "medium",
          "The ALB's HTTP desync mitigation mode is defensive or strictest, set explicitly.",
          "Add routing.http.desync_mitigation_mode=defensive to load-balancer-attributes.",
          _attribute_check("routing.http.desync_mitigation_mode", {"defensive", "strictest"},
                           "HTTP desync attacks")),
    _rule("k8s-alb-health-check", "ALB target health check", ("A102",), "medium",
          "The ALB's target group health check probes the service's readiness route.",
          "Annotate healthcheck-path with the readiness route (e.g. /health/ready).", _health_check),
    _rule("k8s-alb-waf-when-internet-facing", "WAF on an internet-facing ALB", ("A103",), "high",
          "An internet-facing ALB is associated with a WAFv2 web ACL.",
          "Annotate wafv2-acl-arn with the stack's web ACL ARN.", _waf),
    Rule(id="k8s-ingress-admin-blocked", name="Admin routes not behind the load balancer", severity="high",
         enforcement="mandatory",
         description="An ALB Ingress answers the service's admin routes (adminPathPrefixes, default /admin) "
                     "with a fixed 4xx before any rule could forward them, in manifest order and in the "
                     "controller's path order (v2.4.3+); operators reach them with kubectl port-forward.",
         resource_types=(INGRESS,), references=("X21",),
         remediation="Put a Prefix path /admin first in the Ingress rule, with backend service name <action> and "
                     "port name use-annotation, and annotate alb.ingress.kubernetes.io/actions.<action> with "
                     '{"type":"fixed-response","fixedResponseConfig":{"statusCode":"404",...}}.',
         params=(Param("adminPathPrefixes", "array", ["/admin"],
                       "path prefixes of operator routes that no Ingress may forward"),),
         check=_admin_paths),
    Rule(id="k8s-no-nginx-snippets", name="No nginx snippet annotations", severity="high", enforcement="mandatory",
         description="No Ingress carries ingress-nginx *-snippet annotations (conditional row: guards an "
                     "ingress-nginx controller if one is ever added; the ALB controller ignores them).",
         resource_types=(INGRESS,), references=("K58",),
         remediation="Remove the snippet annotation; express the behaviour with the controller's typed annotations.",
         check=_nginx_snippets),
]
