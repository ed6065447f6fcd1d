"""RDS rules: each with violating and compliant plan resources."""
import pytest

from tests.policies.helpers import Case, check_case, res, run_rule

RDS = "aws:rds/instance:Instance"

CASES = [
    Case("rds-storage-encrypted", res(RDS, "db", storageEncrypted=False), ["db"]),
    Case("rds-storage-encrypted", res(RDS, "db"), ["db"], id="absent"),
    Case("rds-storage-encrypted", res(RDS, "db", storageEncrypted=True)),
    Case("rds-storage-cmk", res(RDS, "db", storageEncrypted=True), ["db"]),
    Case("rds-storage-cmk", res(RDS, "db", kmsKeyId="arn:aws:kms:eu-west-1:111122223333:key/data")),
    # Inverted-rule trap: false must pass, true must fail.
    Case("rds-not-public", res(RDS, "db", publiclyAccessible=True), ["db"]),
    Case("rds-not-public", res(RDS, "db", publiclyAccessible=False)),
    Case("rds-multi-az", res(RDS, "db", multiAz=False), ["db"]),
    Case("rds-multi-az", res(RDS, "db", multiAz=True)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rds_rule(case):
    check_case(case)


def test_multi_az_is_mandatory_in_production_and_advisory_in_staging():
    db = res(RDS, "db", multiAz=False)
    assert [v["enforcement"] for v in run_rule("rds-multi-az", db, "production")] == ["mandatory"]
    assert [v["enforcement"] for v in run_rule("rds-multi-az", db, "staging")] == ["advisory"]


def test_rule_ignores_other_resource_types():
    assert run_rule("rds-not-public", res("aws:rds/cluster:Cluster", "c", publiclyAccessible=True)) == []
