"""ECR pull-through cache rules for the images the cluster runs (config `ecrPullThroughCache`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from hamieks.kube import registry_mirror


@dataclass(frozen=True)
class ImageCacheArgs:
    cluster_name: str
    node_role: aws.iam.Role
    account_id: str
    region: str
    # Secrets Manager secret `ecr-pullthroughcache/...` with Docker Hub {username, accessToken}.
    # Referenced, not created: the credential is the user's, rotates on its own schedule and must
    # not be destroyed with one stack or pass through Pulumi state.
    docker_hub_credential_arn: str


class ImageCache(pulumi.ComponentResource):
    """Creates: one ECR pull-through cache rule per upstream registry (Docker Hub with the given
    credential, registry.k8s.io), and an inline policy on the node role that lets nodes create
    the cached repositories on first pull and import upstream images into them - scoped to the
    rules' prefixes, all under the cluster's namespace. `registry` is where images are pulled
    from (host and namespace); whatever pulls from it must
    depend on this component, so nothing pulls through the cache before the rules exist."""

    registry: str

    def __init__(self, name: str, args: ImageCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:images:ImageCache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for upstream in registry_mirror.UPSTREAMS:
            aws.ecr.PullThroughCacheRule(
                f"{name}-{upstream.prefix}",
                # Per cluster (hamieks/kube/registry_mirror.rule_prefix); the rule's resource name
                # is unchanged, so a stack from before gets its rules replaced, nothing else.
                ecr_repository_prefix=registry_mirror.rule_prefix(args.cluster_name, upstream),
                upstream_registry_url=upstream.registry_url,
                credential_arn=args.docker_hub_credential_arn if upstream.needs_credential else None,
                opts=child)
        repositories = [f"arn:aws:ecr:{args.region}:{args.account_id}:repository/"
                        f"{registry_mirror.rule_prefix(args.cluster_name, upstream)}/*"
                        for upstream in registry_mirror.UPSTREAMS]
        aws.iam.RolePolicy(
            f"{name}-node-pull-through",
            role=args.node_role.id,
            policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    # ECR user guide, "IAM permissions required to sync an upstream registry".
                    "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
                    "Resource": repositories,
                }],
            }),
            opts=child)
        self.registry = registry_mirror.cluster_registry(args.account_id, args.region, args.cluster_name)
        self.register_outputs({"registry": self.registry})
