"""Arrival-order robustness: replicas reach hami-scheduler interleaved, not in stack order.

The orders themselves (hamieks.scheduling.arrival) are checked as sequences; the placements under them are
worked out from HAMi's rules (GPU binpack: the busiest GPU that fits, device.go Fit / gpu_policy.go).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from helpers import SHIPPED_STACKS, group, stack, stack_settings, svc

from hamieks import catalog
from hamieks.scheduling import arrival, placement, placement_report

T4_MIB = catalog.T4.memory_mib


# ---- the orders ---------------------------------------------------------------------------------

def test_a_large_stack_gets_at_least_32_distinct_deterministic_orders_stack_order_first():
    replicas = [4, 4, 3, 5]
    state = random.getstate()
    first = arrival.orders(replicas, sizes=[3.0, 1.0, 4.0, 2.0])
    assert random.getstate() == state  # a Random of its own: the global generator is untouched
    assert first == arrival.orders(replicas, sizes=[3.0, 1.0, 4.0, 2.0])
    assert len(first) >= 32 and len({o.services for o in first}) == len(first)
    assert first[0].services == (0,) * 4 + (1,) * 4 + (2,) * 3 + (3,) * 5
    stack_counts = Counter(first[0].services)
    assert all(Counter(o.services) == stack_counts for o in first)  # each is a permutation
    names = [o.name for o in first]
    for expected in ("reverse stack order", "round-robin", "slow-start bursts", "largest requests first",
                     "smallest requests first", f"shuffle 1 (seed {arrival.SEED})"):
        assert expected in names
    assert not arrival.exhaustive(replicas)


def test_round_robin_and_slow_start_interleave_like_replicasets():
    by_name = {o.name: o.services for o in arrival.orders([3, 2, 5])}
    assert by_name["round-robin"] == (0, 1, 2, 0, 1, 2, 0, 2, 2, 2)
    # bursts of 1, 2, 4 per service in turn (kube-controller-manager slowStartBatch)
    assert by_name["slow-start bursts"] == (0, 1, 2, 0, 0, 1, 2, 2, 2, 2)
    assert by_name["reverse stack order"] == (2,) * 5 + (1,) * 2 + (0,) * 3


def test_a_small_stack_is_tried_in_every_order():
    orders = arrival.orders([2, 1, 1])
    assert arrival.distinct_orders([2, 1, 1]) == 12 == len(orders)
    assert len({o.services for o in orders}) == 12
    assert orders[0].services == (0, 0, 1, 2)
    assert arrival.exhaustive([2, 1, 1])


# ---- the issue's example ------------------------------------------------------------------------

def issue_example():
    """One 4xT4 node; 4 replicas of 8000 MiB and 4 of 7360 MiB (GPU binpack, hami-eks' default)."""
    return stack({"t4": group("g4dn.12xlarge")},
                 [svc("big", replicas=4, gpumem=8000, cpu="1", memory="4Gi"),
                  svc("small", replicas=4, gpumem=7360, cpu="1", memory="4Gi")])


def test_the_issues_example_fits_in_stack_order_but_not_in_every_order():
    """Stack order: each 8000 takes its own T4 (7360 left, too little for another 8000), then each
    7360 fills one exactly (7360 + 8000 = 15360). Small ones first: GPU binpack puts the second
    7360 next to the first (14720 <= 15360), so they pair up on two T4s, and only two 8000s find
    an empty one: two stay Pending."""
    plan = placement.plan(issue_example())
    assert plan.all_placed and len(plan.placements) == 8
    assert sorted(g.allocated_mib for g in plan.gpus) == [15360] * 4
    assert not plan.order_robust and not plan.deployable
    example = plan.counterexample
    assert example is not None
    assert [(u.service, u.replica) for u in example.unschedulable] == [("big", 3), ("big", 4)]
    assert set(example.competing) == {"big", "small"}
    assert sorted(example.order) == sorted(f"{s}-{n}" for s in ("big", "small") for n in range(1, 5))

    doc = plan.to_dict("x")
    assert doc["orderRobust"] is False
    assert doc["counterexample"]["order"] == list(example.order)
    assert doc["counterexample"]["unschedulable"][0]["service"] == "big"
    assert set(doc["counterexample"]["unschedulable"][0]) == {"service", "replica", "reason"}


def test_the_counterexample_replays_to_the_same_pending_replicas():
    settings = issue_example()
    plan = placement.plan(settings)
    pods = placement.pods_from_settings(settings)
    index = {pod.service: i for i, pod in enumerate(pods)}
    order = [index[name.rsplit("-", 1)[0]] for name in plan.counterexample.order]
    replay = placement.simulate(placement.nodes_from_settings(settings), pods, order)
    assert replay.unschedulable == plan.counterexample.unschedulable
    # the 7360s arrived before the last two 8000s and paired up
    assert any(len(g.pods) == 2 and all(p.startswith("small-") for p in g.pods) for g in replay.gpus)


def test_order_dependence_fails_the_preflight_naming_services_and_fixes():
    plan = placement.plan(issue_example())
    message = placement_report.format_unschedulable(plan, "dev")
    assert "depending on the order" in message
    assert "big replicas 3-4:" in message
    assert "big, small" in message and "node group(s) t4" in message
    assert "desiredSize" in message and "`nodeGroup`" in message
    assert "allowUnschedulable" in message and "--stack dev" in message
    assert any("only in some arrival orders" in line for line in placement_report.guarantees(plan))


def test_more_capacity_makes_the_example_order_robust():
    settings = stack({"t4": group("g4dn.12xlarge", 2)},
                     [svc("big", replicas=4, gpumem=8000, cpu="1", memory="4Gi"),
                      svc("small", replicas=4, gpumem=7360, cpu="1", memory="4Gi")])
    plan = placement.plan(settings)
    assert plan.order_robust and plan.counterexample is None and plan.deployable


def test_an_unschedulable_plan_is_not_order_robust_and_has_no_counterexample():
    plan = placement.plan(stack({"t4": group("g4dn.xlarge")}, [svc("x", replicas=3, gpumem=7500)]))
    assert not plan.all_placed and not plan.order_robust and plan.counterexample is None
    assert plan.to_dict("x")["orderRobust"] is False


# ---- the shipped stacks ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED_STACKS)
def test_shipped_stacks_are_order_robust(name):
    plan = placement.plan(stack_settings(name))
    assert plan.all_placed and plan.order_robust and plan.deployable
    assert plan.orders.exhaustive or plan.orders.tried >= 32


def test_policies_stack_sharing_depends_on_arrival_order():
    """README used to promise "each service keeping its own pairs"; interleaved arrivals pair
    different services on a T4 (every order still places all 16 replicas)."""
    plan = placement.plan(stack_settings("policies"))
    assert plan.order_robust and not plan.orders.sharing_robust
    assert any("only in stack order" in line for line in placement_report.guarantees(plan))


@pytest.mark.parametrize("name", ["demo", "lean"])
def test_demo_and_lean_are_checked_exhaustively_and_share_the_same_way(name):
    plan = placement.plan(stack_settings(name))
    assert plan.orders.exhaustive and plan.orders.tried == arrival.distinct_orders([2, 1, 1])
    assert plan.orders.sharing_robust
