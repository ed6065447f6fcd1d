"""Stack-config sections for the model lifecycle: ``fraudstack:modelStore`` and
``fraudstack:modelMonitoring``.

Same conventions as ``components/cluster_config.py``: camelCase keys in the stack file,
unknown keys refused, a bad value fails once at the edge with the dotted key
(``fraudstack:modelStore.writerRoleArns``).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


class _Section(BaseModel):
    """camelCase keys in the stack file, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _roles(value: tuple[str, ...]) -> tuple[str, ...]:
    for arn in value:
        if not _ROLE_ARN.match(arn):
            raise ValueError(f"{arn!r} is not an IAM role ARN")
    if len(set(value)) != len(value):
        raise ValueError("lists a role twice")
    return value


class ModelStoreConfig(_Section):
    """``fraudstack:modelStore``: the S3 bucket of model artifacts."""

    writer_role_arns: tuple[str, ...] = Field(default_factory=tuple, description="Roles that may publish models and move the active/candidate pointers (training, deploy). Empty: nobody can write.")
    reader_role_arns: tuple[str, ...] = Field(default_factory=tuple, description="Roles that may read models besides the scoring service's own role.")
    noncurrent_version_days: int = Field(90, ge=1, le=3650, description="Days an overwritten or deleted object version is kept (roll-back window).")
    keep_noncurrent_versions: int = Field(10, ge=1, le=100, description="Newest noncurrent versions kept regardless of age.")
    access_log_days: int = Field(365, ge=1, le=3650, description="Days the bucket's server access logs are kept.")
    force_destroy: bool = Field(False, description="Let `pulumi destroy` empty the bucket (refused in production).")

    @field_validator("writer_role_arns", "reader_role_arns")
    @classmethod
    def _role_arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _roles(value)


class ModelMonitoringConfig(_Section):
    """``fraudstack:modelMonitoring``: drift and quality alarm thresholds (see docs/model-lifecycle.md)."""

    enabled: bool = Field(True, description="Create the model drift and quality alarms.")
    score_psi: float = Field(0.25, gt=0, le=10, description="Alarm when the PSI of the score against the training reference exceeds this (0.1 = moderate, 0.25 = major shift).")
    feature_psi: float = Field(0.25, gt=0, le=10, description="Alarm when the largest PSI among the monitored features exceeds this.")
    decline_precision: float = Field(0.5, ge=0, le=1, description="Alarm when the share of labelled declines that were fraud falls below this.")
    decline_recall: float = Field(0.3, ge=0, le=1, description="Alarm when the share of labelled fraud that was declined falls below this.")
    review_precision: float = Field(0.05, ge=0, le=1, description="Alarm when the share of labelled review-or-decline decisions that were fraud falls below this.")
    review_recall: float = Field(0.6, ge=0, le=1, description="Alarm when the share of labelled fraud sent to review or declined falls below this.")
    evaluation_hours: int = Field(6, ge=1, le=24, description="Drift/quality alarms fire after this many hourly datapoints in breach (labels and PSI move slowly).")

    @model_validator(mode="after")
    def _bands(self) -> "ModelMonitoringConfig":
        # Flagging (review or decline) catches at least what declining alone catches.
        if self.review_recall < self.decline_recall:
            raise ValueError(f"reviewRecall ({self.review_recall}) must be >= declineRecall ({self.decline_recall})")
        return self
