"""Where client API keys come from: Secrets Manager when configured, else the environment.

Only SHA-256 digests leave this module. Without AWS configuration no AWS call is
made at all; with a secret configured but unreadable, start-up fails with a
message naming the secret (or, if FRAUDSTACK_API_KEYS is also set, falls back to
it with a warning).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app.settings import DEV_API_KEY, Settings, hash_api_key

log = logging.getLogger("fraudstack.keys")


class KeySourceError(RuntimeError):
    """The configured key source could not be read or held no key."""


def parse_secret(secret: str) -> list[str]:
    """Keys from a secret string: a JSON list, {"api_keys": [...]} or comma-separated text."""
    text = secret.strip()
    if text.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except ValueError:
            raise KeySourceError("secret is neither valid JSON nor a comma-separated list") from None
        if isinstance(data, dict):
            data = data.get("api_keys")
        if not isinstance(data, list) or not all(isinstance(k, str) for k in data):
            raise KeySourceError("secret JSON must be a list of strings or {\"api_keys\": [...]}")
        keys = [k.strip() for k in data]
    else:
        keys = [k.strip() for k in text.split(",")]
    keys = [k for k in keys if k]
    if not keys:
        raise KeySourceError("secret holds no API key")
    return keys


def fetch_secret_keys(secret_id: str, client: Any = None, region: str | None = None) -> list[str]:
    """Read and parse the keys secret from AWS Secrets Manager."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager", region_name=region)
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except Exception as exc:
        raise KeySourceError(f"cannot read Secrets Manager secret {secret_id!r}: {type(exc).__name__}: {exc}") from None
    if "SecretString" not in response:
        raise KeySourceError(f"Secrets Manager secret {secret_id!r} has no SecretString")
    return parse_secret(response["SecretString"])


def key_digests(settings: Settings, client: Any = None) -> list[str]:
    """All accepted key digests for ``settings``."""
    digests = list(settings.api_key_hashes)
    if settings.api_keys_secret_id:
        try:
            digests += [hash_api_key(k) for k in fetch_secret_keys(settings.api_keys_secret_id, client, settings.aws_region)]
        except KeySourceError as exc:
            if not (settings.api_keys or settings.api_key_hashes):
                raise
            log.warning("%s; using FRAUDSTACK_API_KEYS / FRAUDSTACK_API_KEY_HASHES instead", exc)
    digests += [hash_api_key(k) for k in settings.api_keys]
    if not digests and settings.uses_dev_key:
        digests.append(hash_api_key(DEV_API_KEY))
    return digests
