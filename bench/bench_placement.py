"""Placement planner benchmark (`make bench`): issue 4's speed targets, with figures.

Targets: plan 1,000 replicas on 100 nodes of 8 GPUs in at most 2 s, and 10x the replicas in at
most 12x that time (the planner must scale linearly, not with replicas x nodes). The synthetic
stack goes through the real path - a config mapping, settings.load_settings, placement.plan -
so the figures include building each service's Deployment and pricing the stack.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hamieks import placement  # noqa: E402
from hamieks.settings import load_settings  # noqa: E402

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


def best_time(total_replicas: int, runs: int) -> tuple[float, placement.Plan]:
    settings = synthetic_settings(total_replicas)
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = placement.plan(settings)
        times.append(time.perf_counter() - start)
    assert result is not None
    # The minimum is the run least disturbed by the rest of the machine; the median is shown too.
    print(f"  {total_replicas:>6} replicas: best {min(times) * 1000:8.1f} ms, median "
          f"{statistics.median(times) * 1000:8.1f} ms over {runs} runs; placed {len(result.placements)}, "
          f"unschedulable {len(result.unschedulable)}, GPUs {len(result.gpus)}, "
          f"allocation {result.gpu_memory_allocation:.1%}")
    return min(times), result


def main() -> int:
    print(f"placement benchmark: {2 * NODES_PER_GROUP} nodes x 8 GPUs, {SERVICES} services")
    small, _ = best_time(1_000, runs=7)
    large, _ = best_time(10_000, runs=3)
    ratio = large / small
    ok_small = small <= TARGET_SECONDS
    ok_ratio = ratio <= TARGET_RATIO
    print(f"1,000 replicas: {small:.3f} s (target <= {TARGET_SECONDS:.0f} s) {'OK' if ok_small else 'MISSED'}")
    print(f"10,000 replicas: {large:.3f} s = {ratio:.1f}x (target <= {TARGET_RATIO:.0f}x) "
          f"{'OK' if ok_ratio else 'MISSED'}")
    return 0 if ok_small and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
