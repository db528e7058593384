"""Where HAMi will put every replica, what each will see as GPU memory, and what it costs.

A pure simulation of hami-scheduler 2.10.0 (hamieks/scheduling/hami_scheduler.py, rules and sources in
docs/hami-rules.md), run before anything is paid for, on the pods and nodes the stack will create
(hamieks/scheduling/placement_inputs.py).

Arrival order: the printed plan places the replicas in stack order; the robustness check places
them again in every other order hamieks.scheduling.arrival lists (reverse, round-robin, slow-start bursts,
largest/smallest first, seeded shuffles - or every order when there are few). The plan is
order-robust when each of them places every replica; the first that does not is the
counterexample, and the preflight fails on it as on an unplaceable replica.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hamieks import cost
from hamieks.config.settings import Settings
from hamieks.errors import PlanError
from hamieks.scheduling import arrival
from hamieks.scheduling.hami_scheduler import (
    GpuUsage,
    Placement,
    Scheduler,
    Simulation,
    Unschedulable,
    sharing,
    simulate,
    usage_score,
)
from hamieks.scheduling.placement_inputs import (
    NodeSpec,
    PodRequest,
    gpu_type_allowed,
    nodes_from_settings,
    planned_instance,
    planning_notes,
    pod_request,
    pods_from_settings,
    tolerates,
)

# ---- arrival-order robustness ------------------------------------------------------------------

@dataclass(frozen=True)
class Counterexample:
    """An arrival order in which HAMi leaves replicas Pending although the stack order places all."""

    name: str  # which of hamieks.scheduling.arrival's orders, e.g. "round-robin"
    order: tuple[str, ...]  # pod names in arrival order
    unschedulable: tuple[Unschedulable, ...]
    competing: tuple[str, ...]  # services on the nodes the Pending replicas could have used
    groups: tuple[str, ...]  # the node groups of those nodes

    def to_dict(self) -> dict[str, Any]:
        return {"order": list(self.order),
                "unschedulable": [{"service": u.service, "replica": u.replica, "reason": u.reason}
                                  for u in self.unschedulable]}


@dataclass(frozen=True)
class OrderCheck:
    robust: bool  # every tried order placed every replica
    tried: int  # distinct orders tried, the stack order included
    exhaustive: bool  # those were all the orders there are
    sharing_robust: bool  # every tried order paired the same services on GPUs as the stack order
    counterexample: Counterexample | None


def tried_orders(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest]) -> list[arrival.ArrivalOrder]:
    """The arrival orders the robustness check tries for these pods on these nodes, stack order first."""
    return Scheduler(nodes, pods).orders()


def check_orders(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest]) -> tuple[Simulation, OrderCheck]:
    """The stack-order simulation, and whether every other tried order also places every replica."""
    scheduler = Scheduler(nodes, pods)
    orders = scheduler.orders()
    exhaustive = arrival.exhaustive([pod.replicas for pod in pods])
    state, placed, stuck = scheduler.run(orders[0].services)
    primary = scheduler.result(state, placed, stuck)
    if stuck:  # the plan already fails in stack order; other orders add nothing to act on
        return primary, OrderCheck(False, 1, exhaustive and len(orders) == 1, True, None)
    paired = sharing(state)
    sharing_robust = True
    for candidate in orders[1:]:
        state, placed, stuck = scheduler.run(candidate.services)
        if stuck:
            return primary, OrderCheck(False, len(orders), exhaustive, False,
                                       _counterexample(scheduler, candidate, placed, stuck))
        sharing_robust = sharing_robust and sharing(state) == paired
    return primary, OrderCheck(True, len(orders), exhaustive, sharing_robust, None)


def _counterexample(scheduler: Scheduler, candidate: arrival.ArrivalOrder,
                    placed: list[tuple[int, int, int, int]], stuck: list[tuple[int, int, str]]) -> Counterexample:
    names = [pod.service for pod in scheduler.pods]
    seen = [0] * len(names)
    order = []
    for s in candidate.services:
        seen[s] += 1
        order.append(f"{names[s]}-{seen[s]}")
    stuck_services = {s for s, _, _ in stuck}
    wanted_nodes = {o for s in stuck_services for o in scheduler.services[s].candidates}
    on_those = {s for s, _, o, _ in placed if o in wanted_nodes}
    competing = tuple(names[s] for s in sorted(stuck_services | on_those))
    groups = tuple(dict.fromkeys(scheduler.nodes[o].group for o in sorted(wanted_nodes)))
    return Counterexample(candidate.name, tuple(order),
                          tuple(Unschedulable(names[s], r, why) for s, r, why in stuck), competing, groups)


# ---- the plan -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    gpus: tuple[GpuUsage, ...]
    placements: tuple[Placement, ...]
    unschedulable: tuple[Unschedulable, ...]
    cost: cost.CostEstimate | None  # None: a price the stack needs is unknown
    services: tuple[str, ...] = field(default=())
    orders: OrderCheck = field(default=OrderCheck(True, 1, True, True, None))
    notes: tuple[str, ...] = field(default=())  # assumptions a reader should know (planning_notes)

    @property
    def allocated_mib(self) -> int:
        return sum(g.allocated_mib for g in self.gpus)

    @property
    def total_mib(self) -> int:
        return sum(g.memory_mib for g in self.gpus)

    @property
    def gpu_memory_allocation(self) -> float:
        """Allocated MiB / MiB of all provisioned GPUs (0 when there are none), 4 decimals."""
        return round(self.allocated_mib / self.total_mib, 4) if self.total_mib else 0.0

    @property
    def estimated_hourly_cost_usd(self) -> float | None:
        return self.cost.usd_per_hour if self.cost is not None else None

    @property
    def all_placed(self) -> bool:
        """Every replica placed in stack order (the printed plan)."""
        return not self.unschedulable

    @property
    def order_robust(self) -> bool:
        """Every tried arrival order places every replica (so all_placed too)."""
        return self.orders.robust

    @property
    def counterexample(self) -> Counterexample | None:
        return self.orders.counterexample

    @property
    def deployable(self) -> bool:
        """What the preflight requires (unless allowUnschedulable): placed, whatever the order."""
        return self.all_placed and self.order_robust

    def to_dict(self, stack: str) -> dict[str, Any]:
        """The `placementPlan` stack output and `plan --json`: issue 4's schema plus issue 8's
        orderRobust and counterexample."""
        return {
            "stack": stack,
            "gpus": [
                {"node": g.node, "nodeGroup": g.node_group, "instanceType": g.instance_type, "index": g.index,
                 "model": g.model, "memoryMiB": g.memory_mib, "allocatedMiB": g.allocated_mib,
                 "pods": list(g.pods)}
                for g in self.gpus
            ],
            "placements": [
                {"service": p.service, "replica": p.replica, "node": p.node, "gpu": p.gpu,
                 "memoryMiB": p.memory_mib}
                for p in self.placements
            ],
            "unschedulable": [
                {"service": u.service, "replica": u.replica, "reason": u.reason} for u in self.unschedulable
            ],
            "gpuMemoryAllocation": self.gpu_memory_allocation,
            "estimatedHourlyCostUsd": self.estimated_hourly_cost_usd,
            "orderRobust": self.order_robust,
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
        }

    def to_json(self, stack: str, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(stack), indent=indent)


def plan(settings: Settings, services: Iterable[str] | None = None,
         prices: cost.PriceLookup = cost.recorded_price) -> Plan:
    """Simulate HAMi for the stack (or only the named services) in every tried arrival order,
    and price it (when prices are known)."""
    pods = pods_from_settings(settings, services)
    result, orders = check_orders(nodes_from_settings(settings), pods)
    return Plan(result.gpus, result.placements, result.unschedulable, cost.estimate_cost(settings, prices),
                tuple(p.service for p in pods), orders, planning_notes(settings))

__all__ = [
    "Counterexample", "GpuUsage", "NodeSpec", "OrderCheck", "Placement", "Plan", "PlanError", "PodRequest",
    "Simulation", "Unschedulable", "check_orders", "gpu_type_allowed",
    "nodes_from_settings", "plan", "planned_instance", "planning_notes", "pod_request", "pods_from_settings",
    "simulate", "tolerates", "tried_orders", "usage_score",
]
