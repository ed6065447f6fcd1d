"""CloudWatch, SNS and ECR rules."""
import json

import pytest

from tests.policies.helpers import Case, check_case, res

LG, AL, RDS, RG = ("aws:cloudwatch/logGroup:LogGroup", "aws:cloudwatch/metricAlarm:MetricAlarm",
                   "aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup")
TOPIC, TP = "aws:sns/topic:Topic", "aws:sns/topicPolicy:TopicPolicy"
REPO, RP, LC = "aws:ecr/repository:Repository", "aws:ecr/repositoryPolicy:RepositoryPolicy", "aws:ecr/lifecyclePolicy:LifecyclePolicy"
TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:fraudstack-alerts"


def alarm(name="a", namespace="AWS/RDS", dims=None, **kw):
    base = dict(namespace=namespace, metricName="CPUUtilization", dimensions=dims or {"DBInstanceIdentifier": "fraudstack-audit"},
                alarmActions=[TOPIC_ARN], okActions=[TOPIC_ARN], comparisonOperator="GreaterThanThreshold",
                evaluationPeriods=3.0, period=60.0, statistic="Average", threshold=80.0)
    base.update(kw)
    return res(AL, name, **base)


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


CW_ALLOW = {"Sid": "cw", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish",
            "Resource": TOPIC_ARN, "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}}}
DENY_PLAIN = {"Sid": "tls", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": TOPIC_ARN,
              "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
PUBLIC = {"Effect": "Allow", "Principal": "*", "Action": "sns:Subscribe", "Resource": TOPIC_ARN}
FOREIGN = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"}, "Action": "sns:Publish", "Resource": TOPIC_ARN}


def repo(**kw):
    base = dict(name="fraudstack-scoring", imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True},
                encryptionConfigurations=[{"encryptionType": "KMS", "kmsKey": "arn:k"}])
    base.update(kw)
    return res(REPO, "repo", **base)


CASES = [
    Case("log-group-retention-set", res(LG, "lg", kmsKeyId="k"), ["lg"]),
    Case("log-group-retention-set", res(LG, "lg", retentionInDays=30.0)),
    Case("log-group-retention-minimum", res(LG, "lg", retentionInDays=90.0), ["lg"]),
    Case("log-group-retention-minimum", res(LG, "lg", retentionInDays=30.0), config="staging", id="staging"),
    Case("log-group-retention-minimum", res(LG, "lg", retentionInDays=400.0)),
    Case("log-group-kms", res(LG, "lg", retentionInDays=400.0), ["lg"]),
    Case("log-group-kms", res(LG, "lg", kmsKeyId="arn:k")),
    Case("alarm-actions-enabled", alarm(actionsEnabled=False), ["a"]),
    Case("alarm-actions-enabled", alarm(actionsEnabled=True)),
    Case("alarm-notifies-sns", alarm(okActions=[]), ["a"]),
    Case("alarm-notifies-sns", alarm(alarmActions=["arn:aws:automate:eu-west-1:ec2:stop"]), ["a"], id="not-sns"),
    Case("alarm-notifies-sns", alarm()),
    Case("data-tier-alarms", [res(RDS, "db", identifier="fraudstack-audit"), res(RG, "cache", replicationGroupId="fraudstack-velocity"),
                              alarm()], ["cache"]),
    Case("data-tier-alarms", [res(RDS, "db", identifier="fraudstack-audit"), alarm(dims={"DBInstanceIdentifier": "other"})], ["db"], id="other-db"),
    Case("data-tier-alarms", [res(RDS, "db", identifier="fraudstack-audit"), res(RG, "cache", replicationGroupId="fraudstack-velocity"),
                              alarm(), alarm("c", "AWS/ElastiCache", {"CacheClusterId": "fraudstack-velocity-001"})]),
    Case("sns-encrypted", res(TOPIC, "t"), ["t"]),
    Case("sns-encrypted", res(TOPIC, "t", kmsMasterKeyId="arn:k")),
    Case("sns-cmk", res(TOPIC, "t", kmsMasterKeyId="alias/aws/sns"), ["t"]),
    Case("sns-cmk", res(TOPIC, "t", kmsMasterKeyId="arn:k")),
    Case("sns-policy-not-public", res(TP, "tp", arn=TOPIC_ARN, policy=doc(CW_ALLOW, PUBLIC)), ["tp"]),
    Case("sns-policy-not-public", res(TP, "tp", arn=TOPIC_ARN, policy=doc(CW_ALLOW, DENY_PLAIN))),
    Case("sns-no-cross-account", res(TP, "tp", arn=TOPIC_ARN, policy=doc(CW_ALLOW, FOREIGN)), ["tp"]),
    Case("sns-no-cross-account", res(TP, "tp", arn=TOPIC_ARN, policy=doc(CW_ALLOW, dict(FOREIGN, Principal={"AWS": "arn:aws:iam::111122223333:role/ops"})))),
    Case("sns-tls-only", [dict(res(TOPIC, "t", kmsMasterKeyId="k"), id=TOPIC_ARN), res(TP, "tp", arn=TOPIC_ARN, policy=doc(CW_ALLOW))], ["t"]),
    Case("sns-tls-only", [dict(res(TOPIC, "t", kmsMasterKeyId="k"), id=TOPIC_ARN), res(TP, "tp", arn=TOPIC_ARN, policy=doc(CW_ALLOW, DENY_PLAIN))]),
    Case("sns-tls-only", [res(TOPIC, "t", kmsMasterKeyId="k", parent="alerts"), res(TP, "tp", arn=TOPIC_ARN, policy=doc(DENY_PLAIN), parent="alerts")],
         id="same-component"),
    Case("ecr-immutable-tags", repo(imageTagMutability="MUTABLE"), ["repo"]),
    Case("ecr-immutable-tags", repo()),
    Case("ecr-scan-on-push", repo(imageScanningConfiguration={"scanOnPush": False}), ["repo"]),
    Case("ecr-scan-on-push", repo()),
    Case("ecr-kms", repo(encryptionConfigurations=[{"encryptionType": "AES256"}]), ["repo"]),
    Case("ecr-kms", repo()),
    Case("ecr-policy-not-public", res(RP, "rp", repository="r", policy=doc({"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"})), ["rp"]),
    Case("ecr-policy-not-public", res(RP, "rp", repository="r", policy=doc({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/nodes"},
                                                                           "Action": "ecr:BatchGetImage"}))),
    Case("ecr-lifecycle-policy", [repo(), res(LC, "lc", repository="other", policy="{}")], ["repo"]),
    Case("ecr-lifecycle-policy", [repo(), res(LC, "lc", repository="fraudstack-scoring", policy="{}")]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_observability_rule(case):
    check_case(case)
