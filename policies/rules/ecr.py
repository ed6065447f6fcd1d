"""ECR (the scoring image): immutable tags, scanning, encryption, policy, lifecycle."""
from __future__ import annotations

from ..model import Rule
from ._util import as_list, get, identities, linked, parse_json, present, principals, refs, statements

REPO = "aws:ecr/repository:Repository"
REPO_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def _immutable(props, cfg):
    if not str(get(props, "imageTagMutability", "MUTABLE")).startswith("IMMUTABLE"):
        yield "imageTagMutability is MUTABLE: a pushed tag can be replaced under a running deployment"


def _scan(props, cfg):
    if get(props, "imageScanningConfiguration.scanOnPush") is not True:
        yield "scanOnPush is not true: images are never scanned for CVEs"


def _kms(props, cfg):
    confs = as_list(get(props, "encryptionConfigurations"))
    if not confs or get(confs[0], "encryptionType") != "KMS" or not present(confs[0], "kmsKey"):
        yield "encryptionConfigurations is not KMS with a customer-managed kmsKey"


def _not_public(props, cfg):
    for st in statements(parse_json(get(props, "policy"))):
        if st.get("Effect") == "Allow" and "*" in principals(st) and not st.get("Condition"):
            yield "the repository policy allows Principal '*': anyone can pull (or push) images"


def _lifecycle(stack, cfg):
    policies = stack.of_type(LIFECYCLE)
    covered = set()
    for p in policies:
        covered |= refs(p, "repository")
    for repo in stack.of_type(REPO):
        if stack.has_dependencies:
            if not linked(stack, repo, set(), (LIFECYCLE,)):
                yield repo, "no aws.ecr.LifecyclePolicy: untagged and old images accumulate (cost, stale vulnerable images)"
            continue
        ids = identities(repo) | refs(repo, "name")
        if ids & covered:
            continue
        if not identities(repo) and linked(stack, repo, set(), (LIFECYCLE,)):
            continue
        yield repo, "no aws.ecr.LifecyclePolicy: untagged and old images accumulate (cost, stale vulnerable images)"


RULES = [
    Rule(id="ecr-immutable-tags", name="ECR tags immutable", description="Image tags cannot be overwritten.",
         severity="high", enforcement="mandatory", resource_types=(REPO,), references=("A71",),
         remediation="image_tag_mutability='IMMUTABLE'.", check=_immutable),
    Rule(id="ecr-scan-on-push", name="ECR scan on push", description="Images are scanned on push.", severity="medium",
         enforcement="mandatory", resource_types=(REPO,), references=("A72",),
         remediation="image_scanning_configuration={'scan_on_push': True}.", check=_scan),
    Rule(id="ecr-kms", name="ECR encrypted with the CMK", description="Repositories are encrypted with a customer-managed key.",
         severity="medium", enforcement="mandatory", resource_types=(REPO,), references=("A73",),
         remediation="encryption_configurations=[{'encryption_type': 'KMS', 'kms_key': <key ARN>}].", check=_kms),
    Rule(id="ecr-policy-not-public", name="ECR policy not public", description="Repository policies never allow '*'.",
         severity="critical", enforcement="mandatory", resource_types=(REPO_POLICY,), references=("A74",),
         remediation="Name the node role / CI role principals.", check=_not_public),
    Rule(id="ecr-lifecycle-policy", name="ECR lifecycle policy", description="Every repository has a lifecycle policy.",
         severity="low", enforcement="mandatory", resource_types=(REPO, LIFECYCLE), stack=True, references=("X13",),
         remediation="aws.ecr.LifecyclePolicy expiring untagged images after 7 days and keeping the last N releases.",
         check=_lifecycle),
]
