"""Arrival-order robustness: replicas reach hami-scheduler interleaved, not in stack order.

The orders themselves (hamieks.scheduling.arrival) are checked as sequences; the placements under them are
worked out from HAMi's rules (GPU binpack: the busiest GPU that fits, device.go Fit / gpu_policy.go).
"""

from __future__ import annotations

import ctypes
import itertools
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import SHIPPED_STACKS, group, stack, stack_settings, svc

from hamieks import catalog
from hamieks.scheduling import allocatable, arrival, order_proof, placement, placement_report
from hamieks.scheduling.hami_scheduler import Scheduler

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
def test_shipped_stacks_are_proven_order_robust(name):
    plan = placement.plan(stack_settings(name))
    assert plan.all_placed and plan.order_robust and plan.deployable
    assert plan.orders.method == placement.EXHAUSTIVE and plan.orders.to_dict()["method"] == "exhaustive"
    pods = placement.pods_from_settings(stack_settings(name))
    assert plan.orders.tried == arrival.distinct_orders([p.replicas for p in pods])
    assert 0 < plan.orders.states < order_proof.MAX_STATES
    assert "every possible arrival order and every way HAMi can break a score tie" in \
        placement_report.guarantees(plan)[0]


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
    assert plan.orders.sharing_robust and plan.orders.sharing_exhaustive


# ---- the sampled orders, exactly -----------------------------------------------------------------

def test_named_orders_are_exactly_these():
    """Stack order, its reverse, largest/smallest first (by `sizes`), interleavings with services
    reversed; replicas [3, 2, 4] have 1260 distinct orders, so the list is a sample."""
    by_name = {o.name: o.services for o in arrival.orders([3, 2, 4], sizes=[0.2, 0.9, 0.5])}
    assert by_name["stack order"] == (0, 0, 0, 1, 1, 2, 2, 2, 2)
    assert by_name["reverse stack order"] == (2, 2, 2, 2, 1, 1, 0, 0, 0)
    assert by_name["largest requests first"] == (1, 1, 2, 2, 2, 2, 0, 0, 0)
    assert by_name["smallest requests first"] == (0, 0, 0, 2, 2, 2, 2, 1, 1)
    assert by_name["round-robin, services reversed"] == (2, 1, 0, 2, 1, 0, 2, 0, 2)
    assert by_name["slow-start bursts, services reversed"] == (2, 1, 0, 2, 2, 1, 0, 0, 2)
    # equal sizes keep stack order among themselves
    tied = {o.name: o.services for o in arrival.orders([3, 3, 4], sizes=[0.5, 0.1, 0.5])}
    assert tied["largest requests first"] == (0, 0, 0, 2, 2, 2, 2, 1, 1, 1)
    assert tied["smallest requests first"] == (1, 1, 1, 2, 2, 2, 2, 0, 0, 0)


def test_exactly_shuffles_seeded_shuffles_of_the_stack_order():
    """SHUFFLES shuffles, each a random.Random(SEED) shuffle of the stack order in turn."""
    replicas = [5, 6, 7]
    stack_order = [0] * 5 + [1] * 6 + [2] * 7
    rng = random.Random(arrival.SEED)
    expected = []
    for _ in range(arrival.SHUFFLES):
        sequence = list(stack_order)
        rng.shuffle(sequence)
        expected.append(tuple(sequence))
    shuffles = [o for o in arrival.orders(replicas) if o.name.startswith("shuffle")]
    assert arrival.SHUFFLES == 32 and len(shuffles) == 32
    assert [o.services for o in shuffles] == expected
    assert [o.name for o in shuffles] == [f"shuffle {n} (seed {arrival.SEED})" for n in range(1, 33)]
    assert len(arrival.orders(replicas, shuffles=3)) == len(arrival.orders(replicas, shuffles=0)) + 3


# ---- the node score, by hand ---------------------------------------------------------------------

def _f32(x: float) -> float:
    return ctypes.c_float(x).value


def test_node_score_is_hamis_formula_over_all_the_nodes_gpus():
    """node_policy.go ComputeDefaultScore: 10 x (used/count + used cores/total cores + used
    memory/total memory) summed over the node's GPUs, float32. Three pods (7500 MiB, 5000 MiB with
    30 cores, 3000 MiB) on one 4 x T4 node: 3/40 + 30/400 + 15500/61440."""
    settings = stack({"t4": group("g4dn.12xlarge")},
                     [svc("a", gpumem=7500), svc("b", gpumem=5000, gpucores=30), svc("c", gpumem=3000)])
    scheduler = Scheduler(placement.nodes_from_settings(settings), placement.pods_from_settings(settings))
    state, placed, stuck = scheduler.run(scheduler.stack_order())
    assert len(placed) == 3 and not stuck
    total = 4 * T4_MIB
    expected = _f32(10 * _f32(_f32(_f32(3 / 40) + _f32(30 / 400)) + _f32(15500 / total)))
    assert state[0].score == expected
    assert abs(expected - 10 * (3 / 40 + 30 / 400 + 15500 / total)) < 1e-5


def test_the_node_score_decides_between_nodes():
    """Node binpack puts the next pod on the busier node: t4-2 holds 7500 MiB, t4-1 1000 MiB (a
    spread pod went to the emptier one), so a binpack pod joins t4-2 and a spread one t4-1."""
    settings = stack({"t4": group("g4dn.xlarge", 2)},
                     [svc("big", gpumem=7500), svc("small", gpumem=1000, nodeSchedulerPolicy="spread"),
                      svc("pack", gpumem=1000), svc("spread", gpumem=1000, nodeSchedulerPolicy="spread")])
    placed = {p.pod: p.node for p in placement.plan(settings).placements}
    assert placed == {"big-1": "t4-1", "small-1": "t4-2", "pack-1": "t4-1", "spread-1": "t4-2"}


# ---- the proof: counterexamples the samples may miss ---------------------------------------------

def _scheduler(settings):
    return Scheduler(placement.nodes_from_settings(settings), placement.pods_from_settings(settings))


def core_saturation(nodes: int, replicas: int):
    """z: one 0-core pod; c: 20-core pods, five fill a T4's 100 cores. z is only refused when it
    arrives after every GPU is full of cores (device.go Fit: no core=0 job on a full GPU), i.e.
    last: exactly one of the replicas + 1 distinct orders fails."""
    return stack({"t4": group("g4dn.xlarge", nodes)} if nodes != 2 else {"t4": group("g4dn.12xlarge", 2)},
                 [svc("z", gpumem=1000), svc("c", replicas=replicas, gpumem=1000, gpucores=20)])


@pytest.mark.parametrize(("nodes", "replicas"), [(3, 15), (2, 40)])
def test_core_saturation_in_one_order_is_not_order_robust(nodes, replicas):
    settings = core_saturation(nodes, replicas)
    scheduler = _scheduler(settings)
    # the replicas + 1 distinct orders: z at each position
    orders = [tuple([1] * k + [0] + [1] * (replicas - k)) for k in range(replicas + 1)]
    assert len(orders) == arrival.distinct_orders([1, replicas])
    failing = [o for o in orders if scheduler.run(o)[2]]
    assert failing == [tuple([1] * replicas + [0])]
    assert scheduler.run(failing[0])[2][0][:2] == (0, 1)
    plan = placement.plan(settings)
    assert plan.all_placed and not plan.order_robust and not plan.deployable
    assert plan.counterexample.order[-1] == "z-1"
    assert [(u.service, u.replica) for u in plan.counterexample.unschedulable] == [("z", 1)]
    assert not any("every possible" in line for line in placement_report.guarantees(plan))
    # the exhaustive search finds it on its own, with z last
    proof = order_proof.prove(scheduler)
    assert proof.complete and not proof.proven and proof.order[-1] == 0 and proof.ties == ()


def tie_stack():
    """Two 1 x T4 nodes (3670m CPU allocatable each). d (2 CPU) goes to t4-1; a (1.5 CPU, node
    spread) to the emptier t4-2. Both nodes now score the same (one 2000 MiB pod), so HAMi may put
    c (0.5 CPU, spread) on either. Our convention: t4-1 (2.5 CPU used), then b (1.8 CPU) fits only
    t4-2 (1.5 + 1.8 <= 3.67). HAMi's other draw: t4-2 (2 CPU used), and b fits neither node
    (2 + 1.8 > 3.67): Pending on host CPU."""
    return stack({"t4": group("g4dn.xlarge", 2)},
                 [svc("a", gpumem=2000, cpu="1500m", nodeSchedulerPolicy="spread"),
                  svc("b", gpumem=1000, cpu="1800m", nodeSchedulerPolicy="spread"),
                  svc("c", gpumem=3000, cpu="500m", nodeSchedulerPolicy="spread"),
                  svc("d", gpumem=2000, cpu="2", nodeSchedulerPolicy="binpack")])


def test_a_random_tie_that_leaves_a_replica_pending_is_found_and_named():
    settings = tie_stack()
    assert allocatable.cpu_millis(catalog.instance_type("g4dn.xlarge")) == 3670
    scheduler = _scheduler(settings)
    # Under our tie convention every one of the 24 orders places all four: only a tie can fail.
    assert all(not scheduler.run(o)[2] for o in itertools.permutations(range(4)))
    plan = placement.plan(settings)
    assert plan.all_placed and not plan.order_robust and not plan.deployable
    assert plan.orders.method == placement.EXHAUSTIVE
    example = plan.counterexample
    assert example.order == ("d-1", "a-1", "c-1", "b-1")
    assert [(u.service, u.replica) for u in example.unschedulable] == [("b", 1)]
    assert "no CPU/memory left" in example.unschedulable[0].reason
    assert [(t.pod, t.node, t.gpu, t.convention_node) for t in example.ties] == [("c-1", "t4-2", 0, "t4-1")]
    doc = plan.to_dict("x")["counterexample"]
    assert doc["ties"] == [{"pod": "c-1", "node": "t4-2", "gpu": 0, "insteadOf": {"node": "t4-1", "gpu": 0}}]
    message = placement_report.format_unschedulable(plan, "x")
    assert "HAMi breaking a tie: c-1 to t4-2 GPU 0 (scored the same as t4-1 GPU 0" in message
    assert "HAMi breaking score ties at random" in placement_report.guarantees(plan)[0]


def memory_tie_stack():
    """The same trap on host memory (14378 MiB allocatable): d (6 GiB) on t4-1, a (4 GiB, spread)
    on t4-2, both scoring the same; c (4 GiB) on t4-2 leaves 6186 and 8234 MiB free, too little
    for b (9 GiB), while c on t4-1 leaves t4-2 room. Here the bad draw is the node with more CPU
    requested (a asks 200m, d 100m), the other way round from tie_stack: the search must try every
    tied node, not the first it meets."""
    return stack({"t4": group("g4dn.xlarge", 2)},
                 [svc("a", gpumem=2000, cpu="200m", memory="4Gi", nodeSchedulerPolicy="spread"),
                  svc("b", gpumem=1000, cpu="100m", memory="9Gi", nodeSchedulerPolicy="spread"),
                  svc("c", gpumem=3000, cpu="100m", memory="4Gi", nodeSchedulerPolicy="spread"),
                  svc("d", gpumem=2000, cpu="100m", memory="6Gi")])


@pytest.mark.parametrize("make", [tie_stack, memory_tie_stack])
def test_only_a_tie_fails_and_the_search_finds_it(make):
    settings = make()
    assert allocatable.memory_mib(catalog.instance_type("g4dn.xlarge")) == 14378
    scheduler = _scheduler(settings)
    assert all(not scheduler.run(o)[2] for o in itertools.permutations(range(4)))
    proof = order_proof.prove(scheduler)
    assert proof.complete and not proof.proven
    assert [(t.node, t.convention) for t in proof.ties] == [(1, (0, 0))]
    assert [s for s, _, _ in scheduler.run(proof.order, proof.choices)[2]] == [1]


def _replay_from_json(settings, doc):
    """Place the counterexample's pods in its order, its ties as HAMi broke them, from the JSON alone."""
    pods = placement.pods_from_settings(settings)
    nodes = placement.nodes_from_settings(settings)
    index = {pod.service: i for i, pod in enumerate(pods)}
    node_index = {node.name: i for i, node in enumerate(nodes)}
    order = [index[name.rsplit("-", 1)[0]] for name in doc["order"]]
    choices = {doc["order"].index(t["pod"]): (node_index[t["node"]], t["gpu"]) for t in doc["ties"]}
    return placement.simulate(nodes, pods, order, choices), placement.simulate(nodes, pods, order)


@pytest.mark.parametrize("make", [tie_stack, memory_tie_stack, issue_example, lambda: core_saturation(3, 15)])
def test_every_counterexample_replays_to_its_pending_replicas(make):
    settings = make()
    plan = placement.plan(settings)
    doc = json.loads(plan.to_json("x"))["counterexample"]
    replayed, without_ties = _replay_from_json(settings, doc)
    assert [(u.service, u.replica) for u in replayed.unschedulable] == \
        [(u["service"], u["replica"]) for u in doc["unschedulable"]]
    assert replayed.unschedulable == placement.replay(placement.nodes_from_settings(settings),
                                                      placement.pods_from_settings(settings),
                                                      plan.counterexample).unschedulable
    if doc["ties"]:  # the tie is what leaves it Pending: our convention places every replica
        assert without_ties.unschedulable == ()


def test_a_tie_choice_hami_cannot_make_is_refused():
    settings = tie_stack()
    nodes, pods = placement.nodes_from_settings(settings), placement.pods_from_settings(settings)
    # a-1 (spread) must go to the emptier t4-2 after d-1 on t4-1; t4-1 is no tie for it
    with pytest.raises(placement.PlanError, match="a-1 cannot go to t4-1 GPU 0"):
        placement.simulate(nodes, pods, [3, 0, 2, 1], {1: (0, 0)})


# ---- sampled: not a proof ------------------------------------------------------------------------

def many_orders():
    """Six services of three replicas on two 4 x T4 nodes: too many states for the search."""
    return stack({"t4": group("g4dn.12xlarge", 2)},
                 [svc(f"s{i}", replicas=3, gpumem=1000 + 700 * i, cpu="100m", memory="256Mi") for i in range(6)])


def test_a_search_past_its_budget_is_sampled_and_not_proven():
    settings = many_orders()
    plan = placement.plan(settings)
    assert plan.all_placed and plan.counterexample is None
    assert plan.orders.method == placement.SAMPLED and plan.order_unproven
    assert not plan.order_robust and not plan.deployable
    assert plan.to_dict("x")["orderRobust"] is False
    assert plan.to_dict("x")["orderCheck"] == {"method": "sampled", "ordersTried": len(placement.tried_orders(
        placement.nodes_from_settings(settings), placement.pods_from_settings(settings))),
        "statesVisited": order_proof.MAX_STATES}
    first = placement_report.guarantees(plan)[0]
    assert "a sample, not a proof" in first and "every possible" not in first
    message = placement_report.format_unschedulable(plan, "x")
    assert "acceptSampledOrderCheck" in message and "--accept-sampled-order-check" in message
    accepted = placement.plan(stack({"t4": group("g4dn.12xlarge", 2)},
                                    [svc(f"s{i}", replicas=3, gpumem=1000 + 700 * i, cpu="100m", memory="256Mi")
                                     for i in range(6)], acceptSampledOrderCheck=True))
    assert accepted.deployable and not accepted.order_robust
    assert "accepted by hami-eks:acceptSampledOrderCheck" in placement_report.guarantees(accepted)[0]


def test_accepting_a_sample_never_deploys_a_refuted_plan():
    plan = placement.plan(stack({"t4": group("g4dn.12xlarge")},
                                [svc("big", replicas=4, gpumem=8000, cpu="1", memory="4Gi"),
                                 svc("small", replicas=4, gpumem=7360, cpu="1", memory="4Gi")],
                                acceptSampledOrderCheck=True))
    assert plan.counterexample is not None and not plan.deployable


def test_a_small_budget_makes_even_a_proven_stack_sampled():
    settings = stack_settings("policies")
    nodes, pods = placement.nodes_from_settings(settings), placement.pods_from_settings(settings)
    _, proven = placement.check_orders(nodes, pods)
    _, sampled = placement.check_orders(nodes, pods, budget=100)
    assert proven.robust and proven.method == "exhaustive" and proven.states > 100
    assert not sampled.robust and sampled.method == "sampled" and sampled.unproven and sampled.states == 100


# ---- the CLI: exit codes for a sampled check ------------------------------------------------------

MANY_ORDERS_STACK = """\
    config:
      hami-eks:allowModelMisfit: true
      hami-eks:nodeGroups:
        t4: {instanceTypes: [g4dn.12xlarge], desiredSize: 2, minSize: 2, maxSize: 2}
      hami-eks:services:
""" + "".join(f"""\
        - {{name: s{i}, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 3, gpumem: {1000 + 700 * i},
           cpu: 100m, memory: 256Mi, args: [--max-model-len, "2048"]}}
""" for i in range(6))


def _plan_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hamieks", "plan", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_a_sampled_check_exits_1_unless_accepted(project):
    path = project("many", MANY_ORDERS_STACK)
    refused = _plan_cli("--stack", "many", "--json", "--project-dir", str(path))
    assert refused.returncode == 1, refused.stderr
    doc = json.loads(refused.stdout)
    assert doc["orderRobust"] is False and doc["counterexample"] is None
    assert doc["orderCheck"]["method"] == "sampled" and doc["orderCheck"]["ordersTried"] >= 32
    text = _plan_cli("--stack", "many", "--project-dir", str(path))
    assert text.returncode == 1 and "a sample, not a proof" in text.stdout
    assert "--accept-sampled-order-check" in text.stdout
    accepted = _plan_cli("--stack", "many", "--accept-sampled-order-check", "--project-dir", str(path))
    assert accepted.returncode == 0, accepted.stdout
    assert "accepted (acceptSampledOrderCheck)" in accepted.stdout
    keyed = project("keyed", MANY_ORDERS_STACK.replace("      hami-eks:services:",
                                                         "      hami-eks:acceptSampledOrderCheck: true\n"
                                                         "      hami-eks:services:"))
    assert _plan_cli("--stack", "keyed", "--project-dir", str(keyed)).returncode == 0


def test_cli_help_lists_the_flag_and_its_exit_code():
    shown = _plan_cli("--help")
    assert "--accept-sampled-order-check" in shown.stdout
    assert "the order check is only a sample" in " ".join(shown.stdout.split())


# ---- the docs ------------------------------------------------------------------------------------

TIE_STACK = """\
    config:
      hami-eks:allowModelMisfit: true
      hami-eks:nodeGroups:
        t4: {instanceTypes: [g4dn.xlarge], desiredSize: 2, minSize: 2, maxSize: 2}
      hami-eks:services:
        - {name: a, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, gpumem: 2000, cpu: 1500m, memory: 1Gi,
           nodeSchedulerPolicy: spread}
        - {name: b, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, gpumem: 1000, cpu: 1800m, memory: 1Gi,
           nodeSchedulerPolicy: spread}
        - {name: c, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, gpumem: 3000, cpu: 500m, memory: 1Gi,
           nodeSchedulerPolicy: spread}
        - {name: d, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, gpumem: 2000, cpu: "2", memory: 1Gi}
"""


def test_readme_tie_example_is_the_clis_output(project):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### When the arrival order decides", 1)[1].split("\n### ", 1)[0]
    block = section.split("$ hami-eks plan --stack tie", 1)[1].split("```", 1)[0]
    shown = [line for line in block.splitlines()[1:] if line.strip() and line != "..."]
    printed = _plan_cli("--stack", "tie", "--project-dir", str(project("tie", TIE_STACK)))
    assert printed.returncode == 1
    assert shown and all(line in printed.stdout for line in shown), printed.stdout
    assert "acceptSampledOrderCheck" in section and "a sample, not a proof" in section


def test_the_rules_say_ties_can_decide_and_how_they_are_explored():
    rules = (Path(__file__).resolve().parent.parent / "docs" / "hami-rules.md").read_text()
    assert "A tie can decide placement" in rules
    assert "order_proof.py" in rules and "every tie-break" in rules
    assert '"method": "sampled"' in rules and "acceptSampledOrderCheck" in rules
