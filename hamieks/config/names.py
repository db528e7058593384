"""Names and values that Kubernetes, Helm and AWS refuse only at deploy time, checked at plan time
so that a typo never costs a 20-minute, dollars-an-hour `pulumi up`.

Each function returns None when the value is accepted, else one sentence saying why not and what
to write instead (the caller names the config key).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from functools import cache

# Kubernetes label syntax (k8s.io/apimachinery pkg/util/validation/validation.go:
# IsQualifiedName for keys, IsValidLabelValue for values).
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# The kubelet registers a node's labels (nodeadm passes them as --node-labels) and refuses any
# under kubernetes.io / k8s.io but a short allow-list (KEP-279, NodeRestriction): a node carrying
# one never joins, so the node group times out after ~20 paid minutes.
_RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")
# Namespaces Kubernetes itself owns. Model servers there would share kube-system's RBAC and
# HAMi's own release, and the serving namespace's Pod Security and webhook labels would be put
# on a namespace hami-eks does not own.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Helm takes an exact chart version for a pinned release; "latest", ranges and "v2" are not
# versions of the chart (helm.sh/helm/v3 pkg/repo IndexFile.Get reads a constraint otherwise).
_CHART_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?")
# EBS gp3 volumes are 1 GiB to 16 TiB (EC2 CreateVolume); a node's root disk is one.
MAX_DISK_GIB = 16384
# EKS service quota "Nodes per managed node group" (L-BD136A63): 450.
MAX_NODES_PER_GROUP = 450
# Replicas the planner simulates per service: far above what any node group's GPUs hold (450 nodes
# x 8 GPUs x 10 slots), low enough that a typo (`replicas: 1000000`) is an error, not an hour of
# planning.
MAX_REPLICAS = 10_000
# A startup budget longer than a day is a typo; it also keeps the probe's failureThreshold an int32.
MAX_STARTUP_SECONDS = 86_400


def label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name) or (
            prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix))) or (not prefix and "/" in key):
        return (f"label key {key!r} is not valid in Kubernetes: [prefix/]name, the name at most 63 letters, digits, "
                f"'-', '_' or '.', starting and ending with a letter or digit, e.g. 'team' or 'example.com/team'")
    if prefix and any(prefix == domain or prefix.endswith("." + domain) for domain in _RESERVED_LABEL_DOMAINS):
        return (f"label key {key!r} is under {prefix}, which the kubelet refuses on a node it registers (the node "
                f"would never join): use a prefix of your own, e.g. 'example.com/{name}'")
    return None


def label_value_problem(value: str) -> str | None:
    if value == "" or (len(value) <= 63 and _LABEL_NAME.fullmatch(value)):
        return None
    return (f"label value {value!r} is not valid in Kubernetes: at most 63 letters, digits, '-', '_' or '.', "
            f"starting and ending with a letter or digit")


def namespace_problem(namespace: str) -> str | None:
    if namespace in RESERVED_NAMESPACES:
        return (f"{namespace!r} belongs to Kubernetes; the model servers get a namespace of their own "
                f"(with its Pod Security and HAMi webhook labels), e.g. 'llm'")
    if namespace.startswith("kube-"):
        return f"{namespace!r}: the kube- prefix is reserved for Kubernetes' own namespaces; use e.g. 'llm'"
    return None


def chart_version_problem(version: str) -> str | None:
    if _CHART_VERSION.fullmatch(version):
        return None
    return f"{version!r} is not a chart version; pin an exact release such as 2.10.0 (no 'latest', no ranges, no 'v')"


@cache
def aws_regions() -> frozenset[str]:
    """Every region of every AWS partition that offers EKS, from botocore's bundled endpoint data
    (no network): a region outside it is a typo the provider would only report at `up`."""
    import botocore.session  # a second of import time: only when a region is checked

    session = botocore.session.get_session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions("eks", partition))


def region_problem(region: str) -> str | None:
    known = aws_regions()
    if region in known:
        return None
    hint = difflib.get_close_matches(region, sorted(known), n=1, cutoff=0.6)
    return (f"{region!r} is not an AWS region with EKS" + (f"; did you mean {hint[0]!r}?" if hint else "")
            + " (e.g. us-west-2)")


# ---- names AWS derives from the cluster name ---------------------------------------------------
# Pulumi auto-names an AWS resource "<its Pulumi name>-<7 random hex>" and refuses at preview a
# name the provider's maximum cannot hold (pulumi-terraform-bridge AutoName, NewUniqueHex).
AUTONAME_SUFFIX = len("-") + 7
IAM_ROLE_NAME_MAX = 64  # IAM CreateRole RoleName
NODE_GROUP_NAME_MAX = 63  # EKS CreateNodegroup nodegroupName


def derived_names(cluster: str, groups: Iterable[str]) -> list[tuple[str, str, int]]:
    """(what, Pulumi name, AWS maximum) of every auto-named resource whose name grows with the
    cluster's: the IAM roles and node groups of components/cluster.py and components/gpu_node_group.py,
    and the EKS service role pulumi-eks creates inside eks.Cluster (nodejs/eks/servicerole.ts:
    ServiceRole(`${name}-eksRole`) holds aws.iam.Role(`${name}-role`), name = "<cluster>-eks").
    tests/test_config_bounds.py checks the visible ones against the program's registrations."""
    return [
        ("IAM role", f"{cluster}-eks-eksRole-role", IAM_ROLE_NAME_MAX),
        ("IAM role", f"{cluster}-node-role", IAM_ROLE_NAME_MAX),
        ("IAM role", f"{cluster}-vpc-cni", IAM_ROLE_NAME_MAX),
        ("IAM role", f"{cluster}-ebs-csi", IAM_ROLE_NAME_MAX),
        ("node group", f"{cluster}-system", NODE_GROUP_NAME_MAX),
        *(("node group", f"{cluster}-{group}-nodes", NODE_GROUP_NAME_MAX) for group in groups),
    ]


def derived_name_problem(cluster: str, groups: Iterable[str]) -> str | None:
    too_long = [(what, name, limit) for what, name, limit in derived_names(cluster, groups)
                if len(name) + AUTONAME_SUFFIX > limit]
    if not too_long:
        return None
    what, name, limit = max(too_long, key=lambda item: len(item[1]) + AUTONAME_SUFFIX - item[2])
    over = len(name) + AUTONAME_SUFFIX - limit
    return (f"{cluster!r} is {over} character(s) too long for the {what} name AWS derives from it "
            f"({name}-xxxxxxx, at most {limit}): shorten clusterName (or the node group's name) by {over}")
