"""Service settings: read once from ``FRAUDSTACK_*`` environment variables.

Every field is documented where it is declared (the settings table in
docs/service.md is written from these). Invalid values fail at start-up with the
variable's name; placeholder API keys are refused outside development.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Key used on a fresh development machine when no key is configured; printed at start-up.
DEV_API_KEY = "dev-key-not-a-secret"

# Substrings that mark a key as an example or a placeholder (case-insensitive).
_PLACEHOLDER_MARKERS = ("changeme", "change-me", "not-a-secret", "example", "placeholder", "secret", "password", "dev-key")
_MIN_KEY_LENGTH = 24


class Environment(str, Enum):
    """Where the service runs; only ``development`` tolerates placeholder keys."""

    development = "development"
    staging = "staging"
    production = "production"


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of a client key: the only form the service keeps in memory."""
    return hashlib.sha256(key.encode()).hexdigest()


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All runtime configuration of the scoring service."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTACK_", extra="ignore", frozen=True)

    environment: Environment = Field(Environment.development, description="development, staging or production; placeholder keys are refused outside development.")
    log_level: str = Field("INFO", description="Python log level name.")

    # --- authentication ---
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Comma-separated client keys (sent as X-API-Key). Hashed at start-up; the clear values are not kept.")
    api_key_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Comma-separated SHA-256 hex digests of client keys, for deployments that never hold clear keys.")
    api_keys_secret_id: str | None = Field(None, description="Secrets Manager secret (name or ARN) holding the keys: a JSON list, {\"api_keys\": [...]} or a comma-separated string. Used instead of FRAUDSTACK_API_KEYS when set.")
    aws_region: str | None = Field(None, description="AWS region for Secrets Manager (defaults to the SDK's own resolution).")
    hmac_secret: str | None = Field(None, description="When set, every request must carry X-Timestamp, X-Nonce and X-Signature (hex HMAC-SHA256 of '<timestamp>.<nonce>.<body>').")
    hmac_window_seconds: int = Field(300, ge=1, le=3600, description="Accepted clock skew for signed requests; nonces are remembered this long.")
    rate_limit_per_second: int = Field(5000, ge=0, description="Requests per second per API key across all workers (Redis; per process when Redis is down). 0 disables.")
    max_body_bytes: int = Field(2_000_000, ge=1024, description="Larger request bodies are refused with 413.")
    max_batch_size: int = Field(1000, ge=1, le=10000, description="Most transactions accepted by /v1/score/batch.")

    # --- dependencies ---
    redis_url: str | None = Field(None, description="Redis for velocity features, rate limits and nonces (e.g. redis://host:6379/0, rediss:// for TLS). Unset: in-process store.")
    redis_key_prefix: str = Field("fraudstack:", description="Prefix of every Redis key the service writes.")
    redis_timeout_ms: int = Field(25, ge=1, le=5000, description="Per-call Redis timeout; slower calls score in degraded mode.")
    velocity_result_ttl_seconds: float = Field(900.0, ge=1, le=604800, description="How long a retried transaction_id gets the same velocity answer without being counted again.")
    redis_retry_seconds: float = Field(0.25, ge=0, le=60, description="Once Redis is considered down (connection lost, or 3 failures in a row), how long to score degraded before trying it again.")
    database_url: str | None = Field(None, description="PostgreSQL for the audit trail (postgresql://...). Unset: SQLite file in FRAUDSTACK_DATA_DIR.")
    database_schema: str = Field("fraudstack", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema holding the audit tables (created by the migrations).")
    data_dir: Path = Field(Path("var"), description="Writable directory for the demo model, the SQLite audit log and the audit spool.")
    audit_batch_size: int = Field(500, ge=1, le=10000, description="Most audit records written per database round trip.")
    audit_flush_ms: int = Field(50, ge=1, le=60000, description="Longest time a record waits in memory before it is written.")
    audit_retry_seconds: float = Field(1.0, gt=0, le=300, description="How often the spool is replayed while the database is unreachable.")

    # --- model ---
    model_dir: Path | None = Field(None, description="Directory with model.onnx and model.json. Unset: a demo model is built into FRAUDSTACK_DATA_DIR/demo-model.")
    model_name: str = Field("fraudstack", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Name under which the Open Inference Protocol routes serve the model.")
    threshold_review: float | None = Field(None, ge=0, le=1, description="Override of model.json's review threshold.")
    threshold_decline: float | None = Field(None, ge=0, le=1, description="Override of model.json's decline threshold.")
    reasons_top_k: int = Field(3, ge=0, le=50, description="Reasons returned per score.")
    inference_threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads.")

    # --- explanations ---
    bedrock_region: str | None = Field(None, description="Region of the Bedrock runtime endpoint. Unset: template narratives only.")
    bedrock_model_id: str | None = Field(None, description="Bedrock model id used with the Converse API for review narratives.")
    bedrock_timeout_seconds: float = Field(2.0, gt=0, le=30, description="Connect and read timeout of a Bedrock call; on timeout the template narrative is returned.")

    # --- CloudWatch service metrics (app/cloudwatch.py) ---
    cloudwatch_namespace: str | None = Field(None, pattern=r"^[A-Za-z0-9_./#:-]{1,255}$", description="CloudWatch namespace for ScoringLatency, Requests, Errors5xx and AuditBacklog (the platform's alarms read namespace fraudstack). Unset: nothing is published.")
    cloudwatch_service: str = Field("scoring-api", pattern=r"^[A-Za-z0-9_.-]{1,255}$", description="Value of the metrics' Service dimension (the Deployment's name); Environment is FRAUDSTACK_ENVIRONMENT.")
    cloudwatch_interval_seconds: float = Field(60.0, ge=1, le=3600, description="Seconds between two PutMetricData calls (one more at shutdown).")

    @field_validator("api_keys", "api_key_hashes", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("api_key_hashes")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError("each entry must be a 64-character SHA-256 hex digest")
        return [d.lower() for d in value]

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @field_validator("database_url")
    @classmethod
    def _pg_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.threshold_review is not None and self.threshold_decline is not None and self.threshold_review > self.threshold_decline:
            raise ValueError("FRAUDSTACK_THRESHOLD_REVIEW must not exceed FRAUDSTACK_THRESHOLD_DECLINE")
        if bool(self.bedrock_model_id) != bool(self.bedrock_region):
            raise ValueError("FRAUDSTACK_BEDROCK_REGION and FRAUDSTACK_BEDROCK_MODEL_ID must be set together")
        if self.environment is not Environment.development:
            for key in self.api_keys:
                if len(key) < _MIN_KEY_LENGTH or any(m in key.lower() for m in _PLACEHOLDER_MARKERS):
                    raise ValueError(
                        f"FRAUDSTACK_API_KEYS holds a placeholder or short key (at least {_MIN_KEY_LENGTH} random characters) "
                        f"and FRAUDSTACK_ENVIRONMENT is {self.environment.value}"
                    )
            if self.hmac_secret is not None and (len(self.hmac_secret) < 32 or any(m in self.hmac_secret.lower() for m in _PLACEHOLDER_MARKERS)):
                raise ValueError("FRAUDSTACK_HMAC_SECRET is a placeholder or shorter than 32 characters")
            if not (self.api_keys or self.api_key_hashes or self.api_keys_secret_id):
                raise ValueError(
                    "no API keys: set FRAUDSTACK_API_KEYS, FRAUDSTACK_API_KEY_HASHES or FRAUDSTACK_API_KEYS_SECRET_ID"
                )
        return self

    @property
    def uses_dev_key(self) -> bool:
        """True when no key source is configured and the development key is accepted."""
        return not (self.api_keys or self.api_key_hashes or self.api_keys_secret_id)


def load_settings() -> Settings:
    """Read settings from the environment; a bad value raises ``SettingsError`` naming the variable."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False):
            name = "FRAUDSTACK_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise SettingsError("; ".join(problems)) from None


class SettingsError(RuntimeError):
    """Configuration is invalid; the message names each offending variable."""
