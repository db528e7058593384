"""How the VPC is addressed: one public and one private subnet per availability zone.

The plan is a tuple of per-zone records, so a zone can never be paired with another zone's
CIDR and public and private can never trade places. Both would readdress, and so replace,
every subnet of a live stack (tests/test_network.py and tests/test_live_stacks.py pin them).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_AZS, MAX_AZS = 2, 6  # EKS needs subnets in two AZs; no region offers more than six
MIN_SUBNET_PREFIX = 24  # smaller subnets run out of pod IPs on a handful of GPU nodes


@dataclass(frozen=True)
class ZoneSubnets:
    zone: str
    public_cidr: str
    private_cidr: str


def _extra_bits(az_count: int) -> int:
    return math.ceil(math.log2(2 * az_count))


def vpc_cidr_problem(vpc_cidr: str, az_count: int) -> str | None:
    """Why this VPC CIDR cannot hold the subnets, with the fix; None when it can."""
    try:
        network = ipaddress.ip_network(vpc_cidr)
    except ValueError as exc:
        return f"{vpc_cidr!r} is not a valid IPv4 CIDR ({exc}); use e.g. 10.0.0.0/16"
    if network.version != 4:
        return "must be an IPv4 CIDR, e.g. 10.0.0.0/16"
    if not 16 <= network.prefixlen <= 28:
        return f"AWS allows VPC CIDRs from /16 to /28, got /{network.prefixlen}; use e.g. 10.0.0.0/16"
    if not MIN_AZS <= az_count <= MAX_AZS:
        return None  # reported on availabilityZoneCount
    if network.prefixlen + _extra_bits(az_count) > MIN_SUBNET_PREFIX:
        return (f"/{network.prefixlen} is too small for {2 * az_count} subnets of at least /{MIN_SUBNET_PREFIX} "
                f"({az_count} AZs x public+private); use a /{MIN_SUBNET_PREFIX - _extra_bits(az_count)} "
                f"or larger, e.g. 10.0.0.0/16")
    return None


def zone_subnets(vpc_cidr: str, zones: Sequence[str]) -> tuple[ZoneSubnets, ...]:
    """Split the VPC into equal blocks: the first len(zones) private, the next len(zones) public,
    zone by zone in the order given.

    Private subnets hold the nodes and, with the VPC CNI, every pod's IP, so they get as much
    room as public ones; the unused blocks are left free for later growth.
    """
    count = len(zones)
    blocks = [str(b) for b in ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=_extra_bits(count))]
    return tuple(ZoneSubnets(zone, public_cidr=blocks[count + i], private_cidr=blocks[i])
                 for i, zone in enumerate(zones))
