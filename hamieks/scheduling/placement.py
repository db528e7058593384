"""Where HAMi will put every replica, what each will see as GPU memory, and what it costs.

A pure simulation of hami-scheduler 2.10.0 (hamieks/scheduling/hami_scheduler.py, rules and sources in
docs/hami-rules.md), run before anything is paid for, on the pods and nodes the stack will create
(hamieks/scheduling/placement_inputs.py).

Arrival order: the printed plan places the replicas in stack order; the robustness check places
them again in the orders hamieks.scheduling.arrival lists (reverse, round-robin, slow-start bursts,
largest/smallest first, seeded shuffles - or every order when there are few), then searches every
order and every tie-break HAMi may draw (hamieks/scheduling/order_proof.py). The plan is
order-robust only when that search proves it; a failing order is the counterexample, and the
preflight fails on it as on an unplaceable replica. When the search gives up (its state budget),
the check is a sample: not proven, and the preflight fails unless acceptSampledOrderCheck is set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hamieks import cost
from hamieks.config.settings import Settings
from hamieks.errors import PlanError
from hamieks.scheduling import arrival, order_proof
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

EXHAUSTIVE, SAMPLED = "exhaustive", "sampled"
# Pulumi carries numbers as float64: a larger count of orders is reported as a float, and one
# beyond float range (a stack of thousands of replicas) as this.
_MAX_REPORTED_ORDERS = 1e300


@dataclass(frozen=True)
class TieBreak:
    """A step of a counterexample where HAMi breaks an equal score differently from our convention."""

    pod: str
    node: str
    gpu: int
    convention_node: str  # what the printed plan's convention picks there
    convention_gpu: int

    def describe(self) -> str:
        return (f"{self.pod} to {self.node} GPU {self.gpu} (scored the same as {self.convention_node} "
                f"GPU {self.convention_gpu}, which the printed plan uses)")


@dataclass(frozen=True)
class Counterexample:
    """An arrival order (and the tie-breaks HAMi may make) leaving replicas Pending although the
    stack order places all. Replays: Scheduler.run(services, choices) gives `unschedulable`."""

    name: str  # which of hamieks.scheduling.arrival's orders, e.g. "round-robin", or the search's
    order: tuple[str, ...]  # pod names in arrival order
    unschedulable: tuple[Unschedulable, ...]
    competing: tuple[str, ...]  # services on the nodes the Pending replicas could have used
    groups: tuple[str, ...]  # the node groups of those nodes
    services: tuple[int, ...] = ()  # the order as service indices (stack order numbering)
    choices: tuple[tuple[int, int, int], ...] = ()  # (step, node order, GPU index) of each tie-break
    ties: tuple[TieBreak, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"order": list(self.order),
                "ties": [{"pod": t.pod, "node": t.node, "gpu": t.gpu,
                          "insteadOf": {"node": t.convention_node, "gpu": t.convention_gpu}} for t in self.ties],
                "unschedulable": [{"service": u.service, "replica": u.replica, "reason": u.reason}
                                  for u in self.unschedulable]}


@dataclass(frozen=True)
class OrderCheck:
    robust: bool  # proven: every arrival order and every tie-break places every replica
    method: str  # EXHAUSTIVE (searched every order and tie) or SAMPLED (a list of orders, our ties)
    tried: int  # SAMPLED: orders placed; EXHAUSTIVE: every distinct arrival order
    sharing_robust: bool  # every order of `sharing_tried` paired the same services on GPUs
    counterexample: Counterexample | None
    states: int = 0  # states the exhaustive search visited (it gives up after order_proof.MAX_STATES)
    sharing_tried: int = 1  # arrival orders compared for sharing (our tie convention)
    sharing_exhaustive: bool = True  # those were every distinct arrival order

    @property
    def exhaustive(self) -> bool:
        return self.method == EXHAUSTIVE

    @property
    def unproven(self) -> bool:
        """Sampled, and no order tried left a replica Pending: neither proven nor refuted."""
        return self.method == SAMPLED and self.counterexample is None and self.tried > 1

    def to_dict(self) -> dict[str, Any]:
        tried: float = self.tried
        if tried > 2 ** 53:
            tried = float(self.tried) if self.tried < _MAX_REPORTED_ORDERS else _MAX_REPORTED_ORDERS
        return {"method": self.method, "ordersTried": tried, "statesVisited": self.states}


def tried_orders(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest]) -> list[arrival.ArrivalOrder]:
    """The arrival orders the sampled check tries for these pods on these nodes, stack order first."""
    return Scheduler(nodes, pods).orders()


def check_orders(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest],
                 budget: int = order_proof.MAX_STATES) -> tuple[Simulation, OrderCheck]:
    """The stack-order simulation, and whether every arrival order and tie-break places every
    replica: first the named orders (cheap, and a failure among them reads well), then the
    exhaustive search (hamieks/scheduling/order_proof.py) for a proof."""
    scheduler = Scheduler(nodes, pods)
    orders = scheduler.orders()
    replicas = [pod.replicas for pod in pods]
    all_orders = arrival.exhaustive(replicas)
    state, placed, stuck = scheduler.run(orders[0].services)
    primary = scheduler.result(state, placed, stuck)
    if stuck:  # the plan already fails in stack order; other orders add nothing to act on
        return primary, OrderCheck(False, SAMPLED, 1, True, None)
    paired = sharing(state)
    sharing_robust = True
    for tried, candidate in enumerate(orders[1:], 2):
        state, placed, stuck = scheduler.run(candidate.services)
        if stuck:
            failure = _counterexample(scheduler, candidate.name, candidate.services, {}, placed, stuck)
            return primary, OrderCheck(False, SAMPLED, tried, False, failure, 0, tried, False)
        sharing_robust = sharing_robust and sharing(state) == paired
    proof = order_proof.prove(scheduler, budget)
    if not proof.complete:
        return primary, OrderCheck(False, SAMPLED, len(orders), sharing_robust, None, proof.states,
                                   len(orders), all_orders)
    example: Counterexample | None = None
    if proof.order is not None:
        state, placed, stuck = scheduler.run(proof.order, proof.choices)
        example = _counterexample(scheduler, "found by the exhaustive search", proof.order, proof.choices,
                                  placed, stuck)
    return primary, OrderCheck(example is None, EXHAUSTIVE, arrival.distinct_orders(replicas), sharing_robust,
                               example, proof.states, len(orders), all_orders)


def replay(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest], example: Counterexample) -> Simulation:
    """The counterexample placed again: its order, with its tie-breaks."""
    return Scheduler(nodes, pods).simulation(example.services, {step: (n, g) for step, n, g in example.choices})


def _counterexample(scheduler: Scheduler, name: str, services: Sequence[int], choices: dict[int, tuple[int, int]],
                    placed: list[tuple[int, int, int, int]], stuck: list[tuple[int, int, str]]) -> Counterexample:
    names = [pod.service for pod in scheduler.pods]
    seen = [0] * len(names)
    order = []
    for s in services:
        seen[s] += 1
        order.append(f"{names[s]}-{seen[s]}")
    stuck_services = {s for s, _, _ in stuck}
    wanted_nodes = {o for s in stuck_services for o in scheduler.services[s].candidates}
    on_those = {s for s, _, o, _ in placed if o in wanted_nodes}
    competing = tuple(names[s] for s in sorted(stuck_services | on_those))
    groups = tuple(dict.fromkeys(scheduler.nodes[o].group for o in sorted(wanted_nodes)))
    node_name = [spec.name for spec in scheduler.nodes]
    ties = []
    for tie in sorted(choices.items()):
        step, (node, gpu) = tie
        other = _convention_at(scheduler, services, choices, step)
        ties.append(TieBreak(order[step], node_name[node], gpu, node_name[other[0]], other[1]))
    return Counterexample(name, tuple(order), tuple(Unschedulable(names[s], r, why) for s, r, why in stuck),
                          competing, groups, tuple(services),
                          tuple((step, n, g) for step, (n, g) in sorted(choices.items())), tuple(ties))


def _convention_at(scheduler: Scheduler, services: Sequence[int], choices: dict[int, tuple[int, int]],
                   step: int) -> tuple[int, int]:
    """Our convention's (node, GPU) for the step, in the state the order and ties reach before it."""
    state, _, _ = scheduler.run(services[:step], {k: v for k, v in choices.items() if k < step})
    choice = scheduler.convention(state, services[step])
    assert choice is not None  # a tie-break step has choices
    return choice


# ---- the plan -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    gpus: tuple[GpuUsage, ...]
    placements: tuple[Placement, ...]
    unschedulable: tuple[Unschedulable, ...]
    cost: cost.CostEstimate | None  # None: a price the stack needs is unknown
    services: tuple[str, ...] = field(default=())
    orders: OrderCheck = field(default=OrderCheck(True, EXHAUSTIVE, 1, True, None))
    notes: tuple[str, ...] = field(default=())  # assumptions a reader should know (planning_notes)
    accept_sampled: bool = False  # hami-eks:acceptSampledOrderCheck: a sampled check may deploy

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
        """Proven: every arrival order and every tie-break places every replica (so all_placed too)."""
        return self.orders.robust

    @property
    def order_unproven(self) -> bool:
        """Every replica placed in each order sampled, but the exhaustive check gave up: no proof."""
        return self.all_placed and self.orders.unproven

    @property
    def counterexample(self) -> Counterexample | None:
        return self.orders.counterexample

    @property
    def deployable(self) -> bool:
        """What the preflight requires (unless allowUnschedulable): placed, whatever the order,
        proven, or sampled without a failure when acceptSampledOrderCheck accepts that."""
        return self.all_placed and (self.order_robust or (self.accept_sampled and self.order_unproven))

    def to_dict(self, stack: str) -> dict[str, Any]:
        """The `placementPlan` stack output and `plan --json`: issue 4's schema plus issue 8's
        orderRobust and counterexample, and issue 20's orderCheck (how the orders were checked)."""
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
            "orderCheck": self.orders.to_dict(),
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
                tuple(p.service for p in pods), orders, planning_notes(settings),
                settings.accept_sampled_order_check)

__all__ = [
    "EXHAUSTIVE", "SAMPLED", "Counterexample", "GpuUsage", "NodeSpec", "OrderCheck", "Placement", "Plan", "PlanError",
    "PodRequest", "Simulation", "TieBreak", "Unschedulable", "check_orders", "gpu_type_allowed",
    "nodes_from_settings", "plan", "planned_instance", "planning_notes", "pod_request", "pods_from_settings",
    "replay", "simulate", "tolerates", "tried_orders", "usage_score",
]
