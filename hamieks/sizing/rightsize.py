"""The cheapest node groups that still serve every replica: an exact search over the catalog.

The services stay exactly as they are (models, args, slices, host requests, replicas, policies)
and so does the stack's structure: every node group keeps its name, its services and its labels.
What changes is each group's instance type (any catalog type whose GPU every service pinned to
the group accepts, by HAMi's use-gputype rule) and node count, and the system node group.

Feasible means what the preflight requires of a stack, judged by the planner itself:
`placement.plan(...).deployable` (every replica placed in stack order and in every arrival order
the planner tries; host CPU, memory and pod count are part of that simulation) and no `no` verdict
in the model-fit report (slices given as gpumemPercentage are recomputed on the candidate GPU).

Why the search is exact. Services are pinned to their group (nodeSelector accelerator=<group>),
so groups do not compete for nodes and the stack's $/h is a sum of one term per group:
- Per group, the options are (instance type, count) for every matching catalog type and every
  count from a lower bound to R, the group's replica count. R is enough: an option that cannot
  place R replicas on R nodes has a replica that fits no empty node of that type, so no count
  can serve it. The lower bound (`_lower_bound`) is the largest of the bin-packing bounds on GPU
  memory, GPU cores and device slots, host CPU, host memory and pod count (a total each, plus
  the items larger than half a bin, which no two can share): counts below it cannot fit, so
  they are pruned without a plan. Options are tried cheapest first (ties: the group's current
  type, then fewer nodes, then the name), each with a plan of the group's services alone, so
  the first that is deployable is the group's optimum.
- The groups' feasible options, each list ascending, are combined cheapest total first (the
  standard best-first enumeration of sums of sorted lists), and each combination is checked
  once more with the whole-stack plan and model fits: the planner samples arrival orders of the
  whole stack, which is not exactly the product of the groups' checks. The first combination
  that passes is the proposal; it is the cheapest that passes both checks.
- The system node group is chosen independently: SYSTEM_NODE_COUNT nodes (the HAMi webhook fails
  closed and its scheduler runs two leader-elected replicas, hami_values.SCHEDULER_REPLICAS) of
  the cheapest catalog CPU type on which one node holds one replica of each system Deployment
  (SYSTEM_PODS, an estimate) next to the DaemonSets. System nodes stay on-demand, as
  cost.estimate_cost prices them.

No randomness: the same stack, flags and prices give the same proposal.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hamieks import catalog, cost, hami
from hamieks.config.node_groups import CAPACITY_TYPES, NodeGroupSettings
from hamieks.config.services import ServiceSettings
from hamieks.config.settings import Settings, load_settings
from hamieks.config.values import as_json, config_key
from hamieks.errors import ConfigError, NoFeasibleProposal, RightsizeInputError
from hamieks.kube.hami_values import SCHEDULER_REPLICAS
from hamieks.modelfit import budget, hub
from hamieks.modelfit import report as modelfit_report
from hamieks.modelfit.facts import ModelFacts
from hamieks.scheduling import allocatable, placement
from hamieks.scheduling.placement_inputs import PodRequest, pods_from_settings
from hamieks.sizing import system_nodes

# Whole-stack checks tried before giving up (each is one plan); groups' own optima pass at once
# unless the whole-stack order sampling finds what the per-group checks did not.
MAX_COMBINATIONS = 256


# ---- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StackFigures:
    """A stack (current or proposed) with its whole plan and model fits."""

    settings: Settings
    plan: placement.Plan
    fits: tuple[budget.ModelFit, ...]

    @property
    def usd_per_hour(self) -> float | None:
        return self.plan.estimated_hourly_cost_usd

    @property
    def usd_per_month(self) -> float | None:
        hourly = self.usd_per_hour
        return None if hourly is None else round(hourly * cost.HOURS_PER_MONTH, 2)

    def node_groups(self) -> dict[str, dict[str, Any]]:
        """The node groups in the stack-file format."""
        return {group.name: node_group_entry(group) for group in self.settings.node_groups}

    def gpus(self) -> dict[str, int]:
        """GPUs at desired size by model short name, in group order."""
        counts: dict[str, int] = {}
        for group in self.settings.node_groups:
            counts[group.gpu.short] = counts.get(group.gpu.short, 0) + group.desired_size * group.instance.gpu_count
        return counts


@dataclass(frozen=True)
class Rightsizing:
    stack: str
    current: StackFigures
    proposal: StackFigures
    config: dict[str, Any]  # the proposal's full config mapping (what load_settings read)
    pinned: tuple[str, ...]  # services given an explicit nodeGroup (their gpuType became ambiguous)
    capacity_type: str | None  # --capacity, or None: each group keeps its own
    allowed_gpu_models: tuple[str, ...] | None
    plans_run: int  # group and whole-stack plans the search ran
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """`rightsize --json`: issue 14's schema, exactly."""
        return {
            "stack": self.stack,
            "current": {
                "estimatedHourlyCostUsd": self.current.usd_per_hour,
                "gpuMemoryAllocation": self.current.plan.gpu_memory_allocation,
                "nodeGroups": self.current.node_groups(),
            },
            "proposal": {
                "estimatedHourlyCostUsd": self.proposal.usd_per_hour,
                "gpuMemoryAllocation": self.proposal.plan.gpu_memory_allocation,
                "nodeGroups": self.proposal.node_groups(),
                "systemInstanceType": self.proposal.settings.system_instance_type,
                "systemNodeCount": self.proposal.settings.system_node_count,
            },
        }


def node_group_entry(group: NodeGroupSettings) -> dict[str, Any]:
    return {"instanceTypes": list(group.instance_types), "desiredSize": group.desired_size,
            "minSize": group.min_size, "maxSize": group.max_size, "diskSizeGiB": group.disk_size_gib,
            "capacityType": group.capacity_type}


# ---- flags ------------------------------------------------------------------------------------

def gpu_models() -> tuple[catalog.GpuModel, ...]:
    """Every GPU model the catalog offers, in catalog order (A100 40 GB and 80 GB are two)."""
    return tuple(dict.fromkeys(it.gpu for it in catalog.INSTANCE_TYPES.values() if it.gpu is not None))


def parse_gpu_models(text: str) -> tuple[str, ...]:
    """`--allow-gpu-types T4,L4` -> ("T4", "L4"): catalog short names, case-insensitive."""
    known = {m.short.lower(): m.short for m in gpu_models()}
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in wanted if name.lower() not in known]
    if unknown or not wanted:
        raise RightsizeInputError(f"--allow-gpu-types: {', '.join(unknown) or 'nothing'} is not a catalog GPU model; "
                                  f"use a comma list of {', '.join(dict.fromkeys(known.values()))}, e.g. T4,L4")
    return tuple(dict.fromkeys(known[name.lower()] for name in wanted))


# ---- the search -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Option:
    usd_per_hour: float
    instance: catalog.InstanceType
    count: int


def _bins(sizes: Sequence[float], capacity: float) -> int:
    """A lower bound on bins of `capacity` for these items: the total, and the items larger than
    half a bin (no two of them share one)."""
    if not sizes:
        return 0
    return max(math.ceil(sum(sizes) / capacity - 1e-9), sum(1 for size in sizes if size * 2 > capacity))


def _plan_failure(plan: placement.Plan) -> str:
    if plan.unschedulable:
        u = plan.unschedulable[0]
        return f"{u.service} replica {u.replica} cannot be placed: {u.reason}"
    example = plan.counterexample
    if example is not None and example.unschedulable:
        u = example.unschedulable[0]
        return f"arrival order {example.name!r} leaves {u.service} replica {u.replica} Pending: {u.reason}"
    if plan.order_unproven:
        return (f"the arrival-order check is only a sample ({plan.orders.tried} orders; the exhaustive search gave up "
                f"after {plan.orders.states} states); set hami-eks:acceptSampledOrderCheck to accept it")
    return "the plan is not deployable"


class _Search:
    """Shared state: the pinned base config, flags, prices, and how many plans ran."""

    def __init__(self, stack: str, config: Mapping[str, Any], settings: Settings, allowed: tuple[str, ...] | None,
                 capacity_type: str | None, prices: cost.PriceLookup, lookup: modelfit_report.Lookup):
        self.stack, self.settings, self.allowed = stack, settings, allowed
        self.capacity_type, self.prices = capacity_type, prices
        # One answer per model for the whole run: an unknown model must not cost a Hub round trip
        # (and its timeout) per candidate GPU.
        facts: dict[str, ModelFacts | None] = {}

        def remembered(repo: str) -> ModelFacts | None:
            if repo not in facts:
                facts[repo] = lookup(repo)
            return facts[repo]

        self.lookup: modelfit_report.Lookup = remembered
        self.plans_run = 0
        raw_services = as_json(config.get(config_key("services"))) or []
        group_of = {svc.name: svc.node_group for svc in settings.services}
        # Every service pinned to the group it resolved to: a group that changes GPU model must
        # not pull in (or make ambiguous) a service of another group.
        self.services_raw: list[dict[str, Any]] = [dict(raw) for raw in raw_services]
        pinned = [{**raw, "nodeGroup": group_of[raw["name"]]} for raw in self.services_raw]
        self.groups_raw: dict[str, Any] = dict(as_json(config.get(config_key("nodeGroups"))) or {})
        self.base: dict[str, Any] = {**config, config_key("services"): pinned}

    def group_body(self, group: NodeGroupSettings, instance: str, count: int, capacity: str) -> dict[str, Any]:
        body: dict[str, Any] = {"instanceTypes": [instance], "desiredSize": count, "minSize": count,
                                "maxSize": max(count, 1), "diskSizeGiB": group.disk_size_gib, "capacityType": capacity}
        if group.extra_labels:
            body["labels"] = dict(group.extra_labels)
        return body

    def config_with(self, bodies: Mapping[str, dict[str, Any]], system: tuple[str, int] | None = None) -> dict[str, Any]:
        """The pinned base config with these groups replaced (and the system nodes, when given)."""
        groups = {name: bodies.get(name, body) for name, body in self.groups_raw.items()}
        config = {**self.base, config_key("nodeGroups"): groups}
        if system is not None:
            config[config_key("systemInstanceType")], config[config_key("systemNodeCount")] = system
        return config

    def capacity_for(self, group: NodeGroupSettings) -> str:
        return self.capacity_type or group.capacity_type

    def price(self, instance: str, capacity: str) -> float | None:
        found = self.prices(instance, self.settings.region, capacity)
        return None if found is None else found.usd_per_hour


class _GroupSearch:
    """The feasible (type, count) options of one node group, cheapest first, found lazily."""

    def __init__(self, search: _Search, group: NodeGroupSettings):
        self.search, self.group = search, group
        self.services: tuple[ServiceSettings, ...] = tuple(s for s in search.settings.services
                                                           if s.node_group == group.name)
        self.names = tuple(s.name for s in self.services)
        self.pods: list[PodRequest] = pods_from_settings(search.settings, self.names) if self.names else []
        self.replicas = sum(pod.replicas for pod in self.pods)
        self.capacity = search.capacity_for(group)
        # instance type -> why it cannot serve the group, and that type's own figure ("" if none),
        # so that one reason shared by several types is said once
        self.rejected: dict[str, tuple[str, str]] = {}
        self.unmatched: list[str] = []  # why no catalog GPU model is a candidate at all
        self.models: list[str] = []  # short names of the GPU models searched
        self.found: list[_Option] = []
        self._pending = self._search()
        self._exhausted = False

    def option(self, index: int) -> _Option | None:
        while len(self.found) <= index and not self._exhausted:
            nxt = next(self._pending, None)
            if nxt is None:
                self._exhausted = True
            else:
                self.found.append(nxt)
        return self.found[index] if index < len(self.found) else None

    # -- candidates -------------------------------------------------------------------------

    def _models(self) -> list[catalog.GpuModel]:
        """GPU models every service of the group accepts (HAMi's use-gputype substring rule on the
        registered type) and the flags allow."""
        models = [m for m in gpu_models()
                  if all(hami.gpu_type_matches(s.gpu_type, m.registered_type) for s in self.services)]
        allowed = self.search.allowed
        usable = [m for m in models if allowed is None or m.short in allowed]
        if not models:
            for svc in self.services:
                offered = [m.short for m in gpu_models() if hami.gpu_type_matches(svc.gpu_type, m.registered_type)]
                self.unmatched.append(f"{svc.name} asks for gpuType {svc.gpu_type!r}, which matches "
                                      f"{', '.join(dict.fromkeys(offered)) or 'no catalog GPU'}")
            self.unmatched.insert(0, "no catalog GPU model matches the gpuType of every service of the group")
        elif not usable:
            self.unmatched.append(f"its services' gpuType ({', '.join(dict.fromkeys(s.gpu_type for s in self.services))}) "
                                  f"matches {', '.join(dict.fromkeys(m.short for m in models))}, none of which "
                                  f"--allow-gpu-types allows ({', '.join(allowed or ())})")
        return usable

    def _type_problem(self, instance: catalog.InstanceType, cache: dict[str, str | None]) -> tuple[str, str] | None:
        """Why this type cannot serve the group at any count (and the type's figure), or None."""
        gpu = instance.gpu
        assert gpu is not None
        node_cpu, node_memory = allocatable.cpu_millis(instance), allocatable.memory_mib(instance)
        for pod in self.pods:
            granted = pod.memory_on(gpu.memory_mib)
            if granted > gpu.memory_mib:
                return (f"{pod.service} asks for a {granted} MiB slice, more than a whole {gpu.short} "
                        f"({gpu.memory_mib} MiB as HAMi sees it)"), ""
            if pod.cpu_millis > node_cpu:
                return (f"{pod.service} requests {pod.cpu_text} CPU, more than a node has allocatable after "
                        f"kubelet and DaemonSets"), f"{node_cpu}m"
            if pod.memory_mib > node_memory:
                return (f"{pod.service} requests {pod.memory_text} of host memory, more than a node has allocatable "
                        f"after kubelet, eviction threshold and DaemonSets"), f"~{node_memory} MiB"
        if allocatable.pods(instance) < 1:
            return "no pod room left after the DaemonSets", ""
        # Settings (vLLM args on this GPU, slices larger than it) and model fit depend on the
        # GPU model only: checked once per model on a one-node group.
        if gpu.name not in cache:
            cache[gpu.name] = self._model_problem(instance)
        problem = cache[gpu.name]
        return None if problem is None else (problem, "")

    def _model_problem(self, instance: catalog.InstanceType) -> str | None:
        body = self.search.group_body(self.group, instance.name, 1, self.capacity)
        try:
            settings = load_settings(self.search.config_with({self.group.name: body}))
        except ConfigError as exc:
            return "; ".join(f"{key}: {message}" for key, message in exc.problems)
        bad = modelfit_report.misfits(modelfit_report.model_fits(settings, self.names, self.search.lookup))
        if bad:
            return "; ".join(f"{fit.service} ({fit.model}) cannot load in its slice: {fit.reason}" for fit in bad)
        return None

    def _lower_bound(self, instance: catalog.InstanceType) -> int:
        """Fewest nodes of this type that could hold the group, from totals alone (see module doc)."""
        gpu = instance.gpu
        assert gpu is not None
        memory = [float(pod.memory_on(gpu.memory_mib)) for pod in self.pods for _ in range(pod.replicas)]
        cores = [float(pod.cores) for pod in self.pods for _ in range(pod.replicas)]
        gpus = max(_bins(memory, gpu.memory_mib), _bins(cores, hami.CORES_PER_GPU),
                   math.ceil(self.replicas / hami.DEVICE_SPLIT_COUNT))
        cpu = [float(pod.cpu_millis) for pod in self.pods for _ in range(pod.replicas)]
        host = [float(pod.memory_mib) for pod in self.pods for _ in range(pod.replicas)]
        return max(1, math.ceil(gpus / instance.gpu_count), _bins(cpu, allocatable.cpu_millis(instance)),
                   _bins(host, allocatable.memory_mib(instance)), math.ceil(self.replicas / allocatable.pods(instance)))

    def _options(self) -> list[_Option]:
        options: list[_Option] = []
        cache: dict[str, str | None] = {}
        models = self._models()
        self.models = list(dict.fromkeys(m.short for m in models))
        for model in models:
            for instance in catalog.INSTANCE_TYPES.values():
                if instance.gpu != model or not instance.is_gpu:
                    continue
                price = self.search.price(instance.name, self.capacity)
                if price is None:
                    self.rejected[instance.name] = (f"no {self.capacity} price in {self.search.settings.region}", "")
                    continue
                problem = self._type_problem(instance, cache)
                if problem is not None:
                    self.rejected[instance.name] = problem
                    continue
                low = self._lower_bound(instance)
                options.extend(_Option(round(n * price, 6), instance, n) for n in range(low, self.replicas + 1))
        current = self.group.instance.name
        options.sort(key=lambda o: (o.usd_per_hour, o.instance.name != current, o.count, o.instance.name))
        return options

    def _search(self) -> Iterator[_Option]:
        if self.replicas == 0:  # nothing to serve: keep the type, run no node
            yield _Option(0.0, self.group.instance, 0)
            return
        for option in self._options():
            body = self.search.group_body(self.group, option.instance.name, option.count, self.capacity)
            settings = load_settings(self.search.config_with({self.group.name: body}))
            self.search.plans_run += 1
            result = placement.plan(settings, self.names, self.search.prices)
            if result.deployable:
                yield option
            else:
                self.rejected[option.instance.name] = (_plan_failure(result), f"{option.count} node(s)")

    def reasons(self) -> str:
        label = f"node group {self.group.name} ({', '.join(self.names)})"
        if self.unmatched:
            return f"{label}: " + "; ".join(self.unmatched)
        by_reason: dict[str, list[str]] = {}
        for name, (why, figure) in self.rejected.items():
            by_reason.setdefault(why, []).append(f"{name} ({figure})" if figure else name)
        details = "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())
        return f"{label}: no {'/'.join(self.models)} instance type in the catalog serves it: {details}"


def rightsize(stack: str, config: Mapping[str, Any], *, allowed_gpu_models: Sequence[str] | None = None,
              capacity_type: str | None = None, prices: cost.PriceLookup = cost.recorded_price,
              lookup: modelfit_report.Lookup = hub.lookup) -> Rightsizing:
    """The cheapest proposal for the stack whose full config (`stackfiles.load_stack_config`) is
    given. Raises ConfigError when the stack itself is invalid, NoFeasibleProposal when no
    catalog option serves it, RightsizeInputError on a bad flag value."""
    if capacity_type is not None and capacity_type not in CAPACITY_TYPES:
        raise RightsizeInputError(f"--capacity: must be one of {', '.join(CAPACITY_TYPES)}, got {capacity_type!r}")
    allowed = tuple(allowed_gpu_models) if allowed_gpu_models is not None else None
    settings = load_settings(config)
    current_plan = placement.plan(settings, prices=prices)
    search = _Search(stack, config, settings, allowed, capacity_type, prices, lookup)
    current = StackFigures(settings, current_plan, tuple(modelfit_report.model_fits(settings, lookup=search.lookup)))
    groups = [_GroupSearch(search, group) for group in settings.node_groups]
    try:
        system, _ = system_nodes.cheapest_system_type(settings, prices)
    except NoFeasibleProposal as exc:
        raise NoFeasibleProposal(stack, exc.reasons) from None
    system_pair = (system.name, system_nodes.SYSTEM_NODE_COUNT)

    failed = [g.reasons() for g in groups if g.option(0) is None]
    if failed:
        raise NoFeasibleProposal(stack, failed)
    proposal, config_used = _combine(search, groups, system_pair)
    written, pinned = _unpinned_config(search, config_used, proposal.settings)
    notes = _notes(search, groups, proposal, system, pinned)
    return Rightsizing(stack, current, proposal, written, pinned, capacity_type, allowed, search.plans_run, notes)


def _combine(search: _Search, groups: list[_GroupSearch],
             system: tuple[str, int]) -> tuple[StackFigures, dict[str, Any]]:
    """Combinations of the groups' feasible options, cheapest total first, each checked with the
    whole-stack plan and model fits; the first that passes."""
    def total(index: tuple[int, ...]) -> float:
        options = [g.option(i) for g, i in zip(groups, index, strict=True)]
        return round(sum(o.usd_per_hour for o in options if o is not None), 6)

    start = tuple(0 for _ in groups)
    heap = [(total(start), start)]
    seen = {start}
    last_failure, tried = "", 0
    while heap and tried < MAX_COMBINATIONS:
        _, index = heapq.heappop(heap)
        tried += 1
        bodies = {}
        for g, i in zip(groups, index, strict=True):
            option = g.option(i)
            assert option is not None
            bodies[g.group.name] = search.group_body(g.group, option.instance.name, option.count, g.capacity)
        config = search.config_with(bodies, system)
        settings = load_settings(config)
        search.plans_run += 1
        result = placement.plan(settings, prices=search.prices)
        fits = tuple(modelfit_report.model_fits(settings, lookup=search.lookup))
        if result.deployable and not modelfit_report.misfits(fits):
            return StackFigures(settings, result, fits), config
        last_failure = _plan_failure(result) if not result.deployable else modelfit_report.format_misfits(fits)
        for n in range(len(groups)):
            nxt = (*index[:n], index[n] + 1, *index[n + 1:])
            if nxt not in seen and groups[n].option(nxt[n]) is not None:
                seen.add(nxt)
                heapq.heappush(heap, (total(nxt), nxt))
    raise NoFeasibleProposal(search.stack, [f"every group has options that plan clean on their own, but none of the "
                                            f"{tried} cheapest combinations plans clean as a whole stack; last: {last_failure}"])


def _unpinned_config(search: _Search, config: dict[str, Any], proposal: Settings) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The proposal with the services as the stack file wrote them, unless the new groups' GPUs
    would send a service elsewhere (or match several groups): then those services keep an
    explicit nodeGroup, the group they are in today."""
    group_of = {s.name: s.node_group for s in proposal.services}
    verbatim = {**config, config_key("services"): search.services_raw}
    try:
        loaded = load_settings(verbatim)
        moved = [s.name for s in loaded.services if s.node_group != group_of[s.name]]
    except ConfigError:
        moved = [raw["name"] for raw in search.services_raw]
    if not moved:
        return verbatim, ()
    services = [raw if raw["name"] not in moved or "nodeGroup" in raw else {**raw, "nodeGroup": group_of[raw["name"]]}
                for raw in search.services_raw]
    pinned = tuple(raw["name"] for raw in search.services_raw if raw["name"] in moved and "nodeGroup" not in raw)
    return {**config, config_key("services"): services}, pinned


def _notes(search: _Search, groups: list[_GroupSearch], proposal: StackFigures, system: catalog.InstanceType,
           pinned: tuple[str, ...]) -> tuple[str, ...]:
    system_pods = ", ".join(p.name for p in system_nodes.system_pods(search.settings))
    notes = [f"system nodes: {system_nodes.SYSTEM_NODE_COUNT} x {system.name}, the cheapest catalog CPU type on which one "
             f"node holds one replica each of {system_pods} (estimated requests) next to the DaemonSets; "
             f"two because HAMi's webhook fails closed and its scheduler runs {SCHEDULER_REPLICAS} replicas; on-demand"]
    for g in groups:
        if g.replicas == 0:
            notes.append(f"node group {g.group.name} serves no replica: proposed with 0 nodes (remove it if unused)")
    fixed: dict[str, list[str]] = {}  # price source -> SPOT groups priced at a fixed figure from it
    for group in proposal.settings.node_groups:
        price = search.prices(group.instance.name, proposal.settings.region, group.capacity_type)
        if group.capacity_type == "SPOT" and price is not None and not price.variable:
            fixed.setdefault(price.source, []).append(group.name)
    for source, names in fixed.items():
        what = ("the recorded on-demand list price (the catalog records no spot prices)" if source == cost.RECORDED_SOURCE
                else f"a fixed figure ({source})")
        notes.append(f"SPOT node group(s) {', '.join(names)} priced at {what}: an upper bound, spot prices move")
    if pinned:
        notes.append(f"nodeGroup set on {', '.join(pinned)}: with the new GPU models its gpuType would otherwise "
                     f"resolve to another group or to several")
    return tuple(notes)


