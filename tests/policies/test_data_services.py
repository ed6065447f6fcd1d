"""ElastiCache, Secrets Manager and KMS rules."""
import json

import pytest

from tests.policies.helpers import SECRET, Case, check_case, res

RG, SECRET_T, ROT, KEY = ("aws:elasticache/replicationGroup:ReplicationGroup", "aws:secretsmanager/secret:Secret",
                          "aws:secretsmanager/secretRotation:SecretRotation", "aws:kms/key:Key")


def key_policy(principal, condition=None):
    st = {"Sid": "x", "Effect": "Allow", "Principal": principal, "Action": "kms:*", "Resource": "*"}
    if condition:
        st["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


ROOT = {"AWS": "arn:aws:iam::111122223333:root"}

CASES = [
    Case("cache-encrypted-at-rest", res(RG, "c", atRestEncryptionEnabled=False), ["c"]),
    Case("cache-encrypted-at-rest", res(RG, "c", atRestEncryptionEnabled=True)),
    Case("cache-cmk", res(RG, "c", atRestEncryptionEnabled=True), ["c"]),
    Case("cache-cmk", res(RG, "c", kmsKeyId="arn:k")),
    Case("cache-in-transit-tls", res(RG, "c", transitEncryptionEnabled=False), ["c"]),
    Case("cache-in-transit-tls", res(RG, "c", transitEncryptionEnabled=True, transitEncryptionMode="preferred"), ["c"], id="preferred"),
    Case("cache-in-transit-tls", res(RG, "c", transitEncryptionEnabled=True)),
    Case("cache-auth", res(RG, "c", transitEncryptionEnabled=True), ["c"]),
    Case("cache-auth", res(RG, "c", transitEncryptionEnabled=False, authToken=SECRET), ["c"], id="no-tls"),
    Case("cache-auth", res(RG, "c", transitEncryptionEnabled=True, authToken=SECRET)),
    Case("cache-engine-version", res(RG, "c", engine="redis", engineVersion="6.2"), ["c"]),
    Case("cache-engine-version", res(RG, "c", engine="redis", engineVersion="7.1")),
    Case("cache-multi-az", res(RG, "c", automaticFailoverEnabled=False, multiAzEnabled=False, numCacheClusters=1.0), ["c"]),
    Case("cache-multi-az", res(RG, "c", automaticFailoverEnabled=True, multiAzEnabled=True, numCacheClusters=2.0)),
    Case("cache-snapshot-retention", res(RG, "c", snapshotRetentionLimit=1.0), ["c"]),
    Case("cache-snapshot-retention", res(RG, "c", snapshotRetentionLimit=1.0), config="staging", id="staging"),
    Case("cache-snapshot-retention", res(RG, "c", snapshotRetentionLimit=7.0)),
    Case("cache-auto-minor-upgrade", res(RG, "c", autoMinorVersionUpgrade=False), ["c"]),
    Case("cache-auto-minor-upgrade", res(RG, "c", autoMinorVersionUpgrade=True)),
    Case("cache-dedicated-subnet-group", res(RG, "c"), ["c"]),
    Case("cache-dedicated-subnet-group", res(RG, "c", subnetGroupName="fraudstack-velocity")),
    Case("secret-cmk", res(SECRET_T, "s", kmsKeyId="alias/aws/secretsmanager"), ["s"]),
    Case("secret-cmk", res(SECRET_T, "s", kmsKeyId="arn:aws:kms:eu-west-1:111122223333:key/secrets")),
    Case("secret-rotation", [dict(res(SECRET_T, "s", kmsKeyId="k"), id="arn:s1"), dict(res(SECRET_T, "t", kmsKeyId="k"), id="arn:s2"),
                             res(ROT, "rot", secretId="arn:s1", rotationRules={"automaticallyAfterDays": 30.0})], ["t"]),
    Case("secret-rotation", [dict(res(SECRET_T, "s", kmsKeyId="k"), id="arn:s1"),
                             res(ROT, "rot", secretId="arn:s1", rotationRules={"automaticallyAfterDays": 30.0})]),
    Case("secret-rotation-period", res(ROT, "rot", secretId="s", rotationRules={"automaticallyAfterDays": 365.0}), ["rot"]),
    Case("secret-rotation-period", res(ROT, "rot", secretId="s", rotationRules={"automaticallyAfterDays": 30.0})),
    Case("kms-rotation", res(KEY, "k", enableKeyRotation=False), ["k"]),
    Case("kms-rotation", [res(KEY, "k", enableKeyRotation=True), res(KEY, "sign", customerMasterKeySpec="ECC_NIST_P256")]),
    Case("kms-no-wildcard-principal", res(KEY, "k", policy=key_policy("*")), ["k"]),
    Case("kms-no-wildcard-principal", res(KEY, "k", policy=key_policy({"AWS": "*"}, {"StringEquals": {"kms:CallerAccount": "111122223333"}}))),
    Case("kms-no-wildcard-principal", res(KEY, "k", policy=key_policy(ROOT)), id="root"),
    Case("kms-key-enabled", res(KEY, "k", isEnabled=False), ["k"]),
    Case("kms-key-enabled", res(KEY, "k", isEnabled=True)),
    Case("kms-explicit-policy", res(KEY, "k"), ["k"]),
    Case("kms-explicit-policy", res(KEY, "k", policy=key_policy(ROOT))),
    Case("kms-deletion-window", res(KEY, "k", deletionWindowInDays=7.0), ["k"]),
    Case("kms-deletion-window", res(KEY, "k", deletionWindowInDays=7.0), config="staging", id="staging"),
    Case("kms-deletion-window", res(KEY, "k", deletionWindowInDays=30.0)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_data_service_rule(case):
    check_case(case)
