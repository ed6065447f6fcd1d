"""The one tagging function: every component receives these tags through its Args.

Stack transforms do not run under the mock runtime, so tags are passed explicitly and
each component adds a derived ``Name`` with :func:`with_name`.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.config import StackConfig


def required_tags(cfg: StackConfig) -> dict[str, str]:
    """Tags every resource of the stack carries: the mandatory five plus extra tags from config."""
    tags = {
        "environment": cfg.environment,
        "service": cfg.service,
        "owner": cfg.owner,
        "data-classification": cfg.data_classification.value,
        "pci-scope": "in-scope" if cfg.pci_scope else "out-of-scope",
    }
    # Config validation already refused extra tags that would redefine these.
    tags.update(cfg.tags)
    return tags


def with_name(tags: Mapping[str, str], name: str) -> dict[str, str]:
    """A copy of ``tags`` with ``Name`` set, the label the AWS console shows."""
    return {**tags, "Name": name}
