"""hami-scheduler 2.10.0, simulated: scores, the GPU fit, node and GPU choice, one arrival order.

Each rule names the HAMi file and function it mirrors; docs/hami-rules.md lists them all with
what is deliberately left out.

Ties: HAMi breaks them at random (goroutines, Go map order) and a tie can decide whether a later
pod fits. `hami_choices` lists every pick HAMi may make (order_proof.py follows each); `run` uses a
convention unless given `choices`: among equal nodes the first in settings order (`<group>-1`,
`<group>-2`, ...); among equal GPUs the higher NUMA node (HAMi's) and then the highest index.

Speed: usage only grows, so a node that cannot take a replica of a service never takes a later
one. Each service keeps a heap of its candidate nodes keyed by (score, settings order); a node
that receives a pod gets a fresh entry in the heaps of the services that can use it (stale
entries are skipped by version), so a placement costs O(services sharing the node x log nodes +
GPUs per node), whatever order the replicas arrive in.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hamieks import hami
from hamieks.errors import PlanError
from hamieks.hami import BINPACK, CORES_PER_GPU, DEVICE_SPLIT_COUNT
from hamieks.scheduling import allocatable, arrival
from hamieks.scheduling.placement_inputs import NodeSpec, PodRequest, blocking_taint, gpu_type_allowed, selector_matches

# ---- scores: HAMi computes them in float32 -----------------------------------------------------

_FLOAT32 = struct.Struct("<f")


def _f32(value: float) -> float:
    """Round to float32. A double holds every float32 exactly and one +, -, *, / of float32 inputs
    rounded to double and then to float32 is the correctly rounded float32 result, so chaining
    this after each operation reproduces Go's float32 arithmetic bit for bit."""
    result: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    return result


def usage_score(used: int, count: int, cores: int, total_cores: int, memory: int, total_memory: int) -> float:
    """10 x (used/count + cores/total cores + memory/total memory), in float32 as HAMi computes it.

    The node score is this over all of a node's GPUs (policy/node_policy.go ComputeDefaultScore).
    The GPU score (policy/gpu_policy.go ComputeScore) means to add the pod's own request, but it
    only counts requests whose `container.Type` equals the device's `Type`; the request's type is
    "NVIDIA" (device.go NvidiaGPUDevice) and the device's the registered model ("NVIDIA-Tesla T4",
    "NVIDIA A10G"), so nothing is added: a GPU scores its usage before the pod, like a node.
    The default device-scoring weights are 1 each (util DefaultDeviceScoringWeights)."""
    slots = _f32(used / count)
    core = _f32(cores / total_cores)
    mem = _f32(memory / total_memory)
    return _f32(hami.SCORE_WEIGHT * _f32(_f32(slots + core) + mem))


# ---- simulation state --------------------------------------------------------------------------

class _Gpu:
    __slots__ = ("cores", "index", "numa", "pods", "score", "slots", "total", "used_mem")

    def __init__(self, index: int, numa: int, total: int):
        self.index, self.numa, self.total = index, numa, total
        self.used_mem = self.slots = self.cores = 0
        self.pods: list[tuple[int, int]] = []  # (service index, replica)
        self.score = 0.0


class _Node:
    __slots__ = (
        "core_total",
        "cpu_free",
        "gpus",
        "mem_free",
        "mem_total",
        "order",
        "pods_free",
        "score",
        "slot_total",
        "spec",
        "sum_cores",
        "sum_mem",
        "sum_slots",
        "version",
    )

    def __init__(self, spec: NodeSpec, order: int):
        self.spec, self.order = spec, order
        count, memory = spec.instance.gpu_count, spec.gpu.memory_mib
        self.gpus = [_Gpu(i, spec.instance.numa_of(i), memory) for i in range(count)]
        self.cpu_free = allocatable.cpu_millis(spec.instance)
        self.mem_free = float(allocatable.memory_mib(spec.instance))
        self.pods_free = allocatable.pods(spec.instance)
        self.sum_slots = self.sum_cores = self.sum_mem = 0
        self.slot_total = DEVICE_SPLIT_COUNT * count
        self.core_total = CORES_PER_GPU * count
        self.mem_total = memory * count
        self.score = 0.0
        self.version = 0


def gpu_rejection(slots: int, used_mem: int, used_cores: int, total: int, memreq: int, cores: int) -> str | None:
    """Why a GPU with this usage cannot take the request, in the order of device.go Fit's checks;
    None: it fits."""
    if slots >= DEVICE_SPLIT_COUNT:
        return "slots"
    if total - used_mem < memreq:
        return "memory"
    if CORES_PER_GPU - used_cores < cores:
        return "cores"
    if cores == CORES_PER_GPU and slots > 0:  # "Coresreq=100 indicates it want this card exclusively"
        return "exclusive"
    if used_cores == CORES_PER_GPU and cores == 0:  # "can't allocate core=0 job to an already full GPU"
        return "cores"
    return None


def _gpu_rejection(gpu: _Gpu, memreq: int, cores: int) -> str | None:
    return gpu_rejection(gpu.slots, gpu.used_mem, gpu.cores, gpu.total, memreq, cores)


def _choose_gpu(node: _Node, memreq: int, cores: int, binpack: bool) -> _Gpu | None:
    """The GPU HAMi picks on this node, or None.

    gpu_policy.go Less sorts by score (binpack ascending, spread descending), then NUMA ascending;
    device.go Fit walks the sorted list from its end: the best score, then the higher NUMA node.
    Among GPUs equal in both, HAMi's order is the Go-map registration order; ours: highest index."""
    best, best_key = None, (0.0, 0, 0)
    for gpu in node.gpus:
        if _gpu_rejection(gpu, memreq, cores) is not None:
            continue
        key = (gpu.score if binpack else -gpu.score, gpu.numa, gpu.index)
        if best is None or key > best_key:
            best, best_key = gpu, key
    return best


def _node_has_room(node: _Node, pod: PodRequest) -> bool:
    return node.pods_free >= 1 and node.cpu_free >= pod.cpu_millis and node.mem_free >= pod.memory_mib


def _heap_key(node: _Node, binpack: bool) -> tuple[float, int, int]:
    # node_policy.go: binpack takes the highest score, spread the lowest; ties: settings order (ours).
    return (-node.score if binpack else node.score, node.order, node.version)


def _allocate(node: _Node, gpu: _Gpu, service: int, replica: int, memreq: int, pod: PodRequest) -> None:
    cores = pod.cores
    gpu.slots += 1
    gpu.used_mem += memreq
    gpu.cores += cores
    gpu.pods.append((service, replica))
    gpu.score = usage_score(gpu.slots, DEVICE_SPLIT_COUNT, gpu.cores, CORES_PER_GPU, gpu.used_mem, gpu.total)
    node.sum_slots += 1
    node.sum_mem += memreq
    node.sum_cores += cores
    node.score = usage_score(node.sum_slots, node.slot_total, node.sum_cores, node.core_total,
                             node.sum_mem, node.mem_total)
    node.cpu_free -= pod.cpu_millis
    node.mem_free -= pod.memory_mib
    node.pods_free -= 1
    node.version += 1


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

    @property
    def sharing(self) -> tuple[tuple[str, ...], ...]:
        """Which services share a GPU, as a sorted multiset of the used GPUs' service lists: equal
        for two runs that pair the same services the same number of times, wherever they land."""
        service_of = {p.pod: p.service for p in self.placements}
        return tuple(sorted(tuple(sorted(service_of[pod] for pod in g.pods)) for g in self.gpus if g.pods))


# ---- the simulation ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceModel:
    """A pod template with everything that does not depend on arrival order, worked out once."""

    pod: PodRequest
    candidates: tuple[int, ...]  # orders of the nodes that pass every static filter
    memreq: Mapping[int, int]  # granted MiB by node order
    reason: str | None  # why there is no candidate at all


class Scheduler:
    """The stack's nodes and pods, ready to be simulated in any arrival order."""

    def __init__(self, nodes: Sequence[NodeSpec], pods: Sequence[PodRequest]):
        self.nodes = list(nodes)
        self.pods = list(pods)
        probe = [_Node(spec, order) for order, spec in enumerate(self.nodes)]
        self.services: list[ServiceModel] = []
        watchers: list[list[int]] = [[] for _ in self.nodes]
        for index, pod in enumerate(self.pods):
            candidates, reason = _candidates(pod, probe)
            memreq = {n.order: pod.memory_on(n.spec.gpu.memory_mib) for n in candidates}
            self.services.append(ServiceModel(pod, tuple(n.order for n in candidates), memreq, reason))
            for node in candidates:
                watchers[node.order].append(index)
        self.watchers = [tuple(w) for w in watchers]

    def stack_order(self) -> tuple[int, ...]:
        return tuple(s for s, pod in enumerate(self.pods) for _ in range(pod.replicas))

    def run(self, order: Sequence[int], choices: Mapping[int, tuple[int, int]] | None = None,
            ) -> tuple[list[_Node], list[tuple[int, int, int, int]], list[tuple[int, int, str]]]:
        """Place the replicas in this order: (node state, placements as (service, replica, node,
        gpu index), unschedulable as (service, replica, reason)).

        `choices` breaks ties the way a live HAMi may: step (0-based position in `order`) ->
        (node order, GPU index), which must be one of `hami_choices` at that step (PlanError
        otherwise); the other steps follow our convention."""
        state = self.empty_state()
        services = self.services
        binpack_nodes = [svc.pod.node_policy == BINPACK for svc in services]
        heaps = []
        for s, svc in enumerate(services):
            heap = [_heap_key(state[o], binpack_nodes[s]) for o in svc.candidates]
            heapq.heapify(heap)
            heaps.append(heap)
        dead: list[set[int]] = [set() for _ in services]
        left = [0] * len(services)
        for s in order:
            left[s] += 1
        next_replica = [1] * len(services)
        failed: list[str | None] = [svc.reason for svc in services]
        placements: list[tuple[int, int, int, int]] = []
        unschedulable: list[tuple[int, int, str]] = []
        for step, s in enumerate(order):
            svc = services[s]
            replica = next_replica[s]
            next_replica[s] += 1
            left[s] -= 1
            reason = failed[s]
            if reason is not None:  # usage only grows: what failed once fails for the rest
                unschedulable.append((s, replica, reason))
                continue
            heap, binpack_gpus = heaps[s], svc.pod.gpu_policy == BINPACK
            gpu, node = None, None
            choice = choices.get(step) if choices else None
            if choice is not None:
                if choice not in self.hami_choices(state, s):
                    raise PlanError(f"{svc.pod.service}-{replica} cannot go to {self.nodes[choice[0]].name} GPU "
                                    f"{choice[1]}: HAMi would not choose it there")
                node = state[choice[0]]
                gpu = node.gpus[choice[1]]
            while heap and gpu is None:
                _, o, version = heap[0]
                node = state[o]
                if version != node.version:
                    heapq.heappop(heap)  # a fresher entry for this node is in the heap
                    continue
                if _node_has_room(node, svc.pod):
                    gpu = _choose_gpu(node, svc.memreq[o], svc.pod.cores, binpack_gpus)
                if gpu is not None:
                    break
                heapq.heappop(heap)
                dead[s].add(o)
            if gpu is None or node is None:
                reason = _exhausted_reason(svc, state)
                failed[s] = reason
                unschedulable.append((s, replica, reason))
                continue
            _allocate(node, gpu, s, replica, svc.memreq[node.order], svc.pod)
            placements.append((s, replica, node.order, gpu.index))
            for other in self.watchers[node.order]:
                if left[other] and failed[other] is None and node.order not in dead[other]:
                    heapq.heappush(heaps[other], _heap_key(node, binpack_nodes[other]))
        return state, placements, unschedulable

    def simulation(self, order: Sequence[int], choices: Mapping[int, tuple[int, int]] | None = None) -> Simulation:
        return self.result(*self.run(order, choices))

    def empty_state(self) -> list[_Node]:
        return [_Node(spec, o) for o, spec in enumerate(self.nodes)]

    def place(self, state: Sequence[_Node], s: int, replica: int, choice: tuple[int, int]) -> None:
        """Book service s's replica on (node order, GPU index), as Filter's AddPod does."""
        node = state[choice[0]]
        _allocate(node, node.gpus[choice[1]], s, replica, self.services[s].memreq[choice[0]], self.pods[s])

    def convention(self, state: Sequence[_Node], s: int) -> tuple[int, int] | None:
        """What `run` picks without a tie choice: among HAMi's choices the first node in settings
        order, and on it the highest GPU index (None: HAMi has no choice, the replica is Pending)."""
        if not (options := self.hami_choices(state, s)):
            return None
        node = min(o for o, _ in options)
        return node, max(g for o, g in options if o == node)

    def hami_choices(self, state: Sequence[_Node], s: int) -> list[tuple[int, int]]:
        """Every (node order, GPU index) HAMi may give service s's next replica in this state.
        scheduler.go Filter sorts the fitting nodes by score (node_policy.go Less) and takes the
        last; score.go calcScoreWithOptions appends them from goroutines and sort.Sort is not
        stable, so any of the equal best may come last. device.go Fit walks the GPUs sorted by
        (score, NUMA) (gpu_policy.go Less) from the end and takes the first that fits; equal ones
        keep the device plugin's Go-map registration order, so any may come first."""
        svc = self.services[s]
        binpack_nodes, binpack_gpus = svc.pod.node_policy == BINPACK, svc.pod.gpu_policy == BINPACK
        best: float | None = None
        result: list[tuple[int, int]] = []
        for o in svc.candidates:
            node = state[o]
            fitting = [g for g in node.gpus if _gpu_rejection(g, svc.memreq[o], svc.pod.cores) is None]
            if not fitting or not _node_has_room(node, svc.pod):
                continue
            score = node.score if binpack_nodes else -node.score
            if best is not None and score < best:
                continue
            if best is None or score > best:
                best, result = score, []
            top = max((g.score if binpack_gpus else -g.score, g.numa) for g in fitting)
            result += [(o, g.index) for g in fitting if (g.score if binpack_gpus else -g.score, g.numa) == top]
        return result

    def result(self, state: list[_Node], placed: list[tuple[int, int, int, int]],
               stuck: list[tuple[int, int, str]]) -> Simulation:
        name = [pod.service for pod in self.pods]
        placements = tuple(
            Placement(name[s], r, state[o].spec.name, state[o].spec.group, g, self.services[s].memreq[o])
            for s, r, o, g in placed)
        gpus = tuple(
            GpuUsage(node.spec.name, node.spec.group, node.spec.instance.name, gpu.index, node.spec.gpu.name,
                     gpu.total, gpu.used_mem, tuple(f"{name[s]}-{r}" for s, r in gpu.pods))
            for node in state for gpu in node.gpus)
        return Simulation(gpus, placements, tuple(Unschedulable(name[s], r, why) for s, r, why in stuck))

    def orders(self) -> list[arrival.ArrivalOrder]:
        # Largest/smallest-first rank services by the share of a GPU they take where it is least
        # (their smallest candidate GPU), cores counted alike.
        sizes = [max((m / self.nodes[o].gpu.memory_mib for o, m in svc.memreq.items()), default=0.0)
                 + svc.pod.cores / CORES_PER_GPU for svc in self.services]
        return arrival.orders([pod.replicas for pod in self.pods], sizes)


def sharing(state: Sequence[_Node]) -> list[tuple[int, ...]]:
    """Which services share a GPU after a run, as a sorted multiset of the used GPUs' service
    indices (see Simulation.sharing): equal for runs that pair the same services, wherever."""
    return sorted(tuple(sorted(s for s, _ in gpu.pods)) for node in state for gpu in node.gpus if gpu.pods)


def simulate(nodes: Sequence[NodeSpec], pods: Sequence[PodRequest], order: Sequence[int] | None = None,
             choices: Mapping[int, tuple[int, int]] | None = None) -> Simulation:
    """Place every replica as HAMi would, in stack order or in `order` (one service index per
    replica; the n-th occurrence of a service is its replica n), ties broken by `choices` (see
    Scheduler.run) where given and by our convention elsewhere."""
    scheduler = Scheduler(nodes, pods)
    return scheduler.simulation(scheduler.stack_order() if order is None else order, choices)


# ---- candidates and reasons --------------------------------------------------------------------

def _candidates(pod: PodRequest, state: list[_Node]) -> tuple[list[_Node], str | None]:
    """Nodes that could ever take this pod; when none, the reason (filters in scheduler order)."""
    selected = [n for n in state if selector_matches(pod.node_selector, n.spec.labels)]
    if not selected:
        return [], _no_selector_match(pod, state)
    tolerated = [n for n in selected if blocking_taint(n.spec, pod.tolerations) is None]
    if not tolerated:
        taint = blocking_taint(selected[0].spec, pod.tolerations)
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
    roomy = [n for n in large if pod.cpu_millis <= n.cpu_free and pod.memory_mib <= n.mem_free and n.pods_free]
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


def _exhausted_reason(svc: ServiceModel, state: list[_Node]) -> str:
    """Every candidate is full: say what ran out, in words a user can act on."""
    pod, candidates = svc.pod, [state[o] for o in svc.candidates]
    counts = {"slots": 0, "memory": 0, "cores": 0, "exclusive": 0}
    most_free, host_full, pods_full = 0, 0, 0
    for node in candidates:
        if not _node_has_room(node, pod):
            if node.pods_free < 1:
                pods_full += 1
            else:
                host_full += 1
            continue
        for gpu in node.gpus:
            why = _gpu_rejection(gpu, svc.memreq[node.order], pod.cores)
            if why is not None:
                counts[why] += 1
            if why == "memory":
                most_free = max(most_free, gpu.total - gpu.used_mem)
    needed = "/".join(str(m) for m in sorted(set(svc.memreq.values())))
    parts = []
    if counts["memory"]:
        parts.append(f"{_count(counts['memory'], 'has', 'have')} less than the {needed} MiB it needs free "
                     f"(most free: {most_free} MiB)")
    if counts["slots"]:
        parts.append(f"{_count(counts['slots'], 'runs', 'run')} {DEVICE_SPLIT_COUNT} pods already (deviceSplitCount)")
    if counts["exclusive"]:
        parts.append(f"{_count(counts['exclusive'], 'is', 'are')} in use and it needs a whole GPU "
                     f"(gpucores 100, gpumem-percentage 100 or no memory key is exclusive)")
    if counts["cores"]:
        parts.append(f"{_count(counts['cores'], 'has', 'have')} not enough free cores (it asks for {pod.cores}%)")
    if host_full:
        parts.append(f"{_plural(host_full, 'node')} {'has' if host_full == 1 else 'have'} no CPU/memory left "
                     f"for cpu {pod.cpu_text}, memory {pod.memory_text}")
    if pods_full:
        parts.append(f"{_plural(pods_full, 'node')} {'runs' if pods_full == 1 else 'run'} as many pods as its "
                     f"max pods allows (ENI limit)")
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
