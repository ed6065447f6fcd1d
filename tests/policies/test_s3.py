"""S3 rules (the model store): each rule with violating and compliant cases, through the engine.

The compliant baseline is the model bucket plus its access-log bucket exactly as
``components/model_store.py`` declares them; each violating case breaks one thing.
"""
import json

import pytest

from tests.policies.helpers import Case, check_case, dep, res

B, VER, SSE, PAB, POL, LOG, LC, NOTE, OWN, ACL = (
    "aws:s3/bucket:Bucket", "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketNotification:BucketNotification", "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketAcl:BucketAcl")
MODELS, LOGS = "fraudstack-test-models-111122223333", "fraudstack-test-models-logs-111122223333"
KEY = "arn:aws:kms:eu-west-1:111122223333:key/models"
ROLE = "arn:aws:iam::111122223333:role/fraudstack-model-publisher"


def _deny_plain(bucket):
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def _policy(bucket, *extra):
    return json.dumps({"Version": "2012-10-17", "Statement": [_deny_plain(bucket), *extra]})


ALB_DELIVERY = {"Sid": "Alb", "Effect": "Allow", "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                "Action": "s3:PutObject", "Resource": "arn:aws:s3:::alb-logs-b/*"}
ALLOW_ROLE = {"Sid": "AllowRead", "Effect": "Allow", "Principal": {"AWS": [ROLE]}, "Action": "s3:GetObject",
              "Resource": f"arn:aws:s3:::{MODELS}/*"}


def bucket_set(bucket, prefix, *, kms=True, drop=(), **changes):
    """One bucket and its satellites, named ``<prefix>-<part>``; ``drop`` removes parts, ``changes`` replace inputs."""
    sse = ({"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}, "bucketKeyEnabled": True}
           if kms else {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}})
    parts = {
        "bucket": (B, {"bucket": bucket, "forceDestroy": False, "tags": {"Name": prefix}}),
        "versioning": (VER, {"bucket": bucket, "versioningConfiguration": {"status": "Enabled"}}),
        "encryption": (SSE, {"bucket": bucket, "rules": [sse]}),
        "public-access-block": (PAB, {"bucket": bucket, "blockPublicAcls": True, "blockPublicPolicy": True,
                                      "ignorePublicAcls": True, "restrictPublicBuckets": True}),
        "policy": (POL, {"bucket": bucket, "policy": _policy(bucket, ALLOW_ROLE)}),
        "lifecycle": (LC, {"bucket": bucket, "rules": [{"id": "old", "status": "Enabled", "filter": {"prefix": ""},
                                                        "noncurrentVersionExpiration": {"noncurrentDays": 90}}]}),
        "events": (NOTE, {"bucket": bucket, "eventbridge": True}),
        "ownership": (OWN, {"bucket": bucket, "rule": {"objectOwnership": "BucketOwnerEnforced"}}),
    }
    out = []
    for part, (rtype, inputs) in parts.items():
        if part in drop:
            continue
        inputs = {**inputs, **changes.get(part.replace("-", "_"), {})}
        out.append(res(rtype, prefix if part == "bucket" else f"{prefix}-{part}", **inputs))
    return out


def store(models=None, logs=None, logging=True):
    """The model bucket (SSE-KMS, logged) and the log bucket (SSE-S3, the logging target)."""
    resources = bucket_set(MODELS, "models", **(models or {})) + bucket_set(LOGS, "logs", kms=False, **(logs or {}))
    if logging:
        resources.append(res(LOG, "models-access-logging", bucket=MODELS, targetBucket=LOGS, targetPrefix="models/"))
    return resources


CASES = [
    Case("s3-versioning", store()),
    Case("s3-versioning", store(models={"drop": ("versioning",)}), ["models"], id="missing"),
    Case("s3-versioning", store(logs={"versioning": {"versioningConfiguration": {"status": "Suspended"}}}), ["logs"],
         id="suspended"),
    Case("s3-encrypted", store()),
    Case("s3-encrypted", store(logs={"drop": ("encryption",)}), ["logs"]),
    Case("s3-cmk", store(), id="log-target-may-use-sse-s3"),
    Case("s3-cmk", store(models={"kms": False}), ["models"], id="sse-s3"),
    Case("s3-cmk", store(models={"encryption": {"rules": [{"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:aws:kms:eu-west-1:111122223333:alias/aws/s3"}}]}}), ["models"],
        id="aws-managed-key"),
    Case("s3-cmk", store(logging=False, logs={"drop": ("policy",)}), ["logs"], id="not-a-log-target"),
    Case("s3-cmk", bucket_set("alb-logs-b", "alb", kms=False, policy={"policy": json.dumps({"Version": "2012-10-17",
         "Statement": [_deny_plain("alb-logs-b"), ALB_DELIVERY]})}), id="alb-log-delivery"),
    Case("s3-event-notifications", bucket_set("alb-logs-b", "alb", kms=False, drop=("events",), policy={
        "policy": json.dumps({"Version": "2012-10-17", "Statement": [_deny_plain("alb-logs-b"), ALB_DELIVERY]})}),
        id="alb-log-delivery"),
    Case("s3-public-access-block", store()),
    Case("s3-public-access-block", store(models={"drop": ("public-access-block",)}), ["models"], id="missing"),
    Case("s3-public-access-block", store(logs={"public_access_block": {"restrictPublicBuckets": False}}), ["logs"],
         id="one-flag-off"),
    Case("s3-tls-only", store()),
    Case("s3-tls-only", store(models={"policy": {"policy": json.dumps({"Version": "2012-10-17", "Statement": [ALLOW_ROLE]})}}),
         ["models"], id="no-deny"),
    Case("s3-tls-only", store(logs={"drop": ("policy",)}), ["logs"], id="no-policy"),
    Case("s3-access-logging", store()),
    Case("s3-access-logging", store(logging=False, logs={"drop": ("policy",)}), ["logs", "models"]),
    Case("s3-lifecycle", store()),
    Case("s3-lifecycle", store(models={"drop": ("lifecycle",)}), ["models"], id="missing"),
    Case("s3-lifecycle", store(logs={"lifecycle": {"rules": [{"id": "x", "status": "Enabled", "expiration": {"days": 30}}]}}),
         ["logs"], id="noncurrent-kept-forever"),
    Case("s3-event-notifications", store()),
    Case("s3-event-notifications", store(models={"events": {"eventbridge": False}}), ["models"]),
    Case("s3-acls-disabled", store()),
    Case("s3-acls-disabled", store(models={"ownership": {"rule": {"objectOwnership": "ObjectWriter"}}}), ["models"],
         id="object-writer"),
    Case("s3-acls-disabled", store() + [res(ACL, "logs-acl", bucket=LOGS, acl="log-delivery-write")], ["logs"], id="acl"),
    Case("s3-policy-not-public", store()),
    Case("s3-policy-not-public", store(models={"policy": {"policy": _policy(MODELS, {
        "Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{MODELS}/*"})}}),
        ["models-policy"]),
    Case("s3-policy-not-public", [res(POL, "scoped", bucket=MODELS, policy=_policy(MODELS, {
        "Sid": "Scoped", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{MODELS}/*",
        "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE}}}))], id="principal-condition"),
]


def _with_dependencies(resources):
    """The same plan as the CLI sees it: satellites depend on their bucket; ids unknown (no names)."""
    out = []
    for r in resources:
        inputs = dict(r["inputs"])
        owner = None
        if r["type"] != B:
            owner = "models" if inputs.get("bucket") == MODELS else "logs"
        out.append(dep({**r, "inputs": inputs}, owner) if owner else dep(r))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case):
    check_case(case)


@pytest.mark.parametrize("rule, resources, violating", [
    ("s3-versioning", store(models={"drop": ("versioning",)}), ["models"]),
    ("s3-public-access-block", store(logs={"drop": ("public-access-block",)}), ["logs"]),
    ("s3-tls-only", store(), []),
])
def test_rules_tie_satellites_through_dependencies(rule, resources, violating):
    check_case(Case(rule, _with_dependencies(resources), violating))


def test_satellites_tie_to_their_bucket_by_name_not_by_component():
    """Two buckets in one component: the versioning of one does not count for the other."""
    resources = store(models={"drop": ("versioning",)})
    for r in resources:
        r["parent"] = "model-store"
    check_case(Case("s3-versioning", resources, ["models"]))
