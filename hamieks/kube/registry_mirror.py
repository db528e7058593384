"""Image references through an ECR pull-through cache (config `ecrPullThroughCache`).

Without it every node pulls vLLM, HAMi and the webhook certificate generator from Docker Hub
anonymously, all through the VPC's one NAT address: Docker Hub's anonymous rate limit is per
source IP, so a handful of node replacements can lock the whole cluster out, and each pull trusts
Docker Hub at that moment. With it, nodes pull from the account's own ECR registry, which fetches
an image from upstream once, keeps it and scans it.

ECR serves a cached upstream repository under `<registry>/<rule prefix>/<upstream path>`
(ECR user guide, "Using pull through cache rules"); this module only rewrites names. The rules
themselves are created by components/image_cache.py. A rule's prefix is per cluster,
`<cluster namespace>/<upstream prefix>` (config/conventions.ecr_cache_namespace): ECR allows one
rule per prefix in an account, and the leak audit finds a cluster's cached repositories by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hamieks.config.conventions import ecr_cache_namespace


@dataclass(frozen=True)
class Upstream:
    """One pull-through cache rule: the ECR repository prefix and the registry it mirrors."""

    prefix: str
    registry_url: str
    # Docker Hub rules need a Secrets Manager credential; registry.k8s.io rules take none.
    needs_credential: bool
    aliases: tuple[str, ...] = ()


DOCKER_HUB = Upstream("docker-hub", "registry-1.docker.io", True, aliases=("docker.io", "index.docker.io"))
K8S = Upstream("k8s", "registry.k8s.io", False)
UPSTREAMS = (DOCKER_HUB, K8S)
# Secrets Manager names ECR accepts for an upstream credential (the secret must carry this prefix).
CREDENTIAL_SECRET_PREFIX = "ecr-pullthroughcache/"


def registry_host(account_id: str, region: str) -> str:
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


def rule_prefix(cluster_name: str, upstream: Upstream) -> str:
    """The ECR repository prefix of the cluster's cache rule for one upstream."""
    return f"{ecr_cache_namespace(cluster_name)}/{upstream.prefix}"


def cluster_registry(account_id: str, region: str, cluster_name: str) -> str:
    """Where the cluster pulls cached images from: the account's registry and the cluster's
    namespace (`mirrored` and the HAMi values append `<upstream prefix>/<path>`)."""
    return f"{registry_host(account_id, region)}/{ecr_cache_namespace(cluster_name)}"


def split_registry(image: str) -> tuple[str, str]:
    """`registry.k8s.io/kube-scheduler:v1` -> ("registry.k8s.io", "kube-scheduler:v1");
    a name without a registry host is Docker Hub's, official images under `library/`."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", image if sep else f"library/{image}"


def upstream_for(registry: str) -> Upstream | None:
    for upstream in UPSTREAMS:
        if registry in (upstream.registry_url, *upstream.aliases):
            return upstream
    return None


def mirrored(image: str, host: str) -> str:
    """The image as the cache serves it; images from registries without a rule stay as they are."""
    registry, path = split_registry(image)
    upstream = upstream_for(registry)
    if upstream is None:
        return image
    return f"{host}/{upstream.prefix}/{path}"
