"""The ModelStore component, its config section and the model alarms, under the mock runtime."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.alarms import Alarms, AlarmsArgs, ModelThresholds
from components.model_store import ModelStore, ModelStoreArgs, bucket_policy
from policies.engine import evaluate
from tests.infra.conftest import load_config
from tools.plan import run_component, run_program

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/models"
SERVICE = f"arn:aws:iam::{ACCOUNT}:role/fraudstack-test-scoring"
PUBLISHER = f"arn:aws:iam::{ACCOUNT}:role/fraudstack-model-publisher"
TAGS = {"environment": "test", "service": "fraudstack", "owner": "platform", "data-classification": "confidential",
        "pci-scope": "true"}
MODELS, LOGS = f"fraudstack-test-models-{ACCOUNT}", f"fraudstack-test-models-logs-{ACCOUNT}"


def _args(**changes: Any) -> ModelStoreArgs:
    values: dict[str, Any] = dict(name_prefix="fraudstack-test", account_id=ACCOUNT, kms_key_arn=KEY,
                                  reader_role_arns=[SERVICE], writer_role_arns=[PUBLISHER], noncurrent_version_days=60,
                                  keep_noncurrent_versions=7, access_log_days=400, tags=TAGS)
    values.update(changes)
    return ModelStoreArgs(**values)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return run_component(lambda: ModelStore("store", _args()))


def _one(records: list[dict], typ: str, name: str) -> dict:
    found = [r for r in records if r["type"] == typ and r["name"] == name]
    assert len(found) == 1, (typ, name, [r["name"] for r in records if r["type"] == typ])
    return found[0]["inputs"]


def test_every_child_is_parented_and_named_after_the_component(records: list[dict]) -> None:
    children = [r for r in records if r["type"] != "fraudstack:aws:ModelStore"]
    assert sorted(r["name"] for r in children) == sorted(
        [f"store-{b}{s}" for b in ("models", "logs") for s in
         ("", "-versioning", "-ownership", "-public-access-block", "-events", "-encryption", "-lifecycle", "-policy")]
        + ["store-models-access-logging"])
    assert {r["parent"] for r in children} == {"store"}


def test_buckets_versioned_private_and_acl_free(records: list[dict]) -> None:
    for part, physical in (("models", MODELS), ("logs", LOGS)):
        bucket = _one(records, "aws:s3/bucket:Bucket", f"store-{part}")
        assert bucket["bucket"] == physical and bucket["forceDestroy"] is False
        assert bucket["tags"]["Name"] == physical.removesuffix(f"-{ACCOUNT}")
        assert _one(records, "aws:s3/bucketVersioning:BucketVersioning", f"store-{part}-versioning") == {
            "bucket": physical, "versioningConfiguration": {"status": "Enabled"}}
        assert _one(records, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", f"store-{part}-ownership") == {
            "bucket": physical, "rule": {"objectOwnership": "BucketOwnerEnforced"}}
        assert _one(records, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"store-{part}-public-access-block") == {
            "bucket": physical, "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
            "restrictPublicBuckets": True}
        assert _one(records, "aws:s3/bucketNotification:BucketNotification", f"store-{part}-events") == {
            "bucket": physical, "eventbridge": True}


def test_encryption_lifecycle_and_logging(records: list[dict]) -> None:
    sse = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    assert _one(records, sse, "store-models-encryption")["rules"] == [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}, "bucketKeyEnabled": True}]
    # S3 server access logging delivers only to SSE-S3 buckets.
    assert _one(records, sse, "store-logs-encryption")["rules"] == [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    lc = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    assert _one(records, lc, "store-models-lifecycle")["rules"] == [
        {"id": "expire-old-versions", "status": "Enabled", "filter": {"prefix": ""},
         "noncurrentVersionExpiration": {"noncurrentDays": 60, "newerNoncurrentVersions": 7},
         "abortIncompleteMultipartUpload": {"daysAfterInitiation": 1}}]
    assert _one(records, lc, "store-logs-lifecycle")["rules"][0]["expiration"] == {"days": 400}
    assert _one(records, "aws:s3/bucketLogging:BucketLogging", "store-models-access-logging") == {
        "bucket": MODELS, "targetBucket": LOGS, "targetPrefix": "models/"}


def test_bucket_policies(records: list[dict]) -> None:
    doc = json.loads(_one(records, "aws:s3/bucketPolicy:BucketPolicy", "store-models-policy")["policy"])
    assert doc == bucket_policy(f"arn:aws:s3:::{MODELS}", [SERVICE], [PUBLISHER])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["DenyInsecureTransport"] == {
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{MODELS}", f"arn:aws:s3:::{MODELS}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert by_sid["DenyWritesExceptPublishers"]["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [PUBLISHER]}}
    assert by_sid["DenyWritesExceptPublishers"]["Action"] == ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
                                                             "s3:AbortMultipartUpload"]
    assert by_sid["DenyReadsExceptReadersAndPublishers"]["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": sorted([SERVICE, PUBLISHER])}}
    assert by_sid["AllowPublish"]["Principal"] == {"AWS": [PUBLISHER]}
    assert by_sid["AllowRead"]["Principal"] == {"AWS": sorted([SERVICE, PUBLISHER])}
    logs = json.loads(_one(records, "aws:s3/bucketPolicy:BucketPolicy", "store-logs-policy")["policy"])
    writer = {s["Sid"]: s for s in logs["Statement"]}["S3ServerAccessLogs"]
    assert writer["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert writer["Condition"] == {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{MODELS}"},
                                   "StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_no_writer_means_nobody_writes() -> None:
    doc = bucket_policy("arn:aws:s3:::b", [SERVICE], [])
    deny = {s["Sid"]: s for s in doc["Statement"]}["DenyWritesExceptPublishers"]
    assert "Condition" not in deny and deny["Principal"] == "*"
    assert "AllowPublish" not in {s["Sid"] for s in doc["Statement"]}


def test_component_passes_the_policy_pack(records: list[dict]) -> None:
    found = evaluate([r for r in records if r["custom"]], None, project="fraudstack", stack="test")
    assert [v for v in found if v["policy"].startswith("s3-")] == []
    # and a break is caught: drop the public access block of the model bucket
    broken = [r for r in records if r["custom"] and r["name"] != "store-models-public-access-block"]
    found = evaluate(broken, None, project="fraudstack", stack="test")
    assert [(v["policy"], v["name"]) for v in found if v["policy"].startswith("s3-")] == [
        ("s3-public-access-block", "store-models")]


def test_program_wires_the_store(tmp_path: Any) -> None:
    plan = run_program("production")
    out = plan["outputs"]
    assert out["modelStoreBucket"] == "fraudstack-production-models-123456789012"
    assert out["modelStoreUri"] == "s3://fraudstack-production-models-123456789012"
    assert out["modelStoreLogBucket"] == "fraudstack-production-models-logs-123456789012"
    assert set(out["kmsKeyArns"]) >= {"models"}
    res = {r["name"]: r for r in plan["resources"]}
    sse = res["model-store-models-encryption"]["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"]
    assert sse["kmsMasterKeyId"] == out["kmsKeyArns"]["models"]
    doc = json.loads(res["model-store-models-policy"]["inputs"]["policy"])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["DenyWritesExceptPublishers"]["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [PUBLISHER]}}
    service_role = out["appServiceAccountRoleArn"]
    assert by_sid["DenyReadsExceptReadersAndPublishers"]["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": sorted([service_role, PUBLISHER])}}
    attached = res["model-store-service-read"]["inputs"]
    assert attached["role"] == service_role.rsplit("/", 1)[1]
    assert json.loads(attached["policy"]) == json.loads(out["modelStoreReaderPolicy"])
    reader = json.loads(out["modelStoreReaderPolicy"])
    assert reader["Statement"][1] == {"Sid": "DecryptModels", "Effect": "Allow", "Action": ["kms:Decrypt"],
                                      "Resource": out["kmsKeyArns"]["models"]}
    key_policy = json.loads(res["keys-models"]["inputs"]["policy"])
    via = {s["Sid"]: s for s in key_policy["Statement"]}["UseThroughService"]["Condition"]["StringEquals"]
    assert via["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"
    alarms = {r["name"]: r["inputs"] for r in plan["resources"] if r["name"].startswith("alarms-model-")}
    assert alarms["alarms-model-score-psi"]["threshold"] == 0.2
    assert alarms["alarms-model-decline-recall"]["threshold"] == 0.35


@pytest.mark.parametrize("overrides, message", [
    ({"fraudstack:modelStore": {"writerRoleArns": ["not-an-arn"]}},
     "fraudstack:modelStore.writerRoleArns: 'not-an-arn' is not an IAM role ARN"),
    ({"fraudstack:modelStore": {"noncurrentVersionDays": 0}},
     "fraudstack:modelStore.noncurrentVersionDays: Input should be greater than or equal to 1 (got 0)"),
    ({"fraudstack:modelStore": {"forceDestroy": True}},
     "fraudstack:modelStore.forceDestroy: production never lets destroy empty the model store"),
    ({"fraudstack:modelMonitoring": {"scorePsi": -1}},
     "fraudstack:modelMonitoring.scorePsi: Input should be greater than 0 (got -1)"),
    ({"fraudstack:modelMonitoring": {"declineRecall": 0.7, "reviewRecall": 0.5}},
     "fraudstack:modelMonitoring: reviewRecall (0.5) must be >= declineRecall (0.7)"),
    ({"fraudstack:modelMonitoring": {"psi": 0.1}},
     "fraudstack:modelMonitoring.psi: unknown key (check the spelling; keys are camelCase)"),
])
def test_config_errors_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(pulumi.RunError) as err:
        load_config("production", overrides)
    assert str(err.value) == message


def _alarm_records(model: ModelThresholds | None) -> list[dict]:
    args = AlarmsArgs(name_prefix="fraudstack-test", region="eu-west-1", account_id=ACCOUNT, environment="test",
                      topic_key_arn=KEY, db_instance_id="db", cache_cluster_ids=["c-001"], cluster_name="fraudstack-test",
                      service_namespace="fraudstack", service_deployment="scoring-api", period_seconds=60,
                      evaluation_periods=5, model=model, tags=TAGS)
    return run_component(lambda: Alarms("alarms", args))


def test_model_alarms_exact_inputs() -> None:
    records = _alarm_records(ModelThresholds(score_psi=0.3, feature_psi=0.4, decline_precision=0.55, decline_recall=0.25,
                                             review_precision=0.07, review_recall=0.5, evaluation_hours=4))
    alarms = {r["name"]: r["inputs"] for r in records if r["name"].startswith("alarms-model-")}
    dims = {"Environment": "test", "Service": "scoring-api"}
    expected = {
        "alarms-model-score-psi": ("ScorePSI", "GreaterThanThreshold", 0.3, "Maximum"),
        "alarms-model-feature-psi": ("FeaturePSIMax", "GreaterThanThreshold", 0.4, "Maximum"),
        "alarms-model-decline-precision": ("DeclinePrecision", "LessThanThreshold", 0.55, "Minimum"),
        "alarms-model-decline-recall": ("DeclineRecall", "LessThanThreshold", 0.25, "Minimum"),
        "alarms-model-review-precision": ("ReviewPrecision", "LessThanThreshold", 0.07, "Minimum"),
        "alarms-model-review-recall": ("ReviewRecall", "LessThanThreshold", 0.5, "Minimum"),
    }
    assert set(alarms) == set(expected)
    for name, (metric, op, threshold, stat) in expected.items():
        a = alarms[name]
        assert (a["namespace"], a["metricName"], a["comparisonOperator"], a["threshold"], a["statistic"]) == (
            "fraudstack", metric, op, threshold, stat), name
        assert a["dimensions"] == dims
        assert (a["period"], a["evaluationPeriods"], a["datapointsToAlarm"]) == (3600, 4, 4)
        assert a["treatMissingData"] == "notBreaching"
        assert a["alarmDescription"].endswith(f"Runbook: docs/runbooks.md#{name.removeprefix('alarms-')}")
    platform = {r["name"]: r["inputs"] for r in records
                if r["type"] == "aws:cloudwatch/metricAlarm:MetricAlarm" and not r["name"].startswith("alarms-model-")}
    # The audit backlog alarm alone has its own window (3 periods of 60 s).
    assert {a["evaluationPeriods"] for n, a in platform.items() if n != "alarms-service-audit-backlog"} == {5}
    assert not [r for r in _alarm_records(None) if r["name"].startswith("alarms-model-")]


def test_model_alarms_have_runbooks() -> None:
    from pathlib import Path

    runbooks = (Path(__file__).resolve().parents[2] / "docs" / "runbooks.md").read_text()
    headings = {line[3:] for line in runbooks.splitlines() if line.startswith("## ")}
    assert {"model-score-psi", "model-feature-psi", "model-decline-precision", "model-decline-recall",
            "model-review-precision", "model-review-recall"} <= headings
