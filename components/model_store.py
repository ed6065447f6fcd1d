"""The model store: a versioned, KMS-encrypted S3 bucket for model artifacts, per stack.

Layout (read by ``app.lifecycle``): ``models/<version>/model.onnx|model.json|report.html``
and ``pointers/active|candidate``. The bucket policy is the access control: only the
writer roles (training / deploy) may put or delete objects, only the reader roles (the
scoring service) and the writers may read them, and nothing is served over plain HTTP.
Server access logs go to a second bucket, hardened the same way except for its
encryption: S3 server access logging cannot deliver to an SSE-KMS bucket, so that one
uses SSE-S3 (the policy pack's ``s3-cmk`` rule knows log-target buckets).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

#: Object-level actions a writer needs (publishing a version, moving a pointer, pruning).
WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:AbortMultipartUpload")
#: Object-level read actions (the service fetches a version and reads pointers).
READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")


def bucket_policy(bucket_arn: str, readers: Sequence[str], writers: Sequence[str]) -> dict:
    """The model bucket's policy (a pure function, tested alone).

    Deny statements do the work: an Allow in a bucket policy cannot stop another
    principal of the account whose IAM policy grants ``s3:*``; a Deny with
    ``aws:PrincipalArn`` can. An empty writer list means nobody may write.
    """
    objects = f"{bucket_arn}/*"
    readers_all = sorted(set(readers) | set(writers))
    statements: list[dict] = [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, objects], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]
    deny_write: dict = {"Sid": "DenyWritesExceptPublishers", "Effect": "Deny", "Principal": "*",
                        "Action": list(WRITE_ACTIONS), "Resource": objects}
    if writers:
        deny_write["Condition"] = {"ArnNotEquals": {"aws:PrincipalArn": sorted(set(writers))}}
    statements.append(deny_write)
    deny_read: dict = {"Sid": "DenyReadsExceptReadersAndPublishers", "Effect": "Deny", "Principal": "*",
                       "Action": list(READ_ACTIONS), "Resource": objects}
    if readers_all:
        deny_read["Condition"] = {"ArnNotEquals": {"aws:PrincipalArn": readers_all}}
    statements.append(deny_read)
    if readers_all:
        statements.append({"Sid": "AllowRead", "Effect": "Allow", "Principal": {"AWS": readers_all},
                           "Action": [*READ_ACTIONS, "s3:ListBucket"], "Resource": [bucket_arn, objects]})
    if writers:
        statements.append({"Sid": "AllowPublish", "Effect": "Allow", "Principal": {"AWS": sorted(set(writers))},
                           "Action": list(WRITE_ACTIONS), "Resource": objects})
    return {"Version": "2012-10-17", "Statement": statements}


def log_bucket_policy(log_bucket_arn: str, source_bucket_arn: str, account_id: str) -> dict:
    """Only S3's logging service, for our model bucket, may write; plain HTTP is refused."""
    objects = f"{log_bucket_arn}/*"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [log_bucket_arn, objects], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": objects,
         "Condition": {"ArnLike": {"aws:SourceArn": source_bucket_arn},
                       "StringEquals": {"aws:SourceAccount": account_id}}},
    ]}


def reader_policy(bucket_arn: str, key_arn: str) -> dict:
    """IAM policy for a reader role (the service): objects of the store and the key, through S3 only."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadModels", "Effect": "Allow", "Action": [*READ_ACTIONS, "s3:ListBucket"],
         "Resource": [bucket_arn, f"{bucket_arn}/*"]},
        {"Sid": "DecryptModels", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": key_arn},
    ]}


@dataclass(frozen=True)
class ModelStoreArgs:
    """Inputs of :class:`ModelStore`."""

    #: Physical name prefix, e.g. ``fraudstack-production``; buckets are ``<prefix>-models-<account>``
    #: and ``<prefix>-models-logs-<account>`` (bucket names are global).
    name_prefix: str
    #: Account id (for globally unique names and the log bucket's source condition).
    account_id: pulumi.Input[str]
    #: The ``models`` KMS key (SSE-KMS with an S3 bucket key).
    kms_key_arn: pulumi.Input[str]
    #: Roles that may read models (the scoring service's role; operators).
    reader_role_arns: Sequence[pulumi.Input[str]]
    #: Roles that may publish models and move pointers (training / deploy). Empty: nobody writes.
    writer_role_arns: Sequence[pulumi.Input[str]]
    #: Noncurrent object versions expire after this many days ...
    noncurrent_version_days: int
    #: ... except the newest this many, kept for roll-back.
    keep_noncurrent_versions: int
    #: Access logs expire after this many days.
    access_log_days: int
    #: Required tags; each bucket adds its own ``Name``.
    tags: Mapping[str, str]
    #: Allow ``pulumi destroy`` to empty the bucket (never in production).
    force_destroy: bool = False
    #: The scoring service's role: a reader that also gets the reader IAM policy (objects + kms:Decrypt)
    #: attached here, since a key policy delegating to IAM needs an IAM grant too.
    service_role_arn: pulumi.Input[str] | None = None


class ModelStore(pulumi.ComponentResource):
    """Model bucket + access-log bucket, both private, versioned, TLS-only and lifecycle-managed."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    log_bucket_name: pulumi.Output[str]
    reader_policy_json: pulumi.Output[str]

    def __init__(self, name: str, args: ModelStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:ModelStore", name, None, opts)
        if args.keep_noncurrent_versions < 1 or args.noncurrent_version_days < 1 or args.access_log_days < 1:
            raise ValueError("noncurrent_version_days, keep_noncurrent_versions and access_log_days must be >= 1")
        child = pulumi.ResourceOptions(parent=self)
        account = pulumi.Output.from_input(args.account_id)
        readers = [*args.reader_role_arns, *([args.service_role_arn] if args.service_role_arn is not None else [])]

        logs = self._bucket(f"{name}-logs", account.apply(lambda a: f"{args.name_prefix}-models-logs-{a}"),
                            f"{args.name_prefix}-models-logs", args, child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-logs-encryption", bucket=logs.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}], opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-logs-lifecycle", bucket=logs.id,
            rules=[{"id": "expire-access-logs", "status": "Enabled", "filter": {"prefix": ""},
                    "expiration": {"days": args.access_log_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 1},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}],
            opts=child)

        bucket = self._bucket(f"{name}-models", account.apply(lambda a: f"{args.name_prefix}-models-{a}"),
                              f"{args.name_prefix}-models", args, child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-models-encryption", bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms",
                                                                "kms_master_key_id": args.kms_key_arn},
                    # One data key per bucket instead of one KMS call per object.
                    "bucket_key_enabled": True}], opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-models-lifecycle", bucket=bucket.id,
            rules=[{"id": "expire-old-versions", "status": "Enabled", "filter": {"prefix": ""},
                    "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_version_days,
                                                      "newer_noncurrent_versions": args.keep_noncurrent_versions},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}],
            opts=child)
        aws.s3.BucketLogging(f"{name}-models-access-logging", bucket=bucket.id, target_bucket=logs.id,
                             target_prefix="models/", opts=child)

        aws.s3.BucketPolicy(
            f"{name}-logs-policy", bucket=logs.id,
            policy=pulumi.Output.all(logs.arn, bucket.arn, account).apply(
                lambda v: json.dumps(log_bucket_policy(v[0], v[1], v[2]), sort_keys=True)),
            opts=child)
        aws.s3.BucketPolicy(
            f"{name}-models-policy", bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, pulumi.Output.all(*readers),
                                     pulumi.Output.all(*args.writer_role_arns)).apply(
                lambda v: json.dumps(bucket_policy(v[0], v[1], v[2]), sort_keys=True)),
            opts=child)

        self.bucket_name, self.bucket_arn, self.log_bucket_name = bucket.bucket, bucket.arn, logs.bucket
        self.reader_policy_json = pulumi.Output.all(bucket.arn, args.kms_key_arn).apply(
            lambda v: json.dumps(reader_policy(v[0], v[1]), sort_keys=True))
        if args.service_role_arn is not None:
            aws.iam.RolePolicy(
                f"{name}-service-read", name="model-store-read",
                role=pulumi.Output.from_input(args.service_role_arn).apply(lambda arn: arn.rsplit("/", 1)[-1]),
                policy=self.reader_policy_json, opts=child)
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn,
                               "log_bucket_name": self.log_bucket_name})

    def _bucket(self, name: str, bucket_name: pulumi.Input[str], tag_name: str, args: ModelStoreArgs,
                child: pulumi.ResourceOptions) -> aws.s3.Bucket:
        """A bucket with what both buckets share: versioning, no ACLs, no public access, EventBridge."""
        bucket = aws.s3.Bucket(name, bucket=bucket_name, force_destroy=args.force_destroy,
                               object_lock_enabled=False, tags={**args.tags, "Name": tag_name}, opts=child)
        aws.s3.BucketVersioning(f"{name}-versioning", bucket=bucket.id,
                                versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketOwnershipControls(f"{name}-ownership", bucket=bucket.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        aws.s3.BucketPublicAccessBlock(f"{name}-public-access-block", bucket=bucket.id, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True,
                                       restrict_public_buckets=True, opts=child)
        # Every object change becomes an EventBridge event: model uploads are auditable
        # and deploy automation can react to a new candidate.
        aws.s3.BucketNotification(f"{name}-events", bucket=bucket.id, eventbridge=True, opts=child)
        return bucket
