"""Deployed stacks must not move: the URNs of every stateful resource and every subnet's CIDR.

Users have live stacks. A changed URN (a renamed resource, a new parent) or a changed subnet
CIDR makes Pulumi replace the VPC, a subnet, a gateway, the cluster, a node group or a role:
an outage and, for the cluster, a new API endpoint. The golden file was recorded from the
program as released; a refactor that moves any of them fails here. An intended move needs an
`alias` on the resource, and the golden file changes only with the alias in place.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_harness import run_program

GOLDEN = Path(__file__).resolve().parent / "golden" / "stateful_resources.json"

# Resources whose replacement destroys state or interrupts service.
STATEFUL_TYPES = (
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/routeTable:RouteTable",
    "eks:index:Cluster",
    "eks:index:ManagedNodeGroup",
    "aws:iam/role:Role",
)


def stateful_resources(stack: str) -> dict[str, str | None]:
    """URN -> subnet CIDR (None for other resources), for every stateful resource of the stack."""
    run = run_program(stack)
    return {r.urn: r.inputs.get("cidrBlock") if r.type == "aws:ec2/subnet:Subnet" else None
            for r in run.resources if r.type in STATEFUL_TYPES}


@pytest.mark.parametrize("stack", sorted(json.loads(GOLDEN.read_text())))
def test_stateful_urns_and_subnet_cidrs_are_unchanged(stack):
    """Every released stateful resource is still there under the same URN with the same CIDR.
    New resources may appear (they are created, nothing is replaced)."""
    golden = json.loads(GOLDEN.read_text())[stack]
    current = stateful_resources(stack)
    missing = sorted(set(golden) - set(current))
    assert not missing, f"these would be replaced (give them an alias): {missing}"
    assert {urn: current[urn] for urn in golden} == golden
