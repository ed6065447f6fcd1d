"""The pack as the Pulumi CLI runs it: ``policies/__main__.py`` started as the CLI starts it
(cwd ``policies/``), spoken to over gRPC with the analyzer protocol. Its verdicts must be
the engine's verdicts over the same resources."""
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, plugin_pb2

from policies.engine import evaluate, load_config
from policies.rules import RULES
from tests.policies.helpers import SECRET, res

POLICIES = Path(__file__).resolve().parents[2] / "policies"
LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory"}

PLAN = [
    res("aws:rds/instance:Instance", "audit-db", storageEncrypted=False, publiclyAccessible=True, multiAz=False,
        password=SECRET, tags={"environment": "staging"}),
    res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ssh", securityGroupId="sg-1", ipProtocol="tcp",
        fromPort=22.0, toPort=22.0, cidrIpv4="0.0.0.0/0"),
    res("aws:ec2/vpc:Vpc", "vpc", cidrBlock="10.0.0.0/16"),
    res("pulumi:providers:aws", "prov", accessKey="AKIA" + "ABCDEFGHIJKLMNOP"),
    res("aws:elasticache/replicationGroup:ReplicationGroup", "cache", authToken=SECRET, transitEncryptionEnabled=True,
        atRestEncryptionEnabled=True, kmsKeyId="arn:k", engine="redis", engineVersion="7.1", snapshotRetentionLimit=1.0,
        subnetGroupName="velocity", automaticFailoverEnabled=True, multiAzEnabled=True, numCacheClusters=2.0,
        tags={"environment": "staging"}),
    res("aws:iam/role:Role", "app", assumeRolePolicy="{}", description="password=test-key-not-a-secret-either"),
    res("aws:rds/instance:Instance", "legacy-db", password="test-key-not-a-secret", storageEncrypted=True),
]


@pytest.fixture(scope="module")
def analyzer():
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.Popen([sys.executable, "__main__.py"], cwd=POLICIES, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        port = int(proc.stdout.readline().decode().strip() or "0")
        assert port, proc.stderr.read().decode()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _urn(r):
    return f"urn:pulumi:staging::fraudstack::{r['type']}::{r['name']}"


def _struct(inputs):
    s = struct_pb2.Struct()
    s.update(inputs)
    return s


def _message(diagnostic):
    """The server prefixes each message with the policy description; the engine keeps the
    description in the rule's metadata and reports the message alone."""
    return diagnostic.message.removeprefix(diagnostic.description + "\n")


def _configure(stub, config):
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for pid, value in config.items():
        props = {k: v for k, v in value.items() if k != "enforcementLevel"}
        level = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY}[value.get("enforcementLevel", next(
            r.enforcement for r in RULES if r.id == pid))]
        request.policyConfig[pid].CopyFrom(analyzer_pb2.PolicyConfig(enforcementLevel=level, properties=_struct(props)))
    stub.Configure(request)


def test_cli_entry_point_serves_every_rule(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "fraudstack"
    assert [p.name for p in info.policies] == [r.id for r in RULES]
    rds = next(p for p in info.policies if p.name == "rds-not-public")
    assert rds.enforcementLevel == analyzer_pb2.MANDATORY and rds.remediation_steps.startswith("Set publicly_accessible=False")


def test_server_and_engine_agree(analyzer):
    config = load_config("staging")
    _configure(analyzer, config)
    by_urn = {_urn(r): r for r in PLAN}
    server = set()
    for r in PLAN:
        resp = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(type=r["type"], properties=_struct(r["inputs"]),
                                                            urn=_urn(r), name=r["name"]))
        server |= {(d.policyName, LEVELS[d.enforcementLevel], r["name"], _message(d)) for d in resp.diagnostics}
    stack = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r["type"], properties=_struct(r["inputs"]), urn=_urn(r), name=r["name"])
        for r in PLAN]))
    server |= {(d.policyName, LEVELS[d.enforcementLevel], by_urn[d.urn]["name"] if d.urn else "fraudstack-staging", _message(d))
               for d in stack.diagnostics}
    engine = {(v["policy"], v["enforcement"], v["name"], v["message"])
              for v in evaluate(PLAN, config, stack="staging")}
    x10 = "no-plaintext-secrets"
    assert {v for v in server if v[0] != x10} == {v for v in engine if v[0] != x10}
    assert ("rds-not-public", "mandatory", "audit-db",
            "publiclyAccessible is true: the database gets a public DNS name and can be reached from the internet") in server
    assert ("rds-multi-az", "advisory", "audit-db", "multiAz is not true: an AZ outage takes the audit trail down") in server
    assert ("rds-backup-retention", "mandatory", "audit-db",
            "backupRetentionPeriod is 0 days: keep at least 7 (point-in-time recovery)") in server
    assert {p for p, *_ in server} >= {"sg-no-world-ssh", "vpc-flow-logs", "provider-no-static-credentials", "required-tags"}
    assert not [v for v in server if v[0] == "cache-auth"]
    # The CLI's analyzer sees secrets decrypted: it judges only credential-shaped literals.
    assert {(v[2], v[3]) for v in server if v[0] == x10} == {("prov", "accessKey holds an AWS access key id in the program")}
    # The engine sees the "[secret]" marker: the wrapped password passes, the literal one does not.
    assert {(v[2], v[3]) for v in engine if v[0] == x10} == {
        ("prov", "accessKey is a plaintext credential: make it a Pulumi secret or generate it"),
        ("legacy-db", "password is a plaintext credential: make it a Pulumi secret or generate it")}
