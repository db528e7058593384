"""Keys of the admin access entries the cluster gets for extra principals.

The key names the access entry's Pulumi resource, so it must be stable (reordering the list must
not replace entries) and unique per principal ARN. It is the principal's kind and name,
`role-ci-deployer`, as it always was; IAM paths make that ambiguous (`role/ci-deployer` and
`role/team-a/ci-deployer`, or the same role name in two accounts), so a principal that shares its
key with another gets a short hash of its full ARN appended. A principal without a path keeps
the plain key even then, so existing entries of simple ARNs never change name.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from hamieks.config.values import config_key
from hamieks.errors import ConfigError


def _base_key(arn: str) -> str:
    kind, _, path = arn.split(":", 5)[-1].partition("/")
    return f"{kind}-{path.rsplit('/', 1)[-1]}"


def _has_path(arn: str) -> bool:
    return "/" in arn.split(":", 5)[-1].partition("/")[2]


def principal_keys(arns: tuple[str, ...] | list[str]) -> dict[str, str]:
    """ARN -> access entry key, one distinct key per distinct ARN."""
    groups: dict[str, list[str]] = defaultdict(list)
    for arn in dict.fromkeys(arns):
        groups[_base_key(arn)].append(arn)
    keys: dict[str, str] = {}
    for base, members in groups.items():
        plain = [arn for arn in members if not _has_path(arn)]
        for arn in members:
            unique = len(members) == 1 or (len(plain) == 1 and arn == plain[0])
            keys[arn] = base if unique else f"{base}-{hashlib.sha256(arn.encode()).hexdigest()[:8]}"
    return keys


@dataclass(frozen=True)
class ClusterAccess:
    """Who administers the cluster, decided from the stack's config alone, never from who runs `up`.

    pulumi-eks always creates the cluster with `accessConfig.bootstrapClusterCreatorAdminPermissions:
    true` and ignores changes to it (pulumi-eks nodejs/eks/cluster/cluster.ts, createCore: "It is
    required for this component because it deploys charts to the cluster"), and EKS accepts that
    field only at creation: turning it off for a live cluster would replace the cluster. So the
    creator keeps the admin entry EKS made for it, an entry Pulumi does not own (and one Pulumi
    tried to create for the same principal fails with a 409). Every other admin gets an entry here.
    """

    creator: str | None  # the principal EKS made admin at creation; None: not recorded, cluster exists
    entries: tuple[str, ...]  # principals given an access entry by the program

    @property
    def admins(self) -> list[str]:
        return [*([self.creator] if self.creator else []), *self.entries]


def cluster_access(admins: tuple[str, ...], recorded_creator: str, caller: str, cluster_exists: bool,
                   cluster_name: str, stack: str, previewing: bool = False) -> tuple[ClusterAccess, list[str]]:
    """The creator is `hami-eks:clusterCreatorArn` when set; for a cluster this `up` creates, the
    caller (it becomes the creator). For an existing cluster with admins listed and no creator
    recorded it refuses: guessing would drop one entry (the old behaviour dropped the caller's,
    so a CI run after a laptop run deleted the laptop user's access, and the reverse).
    Raises ConfigError naming the key and the fix; also when the caller would not be an admin of
    what it deploys (Helm and Kubernetes calls would then be denied halfway through `up`).
    Those two caller checks are warnings (returned) in a preview: a read-only preview role is by
    design neither the creator nor an admin, and the entries do not depend on it."""
    warnings: list[str] = []

    def caller_problem(key: str, message: str) -> None:
        if not previewing:
            raise ConfigError([(config_key(key), message)])
        warnings.append(f"{config_key(key)}: {message} (a preview only: `up` would stop here)")

    if not cluster_exists and recorded_creator and recorded_creator != caller:
        # EKS makes whoever calls CreateCluster the admin, whatever the config says.
        caller_problem("clusterCreatorArn", (
            f"is {recorded_creator} but cluster {cluster_name} does not exist and you ({caller}) would "
            f"create it (EKS makes the creator admin): run `up` as {recorded_creator}, or "
            f"`pulumi config set hami-eks:clusterCreatorArn {caller} --stack {stack}`"))
    creator = recorded_creator or (None if cluster_exists else caller)
    if creator is None and admins:
        raise ConfigError([(config_key("clusterCreatorArn"), (
            f"cluster {cluster_name} exists but the principal that created it is not recorded, so the "
            f"access entries of hami-eks:adminPrincipalArns cannot be decided without depending on who runs "
            f"`up`. Record it once: `pulumi config set hami-eks:clusterCreatorArn <ARN> --stack {stack}` "
            f"(the first ARN of the `clusterAdmins` output of the last `up`; it is the principal EKS lists "
            f"in `aws eks list-access-entries --cluster-name {cluster_name}` that is not in "
            f"adminPrincipalArns and not a node role) and commit Pulumi.{stack}.yaml"))])
    entries = tuple(arn for arn in dict.fromkeys(admins) if arn != creator)
    if creator is not None and caller != creator and caller not in entries:
        caller_problem("adminPrincipalArns", (
            f"you ({caller}) are not an admin of cluster {cluster_name} (creator {creator}, access entries "
            f"{', '.join(entries) or 'none'}): Helm and Kubernetes calls would be denied halfway through `up`. "
            f"Run as one of them, or have one of them add {caller} to hami-eks:adminPrincipalArns and run `up`"))
    return ClusterAccess(creator=creator, entries=entries), warnings
