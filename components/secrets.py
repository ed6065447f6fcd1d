"""Secrets Manager secrets the scoring service needs, with generated values only.

Four secrets: the client API keys (``{"api_keys": [...], "clients": {client: key}}``,
the shape the scoring service reads), the HMAC key clients sign their requests with
(``FRAUDSTACK_HMAC_SECRET``), the Redis AUTH token (also handed to the cache component),
and the operators' admin key for the service's ``/admin`` routes (the service keeps only
its SHA-256, ``FRAUDSTACK_ADMIN_KEY_HASH``; app/credentials.py).
Every value comes from ``pulumi_random.RandomPassword``, so no value is ever typed into
a stack file; Pulumi keeps it encrypted in state as a secret. Each secret is encrypted
with our ``secrets`` KMS key and carries a resource policy that denies reads to every
principal except the reader roles passed in (none yet means nobody reads: safe).

AWS offers no managed rotation for these four (only for RDS, Redshift and DocumentDB
credentials), so ``docs/operations.md`` documents their rotation procedures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

READ_ACTIONS: tuple[str, ...] = ("secretsmanager:GetSecretValue",)


def secret_policy(secret_arn: str, reader_arns: Sequence[str]) -> dict:
    """Resource policy: deny reading the secret to everyone but ``reader_arns``.

    With no readers the deny is unconditional: the secret exists but nobody can read
    it until the service role is wired in. Administrators can still rotate it
    (PutSecretValue is not denied).
    """
    deny: dict = {
        "Sid": "DenyReadExceptReaders",
        "Effect": "Deny",
        # A Deny with a principal-ARN condition is the documented way to restrict a
        # secret to named roles; it grants nothing.
        "Principal": {"AWS": "*"},
        "Action": list(READ_ACTIONS),
        "Resource": secret_arn,
    }
    statements = [deny]
    if reader_arns:
        deny["Condition"] = {"ArnNotEquals": {"aws:PrincipalArn": sorted(reader_arns)}}
        statements.append(
            {
                "Sid": "AllowReaders",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(reader_arns)},
                "Action": [*READ_ACTIONS, "secretsmanager:DescribeSecret"],
                "Resource": secret_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def api_keys_document(keys_by_client: Mapping[str, str]) -> str:
    """The ``api-keys`` secret: ``{"api_keys": [...], "clients": {client: key}}``.

    The scoring service reads ``api_keys`` (docs/ARCHITECTURE.md); ``clients`` tells an
    operator which key belongs to whom when one has to be revoked.
    """
    ordered = dict(sorted(keys_by_client.items()))
    return json.dumps({"api_keys": list(ordered.values()), "clients": ordered})


@dataclass(frozen=True)
class SecretsArgs:
    """Inputs of :class:`Secrets`."""

    #: Physical name prefix, e.g. ``fraudstack-production``; secrets are named
    #: ``<name_prefix>/<secret>``.
    name_prefix: str
    #: Required tags; each secret adds its own ``Name``.
    tags: Mapping[str, str]
    #: ARN of the ``secrets`` KMS key.
    kms_key_arn: pulumi.Input[str]
    #: Days a deleted secret can still be restored (7-30).
    recovery_window_days: int
    #: Client names that get an API key (the keys of the ``api-keys`` JSON object).
    api_key_clients: tuple[str, ...]
    #: Roles allowed to read the secrets (the scoring service's role once it exists).
    reader_role_arns: Sequence[pulumi.Input[str]] = ()
    #: Length of each generated API key.
    api_key_length: int = 48
    #: Length of the generated HMAC signing key.
    hmac_key_length: int = 64
    #: Length of the Redis AUTH token (ElastiCache accepts 16-128).
    redis_auth_token_length: int = 64
    #: Length of the generated admin key (``X-Admin-Key`` of ``POST /admin/model/reload``).
    admin_key_length: int = 48


class Secrets(pulumi.ComponentResource):
    """The service's secrets, generated, KMS-encrypted and readable only by named roles."""

    secret_arns: dict[str, pulumi.Output[str]]
    secret_names: dict[str, pulumi.Output[str]]
    #: The Redis AUTH token as a Pulumi secret, for the cache component.
    redis_auth_token: pulumi.Output[str]

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:Secrets", name, None, opts)
        if not args.api_key_clients:
            raise ValueError("at least one API key client is required")
        if len(set(args.api_key_clients)) != len(args.api_key_clients):
            raise ValueError(f"duplicate API key clients in {list(args.api_key_clients)}")
        if not 16 <= args.redis_auth_token_length <= 128:
            raise ValueError("the Redis AUTH token must be 16-128 characters")
        child = pulumi.ResourceOptions(parent=self)

        api_keys = {
            client: random.RandomPassword(
                f"{name}-api-key-{client}-value", length=args.api_key_length, special=False, opts=child
            )
            for client in args.api_key_clients
        }
        hmac_key = random.RandomPassword(
            f"{name}-hmac-signing-key-value", length=args.hmac_key_length, special=False, opts=child
        )
        # Letters and digits only: ElastiCache would accept some punctuation, but a '#' or
        # '&' in a token breaks the rediss:// URL clients build from it; 64 alphanumerics
        # still carry about 380 bits.
        redis_token = random.RandomPassword(
            f"{name}-redis-auth-token-value",
            length=args.redis_auth_token_length,
            special=False,
            opts=child,
        )
        # Separate from the client keys: whoever holds it can swap the model that decides.
        admin_key = random.RandomPassword(
            f"{name}-admin-key-value", length=args.admin_key_length, special=False, opts=child
        )
        clients = list(api_keys)
        api_keys_json = pulumi.Output.all(*(p.result for p in api_keys.values())).apply(
            lambda values: api_keys_document(dict(zip(clients, values)))
        )
        values: dict[str, tuple[str, pulumi.Output[str]]] = {
            "api-keys": ('API keys of the clients calling /score: {"api_keys": [...], "clients": {client: key}}', api_keys_json),
            "hmac-signing-key": ("HMAC-SHA256 key clients sign /score requests with", hmac_key.result),
            "redis-auth-token": ("AUTH token of the ElastiCache Redis replication group", redis_token.result),
            "admin-key": ("Admin key (X-Admin-Key) of the scoring service's /admin routes; the service keeps its SHA-256",
                          admin_key.result),
        }

        readers = list(args.reader_role_arns)
        self.secret_arns, self.secret_names = {}, {}
        for suffix, (description, value) in values.items():
            secret = aws.secretsmanager.Secret(
                f"{name}-{suffix}",
                name=f"{args.name_prefix}/{suffix}",
                description=description,
                kms_key_id=args.kms_key_arn,
                recovery_window_in_days=args.recovery_window_days,
                tags={**args.tags, "Name": f"{args.name_prefix}/{suffix}"},
                opts=child,
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-{suffix}-version",
                secret_id=secret.id,
                # Already secret (RandomPassword.result); wrapped again so a refactor that
                # derives the value some other way cannot leak it into plain state.
                secret_string=pulumi.Output.secret(value),
                opts=child,
            )
            aws.secretsmanager.SecretPolicy(
                f"{name}-{suffix}-policy",
                secret_arn=secret.arn,
                block_public_policy=True,
                policy=pulumi.Output.all(secret.arn, *readers).apply(
                    lambda v: json.dumps(secret_policy(v[0], v[1:]), sort_keys=True)
                ),
                opts=child,
            )
            self.secret_arns[suffix] = secret.arn
            self.secret_names[suffix] = secret.name

        self.redis_auth_token = pulumi.Output.secret(redis_token.result)
        self.register_outputs({"secret_arns": self.secret_arns, "secret_names": self.secret_names})
