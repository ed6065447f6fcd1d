"""Interface VPC endpoints: Bedrock runtime (and the AWS APIs private nodes need)
reachable from the nodes only, without leaving the VPC."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

# Short name (as in config) -> (service suffix, actions the endpoint policy allows).
# ECR pulls also fetch add-on images from AWS-owned registries, and log/secret calls
# target many ARNs, so those policies pin the caller's account instead of resources.
SERVICES: dict[str, str] = {
    "bedrock_runtime": "bedrock-runtime",
    "ecr_api": "ecr.api",
    "ecr_dkr": "ecr.dkr",
    "sts": "sts",
    "logs": "logs",
    "secrets_manager": "secretsmanager",
    "monitoring": "monitoring",
}
BEDROCK_ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
_ACCOUNT_SCOPED_ACTIONS = {
    "ecr.api": ["ecr:*"],
    "ecr.dkr": ["ecr:*"],
    "logs": ["logs:*"],
    "secretsmanager": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
    # The service's metrics only (the IRSA role further pins the namespace).
    "monitoring": ["cloudwatch:PutMetricData"],
}
_INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.")


def bedrock_model_arns(model_ids: Sequence[str], region: str, account_id: str, partition: str = "aws") -> list[str]:
    """ARNs ``bedrock:InvokeModel*`` may target for the configured model ids.

    A cross-region inference profile id (``eu.anthropic...``) needs the profile in this
    region and the underlying foundation model in whichever region serves the call.
    """
    arns: list[str] = []
    for model_id in model_ids:
        prefix = next((p for p in _INFERENCE_PROFILE_PREFIXES if model_id.startswith(p)), None)
        if prefix:
            arns.append(f"arn:{partition}:bedrock:{region}:{account_id}:inference-profile/{model_id}")
            arns.append(f"arn:{partition}:bedrock:*::foundation-model/{model_id[len(prefix):]}")
        else:
            arns.append(f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}")
    return arns


def endpoint_policy(
    service: str,
    account_id: str,
    region: str,
    model_ids: Sequence[str],
    partition: str = "aws",
    bedrock_invokers: Sequence[str] = (),
) -> str:
    """The endpoint policy for one service: callers from our account only, least actions.

    ``bedrock_invokers`` narrows Bedrock further to those role ARNs (the service's role).
    """
    account_root = f"arn:{partition}:iam::{account_id}:root"
    if service == "bedrock-runtime":
        invokers = sorted(bedrock_invokers)
        statements = [
            {
                "Sid": "InvokeApprovedModelsOnly",
                "Effect": "Allow",
                "Principal": {"AWS": invokers if invokers else account_root},
                "Action": BEDROCK_ACTIONS,
                "Resource": bedrock_model_arns(model_ids, region, account_id, partition),
            }
        ]
    elif service == "sts":
        # AssumeRoleWithWebIdentity (IRSA) is an unsigned call: there is no calling
        # principal to match, so the policy pins the roles it may assume instead.
        statements = [
            {
                "Sid": "AssumeOwnRolesOnly",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["sts:AssumeRoleWithWebIdentity", "sts:AssumeRole", "sts:TagSession"],
                "Resource": f"arn:{partition}:iam::{account_id}:role/*",
            },
            {
                "Sid": "WhoAmI",
                "Effect": "Allow",
                "Principal": {"AWS": account_root},
                "Action": "sts:GetCallerIdentity",
                "Resource": "*",
            },
        ]
    else:
        statements = [
            {
                "Sid": "OwnAccountOnly",
                "Effect": "Allow",
                "Principal": {"AWS": account_root},
                "Action": _ACCOUNT_SCOPED_ACTIONS[service],
                "Resource": "*",
            }
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@dataclass(frozen=True)
class EndpointsArgs:
    """Inputs of :class:`Endpoints`."""

    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets, one per AZ: the endpoint gets an interface in each."""
    node_security_group_id: pulumi.Input[str]
    """The only source admitted on 443."""
    region: str
    account_id: pulumi.Input[str]
    model_ids: Sequence[str]
    """Bedrock model (or inference profile) ids the endpoint policy allows."""
    bedrock_invoker_role_arns: Sequence[pulumi.Input[str]] = ()
    """Roles allowed to invoke models through the endpoint; empty: any principal of the account."""
    services: Sequence[str] = tuple(SERVICES)
    """Keys of :data:`SERVICES` to create endpoints for."""
    partition: str = "aws"
    name_prefix: str = ""
    """Prefix of ``Name`` tags (e.g. ``fraudstack-production``); default the logical name."""
    tags: Mapping[str, str] = field(default_factory=dict)


class Endpoints(pulumi.ComponentResource):
    """Interface endpoints with private DNS, their own security group (443 from the nodes
    only) and a least-privilege endpoint policy each.

    ``endpoints`` maps the config name (``bedrock_runtime``...) to the endpoint.
    """

    def __init__(self, name: str, args: EndpointsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:Endpoints", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        label = f"{args.name_prefix}-endpoints" if args.name_prefix else name
        unknown = sorted(set(args.services) - set(SERVICES))
        if unknown:
            raise ValueError(f"unknown endpoint services {unknown}; known: {sorted(SERVICES)}")

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="Interface VPC endpoints: HTTPS from the EKS nodes only",
            tags={**args.tags, "Name": label},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-https-from-nodes",
            security_group_id=self.security_group.id,
            referenced_security_group_id=args.node_security_group_id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS from the EKS nodes",
            tags={**args.tags, "Name": f"{label}-https-from-nodes"},
            opts=child,
        )
        # No egress rule: interface endpoints answer on the same connection and never
        # open one themselves.

        self.endpoints: dict[str, aws.ec2.VpcEndpoint] = {}
        for key in args.services:
            service = SERVICES[key]
            suffix = service.replace(".", "-")
            self.endpoints[key] = aws.ec2.VpcEndpoint(
                f"{name}-{suffix}",
                vpc_id=args.vpc_id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                subnet_ids=args.subnet_ids,
                security_group_ids=[self.security_group.id],
                private_dns_enabled=True,
                policy=pulumi.Output.all(args.account_id, *args.bedrock_invoker_role_arns).apply(
                    lambda v, service=service: endpoint_policy(
                        service, v[0], args.region, args.model_ids, args.partition, v[1:]
                    )
                ),
                tags={**args.tags, "Name": f"{label}-{suffix}"},
                opts=child,
            )

        self.register_outputs(
            {
                "security_group_id": self.security_group.id,
                "endpoint_ids": {k: e.id for k, e in self.endpoints.items()},
            }
        )
