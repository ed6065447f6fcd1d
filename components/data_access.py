"""The security group of a data-tier service: one port, reachable only from listed groups.

The database and the cache share this shape (PCI DSS 1.3.1, policy rule X4): a group of
their own, no inline rules, and one ingress rule per allowed security group, never a
CIDR. One definition keeps the two from drifting apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pulumi
import pulumi_aws as aws


def service_security_group(
    name: str,
    *,
    engine: str,
    resource_name: str,
    port: int,
    vpc_id: pulumi.Input[str],
    allowed_security_group_ids: Mapping[str, pulumi.Input[str]],
    tags: Callable[[str], dict[str, str]],
    name_suffix: str,
    opts: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroup:
    """Create ``<name>-sg`` admitting ``port`` from each labelled group in ``allowed_security_group_ids``.

    ``engine`` names the service in descriptions ("PostgreSQL", "Redis"), ``tags(suffix)``
    gives the tags with a derived ``Name``; ``opts`` carries the component as parent.
    """
    # Auto-named (the Name tag carries the readable name) so a replacement can be
    # created before the old group is deleted. Rules are separate resources below and
    # never inline, so the two kinds never fight over the group.
    sg = aws.ec2.SecurityGroup(
        f"{name}-sg",
        description=f"{engine} {resource_name}: {port} from the listed security groups only",
        vpc_id=vpc_id,
        tags=tags(name_suffix),
        opts=opts,
    )
    for label, source in sorted(allowed_security_group_ids.items()):
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-sg-from-{label}",
            security_group_id=sg.id,
            referenced_security_group_id=source,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=f"{engine} from {label}",
            tags=tags(f"-from-{label}"),
            opts=opts,
        )
    return sg
