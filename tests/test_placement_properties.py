"""Property tests over random small stacks (hypothesis): whatever the stack and arrival order,
the simulation never overbooks a GPU or a node, and `orderRobust` is only claimed when every
tried order places every replica.

The invariants are checked against figures this file works out itself from the stack (HAMi's
slots, memory and cores; the node's allocatable), not against the simulator's own counters.
"""

from __future__ import annotations

from collections import defaultdict

from helpers import group, stack, svc
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hamieks import catalog, hami
from hamieks.config import quantity
from hamieks.errors import ConfigError
from hamieks.scheduling import allocatable, order_proof, placement
from hamieks.scheduling.hami_scheduler import Scheduler

INSTANCE_TYPES = ("g4dn.xlarge", "g4dn.12xlarge", "g5.xlarge", "g5.2xlarge")


@st.composite
def small_stacks(draw):
    names = draw(st.lists(st.sampled_from(INSTANCE_TYPES), min_size=1, max_size=2, unique=True))
    groups = {f"g{i}": group(name, draw(st.integers(1, 2))) for i, name in enumerate(names)}
    services = []
    for n in range(draw(st.integers(1, 3))):
        group_name = draw(st.sampled_from(sorted(groups)))
        gpu = catalog.instance_type(groups[group_name]["instanceTypes"][0]).gpu
        fields = {"nodeGroup": group_name,
                  "cpu": draw(st.sampled_from(["500m", "1", "2"])),
                  "memory": draw(st.sampled_from(["1Gi", "4Gi", "6Gi"])),
                  "nodeSchedulerPolicy": draw(st.sampled_from(["binpack", "spread"])),
                  "gpuSchedulerPolicy": draw(st.sampled_from(["binpack", "spread"]))}
        if draw(st.booleans()):
            fields["gpumem"] = draw(st.integers(1000, gpu.memory_mib))
        else:
            fields["gpumemPercentage"] = draw(st.sampled_from([10, 25, 33, 45, 50, 100]))
        if draw(st.booleans()):
            fields["gpucores"] = draw(st.sampled_from([10, 30, 50, 100]))
        services.append(svc(f"s{n}", gpu.short, draw(st.integers(1, 5)), **fields))
    try:
        return stack(groups, services)
    except ConfigError:
        assume(False)


def expected_cores(service) -> int:
    """device.go: gpucores as set (capped at 100); else defaultExclusiveCoreIfNeeded gives 100 to a
    pod asking for 100% of the memory (percentage 100 or no memory key)."""
    if service.gpucores is not None:
        return min(service.gpucores, hami.CORES_PER_GPU)
    if service.gpumem_percentage is not None:
        return hami.CORES_PER_GPU if service.gpumem_percentage == 100 else 0
    return 0 if service.gpumem is not None else hami.CORES_PER_GPU


def expected_memory(service, gpu_mib: int) -> int:
    if service.gpumem is not None:
        return service.gpumem
    return gpu_mib * service.gpumem_percentage // 100


# derandomize: the same examples on every run (and no .hypothesis/ database in the work tree).
@hsettings(max_examples=60, deadline=None, derandomize=True, database=None,
           suppress_health_check=[HealthCheck.too_slow])
@given(small_stacks())
def test_no_order_overbooks_and_order_robust_means_every_order_places_all(settings):
    plan = placement.plan(settings)
    nodes = placement.nodes_from_settings(settings)
    pods = placement.pods_from_settings(settings)
    service = {s.name: s for s in settings.services}
    node_of = {n.name: n for n in nodes}
    total = sum(s.replicas for s in settings.services)
    orders = placement.tried_orders(nodes, pods)
    assert orders[0].services == tuple(i for i, p in enumerate(pods) for _ in range(p.replicas))
    for order in orders:
        result = placement.simulate(nodes, pods, order.services)
        assert len(result.placements) + len(result.unschedulable) == total
        gpu_memory = {(g.node, g.index): g.memory_mib for g in result.gpus}
        on_gpu: dict[tuple[str, int], list] = defaultdict(list)
        on_node: dict[str, list] = defaultdict(list)
        for p in result.placements:
            on_gpu[(p.node, p.gpu)].append(p)
            on_node[p.node].append(p)
            assert p.memory_mib == expected_memory(service[p.service], gpu_memory[(p.node, p.gpu)])
        for key, placed in on_gpu.items():
            cores = [expected_cores(service[p.service]) for p in placed]
            assert sum(p.memory_mib for p in placed) <= gpu_memory[key]
            assert len(placed) <= hami.DEVICE_SPLIT_COUNT
            assert sum(cores) <= hami.CORES_PER_GPU
            assert hami.CORES_PER_GPU not in cores or len(placed) == 1  # exclusive: alone
        for name, placed in on_node.items():
            instance = node_of[name].instance
            assert len(placed) <= allocatable.pods(instance)
            assert sum(quantity.cpu_millis(service[p.service].cpu) for p in placed) <= allocatable.cpu_millis(instance)
            assert sum(quantity.mebibytes(service[p.service].memory) for p in placed) <= allocatable.memory_mib(instance)
        if plan.order_robust:
            assert result.unschedulable == (), order.name
    if plan.order_robust:
        assert plan.all_placed and plan.counterexample is None
    elif plan.all_placed:
        assert plan.counterexample is not None and plan.counterexample.unschedulable


# ---- the exhaustive search against brute force ----------------------------------------------------

def _some_order_or_tie_fails(scheduler, left, order, choices) -> bool:
    """Brute force, no symmetry and no memo: every next service, and every (node, GPU) HAMi may
    pick for it (Scheduler.hami_choices), depth first; True when some path leaves a replica Pending."""
    state, _, stuck = scheduler.run(order, choices)
    assert not stuck
    for s, count in enumerate(left):
        if not count:
            continue
        options = scheduler.hami_choices(state, s)
        if not options:
            return True
        rest = [c - (i == s) for i, c in enumerate(left)]
        for choice in options:
            if _some_order_or_tie_fails(scheduler, rest, [*order, s], {**choices, len(order): choice}):
                return True
    return False


@st.composite
def tiny_stacks(draw):
    """At most 5 replicas on at most two small nodes: brute force stays fast."""
    instance = draw(st.sampled_from(["g4dn.xlarge", "g4dn.12xlarge"]))
    groups = {"t4": group(instance, 2 if instance == "g4dn.xlarge" else 1)}
    services = []
    budget = 5
    for n in range(draw(st.integers(1, 3))):
        replicas = draw(st.integers(1, max(1, budget)))
        budget -= replicas
        fields = {"cpu": draw(st.sampled_from(["500m", "1500m", "1800m", "2"])),
                  "memory": "1Gi",
                  "nodeSchedulerPolicy": draw(st.sampled_from(["binpack", "spread"])),
                  "gpuSchedulerPolicy": draw(st.sampled_from(["binpack", "spread"])),
                  "gpumem": draw(st.sampled_from([1000, 2000, 3000, 7360, 8000]))}
        if draw(st.booleans()):
            fields["gpucores"] = draw(st.sampled_from([20, 50, 100]))
        services.append(svc(f"s{n}", "T4", replicas, **fields))
        if budget <= 0:
            break
    try:
        return stack(groups, services)
    except ConfigError:
        assume(False)


@hsettings(max_examples=80, deadline=None, derandomize=True, database=None,
           suppress_health_check=[HealthCheck.too_slow])
@given(tiny_stacks())
def test_the_proof_agrees_with_brute_force_over_orders_and_ties(settings):
    nodes = placement.nodes_from_settings(settings)
    pods = placement.pods_from_settings(settings)
    scheduler = Scheduler(nodes, pods)
    assume(not scheduler.run(scheduler.stack_order())[2])
    proof = order_proof.prove(scheduler)
    assert proof.complete
    assert proof.proven == (not _some_order_or_tie_fails(scheduler, [p.replicas for p in pods], [], {}))
    if not proof.proven:  # its counterexample replays: something stays Pending
        assert scheduler.run(proof.order, proof.choices)[2]
