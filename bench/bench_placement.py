"""Placement planner benchmark (`make bench`): issue 4's speed targets, with figures.

Targets: plan 1,000 replicas on 100 nodes of 8 GPUs in at most 2 s - the whole plan, including
the arrival-order robustness check (the stack placed again in each of hamieks.scheduling.arrival's >= 32
orders, then the exhaustive search over orders and tie-breaks of hamieks/scheduling/order_proof.py,
which on this stack runs into its budget of order_proof.MAX_STATES states and leaves the check
"sampled") - and one simulation of 10x the replicas in at most 12x the time of one of 1,000 (the
simulator must scale linearly, not with replicas x nodes). The synthetic stack goes through the
real path - a config mapping, settings.load_settings, placement.plan - so the plan figures include
building each service's Deployment and pricing the stack. Also reported, without a target: the
robustness check on the shipped stacks (each proven exhaustively) and on a large stack that fits
(5,000 replicas), each with the check's method and the states the search visited, and the search
alone on 1,000 replicas (its cost per state).
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hamieks.config import stackfiles
from hamieks.config.settings import load_settings
from hamieks.scheduling import order_proof, placement
from hamieks.scheduling.hami_scheduler import Scheduler

REPO = Path(__file__).resolve().parent.parent
SHIPPED_STACKS = ("demo", "lean", "policies")

NODES_PER_GROUP = 50  # two groups of 8-GPU nodes: 100 nodes, 800 GPUs
SERVICES = 20
TARGET_SECONDS = 2.0
TARGET_RATIO = 12.0
POLICIES = [("binpack", "binpack"), ("binpack", "spread"), ("spread", "binpack"), ("spread", "spread")]


def _group(instance_type: str) -> dict:
    return {"instanceTypes": [instance_type], "desiredSize": NODES_PER_GROUP, "minSize": NODES_PER_GROUP,
            "maxSize": NODES_PER_GROUP}


def _service(i: int, replicas: int) -> dict:
    """Mixed requests: both GPU types, MiB and percentage, all four policy combinations."""
    node_policy, gpu_policy = POLICIES[i % len(POLICIES)]
    service = {"name": f"svc-{i:02d}", "model": "Qwen/Qwen2.5-1.5B-Instruct",
               "gpuType": "A10G" if i % 2 == 0 else "L4", "replicas": replicas,
               "nodeSchedulerPolicy": node_policy, "gpuSchedulerPolicy": gpu_policy,
               "cpu": "1", "memory": "4Gi"}
    if i % 3 == 0:
        service["gpumemPercentage"] = 5 + i % 4
    else:
        service["gpumem"] = 1000 + 250 * (i % 7)
    return service


def synthetic_settings(total_replicas: int):
    per_service = total_replicas // SERVICES
    return load_settings({
        "aws:region": "us-west-2",
        "hami-eks:nodeGroups": {"a10g": _group("g5.48xlarge"), "l4": _group("g6.48xlarge")},
        "hami-eks:services": [_service(i, per_service) for i in range(SERVICES)],
    })


def _timed(runs: int, work):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    # The minimum is the run least disturbed by the rest of the machine; the median is shown too.
    return min(times), statistics.median(times), result


def plan_time(label: str, settings, runs: int) -> tuple[float, placement.Plan]:  # type: ignore[no-untyped-def]
    """The whole plan: stack order plus the robustness check over every tried arrival order."""
    best, median, result = _timed(runs, lambda: placement.plan(settings))
    if result.order_robust:
        robust = "order-robust (proven)"
    elif result.order_unproven:
        robust = "not proven (sampled)"
    else:
        robust = "order-dependent" if result.all_placed else "not all placed (other orders skipped)"
    checked = result.orders
    print(f"  {label}: best {best * 1000:8.1f} ms, median {median * 1000:8.1f} ms over {runs} runs; "
          f"{len(result.placements)} placed, {len(result.unschedulable)} unschedulable; order check "
          f"{checked.method}: {checked.tried:.3g} orders, {checked.states} states visited; {robust}")
    return best, result


def proof_time(total_replicas: int, runs: int) -> None:
    """The exhaustive search alone (hamieks/scheduling/order_proof.py), up to its state budget."""
    settings = synthetic_settings(total_replicas)
    scheduler = Scheduler(placement.nodes_from_settings(settings), placement.pods_from_settings(settings))
    best, median, proof = _timed(runs, lambda: order_proof.prove(scheduler))
    method = "exhaustive" if proof.complete else f"gave up at its budget of {order_proof.MAX_STATES} states: sampled"
    print(f"  {total_replicas:>6} replicas, exhaustive search: best {best * 1000:8.1f} ms, median "
          f"{median * 1000:8.1f} ms; {proof.states} states visited ({best / max(proof.states, 1) * 1e6:.0f} us "
          f"per state); {method}")


def simulation_time(total_replicas: int, runs: int) -> float:
    """One stack-order simulation, for the linear-scaling target."""
    settings = synthetic_settings(total_replicas)
    nodes, pods = placement.nodes_from_settings(settings), placement.pods_from_settings(settings)
    best, median, result = _timed(runs, lambda: placement.simulate(nodes, pods))
    print(f"  {total_replicas:>6} replicas, one order: best {best * 1000:8.1f} ms, median {median * 1000:8.1f} ms; "
          f"placed {len(result.placements)}, unschedulable {len(result.unschedulable)}")
    return best


def main() -> int:
    print(f"placement benchmark: {2 * NODES_PER_GROUP} nodes x 8 GPUs, {SERVICES} services")
    small, _ = plan_time("  1000 replicas, whole plan", synthetic_settings(1_000), runs=5)
    one = simulation_time(1_000, runs=7)
    ten = simulation_time(10_000, runs=3)
    ratio = ten / one
    print("robustness check, no target:")
    for stack in SHIPPED_STACKS:
        plan_time(f"{stack:>8} stack", load_settings(stackfiles.load_stack_config(REPO, stack)), runs=5)
    plan_time("  5000 replicas, whole plan", synthetic_settings(5_000), runs=1)
    proof_time(1_000, runs=3)
    ok_small = small <= TARGET_SECONDS
    ok_ratio = ratio <= TARGET_RATIO
    print(f"1,000 replicas, whole plan incl. robustness check: {small:.3f} s (target <= {TARGET_SECONDS:.0f} s) "
          f"{'OK' if ok_small else 'MISSED'}")
    print(f"10,000 replicas, one simulation: {ten:.3f} s = {ratio:.1f}x one of 1,000 (target <= {TARGET_RATIO:.0f}x) "
          f"{'OK' if ok_ratio else 'MISSED'}")
    return 0 if ok_small and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
