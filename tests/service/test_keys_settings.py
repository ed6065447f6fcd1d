"""Settings validation and API keys from Secrets Manager (moto)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from app.keys import KeySourceError, key_digests, parse_secret
from app.settings import DEV_API_KEY, Settings, SettingsError, hash_api_key, load_settings

STRONG = "k3y-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_placeholder_keys_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTACK_ENVIRONMENT", "production")
    monkeypatch.setenv("FRAUDSTACK_API_KEYS", "test-key-not-a-secret")
    with pytest.raises(SettingsError, match="FRAUDSTACK_API_KEYS holds a placeholder"):
        load_settings()
    monkeypatch.setenv("FRAUDSTACK_API_KEYS", f"{STRONG}, {STRONG[::-1]}")
    assert load_settings().api_keys == [STRONG, STRONG[::-1]]
    monkeypatch.delenv("FRAUDSTACK_API_KEYS")
    with pytest.raises(SettingsError, match="no API keys"):
        load_settings()


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTACK_REDIS_TIMEOUT_MS", "fast")
    monkeypatch.setenv("FRAUDSTACK_DATABASE_URL", "mysql://x")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "FRAUDSTACK_REDIS_TIMEOUT_MS" in str(info.value) and "FRAUDSTACK_DATABASE_URL" in str(info.value)


def test_development_without_keys_accepts_only_the_dev_key() -> None:
    s = Settings(environment="development")
    assert s.uses_dev_key and key_digests(s) == [hash_api_key(DEV_API_KEY)]


@pytest.mark.parametrize("secret,keys", [('["a1", "b2"]', ["a1", "b2"]), ('{"api_keys": ["a1"]}', ["a1"]), ("a1, b2,", ["a1", "b2"])])
def test_parse_secret(secret: str, keys: list[str]) -> None:
    assert parse_secret(secret) == keys


def test_parse_secret_refuses_empty() -> None:
    with pytest.raises(KeySourceError, match="no API key"):
        parse_secret("[]")


@mock_aws
def test_keys_from_secrets_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sm = boto3.client("secretsmanager", region_name="eu-west-1")
    sm.create_secret(Name="fraudstack/api-keys", SecretString='{"api_keys": ["' + STRONG + '"]}')
    s = Settings(environment="production", api_keys_secret_id="fraudstack/api-keys", aws_region="eu-west-1")
    assert key_digests(s) == [hash_api_key(STRONG)]
    missing = Settings(environment="production", api_keys_secret_id="fraudstack/nope", aws_region="eu-west-1")
    with pytest.raises(KeySourceError, match="fraudstack/nope"):
        key_digests(missing)
    # With environment keys as well, an unreadable secret degrades to them.
    fallback = Settings(environment="production", api_keys_secret_id="fraudstack/nope", aws_region="eu-west-1",
                        api_keys=[STRONG[::-1]])
    assert key_digests(fallback) == [hash_api_key(STRONG[::-1])]


def test_settings_table_in_docs_lists_every_variable() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "service.md").read_text()
    missing = [f"FRAUDSTACK_{name.upper()}" for name in Settings.model_fields if f"| `FRAUDSTACK_{name.upper()}` |" not in text]
    assert missing == []
