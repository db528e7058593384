"""The VPC's addressing, pinned: a subnet whose CIDR changes is replaced on a live stack."""

from __future__ import annotations

import ipaddress

import pytest
from helpers import stack_settings

from hamieks.config import network

# Recorded from the released program (tests/golden/stateful_resources.json holds the same for
# the shipped stacks' subnets as registered). Private blocks come first, public after them.
GOLDEN = {
    ("10.0.0.0/16", 2): [("10.0.0.0/18", "10.0.128.0/18"), ("10.0.64.0/18", "10.0.192.0/18")],
    ("10.0.0.0/16", 3): [("10.0.0.0/19", "10.0.96.0/19"), ("10.0.32.0/19", "10.0.128.0/19"),
                         ("10.0.64.0/19", "10.0.160.0/19")],
    ("10.0.0.0/16", 6): [("10.0.0.0/20", "10.0.96.0/20"), ("10.0.16.0/20", "10.0.112.0/20"),
                         ("10.0.32.0/20", "10.0.128.0/20"), ("10.0.48.0/20", "10.0.144.0/20"),
                         ("10.0.64.0/20", "10.0.160.0/20"), ("10.0.80.0/20", "10.0.176.0/20")],
    ("172.20.0.0/20", 2): [("172.20.0.0/22", "172.20.8.0/22"), ("172.20.4.0/22", "172.20.12.0/22")],
}


@pytest.mark.parametrize("vpc, count", sorted(GOLDEN))
def test_subnet_cidrs_are_exactly_the_released_ones(vpc, count):
    zones = [f"us-west-2{c}" for c in "abcdef"[:count]]
    subnets = network.zone_subnets(vpc, zones)
    assert [s.zone for s in subnets] == zones
    assert [(s.private_cidr, s.public_cidr) for s in subnets] == GOLDEN[(vpc, count)]


@pytest.mark.parametrize("stack", ["demo", "lean", "policies"])
def test_shipped_stacks_use_the_default_vpc_split(stack):
    settings = stack_settings(stack)
    subnets = network.zone_subnets(settings.vpc_cidr, ["z1", "z2"][:settings.availability_zone_count])
    assert [(s.private_cidr, s.public_cidr) for s in subnets] == GOLDEN[(settings.vpc_cidr, 2)]


@pytest.mark.parametrize("vpc, count, problem", [
    ("10.0.0.0/16", 6, None),
    ("10.0.0.0/21", 2, None),            # four /23s
    ("10.0.0.0/22", 3, "too small"),     # would need eight /25s
    ("10.0.0.0/8", 2, "from /16 to /28"),
    ("10.0.0.300/16", 2, "not a valid IPv4 CIDR"),
    ("fd00::/56", 2, "IPv4"),
])
def test_vpc_cidr_problems(vpc, count, problem):
    found = network.vpc_cidr_problem(vpc, count)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize("cidr, azs", [("10.0.0.0/16", 2), ("10.0.0.0/16", 3), ("172.20.0.0/20", 6), ("10.0.0.0/21", 2)])
def test_subnets_are_disjoint_inside_the_vpc_and_large_enough(cidr, azs):
    subnets = network.zone_subnets(cidr, [f"z{i}" for i in range(azs)])
    private = [z.private_cidr for z in subnets]
    public = [z.public_cidr for z in subnets]
    nets = [ipaddress.ip_network(c) for c in private + public]
    vpc = ipaddress.ip_network(cidr)
    assert len(private) == len(public) == azs
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert all(n.prefixlen <= network.MIN_SUBNET_PREFIX for n in nets)
