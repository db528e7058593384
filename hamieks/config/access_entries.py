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
