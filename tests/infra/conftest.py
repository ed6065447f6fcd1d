"""Fixtures for the infrastructure tests (owned by the infra branch; others add their own helpers modules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from components.config import StackConfig, load_stack_config
from tools.plan import stack_config


def load_config(stack: str, overrides: dict[str, Any] | None = None) -> StackConfig:
    """Validate a stack file's config (plus overrides) exactly as the program does."""
    flat, secrets = stack_config(stack, overrides)
    pulumi.runtime.set_all_config(flat, secrets)
    return load_stack_config()


@pytest.fixture
def config_of() -> Callable[..., StackConfig]:
    """``config_of("production", {"fraudstack:network": {"azCount": 2}})`` -> StackConfig."""
    return load_config
