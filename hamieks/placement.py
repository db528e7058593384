"""Where HAMi will put every replica, what each will see as GPU memory, and what it costs.

A pure simulation of hami-scheduler (chart 2.10.0), run before anything is paid for. The pods
are read from the very Deployment `workloads.deployment(settings, service)` builds (annotations,
`nvidia.com/*` limits, nodeSelector, tolerations, CPU/memory requests), so the plan cannot drift
from what the cluster will be asked to schedule. Nodes come from the node groups at their desired
size, with the GPUs and memory HAMi registers (catalog) and the labels/taint hami-eks puts on them.

HAMi rules simulated (pkg/scheduler, pkg/device/nvidia; ../shared/docs/DESIGN.md §3):
- memory: `nvidia.com/gpumem` (MiB) wins over `nvidia.com/gpumem-percentage`, which is
  floor(total * pct / 100) of the GPU's registered memory; with neither, the pod takes 100% of
  the memory and, unless it sets `nvidia.com/gpucores`, all cores (an exclusive GPU).
- a GPU fits when its type passes use-gputype/nouse-gputype (comma lists, case-insensitive
  substring), it runs fewer than deviceSplitCount (10) pods, has the free memory and free cores,
  is not asked for exclusively while in use, and does not have all cores taken by another pod
  while this one asks for none.
- GPU score = used slots/count + used cores/100 + used memory/total, counting the request;
  node score = the same over all of a node's GPUs, before the request. binpack takes the highest
  score, spread the lowest. Defaults: node binpack, GPU spread; pod annotations
  `hami.io/node-scheduler-policy` / `hami.io/gpu-scheduler-policy` override them. (HAMi multiplies
  both by a weight of 10, which changes no order, so it is left out.)
- before HAMi scores, kube-scheduler filters nodes: nodeSelector, NoSchedule/NoExecute taints,
  and CPU/memory requests against the node's allocatable (hamieks/allocatable.py).

Deterministic tie-breaks (HAMi's own are partly random, so the plan names one valid outcome):
- nodes with equal scores: the first in settings order (node groups as listed, then `<group>-1`,
  `<group>-2`, ...). HAMi scores nodes in goroutines and sorts them unstably.
- GPUs with equal scores: the highest index. HAMi sorts a node's GPUs (stable for <= 12 GPUs)
  and walks the sorted list from its end, so among equals the last registered GPU wins. A real
  cluster may still pick another, equivalent GPU (the reference blog shows both ends); the
  co-location and the memory each pod sees are what the plan guarantees.
- replicas are placed one by one, services in settings order, replicas 1..N.

Speed: for one service every replica has the same request and usage only grows, so a node that
cannot take a replica will never take a later one of that service. Each service therefore keeps a
heap of its candidate nodes ordered by (score, settings order): only the node that just received a
pod changes score, so every placement costs O(log nodes + GPUs per node).
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from hamieks import allocatable, catalog, cost, hami, quantity, workloads
from hamieks.errors import PlanError
from hamieks.hami import BINPACK, CORES_PER_GPU, DEVICE_SPLIT_COUNT, SPREAD
from hamieks.conventions import GPU_TAINT
from hamieks.settings import Settings

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")  # PreferNoSchedule only lowers a node's score

# ---- inputs: pods from the pod template, nodes from the node groups ----------------------------

@dataclass(frozen=True)
class PodRequest:
    """What HAMi and kube-scheduler read from one pod template (all replicas are identical)."""

    service: str
    replicas: int
    gpumem: int | None
    gpumem_percentage: int | None
    gpucores: int | None
    use_gputype: str | None
    nouse_gputype: str | None
    node_policy: str
    gpu_policy: str
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    cpu_millis: int
    memory_mib: float
    cpu_text: str  # the quantities as written, for messages
    memory_text: str

    @property
    def exclusive(self) -> bool:
        """Neither memory key: HAMi gives 100% of the memory (and all cores unless gpucores)."""
        return self.gpumem is None and self.gpumem_percentage is None

    @property
    def cores(self) -> int:
        if self.gpucores is not None:
            return min(self.gpucores, CORES_PER_GPU)  # HAMi caps a larger request at 100
        return CORES_PER_GPU if self.exclusive else 0

    def memory_on(self, gpu_memory_mib: int) -> int:
        """The MiB HAMi grants, i.e. memory.total inside the pod, on a GPU of that size."""
        return hami.granted_memory_mib(self.gpumem, self.gpumem_percentage, gpu_memory_mib)


def _policy(annotations: Mapping[str, str], key: str, default: str) -> str:
    # HAMi ignores a value it does not know and keeps the configured default.
    value = str(annotations.get(key, "")).strip()
    return value if value in (BINPACK, SPREAD) else default


def _summed(containers: Sequence[Mapping[str, Any]], name: str, parse) -> tuple[Any, list[str]]:
    """Sum a resource over containers, limits first then requests (as HAMi reads devices)."""
    total, texts = None, []
    for container in containers:
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            value = (resources.get(section) or {}).get(name)
            if value is not None:
                total = parse(value) if total is None else total + parse(value)
                texts.append(str(value))
                break
    return total, texts


def _requested(containers: Sequence[Mapping[str, Any]], name: str, parse) -> tuple[Any, list[str]]:
    """CPU/memory as kube-scheduler counts them: requests, or the limit when only that is set."""
    total, texts = 0, []
    for container in containers:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(name, (resources.get("limits") or {}).get(name))
        if value is not None:
            total += parse(value)
            texts.append(str(value))
    return total, texts


def pod_request(deployment: Mapping[str, Any]) -> PodRequest:
    """Read a Deployment's pod template the way hami-scheduler and kube-scheduler do."""
    try:
        return _pod_request(deployment)
    except ValueError as exc:  # a quantity that is not one (settings refuse it; a hand edit may not)
        raise PlanError(f"{deployment['metadata']['name']}: {exc}") from None


def _pod_request(deployment: Mapping[str, Any]) -> PodRequest:
    name = deployment["metadata"]["name"]
    template = deployment["spec"]["template"]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    spec = template["spec"]
    containers = spec.get("containers") or []
    gpus, _ = _summed(containers, hami.RESOURCE_GPU, quantity.whole_number)
    if gpus != 1:
        raise PlanError(f"{name} requests {gpus or 0} x {hami.RESOURCE_GPU}; the planner models "
                        f"pods with exactly one (shared) GPU, as hamieks/workloads.py builds them")
    gpumem, _ = _summed(containers, hami.RESOURCE_GPUMEM, quantity.whole_number)
    percentage, _ = _summed(containers, hami.RESOURCE_GPUMEM_PERCENTAGE, quantity.whole_number)
    gpucores, _ = _summed(containers, hami.RESOURCE_GPUCORES, quantity.whole_number)
    cpu, cpu_texts = _requested(containers, "cpu", quantity.cpu_millis)
    memory, memory_texts = _requested(containers, "memory", quantity.mebibytes)
    return PodRequest(
        service=name,
        replicas=int(deployment["spec"].get("replicas", 1)),
        gpumem=gpumem,
        gpumem_percentage=percentage,
        gpucores=gpucores,
        use_gputype=annotations.get(hami.ANNOTATION_USE_GPUTYPE),
        nouse_gputype=annotations.get(hami.ANNOTATION_NOUSE_GPUTYPE),
        node_policy=_policy(annotations, hami.ANNOTATION_NODE_POLICY, hami.DEFAULT_NODE_POLICY),
        gpu_policy=_policy(annotations, hami.ANNOTATION_GPU_POLICY, hami.DEFAULT_GPU_POLICY),
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        cpu_millis=cpu,
        memory_mib=memory,
        cpu_text="+".join(cpu_texts) or "0",
        memory_text="+".join(memory_texts) or "0",
    )


@dataclass(frozen=True)
class NodeSpec:
    """One GPU node as the scheduler will see it once the node group is up."""

    name: str
    group: str
    instance: catalog.InstanceType
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]

    @property
    def gpu(self) -> catalog.GpuModel:
        assert self.instance.gpu is not None
        return self.instance.gpu


def nodes_from_settings(settings: Settings) -> list[NodeSpec]:
    """Every GPU node at the groups' desired size, named `<group>-<n>` from 1, in settings order."""
    nodes = []
    for group in settings.node_groups:
        instance = group.instance
        labels = {**group.labels, INSTANCE_TYPE_LABEL: instance.name}
        for n in range(1, group.desired_size + 1):
            nodes.append(NodeSpec(f"{group.name}-{n}", group.name, instance, labels, (GPU_TAINT.as_dict(),)))
    return nodes


def pods_from_settings(settings: Settings, only: Iterable[str] | None = None) -> list[PodRequest]:
    """The pod template of every service (or of the named ones), in settings order."""
    services = settings.services
    if only is not None:
        wanted = list(dict.fromkeys(only))
        known = {s.name for s in services}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise PlanError(f"no service named {', '.join(unknown)}; services: {', '.join(known) or 'none'}")
        services = tuple(s for s in services if s.name in wanted)
    return [pod_request(workloads.deployment(settings, service)) for service in services]


# ---- filters kube-scheduler and HAMi apply before scoring --------------------------------------

def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, str]) -> bool:
    """Kubernetes' rule: effect and key match when set; Exists ignores the value, Equal compares it."""
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("key") and tol["key"] != taint.get("key"):
            continue
        if tol.get("operator", "Equal") == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _blocking_taint(node: NodeSpec, tolerations: Sequence[Mapping[str, Any]]) -> Mapping[str, str] | None:
    for taint in node.taints:
        if taint.get("effect") in _BLOCKING_EFFECTS and not tolerates(tolerations, taint):
            return taint
    return None


def gpu_type_allowed(pod: PodRequest, registered_type: str) -> bool:
    """HAMi's checkGPUtype: must match use-gputype if set, must not match nouse-gputype if set."""
    if pod.use_gputype is not None and not hami.gpu_type_matches(pod.use_gputype, registered_type):
        return False
    if pod.nouse_gputype is not None and hami.gpu_type_matches(pod.nouse_gputype, registered_type):
        return False
    return True


def _selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ---- simulation state --------------------------------------------------------------------------

class _Gpu:
    __slots__ = ("index", "total", "used_mem", "slots", "cores", "pods")

    def __init__(self, index: int, total: int):
        self.index, self.total = index, total
        self.used_mem = self.slots = self.cores = 0
        self.pods: list[str] = []


class _Node:
    __slots__ = ("spec", "order", "gpus", "cpu_free", "mem_free", "sum_slots", "sum_cores",
                 "sum_mem", "slot_total", "core_total", "mem_total")

    def __init__(self, spec: NodeSpec, order: int):
        self.spec, self.order = spec, order
        count, memory = spec.instance.gpu_count, spec.gpu.memory_mib
        self.gpus = [_Gpu(i, memory) for i in range(count)]
        self.cpu_free = allocatable.cpu_millis(spec.instance)
        self.mem_free = float(allocatable.memory_mib(spec.instance))
        self.sum_slots = self.sum_cores = self.sum_mem = 0
        self.slot_total = DEVICE_SPLIT_COUNT * count
        self.core_total = CORES_PER_GPU * count
        self.mem_total = memory * count

    def score(self) -> float:
        """HAMi's node score: usage before the request, over all of the node's GPUs."""
        return (self.sum_slots / self.slot_total + self.sum_cores / self.core_total
                + self.sum_mem / self.mem_total)


def _gpu_rejection(gpu: _Gpu, memreq: int, cores: int) -> str | None:
    """Why this GPU cannot take the request, in HAMi's order of checks; None when it fits."""
    if gpu.slots >= DEVICE_SPLIT_COUNT:
        return "slots"
    if gpu.total - gpu.used_mem < memreq:
        return "memory"
    if CORES_PER_GPU - gpu.cores < cores:
        return "cores"
    if cores == CORES_PER_GPU and gpu.slots > 0:
        return "exclusive"
    if gpu.cores == CORES_PER_GPU and cores == 0:
        return "cores"
    return None


def _choose_gpu(node: _Node, memreq: int, cores: int, binpack: bool) -> _Gpu | None:
    """The GPU HAMi picks on this node, or None. Ties go to the highest index (see module doc)."""
    best, best_score = None, 0.0
    for gpu in reversed(node.gpus):
        if _gpu_rejection(gpu, memreq, cores) is not None:
            continue
        score = ((gpu.slots + 1) / DEVICE_SPLIT_COUNT + (gpu.cores + cores) / CORES_PER_GPU
                 + (gpu.used_mem + memreq) / gpu.total)
        if best is None or (score > best_score if binpack else score < best_score):
            best, best_score = gpu, score
    return best


def _node_has_room(node: _Node, pod: PodRequest) -> bool:
    return node.cpu_free >= pod.cpu_millis and node.mem_free >= pod.memory_mib


def _heap_key(node: _Node, binpack: bool) -> tuple[float, int]:
    score = node.score()
    return (-score if binpack else score, node.order)


# ---- results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placement:
    service: str
    replica: int  # 1-based, like node numbers
    node: str
    node_group: str
    gpu: int  # the GPU's index on the node (nvidia-smi / HAMi index)
    memory_mib: int  # what the pod sees as memory.total

    @property
    def pod(self) -> str:
        return f"{self.service}-{self.replica}"


@dataclass(frozen=True)
class Unschedulable:
    service: str
    replica: int
    reason: str


@dataclass(frozen=True)
class GpuUsage:
    node: str
    node_group: str
    instance_type: str
    index: int
    model: str  # the name nvidia-smi prints, e.g. "Tesla T4"
    memory_mib: int  # as HAMi registers it
    allocated_mib: int
    pods: tuple[str, ...]


@dataclass(frozen=True)
class Simulation:
    gpus: tuple[GpuUsage, ...]
    placements: tuple[Placement, ...]
    unschedulable: tuple[Unschedulable, ...]


def simulate(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest]) -> Simulation:
    """Place every replica of every pod template, in order, as HAMi would."""
    state = [_Node(spec, order) for order, spec in enumerate(nodes)]
    placements: list[Placement] = []
    unschedulable: list[Unschedulable] = []
    for pod in pods:
        _place_service(pod, state, placements, unschedulable)
    gpus = tuple(
        GpuUsage(node.spec.name, node.spec.group, node.spec.instance.name, gpu.index, node.spec.gpu.name,
                 gpu.total, gpu.used_mem, tuple(gpu.pods))
        for node in state for gpu in node.gpus
    )
    return Simulation(gpus, tuple(placements), tuple(unschedulable))


def _place_service(pod: PodRequest, state: list[_Node], placements: list[Placement],
                   unschedulable: list[Unschedulable]) -> None:
    candidates, reason = _candidates(pod, state)
    binpack_nodes = pod.node_policy == BINPACK
    binpack_gpus = pod.gpu_policy == BINPACK
    memreq = {node.order: pod.memory_on(node.spec.gpu.memory_mib) for node in candidates}
    heap = [_heap_key(node, binpack_nodes) for node in candidates]
    heapq.heapify(heap)
    cores = pod.cores
    for replica in range(1, pod.replicas + 1):
        gpu, node = None, None
        while heap and gpu is None:
            node = state[heap[0][1]]
            if _node_has_room(node, pod):
                gpu = _choose_gpu(node, memreq[node.order], cores, binpack_gpus)
            if gpu is None:
                heapq.heappop(heap)  # usage only grows: this node is out for the rest of the service
        if gpu is None or node is None:
            reason = reason or _exhausted_reason(pod, candidates, memreq)
            unschedulable.extend(Unschedulable(pod.service, r, reason) for r in range(replica, pod.replicas + 1))
            return
        placement = Placement(pod.service, replica, node.spec.name, node.spec.group, gpu.index, memreq[node.order])
        _allocate(node, gpu, placement, pod, cores)
        placements.append(placement)
        heapq.heapreplace(heap, _heap_key(node, binpack_nodes))


def _allocate(node: _Node, gpu: _Gpu, placement: Placement, pod: PodRequest, cores: int) -> None:
    gpu.slots += 1
    gpu.used_mem += placement.memory_mib
    gpu.cores += cores
    gpu.pods.append(placement.pod)
    node.sum_slots += 1
    node.sum_mem += placement.memory_mib
    node.sum_cores += cores
    node.cpu_free -= pod.cpu_millis
    node.mem_free -= pod.memory_mib


# ---- candidates and reasons --------------------------------------------------------------------

def _candidates(pod: PodRequest, state: list[_Node]) -> tuple[list[_Node], str | None]:
    """Nodes that could ever take this pod; when none, the reason (filters in scheduler order)."""
    selected = [n for n in state if _selector_matches(pod.node_selector, n.spec.labels)]
    if not selected:
        return [], _no_selector_match(pod, state)
    tolerated = [n for n in selected if _blocking_taint(n.spec, pod.tolerations) is None]
    if not tolerated:
        taint = _blocking_taint(selected[0].spec, pod.tolerations)
        assert taint is not None
        return [], (f"{pod.service} does not tolerate the taint {taint['key']}={taint.get('value', '')}:"
                    f"{taint['effect']} on {_describe_nodes(selected)}; add a toleration for it")
    typed = [n for n in tolerated if gpu_type_allowed(pod, n.spec.gpu.registered_type)]
    if not typed:
        return [], _no_type_match(pod, tolerated)
    large = [n for n in typed if pod.memory_on(n.spec.gpu.memory_mib) <= n.spec.gpu.memory_mib]
    if not large:
        biggest = max(typed, key=lambda n: n.spec.gpu.memory_mib).spec.gpu
        return [], (f"{pod.service} needs {pod.memory_on(biggest.memory_mib)} MiB; "
                    f"the largest {biggest.short} has {biggest.memory_mib}")
    roomy = [n for n in large if pod.cpu_millis <= allocatable.cpu_millis(n.spec.instance)
             and pod.memory_mib <= allocatable.memory_mib(n.spec.instance)]
    if not roomy:
        return [], _too_big_for_nodes(pod, large)
    return roomy, None


def _no_selector_match(pod: PodRequest, state: list[_Node]) -> str:
    selector = ", ".join(f"{k}={v}" for k, v in pod.node_selector.items())
    groups = sorted({n.spec.group for n in state})
    have = f"GPU nodes exist only in group(s) {', '.join(groups)}" if groups else "the stack has no GPU nodes"
    return (f"no node matches nodeSelector {selector} for {pod.service} ({have}); give the node group "
            f"a desiredSize of at least 1 or point the service at a group that has nodes")


def _no_type_match(pod: PodRequest, nodes: list[_Node]) -> str:
    offered = ", ".join(sorted({n.spec.gpu.registered_type for n in nodes}))
    wanted = []
    if pod.use_gputype is not None:
        wanted.append(f"use-gputype {pod.use_gputype!r}")
    if pod.nouse_gputype is not None:
        wanted.append(f"nouse-gputype {pod.nouse_gputype!r}")
    return (f"no GPU matches {pod.service}'s {' and '.join(wanted)} on {_describe_nodes(nodes)} "
            f"(they register {offered}); HAMi matches case-insensitive substrings of that name")


def _too_big_for_nodes(pod: PodRequest, nodes: list[_Node]) -> str:
    instance = max((n.spec.instance for n in nodes), key=lambda it: (it.vcpu, it.memory_gib))
    return (f"{pod.service} requests cpu {pod.cpu_text} and memory {pod.memory_text}, but a "
            f"{instance.name} node has only {allocatable.cpu_millis(instance) / 1000:.2f} CPU and "
            f"{allocatable.memory_mib(instance) / 1024:.1f} GiB allocatable for pods (after kube-reserved, "
            f"eviction threshold and DaemonSets); lower the service's cpu/memory or use a larger instance type")


def _exhausted_reason(pod: PodRequest, candidates: list[_Node], memreq: Mapping[int, int]) -> str:
    """Every candidate is full: say what ran out, in words a user can act on."""
    counts = {"slots": 0, "memory": 0, "cores": 0, "exclusive": 0}
    most_free, host_full = 0, 0
    for node in candidates:
        if not _node_has_room(node, pod):
            host_full += 1
            continue
        for gpu in node.gpus:
            why = _gpu_rejection(gpu, memreq[node.order], pod.cores)
            if why is not None:
                counts[why] += 1
            if why == "memory":
                most_free = max(most_free, gpu.total - gpu.used_mem)
    needed = "/".join(str(m) for m in sorted({memreq[n.order] for n in candidates}))
    parts = []
    if counts["memory"]:
        parts.append(f"{_count(counts['memory'], 'has', 'have')} less than the {needed} MiB it needs free "
                     f"(most free: {most_free} MiB)")
    if counts["slots"]:
        parts.append(f"{_count(counts['slots'], 'runs', 'run')} {DEVICE_SPLIT_COUNT} pods already (deviceSplitCount)")
    if counts["exclusive"]:
        parts.append(f"{_count(counts['exclusive'], 'is', 'are')} in use and it needs a whole GPU "
                     f"(gpucores 100 or no gpumem/gpumem-percentage is exclusive)")
    if counts["cores"]:
        parts.append(f"{_count(counts['cores'], 'has', 'have')} not enough free cores (it asks for {pod.cores}%)")
    if host_full:
        parts.append(f"{_plural(host_full, 'node')} {'has' if host_full == 1 else 'have'} no CPU/memory left "
                     f"for cpu {pod.cpu_text}, memory {pod.memory_text}")
    gpus = sum(len(n.gpus) for n in candidates)
    models = "/".join(sorted({n.spec.gpu.short for n in candidates}))
    return (f"{pod.service} does not fit on the {_plural(gpus, models + ' GPU')} of {_describe_nodes(candidates)}: "
            f"{'; '.join(parts)}; add nodes (desiredSize), or lower replicas or the service's requests")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _count(count: int, singular_verb: str, plural_verb: str) -> str:
    return f"{count} {singular_verb if count == 1 else plural_verb}"


def _describe_nodes(nodes: list[_Node]) -> str:
    groups = list(dict.fromkeys(n.spec.group for n in nodes))
    return f"{_plural(len(nodes), 'node')} of {'group' if len(groups) == 1 else 'groups'} {', '.join(groups)}"


# ---- the plan -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    gpus: tuple[GpuUsage, ...]
    placements: tuple[Placement, ...]
    unschedulable: tuple[Unschedulable, ...]
    cost: cost.CostEstimate | None  # None: a price the stack needs is unknown
    services: tuple[str, ...] = field(default=())

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
        return not self.unschedulable

    def to_dict(self, stack: str) -> dict[str, Any]:
        """The `placementPlan` stack output and `plan --json`, exactly issue 4's schema."""
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
        }

    def to_json(self, stack: str, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(stack), indent=indent)


def plan(settings: Settings, services: Iterable[str] | None = None,
         prices: cost.PriceLookup = cost.recorded_price) -> Plan:
    """Simulate HAMi for the stack (or only the named services) and price it (when prices are known)."""
    pods = pods_from_settings(settings, services)
    result = simulate(nodes_from_settings(settings), pods)
    return Plan(result.gpus, result.placements, result.unschedulable, cost.estimate_cost(settings, prices),
                tuple(p.service for p in pods))


# ---- preflight message --------------------------------------------------------------------------

def _ranges(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7": a service with 500 stuck replicas stays one line."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def format_unschedulable(plan: Plan, stack: str | None = None) -> str:
    """The preflight error: each service's unplaceable replicas with the reason, and the fixes."""
    if plan.all_placed:
        return "every replica can be placed"
    grouped: dict[tuple[str, str], list[int]] = {}
    for item in plan.unschedulable:
        grouped.setdefault((item.service, item.reason), []).append(item.replica)
    total = len(plan.placements) + len(plan.unschedulable)
    lines = [f"HAMi cannot place {len(plan.unschedulable)} of {total} replicas:"]
    for (service, reason), replicas in grouped.items():
        label = "replica" if len(replicas) == 1 else "replicas"
        lines.append(f"  - {service} {label} {_ranges(replicas)}: {reason}")
    where = f" --stack {stack}" if stack else ""
    lines.append(f"See the whole plan with `python -m hamieks plan{where}`; to deploy anyway (those "
                 f"replicas stay Pending) set hami-eks:allowUnschedulable to true.")
    return "\n".join(lines)
