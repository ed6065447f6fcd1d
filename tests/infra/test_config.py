"""Stack config: both stack files are valid, and every invalid value names its key."""

from __future__ import annotations

import pulumi
import pytest

from pydantic import SecretStr

from components.config import LOG_RETENTION_DAYS, NatStrategy, StackConfig, config_reference, load_stack_config
from tests.infra.conftest import load_config
from tools.plan import stack_config


def test_staging_values():
    cfg = load_config("staging")
    assert cfg.environment == "staging"
    assert cfg.region == "eu-west-1"
    assert cfg.is_production is False
    assert cfg.network.az_count == 2
    assert cfg.network.vpc_cidr == "10.20.0.0/16"
    assert cfg.network.nat_strategy is NatStrategy.SINGLE
    assert cfg.network.flow_log_retention_days == 90
    assert cfg.tags == {"cost-center": "fraud-platform"}


def test_production_values():
    cfg = load_config("production")
    assert cfg.is_production is True
    assert cfg.network.az_count == 3
    assert cfg.network.nat_strategy is NatStrategy.PER_AZ
    assert cfg.network.vpc_cidr == "10.30.0.0/16"
    assert cfg.network.flow_log_retention_days == 365
    assert cfg.data_classification.value == "restricted"


def test_config_is_immutable():
    cfg = load_config("staging")
    with pytest.raises(Exception):
        cfg.network.az_count = 5  # type: ignore[misc]


INVALID = [
    # (stack, overrides, the exact one-line error)
    ("production", {"fraudstack:network": {"azCount": 2}},
     "fraudstack:network.azCount: production needs at least 3 availability zones, got 2"),
    ("production", {"fraudstack:network": {"natStrategy": "single"}},
     "fraudstack:network.natStrategy: production needs one NAT gateway per AZ (perAz), got single"),
    ("staging", {"fraudstack:network": {"azCount": 1}},
     "fraudstack:network.azCount: Input should be greater than or equal to 2 (got 1)"),
    ("staging", {"fraudstack:network": {"azCount": 7}},
     "fraudstack:network.azCount: Input should be less than or equal to 6 (got 7)"),
    ("staging", {"fraudstack:network": {"azCount": "three"}},
     "fraudstack:network.azCount: Input should be a valid integer, unable to parse string as an integer (got 'three')"),
    ("staging", {"fraudstack:network": {"vpcCidr": "10.20.0.0/33"}},
     "fraudstack:network.vpcCidr: not a valid IPv4 network CIDR ('10.20.0.0/33' does not appear to be an IPv4 or IPv6 network)"),
    ("staging", {"fraudstack:network": {"vpcCidr": "10.20.0.1/16"}},
     "fraudstack:network.vpcCidr: not a valid IPv4 network CIDR (10.20.0.1/16 has host bits set)"),
    ("staging", {"fraudstack:network": {"vpcCidr": "8.8.0.0/16"}},
     "fraudstack:network.vpcCidr: must be a private (RFC 1918) range"),
    ("staging", {"fraudstack:network": {"vpcCidr": "10.20.0.0/24"}},
     "fraudstack:network.vpcCidr: prefix /24 out of range: AWS allows /16 to /28 and the subnets need at least a /22"),
    ("staging", {"fraudstack:network": {"vpcCidr": "10.20.0.0/20", "privateSubnetPrefix": 21}},
     "fraudstack:network.vpcCidr: 10.20.0.0/20 is too small for 2 AZs of /21 private, /24 public and /24 isolated subnets"),
    ("staging", {"fraudstack:network": {"vpcCidr": "10.20.0.0/20"}},
     "fraudstack:network.privateSubnetPrefix: /19 must be smaller than the VPC's /20"),
    ("staging", {"fraudstack:network": {"privateSubnetPrefix": 16}},
     "fraudstack:network.privateSubnetPrefix: /16 must be smaller than the VPC's /16"),
    ("staging", {"fraudstack:network": {"natStrategy": "none"}},
     "fraudstack:network.natStrategy: Input should be 'single' or 'perAz' (got 'none')"),
    ("staging", {"fraudstack:network": {"flowLogRetentionDays": -1}},
     "fraudstack:network.flowLogRetentionDays: -1 is not a retention CloudWatch accepts ("
     + ", ".join(map(str, LOG_RETENTION_DAYS)) + ")"),
    ("staging", {"fraudstack:network": {"flowLogRetentionDays": 45}},
     "fraudstack:network.flowLogRetentionDays: 45 is not a retention CloudWatch accepts ("
     + ", ".join(map(str, LOG_RETENTION_DAYS)) + ")"),
    ("staging", {"fraudstack:network": {"azcount": 2}},
     "fraudstack:network.azcount: unknown key (check the spelling; keys are camelCase)"),
    ("staging", {"fraudstack:network": "big"},
     "fraudstack:network: must be a structured YAML object (Expecting value)"),
    ("staging", {"fraudstack:environment": None},
     "fraudstack:environment: is required"),
    ("staging", {"fraudstack:environment": "Prod!"},
     "fraudstack:environment: must be lowercase letters, digits and dashes, 2-21 characters"),
    ("staging", {"fraudstack:region": "europe-1"},
     "fraudstack:region: not an AWS region name such as eu-west-1"),
    ("staging", {"fraudstack:region": "eu-central-1"},
     "aws:region: must be set in the stack file and equal fraudstack:region (eu-central-1), got 'eu-west-1'"),
    ("staging", {"aws:region": None},
     "aws:region: must be set in the stack file and equal fraudstack:region (eu-west-1), got None"),
    ("staging", {"fraudstack:owner": "x"},
     "fraudstack:owner: String should have at least 3 characters (got 'x')"),
    ("staging", {"fraudstack:pciScope": "maybe"},
     "fraudstack:pciScope: Input should be a valid boolean, unable to interpret input (got 'maybe')"),
    ("staging", {"fraudstack:dataClassification": "secret"},
     "fraudstack:dataClassification: Input should be 'public', 'internal', 'confidential' or 'restricted' (got 'secret')"),
    ("staging", {"fraudstack:tags": {"owner": "someone-else"}},
     "fraudstack:tags.owner: is set by the program and may not be overridden"),
    ("staging", {"fraudstack:tags": {"aws:team": "x"}},
     "fraudstack:tags.aws:team: the aws: prefix is reserved by AWS"),
    ("staging", {"fraudstack:tags": {"team": 5}},
     "fraudstack:tags.team: Input should be a valid string (got 5)"),
    ("staging", {"fraudstack:azCount": "3"},
     "fraudstack:azCount: unknown key (known keys: alarms, app, bedrock, cache, cluster, dataClassification, database, endpoints, environment, keys, modelMonitoring, modelStore, network, owner, pciScope, region, registry, secrets, service, tags)"),
]


@pytest.mark.parametrize("stack,overrides,message", INVALID, ids=[m.split(":")[1].split(" ")[0] for _, _, m in INVALID])
def test_invalid_value_names_its_key(stack, overrides, message):
    with pytest.raises(pulumi.RunError) as err:
        load_config(stack, overrides)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_unknown_key_check_tracks_new_sections():
    # The error lists the known keys from StackConfig itself, so new sections appear there.
    keys = {row[0].split(".")[0].removeprefix("fraudstack:") for row in config_reference()}
    with pytest.raises(pulumi.RunError) as err:
        load_config("staging", {"fraudstack:nope": "1"})
    assert str(err.value).endswith(f"(known keys: {', '.join(sorted(keys))})")


def test_project_namespace_key_without_prefix_is_read():
    # `environment: x` in a stack file means `fraudstack:environment`, as with the CLI.
    cfg = load_config("staging", {"owner": "payments-sre"})
    assert cfg.owner == "payments-sre"


class _WithSecret(StackConfig):
    """A later area's config with a secret key."""

    api_token: SecretStr | None = None


def _load_with_secret(overrides):
    flat, secrets = stack_config("staging", overrides)
    pulumi.runtime.set_all_config(flat, secrets)
    return load_stack_config(model=_WithSecret)


def test_secret_field_accepts_secure_value():
    cfg = _load_with_secret({"fraudstack:apiToken": {"secure": "AAABAMockCiphertext=="}})
    assert cfg.api_token.get_secret_value() == "mock-secret-not-a-real-value"


def test_secret_field_refuses_plain_text():
    with pytest.raises(pulumi.RunError) as err:
        _load_with_secret({"fraudstack:apiToken": "test-key-not-a-secret"})
    assert str(err.value) == "fraudstack:apiToken: must be set with `pulumi config set --secret`, never in plain text"


def test_wrong_value_of_a_secret_key_is_not_echoed():
    # A key set with --secret but declared as a plain value: the error must not show it.
    flat, secrets = stack_config("staging", {"fraudstack:owner": {"secure": "AAABAMockCiphertext=="}})
    flat["fraudstack:owner"] = "x"
    pulumi.runtime.set_all_config(flat, secrets)
    with pytest.raises(pulumi.RunError) as err:
        load_stack_config()
    assert str(err.value) == "fraudstack:owner: String should have at least 3 characters"
