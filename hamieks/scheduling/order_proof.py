"""A proof that every arrival order, and every way HAMi can break a score tie, places every replica.

A rollout hands hami-scheduler the replicas in an order no one chooses (hamieks.scheduling.arrival),
and HAMi itself picks at random among equally scored nodes and GPUs (Scheduler.hami_choices cites
where). This module explores both exhaustively, as a depth-first search over states:

- a state is what is left to arrive (how many replicas of each service: replicas of one service
  are identical, so their order among themselves does not matter) and the cluster's usage;
- from a state, any service with replicas left may send the next one, and HAMi may put it on any
  of the (node, GPU) pairs `hami_choices` lists: each is a branch;
- a state in which some service with replicas left has no branch at all is a counterexample (its
  next replica stays Pending);
- the cluster is kept canonical: identical nodes (one node group) are interchangeable, so a group
  is the sorted multiset of its nodes' usage; GPUs of one node on the same NUMA node are
  interchangeable, so a node is its host usage plus the sorted tuple of (NUMA, slots, cores, MiB)
  of its GPUs. Two branches that lead to the same canonical state are one, and every state is
  explored once (memoised: a finished state places everything from there on, whatever came
  before);
- services that share no node cannot affect each other, so each group of services that do is
  searched on its own and the interleavings between groups are never enumerated.

The search visits at most `budget` states. Past that it gives up: the caller then reports the
check as sampled (a list of orders tried with our tie convention), which is not a proof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hamieks.hami import BINPACK, CORES_PER_GPU, DEVICE_SPLIT_COUNT
from hamieks.scheduling import allocatable
from hamieks.scheduling.hami_scheduler import Scheduler, gpu_rejection, usage_score

# States the search may visit before it gives up (then: sampled, not proven). The shipped stacks
# need a few hundred; `make bench` prints what a 1,000-replica stack needs.
MAX_STATES = 20_000
_MIB = 1 << 20

_Gpu = tuple[int, int, int, int]  # (NUMA node, pods, cores, MiB) used
_NodeKey = tuple[int, int, int, tuple[_Gpu, ...]]  # (CPU millis, memory bytes, pods) used; GPUs sorted
_Cluster = tuple[tuple[tuple[_NodeKey, int], ...], ...]  # per node class: (node key, how many nodes), sorted
_Branch = tuple[int, int, _NodeKey, _Gpu]  # (service, class, node key before, GPU before)


@dataclass(frozen=True)
class TieChoice:
    """A step of a counterexample where HAMi's random tie-break departs from our convention."""

    step: int  # position in the arrival order, 0-based
    node: int  # node order (settings order) HAMi picks
    gpu: int  # GPU index on it
    convention: tuple[int, int]  # what our convention (and the printed plan) would pick


@dataclass(frozen=True)
class Proof:
    complete: bool  # the search finished within its budget: `counterexample` decides
    states: int  # states visited
    order: tuple[int, ...] | None  # a counterexample's whole arrival order (service per replica)
    ties: tuple[TieChoice, ...] = ()  # the tie-breaks that order needs

    @property
    def proven(self) -> bool:
        """Every order and every tie-break places every replica."""
        return self.complete and self.order is None

    @property
    def choices(self) -> dict[int, tuple[int, int]]:
        """The ties as Scheduler.run takes them."""
        return {tie.step: (tie.node, tie.gpu) for tie in self.ties}


@dataclass(frozen=True)
class _Class:
    nodes: tuple[int, ...]  # node orders, settings order
    cpu: int
    memory: int  # bytes
    pods: int
    gpu_mib: int
    numa: tuple[int, ...]  # per GPU index

    @property
    def empty(self) -> _NodeKey:
        return 0, 0, 0, tuple(sorted((n, 0, 0, 0) for n in self.numa))


@dataclass(frozen=True)
class _Service:
    classes: tuple[int, ...]
    memreq: dict[int, int]  # granted MiB by class
    cores: int
    cpu: int
    memory: int  # bytes
    binpack_nodes: bool
    binpack_gpus: bool


class _Search:
    def __init__(self, scheduler: Scheduler, budget: int):
        self.scheduler, self.budget = scheduler, budget
        by_spec: dict[tuple[object, ...], list[int]] = {}
        for order, spec in enumerate(scheduler.nodes):
            key = (spec.group, spec.instance.name, tuple(sorted(spec.labels.items())), repr(spec.taints))
            by_spec.setdefault(key, []).append(order)
        self.class_of: dict[int, int] = {}
        self.classes: list[_Class] = []
        for orders in by_spec.values():
            instance = scheduler.nodes[orders[0]].instance
            for order in orders:
                self.class_of[order] = len(self.classes)
            self.classes.append(_Class(
                tuple(orders), allocatable.cpu_millis(instance), allocatable.memory_mib(instance) * _MIB,
                allocatable.pods(instance), scheduler.nodes[orders[0]].gpu.memory_mib,
                tuple(instance.numa_of(i) for i in range(instance.gpu_count))))
        self.services: list[_Service] = []
        for svc in scheduler.services:
            classes = tuple(dict.fromkeys(self.class_of[o] for o in svc.candidates))
            self.services.append(_Service(
                classes, {self.class_of[o]: m for o, m in svc.memreq.items()}, svc.pod.cores, svc.pod.cpu_millis,
                round(svc.pod.memory_mib * _MIB), svc.pod.node_policy == BINPACK, svc.pod.gpu_policy == BINPACK))
        self.fits: dict[tuple[int, int, _NodeKey], tuple[float, tuple[_Gpu, ...]] | None] = {}
        self.states = 0

    # ---- HAMi's rules on canonical states ------------------------------------------------------

    def _fit(self, s: int, c: int, key: _NodeKey) -> tuple[float, tuple[_Gpu, ...]] | None:
        """Node score and the GPUs HAMi may pick on a node in this state, or None: it cannot."""
        memo = (s, c, key)
        if memo in self.fits:
            return self.fits[memo]
        svc, cls = self.services[s], self.classes[c]
        cpu, memory, pods, gpus = key
        result = None
        if pods < cls.pods and cpu + svc.cpu <= cls.cpu and memory + svc.memory <= cls.memory:
            memreq, best, options = svc.memreq[c], None, []
            for gpu in dict.fromkeys(gpus):
                numa, slots, cores, used = gpu
                if gpu_rejection(slots, used, cores, cls.gpu_mib, memreq, svc.cores) is not None:
                    continue
                score = usage_score(slots, DEVICE_SPLIT_COUNT, cores, CORES_PER_GPU, used, cls.gpu_mib)
                rank = (score if svc.binpack_gpus else -score, numa)
                if best is None or rank > best:
                    best, options = rank, [gpu]
                elif rank == best:
                    options.append(gpu)
            if options:
                count = len(gpus)
                node_score = usage_score(sum(g[1] for g in gpus), DEVICE_SPLIT_COUNT * count,
                                         sum(g[2] for g in gpus), CORES_PER_GPU * count,
                                         sum(g[3] for g in gpus), cls.gpu_mib * count)
                result = (node_score, tuple(options))
        self.fits[memo] = result
        return result

    def branches(self, s: int, cluster: _Cluster) -> list[_Branch]:
        """Every canonical (node, GPU) HAMi may give service s's next replica."""
        svc = self.services[s]
        best: float | None = None
        result: list[_Branch] = []
        for c in svc.classes:
            for key, _ in cluster[c]:
                fit = self._fit(s, c, key)
                if fit is None:
                    continue
                score = fit[0] if svc.binpack_nodes else -fit[0]
                if best is None or score > best:
                    best, result = score, []
                elif score < best:
                    continue
                result += [(s, c, key, gpu) for gpu in fit[1]]
        return result

    def apply(self, cluster: _Cluster, branch: _Branch) -> _Cluster:
        s, c, key, gpu = branch
        svc = self.services[s]
        cpu, memory, pods, gpus = key
        numa, slots, cores, used = gpu
        placed = list(gpus)
        placed.remove(gpu)
        placed.append((numa, slots + 1, cores + svc.cores, used + svc.memreq[c]))
        new_key = (cpu + svc.cpu, memory + svc.memory, pods + 1, tuple(sorted(placed)))
        nodes = dict(cluster[c])
        if nodes[key] == 1:
            del nodes[key]
        else:
            nodes[key] -= 1
        nodes[new_key] = nodes.get(new_key, 0) + 1
        return (*cluster[:c], tuple(sorted(nodes.items())), *cluster[c + 1:])

    # ---- the search ------------------------------------------------------------------------------

    def components(self, replicas: Sequence[int]) -> list[list[int]]:
        """Services grouped by shared node classes (only those with replicas and candidates)."""
        parent = list(range(len(self.services)))

        def root(s: int) -> int:
            while parent[s] != s:
                parent[s] = parent[parent[s]]
                s = parent[s]
            return s

        owner: dict[int, int] = {}
        active = [s for s, svc in enumerate(self.services) if replicas[s] and svc.classes]
        for s in active:
            for c in self.services[s].classes:
                if c in owner:
                    parent[root(s)] = root(owner[c])
                else:
                    owner[c] = s
        groups: dict[int, list[int]] = {}
        for s in active:
            groups.setdefault(root(s), []).append(s)
        return list(groups.values())

    def search(self, replicas: Sequence[int]) -> tuple[bool, list[_Branch], int | None]:
        """(finished within budget, path to a failure, failing service), for the services with
        these replica counts; (True, [], None) when every order and tie places them all."""
        empty: _Cluster = tuple(((cls.empty, len(cls.nodes)),) for cls in self.classes)
        for component in self.components(replicas):
            start = tuple(replicas[s] if s in component else 0 for s in range(len(replicas)))
            done, path, failing = self._search(start, empty)
            if not done or failing is not None:
                return done, path, failing
        return True, [], None

    def _search(self, start: tuple[int, ...], empty: _Cluster) -> tuple[bool, list[_Branch], int | None]:
        seen = {(start, empty)}
        # Each frame: the state, its untried branches, and the branch that led to it.
        frames: list[tuple[tuple[int, ...], _Cluster, list[_Branch], _Branch | None]] = []

        def enter(left: tuple[int, ...], cluster: _Cluster, via: _Branch | None) -> int | None:
            """Push a state; the service that can place nothing there, if any."""
            self.states += 1
            children: list[_Branch] = []
            for s, count in enumerate(left):
                if count:
                    options = self.branches(s, cluster)
                    if not options:
                        frames.append((left, cluster, [], via))
                        return s
                    children += options
            children.reverse()  # popped from the end: services in stack order first
            frames.append((left, cluster, children, via))
            return None

        failing = enter(start, empty, None)
        while frames and failing is None:
            left, cluster, children, _ = frames[-1]
            if not children:
                frames.pop()
                continue
            if self.states >= self.budget:
                return False, [], None
            branch = children.pop()
            after = list(left)
            after[branch[0]] -= 1
            state = (tuple(after), self.apply(cluster, branch))
            if state in seen:
                continue
            seen.add(state)
            failing = enter(state[0], state[1], branch)
        if failing is None:
            return True, [], None
        return True, [via for _, _, _, via in frames if via is not None], failing


def prove(scheduler: Scheduler, budget: int = MAX_STATES) -> Proof:
    """Explore every arrival order and tie-break of the scheduler's pods, up to `budget` states."""
    search = _Search(scheduler, budget)
    replicas = [pod.replicas for pod in scheduler.pods]
    done, path, failing = search.search(replicas)
    if not done:
        return Proof(False, search.states, None)
    if failing is None:
        return Proof(True, search.states, None)
    order, ties = _concrete(search, path, failing, replicas)
    return Proof(True, search.states, order, ties)


def _concrete(search: _Search, path: list[_Branch], failing: int,
              replicas: Sequence[int]) -> tuple[tuple[int, ...], tuple[TieChoice, ...]]:
    """The path as a whole arrival order (the rest in stack order after the failing replica) and
    the tie-breaks it needs: at each step our convention's (node, GPU) when it is the path's up to
    symmetry, otherwise a node and GPU in the path's state, named as a tie choice."""
    scheduler = search.scheduler
    state = scheduler.empty_state()
    host = {o: (0, 0, 0) for o in range(len(scheduler.nodes))}
    seen = [0] * len(replicas)
    ties: list[TieChoice] = []

    def signature(choice: tuple[int, int]) -> tuple[int, _NodeKey, _Gpu]:
        node = state[choice[0]]
        gpus = tuple(sorted((g.numa, g.slots, g.cores, g.used_mem) for g in node.gpus))
        g = node.gpus[choice[1]]
        return search.class_of[choice[0]], (*host[choice[0]], gpus), (g.numa, g.slots, g.cores, g.used_mem)

    for step, (s, c, key, gpu) in enumerate(path):
        convention = scheduler.convention(state, s)
        assert convention is not None  # the search found a branch here
        choice = convention
        if signature(convention) != (c, key, gpu):
            choice = next(o for o in scheduler.hami_choices(state, s) if signature(o) == (c, key, gpu))
            ties.append(TieChoice(step, choice[0], choice[1], convention))
        svc = search.services[s]
        cpu, memory, pods = host[choice[0]]
        host[choice[0]] = (cpu + svc.cpu, memory + svc.memory, pods + 1)
        seen[s] += 1
        scheduler.place(state, s, seen[s], choice)
    order = [b[0] for b in path] + [failing]
    left = list(replicas)
    for s in order:
        left[s] -= 1
    order += [s for s, count in enumerate(left) for _ in range(count)]
    return tuple(order), tuple(ties)
