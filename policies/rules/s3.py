"""S3 (the model store and its access-log bucket): versioning, encryption, public access,
TLS, access logging, lifecycle, events, ACLs, bucket policy.

pulumi-aws 7 configures a bucket through separate resources (``BucketVersioning``,
``BucketServerSideEncryptionConfiguration``, ...) whose ``bucket`` input is the bucket's
id (its name). Each rule here is a stack rule: it ties those resources to their bucket
through dependencies when the stack has them, else by the bucket name/id they
reference, else (a plan without either) by the component they were declared in.
"""
from __future__ import annotations

from collections.abc import Iterable

from ..model import Rule
from ._util import as_list, identities, parse_json, principals, refs, safe, statements, truthy

BUCKET = "aws:s3/bucket:Bucket"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
VERSIONING_V2 = "aws:s3/bucketVersioningV2:BucketVersioningV2"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
SSE_V2 = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
LOGGING_V2 = "aws:s3/bucketLoggingV2:BucketLoggingV2"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
LIFECYCLE_V2 = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"
NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ACL = "aws:s3/bucketAcl:BucketAcl"
ACL_V2 = "aws:s3/bucketAclV2:BucketAclV2"

_PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
_PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
_SCOPING = ("aws:SourceAccount", "aws:SourceArn", "aws:PrincipalAccount", "aws:PrincipalOrgID", "aws:PrincipalArn",
            "aws:SourceVpce", "aws:SourceVpc")


def _names(bucket) -> set[str]:
    """What a bucket's satellite resources reference it by: its name, id and ARN."""
    out = set(identities(bucket))
    name = safe(bucket.props, "bucket")
    if isinstance(name, str) and name:
        out.add(name)
    return out


def _parent(r) -> str | None:
    return r.parent.urn if r.parent is not None else r.opts.parent


def _attached(stack, bucket, *types: str, path: str = "bucket") -> list:
    """Resources of ``types`` that configure ``bucket`` (see the module docstring)."""
    candidates = stack.of_type(*types)
    if stack.has_dependencies:
        return [c for c in candidates if any(d is bucket for d in c.dependencies)]
    names = _names(bucket)
    all_names = set().union(*(_names(b) for b in stack.of_type(BUCKET))) if stack.of_type(BUCKET) else set()
    if any(refs(c, path) & all_names for c in candidates):
        return [c for c in candidates if refs(c, path) & names]
    parent = _parent(bucket)
    return [c for c in candidates if parent and _parent(c) == parent]


#: Services that deliver logs to a bucket and accept only SSE-S3 there (S3 server access
#: logs; ALB/CLB access logs, which also arrive from the region's ELB account).
_SSE_S3_ONLY_DELIVERY = {"logging.s3.amazonaws.com", "logdelivery.elasticloadbalancing.amazonaws.com"}


def _is_log_delivery(stack, bucket) -> bool:
    for doc in _policies(stack, bucket):
        for st in statements(doc):
            p = st.get("Principal")
            services = set(as_list(p.get("Service"))) if hasattr(p, "get") else set()
            if st.get("Effect") == "Allow" and services & _SSE_S3_ONLY_DELIVERY:
                return True
    return False


def _log_targets(stack) -> list:
    """Buckets that receive S3 server access logs or load-balancer access logs: those services
    deliver only to SSE-S3 buckets, and logging or notifying on a log bucket only adds noise."""
    out = []
    for bucket in stack.of_type(BUCKET):
        names = _names(bucket)
        if any(names & refs(lg, "targetBucket") for lg in stack.of_type(LOGGING, LOGGING_V2)) \
                or _is_log_delivery(stack, bucket):
            out.append(bucket)
    return out


def _versioning(stack, cfg) -> Iterable:
    for bucket in stack.of_type(BUCKET):
        inline = safe(bucket.props, "versioning.enabled")
        status = [safe(v.props, "versioningConfiguration.status") for v in _attached(stack, bucket, VERSIONING, VERSIONING_V2)]
        if not truthy(inline) and "Enabled" not in status:
            yield bucket, "no BucketVersioning with status Enabled: an overwritten or deleted model cannot be recovered"


def _sse_rules(stack, bucket) -> list:
    rules = []
    for sse in _attached(stack, bucket, SSE, SSE_V2):
        rules += [r for r in as_list(safe(sse.props, "rules")) if hasattr(r, "get")]
    return rules


def _algorithms(stack, bucket) -> list[tuple[str, object]]:
    out = []
    for r in _sse_rules(stack, bucket):
        default = safe(r, "applyServerSideEncryptionByDefault") or {}
        out.append((safe(default, "sseAlgorithm"), safe(default, "kmsMasterKeyId")))
    return out


def _encrypted(stack, cfg) -> Iterable:
    for bucket in stack.of_type(BUCKET):
        algos = [a for a, _ in _algorithms(stack, bucket)]
        if not any(a in ("aws:kms", "aws:kms:dsse", "AES256") for a in algos):
            yield bucket, "no BucketServerSideEncryptionConfiguration with a default encryption algorithm"


def _cmk(stack, cfg) -> Iterable:
    targets = {id(b) for b in _log_targets(stack)}
    for bucket in stack.of_type(BUCKET):
        if id(bucket) in targets:
            continue  # server access logging delivers to SSE-S3 buckets only
        algos = _algorithms(stack, bucket)
        ok = [k for a, k in algos if a in ("aws:kms", "aws:kms:dsse") and k and not str(k).endswith("alias/aws/s3")]
        if not ok:
            yield bucket, ("objects are not encrypted with a customer-managed KMS key (sseAlgorithm aws:kms and "
                           "kmsMasterKeyId = our key; alias/aws/s3 is not ours to control)")


def _public_access_block(stack, cfg) -> Iterable:
    for bucket in stack.of_type(BUCKET):
        blocks = _attached(stack, bucket, PAB)
        if not blocks:
            yield bucket, "no BucketPublicAccessBlock: an ACL or policy could make the bucket public"
            continue
        for pab in blocks:
            off = [f for f in _PAB_FLAGS if not truthy(safe(pab.props, f))]
            if off:
                yield bucket, f"the public access block leaves {', '.join(off)} off"


def _denies_plain(doc) -> bool:
    for st in statements(doc):
        if st.get("Effect") != "Deny" or "*" not in principals(st):
            continue
        for op, body in (st.get("Condition") or {}).items():
            if op.startswith("Bool") and hasattr(body, "get") and str(body.get("aws:SecureTransport", "")).lower() == "false":
                actions = [str(a).lower() for a in as_list(st.get("Action"))]
                if any(a in ("s3:*", "*") for a in actions):
                    return True
    return False


def _policies(stack, bucket) -> list:
    return [parse_json(safe(p.props, "policy")) for p in _attached(stack, bucket, POLICY)]


def _tls_only(stack, cfg) -> Iterable:
    for bucket in stack.of_type(BUCKET):
        if not any(_denies_plain(d) for d in _policies(stack, bucket)):
            yield bucket, "no bucket policy denies s3:* when aws:SecureTransport is false"


def _access_logging(stack, cfg) -> Iterable:
    targets = {id(b) for b in _log_targets(stack)}
    for bucket in stack.of_type(BUCKET):
        if id(bucket) in targets:
            continue  # the log bucket itself: logging it into itself would loop
        if not safe(bucket.props, "logging") and not _attached(stack, bucket, LOGGING, LOGGING_V2):
            yield bucket, "no BucketLogging: reads and writes of model artifacts leave no access record"


def _lifecycle(stack, cfg) -> Iterable:
    for bucket in stack.of_type(BUCKET):
        rules = []
        for lc in _attached(stack, bucket, LIFECYCLE, LIFECYCLE_V2):
            rules += [r for r in as_list(safe(lc.props, "rules")) if hasattr(r, "get")]
        enabled = [r for r in rules if safe(r, "status") == "Enabled"]
        if not enabled:
            yield bucket, "no BucketLifecycleConfiguration with an Enabled rule"
        elif not any(safe(r, "noncurrentVersionExpiration.noncurrentDays") for r in enabled):
            yield bucket, "no lifecycle rule expires noncurrent versions: a versioned bucket grows forever"


def _events(stack, cfg) -> Iterable:
    targets = {id(b) for b in _log_targets(stack)}
    for bucket in stack.of_type(BUCKET):
        if id(bucket) in targets:
            continue  # log delivery writes constantly: events there are noise
        notes = _attached(stack, bucket, NOTIFICATION)
        if not any(truthy(safe(n.props, "eventbridge")) or safe(n.props, "topics") or safe(n.props, "queues")
                   or safe(n.props, "lambdaFunctions") for n in notes):
            yield bucket, "no BucketNotification (EventBridge, SNS, SQS or Lambda): object changes go unnoticed"


def _acls_disabled(stack, cfg) -> Iterable:
    for bucket in stack.of_type(BUCKET):
        owners = [safe(o.props, "rule.objectOwnership") for o in _attached(stack, bucket, OWNERSHIP)]
        if "BucketOwnerEnforced" not in owners:
            yield bucket, "no BucketOwnershipControls with BucketOwnerEnforced: ACLs still decide access"
        if safe(bucket.props, "acl") in _PUBLIC_ACLS:
            yield bucket, f"acl {safe(bucket.props, 'acl')} makes the bucket readable by others"
        for acl in _attached(stack, bucket, ACL, ACL_V2):
            yield bucket, f"a BucketAcl ({acl.name}) grants access through ACLs; use the bucket policy"


def _scoped(st) -> bool:
    cond = st.get("Condition") or {}
    return any(k in _SCOPING for op in cond.values() if hasattr(op, "keys") for k in op.keys())


def _policy_not_public(props, cfg) -> Iterable[str]:
    for st in statements(parse_json(safe(props, "policy"))):
        if st.get("Effect") == "Allow" and "*" in principals(st) and not _scoped(st):
            yield "the bucket policy allows Principal '*' without an account, ARN or VPC condition"


_SEE = "See components/model_store.py."
RULES = [
    Rule(id="s3-versioning", name="S3 versioning", description="Every bucket has versioning enabled.", severity="medium",
         enforcement="mandatory", resource_types=(BUCKET, VERSIONING), stack=True, references=("A108",),
         remediation=f"aws.s3.BucketVersioning(bucket=..., versioning_configuration={{'status': 'Enabled'}}). {_SEE}",
         check=_versioning),
    Rule(id="s3-encrypted", name="S3 default encryption", description="Every bucket encrypts objects by default.",
         severity="high", enforcement="mandatory", resource_types=(BUCKET, SSE), stack=True, references=("A109",),
         remediation="aws.s3.BucketServerSideEncryptionConfiguration with apply_server_side_encryption_by_default.",
         check=_encrypted),
    Rule(id="s3-cmk", name="S3 uses the CMK",
         description="Buckets encrypt with a customer-managed KMS key (except log-delivery buckets: S3 server access "
                     "logs and load-balancer access logs are delivered only to SSE-S3 buckets).", severity="medium", enforcement="mandatory",
         resource_types=(BUCKET, SSE), stack=True, references=("A110",),
         remediation="sse_algorithm='aws:kms', kms_master_key_id=<models key ARN>, bucket_key_enabled=True.", check=_cmk),
    Rule(id="s3-public-access-block", name="S3 public access blocked",
         description="Every bucket has a public access block with all four settings on.", severity="critical",
         enforcement="mandatory", resource_types=(BUCKET, PAB), stack=True, references=("A111",),
         remediation="aws.s3.BucketPublicAccessBlock with block_public_acls, block_public_policy, ignore_public_acls and "
                     "restrict_public_buckets all True.", check=_public_access_block),
    Rule(id="s3-tls-only", name="S3 over TLS only",
         description="Every bucket's policy denies s3:* when aws:SecureTransport is false.", severity="medium",
         enforcement="mandatory", resource_types=(BUCKET, POLICY), stack=True, references=("A112",),
         remediation="aws.s3.BucketPolicy with a Deny statement: Principal *, Action s3:*, Condition Bool "
                     "aws:SecureTransport false.", check=_tls_only),
    Rule(id="s3-access-logging", name="S3 access logging",
         description="Every bucket except log-delivery buckets (S3 or load-balancer access logs) logs its requests.", severity="medium",
         enforcement="mandatory", resource_types=(BUCKET, LOGGING), stack=True, references=("A113",),
         remediation="aws.s3.BucketLogging(bucket=..., target_bucket=<log bucket>).", check=_access_logging),
    Rule(id="s3-lifecycle", name="S3 lifecycle",
         description="Every bucket has an enabled lifecycle rule that expires noncurrent versions.", severity="low",
         enforcement="mandatory", resource_types=(BUCKET, LIFECYCLE), stack=True, references=("A114",),
         remediation="aws.s3.BucketLifecycleConfiguration with noncurrent_version_expiration.", check=_lifecycle),
    Rule(id="s3-event-notifications", name="S3 event notifications",
         description="Every bucket except log-delivery buckets sends object events somewhere (EventBridge, SNS, SQS or Lambda).", severity="low",
         enforcement="mandatory", resource_types=(BUCKET, NOTIFICATION), stack=True, references=("A115",),
         remediation="aws.s3.BucketNotification(bucket=..., eventbridge=True).", check=_events),
    Rule(id="s3-acls-disabled", name="S3 ACLs disabled",
         description="Buckets enforce bucket-owner ownership (ACLs off) and grant nothing through ACLs.",
         severity="high", enforcement="mandatory", resource_types=(BUCKET, OWNERSHIP, ACL), stack=True,
         references=("A116",),
         remediation="aws.s3.BucketOwnershipControls(rule={'object_ownership': 'BucketOwnerEnforced'}); no BucketAcl.",
         check=_acls_disabled),
    Rule(id="s3-policy-not-public", name="S3 policy not public",
         description="Bucket policies never allow '*' without an account, ARN or VPC condition.", severity="critical",
         enforcement="mandatory", resource_types=(POLICY,), references=("A117",),
         remediation="Name the reader and writer roles as principals (or condition on aws:PrincipalArn).",
         check=_policy_not_public),
]
