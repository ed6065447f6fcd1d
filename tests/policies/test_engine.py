"""The engine follows the policy server's path: secrets, unknowns, config, stack rules."""
from dataclasses import replace

import pytest

from policies.engine import PolicyConfigError, evaluate, resolve_config
from policies.rules import RULES
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE
from tests.policies.helpers import SECRET, RULES_BY_ID, res, run_rule

RDS = "aws:rds/instance:Instance"


def test_violation_shape():
    out = run_rule("rds-not-public", res(RDS, "audit-db", publiclyAccessible=True))
    assert out == [{
        "policy": "rds-not-public", "enforcement": "mandatory", "severity": "critical",
        "type": RDS, "name": "audit-db",
        "message": "publiclyAccessible is true: the database gets a public DNS name and can be reached from the internet",
    }]


def test_unknown_value_gives_advisory_diagnostic_like_preview():
    out = run_rule("rds-not-public", res(RDS, "audit-db", publiclyAccessible=UNKNOWN_BOOLEAN_VALUE))
    assert [(v["enforcement"], v["name"]) for v in out] == [("advisory", "audit-db")]
    assert out[0]["message"] == ("can't run policy 'rds-not-public' from policy pack 'fraudstack@v0.1.0' "
                                 "during preview: boolean value at .publiclyAccessible can't be known during preview")


def test_wrapped_secret_is_redacted_before_rules_see_it():
    seen = []
    rule = RULES_BY_ID["rds-storage-encrypted"]
    spy = replace(rule, id="spy", check=lambda props, cfg: seen.append(props["password"]) or [])
    evaluate([res(RDS, "db", password=SECRET)], rules=[spy])
    assert seen == ["[secret]"]


def test_async_validate_is_awaited():
    """The server runs an awaitable validate to completion; so does the engine."""
    from pulumi_policy import ResourceValidationPolicy

    rule = RULES_BY_ID["rds-not-public"]

    class AsyncRule(type(rule)):
        def policy(self):
            async def validate(args, report):
                if args.props.get("publiclyAccessible"):
                    report("async says public", None)
            return ResourceValidationPolicy(name=self.id, description=self.description, validate=validate)

    arule = AsyncRule(**{f: getattr(rule, f) for f in rule.__dataclass_fields__})
    out = evaluate([res(RDS, "db", publiclyAccessible=True)], rules=[arule])
    assert [v["message"] for v in out] == ["async says public"]
    assert evaluate([res(RDS, "db", publiclyAccessible=False)], rules=[arule]) == []


@pytest.mark.parametrize("config, error", [
    ({"no-such-policy": "advisory"}, "no-such-policy: no such policy"),
    ({"rds-multi-az": {"enforcementLevel": "sometimes"}}, "rds-multi-az.enforcementLevel: must be one of"),
    ({"rds-multi-az": {"minimumDays": 3}}, "rds-multi-az.minimumDays: unknown config property"),
    ({"all": "loud"}, "all: enforcement level must be one of"),
])
def test_bad_config_names_the_key(config, error):
    with pytest.raises(PolicyConfigError, match=error.replace(".", r"\.")):
        resolve_config(config, RULES)


def test_disabled_and_all_levels():
    db = res(RDS, "db", publiclyAccessible=True)
    assert evaluate([db], {"rds-not-public": "disabled"}, rules=[RULES_BY_ID["rds-not-public"]]) == []
    out = evaluate([db], {"all": "advisory"}, rules=[RULES_BY_ID["rds-not-public"]])
    assert [v["enforcement"] for v in out] == ["advisory"]


def test_plan_resource_without_type_is_rejected():
    with pytest.raises(ValueError, match="missing 'type'"):
        evaluate([{"name": "x", "inputs": {}}])


def test_wrong_input_type_names_the_rule_and_resource():
    from policies.engine import PolicyRunError
    with pytest.raises(PolicyRunError, match=r"policy 'rds-backup-retention' failed on aws:rds/instance:Instance 'audit-db': "
                                             r"ValueError: could not convert string to float: 'fourteen'"):
        run_rule("rds-backup-retention", res(RDS, "audit-db", backupRetentionPeriod="fourteen"))
