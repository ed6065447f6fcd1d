"""Pure subnet planning: carve a VPC CIDR into private, public and isolated subnets per AZ.

Kept apart from the Network component so config validation can check a layout fits
before any resource exists, and so the arithmetic is tested on its own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

TIERS = ("private", "public", "isolated")


class SubnetPlanError(ValueError):
    """The requested subnets do not fit in the VPC CIDR."""


@dataclass(frozen=True)
class SubnetPlan:
    """Subnet CIDRs per tier, index i in each tuple belonging to the i-th AZ."""

    private: tuple[str, ...]
    public: tuple[str, ...]
    isolated: tuple[str, ...]

    def tier(self, name: str) -> tuple[str, ...]:
        """CIDRs of one tier by name."""
        return getattr(self, name)


def plan_subnets(
    vpc_cidr: str,
    az_count: int,
    private_prefix: int,
    public_prefix: int,
    isolated_prefix: int,
) -> SubnetPlan:
    """Allocate ``az_count`` subnets per tier from the start of ``vpc_cidr``.

    Private (workload) subnets come first because they are the largest (EKS gives every
    pod a VPC address); public then isolated subnets follow, each aligned to its size.
    The layout depends only on the arguments, so adding an AZ later appends subnets
    without renumbering the existing ones as long as the prefixes stay the same.
    """
    vpc = ipaddress.ip_network(vpc_cidr, strict=True)
    cursor = int(vpc.network_address)
    end = int(vpc.broadcast_address) + 1
    result: dict[str, tuple[str, ...]] = {}
    for tier, prefix in (("private", private_prefix), ("public", public_prefix), ("isolated", isolated_prefix)):
        if prefix <= vpc.prefixlen:
            raise SubnetPlanError(f"{tier} subnets (/{prefix}) must be smaller than the VPC ({vpc})")
        size = 1 << (32 - prefix)
        cursor = -(-cursor // size) * size  # align up to the subnet size
        cidrs = []
        for _ in range(az_count):
            if cursor + size > end:
                raise SubnetPlanError(
                    f"{vpc} is too small for {az_count} AZs of /{private_prefix} private, "
                    f"/{public_prefix} public and /{isolated_prefix} isolated subnets"
                )
            cidrs.append(str(ipaddress.ip_network((cursor, prefix))))
            cursor += size
        result[tier] = tuple(cidrs)
    return SubnetPlan(**result)
