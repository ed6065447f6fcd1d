"""The ECR repository the scoring image is pushed to and pulled from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


def lifecycle_policy(keep_last_images: int, untagged_expiry_days: int) -> str:
    """Expire untagged images after some days and keep only the newest tagged ones."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"Expire untagged images after {untagged_expiry_days} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": untagged_expiry_days,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the last {keep_last_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_last_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


@dataclass(frozen=True)
class RegistryArgs:
    """Inputs of :class:`Registry`."""

    repository_name: str
    """ECR repository name, e.g. ``fraudstack/scoring``."""
    key_arn: pulumi.Input[str]
    """KMS key encrypting the images."""
    keep_last_images: int = 30
    """The lifecycle policy keeps this many most recent images (rollbacks need some)."""
    untagged_expiry_days: int = 7
    tags: Mapping[str, str] = field(default_factory=dict)


class Registry(pulumi.ComponentResource):
    """An ECR repository with immutable tags (a tag names one image forever, so a
    deployed digest cannot change under us), scan on push, our KMS key and a lifecycle
    policy. Outputs ``repository_url`` and ``repository_arn``."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraudstack:aws:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            f"{name}-repository",
            name=args.repository_name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.key_arn}],
            # Deleting the stack must not silently delete released images.
            force_delete=False,
            tags={**args.tags, "Name": args.repository_name},
            opts=child,
        )
        self.lifecycle_policy = aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=lifecycle_policy(args.keep_last_images, args.untagged_expiry_days),
            opts=child,
        )
        self.repository_url = self.repository.repository_url
        self.repository_arn = self.repository.arn
        self.register_outputs({"repository_url": self.repository_url, "repository_arn": self.repository_arn})
