"""Credentials from AWS Secrets Manager, resolved into the service's settings at start-up.

In AWS the deployment (components/scoring_app.py) never hands the service a credential:
it gives the ARNs of the secrets holding them, and the pod's IAM role (IRSA) may read
exactly those. Before the settings are loaded, :func:`resolve` reads them and fills in

* ``FRAUDSTACK_DATABASE_SECRET_ID`` (the RDS-managed master-user secret, JSON
  ``{"username", "password"}``): user and password into ``FRAUDSTACK_DATABASE_URL``;
* ``FRAUDSTACK_REDIS_AUTH_SECRET_ID`` (the ElastiCache AUTH token): the password of
  ``FRAUDSTACK_REDIS_URL``;
* ``FRAUDSTACK_HMAC_SECRET_ID`` (the request-signing key): ``FRAUDSTACK_HMAC_SECRET``;
* ``FRAUDSTACK_ADMIN_KEY_SECRET_ID`` (the operators' admin key): its SHA-256 hex into
  ``FRAUDSTACK_ADMIN_KEY_HASH`` (app/lifecycle.py compares ``X-Admin-Key`` with it); the
  key itself is never put in the environment.

The result goes into the process environment, so uvicorn's worker processes inherit it.
A value set explicitly is never overridden; without any ``*_SECRET_ID`` nothing is read
and no AWS call is made. Errors name the variable and the secret, never a value.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

DATABASE_SECRET = "FRAUDSTACK_DATABASE_SECRET_ID"
REDIS_SECRET = "FRAUDSTACK_REDIS_AUTH_SECRET_ID"
HMAC_SECRET = "FRAUDSTACK_HMAC_SECRET_ID"
ADMIN_KEY_SECRET = "FRAUDSTACK_ADMIN_KEY_SECRET_ID"
#: The start-up variables this module reads (they are not Settings fields: they only
#: say where the credentials of four settings are).
SECRET_VARIABLES = (DATABASE_SECRET, REDIS_SECRET, HMAC_SECRET, ADMIN_KEY_SECRET)


class CredentialsError(RuntimeError):
    """A credential secret could not be read or does not have the expected shape."""


def _with_password(url: str, username: str | None, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = quote(username if username is not None else (parts.username or ""), safe="")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def _has_password(url: str) -> bool:
    return urlsplit(url).password is not None


def resolve(environ: Mapping[str, str], client: Any = None) -> dict[str, str]:
    """The settings to add to ``environ``, read from the secrets it names."""
    wanted = [name for name in SECRET_VARIABLES if environ.get(name)]
    if not wanted:
        return {}
    if client is None:
        import boto3

        client = boto3.client("secretsmanager", region_name=environ.get("FRAUDSTACK_AWS_REGION") or None)

    def read(variable: str) -> str:
        secret_id = environ[variable]
        try:
            response = client.get_secret_value(SecretId=secret_id)
        except Exception as exc:  # botocore raises many types; the message carries no value
            raise CredentialsError(f"{variable}: cannot read secret {secret_id!r}: {type(exc).__name__}") from None
        if "SecretString" not in response:
            raise CredentialsError(f"{variable}: secret {secret_id!r} has no SecretString")
        return response["SecretString"]

    out: dict[str, str] = {}
    url = environ.get("FRAUDSTACK_DATABASE_URL")
    if DATABASE_SECRET in wanted and url and not _has_password(url):
        try:
            login = json.loads(read(DATABASE_SECRET))
            username, password = login.get("username"), login["password"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CredentialsError(f"{DATABASE_SECRET}: the secret is not JSON with a password") from None
        out["FRAUDSTACK_DATABASE_URL"] = _with_password(url, username, password)
    url = environ.get("FRAUDSTACK_REDIS_URL")
    if REDIS_SECRET in wanted and url and not _has_password(url):
        token = read(REDIS_SECRET).strip()
        if not token:
            raise CredentialsError(f"{REDIS_SECRET}: the secret is empty")
        # ElastiCache AUTH tokens belong to the default user: an empty user name.
        out["FRAUDSTACK_REDIS_URL"] = _with_password(url, "", token)
    if HMAC_SECRET in wanted and not environ.get("FRAUDSTACK_HMAC_SECRET"):
        key = read(HMAC_SECRET).strip()
        if not key:
            raise CredentialsError(f"{HMAC_SECRET}: the secret is empty")
        out["FRAUDSTACK_HMAC_SECRET"] = key
    if ADMIN_KEY_SECRET in wanted and not environ.get("FRAUDSTACK_ADMIN_KEY_HASH"):
        key = read(ADMIN_KEY_SECRET).strip()
        if not key:
            raise CredentialsError(f"{ADMIN_KEY_SECRET}: the secret is empty")
        # The same digest as app.lifecycle.hash_key; only the hash stays in the process.
        out["FRAUDSTACK_ADMIN_KEY_HASH"] = hashlib.sha256(key.encode()).hexdigest()
    return out


def apply(environ: MutableMapping[str, str] | None = None, client: Any = None) -> list[str]:
    """Resolve and write into ``environ`` (default: the process environment); returns the names set."""
    environ = os.environ if environ is None else environ
    changes = resolve(environ, client)
    environ.update(changes)
    return sorted(changes)
