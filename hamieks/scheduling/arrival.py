"""The orders in which a real rollout can hand a stack's replicas to hami-scheduler.

`pulumi up` creates every Deployment at once, and each ReplicaSet creates its pods concurrently
(kube-controller-manager's slowStartBatch: 1, 2, 4, ... pods per burst), so hami-scheduler sees
the replicas of different services interleaved, in an order no one chooses. On scarce capacity
the order decides who fits. The planner therefore places the stack not only in stack order but in
every order listed here (with its tie convention) before the exhaustive search of
hamieks/scheduling/order_proof.py, which alone can call the plan order-robust: these orders are
a sample unless they are all the orders there are, and even then they follow one tie-break.

Replicas of one service are identical, so an order is a sequence of service indices (the n-th
occurrence of service s is its replica n); orders with the same sequence are one order. When a
stack has few distinct orders (at most EXHAUSTIVE_LIMIT) all of them are tried. Otherwise:
stack order, its reverse, round-robin interleavings (services in stack order and reversed),
slow-start bursts, largest and smallest requests first (the orders that bin packing is most
sensitive to), then SHUFFLES seeded shuffles from a `random.Random(SEED)` of its own: the same
stack always gets the same orders, and no global random state is touched.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

SEED = 20261122
SHUFFLES = 32
EXHAUSTIVE_LIMIT = 64


@dataclass(frozen=True)
class ArrivalOrder:
    name: str  # how the report describes it, e.g. "round-robin" or "shuffle 7 (seed 20261122)"
    services: tuple[int, ...]  # one service index per replica, in arrival order


def distinct_orders(replicas: Sequence[int]) -> int:
    """How many different service sequences the replicas can arrive in (a multinomial)."""
    total = math.factorial(sum(replicas))
    for count in replicas:
        total //= math.factorial(count)
    return total


def orders(replicas: Sequence[int], sizes: Sequence[float] | None = None, shuffles: int = SHUFFLES,
           seed: int = SEED, exhaustive_limit: int = EXHAUSTIVE_LIMIT) -> list[ArrivalOrder]:
    """The orders to try for services with these replica counts, stack order first.

    `sizes` ranks services for the largest/smallest-first orders (e.g. the GPU memory each
    replica asks for); without it those two are left out.
    """
    stack = _blocks(range(len(replicas)), replicas)
    if exhaustive(replicas, exhaustive_limit):
        rest = (ArrivalOrder(f"order {n}", seq) for n, seq in enumerate(_permutations(stack), 1))
        return _unique([ArrivalOrder("stack order", stack), *rest])
    services = list(range(len(replicas)))
    candidates = [
        ArrivalOrder("stack order", stack),
        ArrivalOrder("reverse stack order", _blocks(reversed(services), replicas)),
        ArrivalOrder("round-robin", _round_robin(services, replicas)),
        ArrivalOrder("round-robin, services reversed", _round_robin(services[::-1], replicas)),
        ArrivalOrder("slow-start bursts", _slow_start(services, replicas)),
        ArrivalOrder("slow-start bursts, services reversed", _slow_start(services[::-1], replicas)),
    ]
    if sizes is not None:
        largest = sorted(services, key=lambda s: (-sizes[s], s))
        candidates.append(ArrivalOrder("largest requests first", _blocks(largest, replicas)))
        candidates.append(ArrivalOrder("smallest requests first", _blocks(largest[::-1], replicas)))
    rng = random.Random(seed)
    for n in range(1, shuffles + 1):
        sequence = list(stack)
        rng.shuffle(sequence)
        candidates.append(ArrivalOrder(f"shuffle {n} (seed {seed})", tuple(sequence)))
    return _unique(candidates)


def exhaustive(replicas: Sequence[int], limit: int = EXHAUSTIVE_LIMIT) -> bool:
    """Whether `orders` tries every distinct order: distinct_orders(replicas) <= limit, worked out
    without the factorials of a large stack."""
    total, placed = 1, 0
    for count in replicas:
        placed += count
        total *= math.comb(placed, count)
        if total > limit:
            return False
    return True


def _blocks(services: Sequence[int] | Iterator[int], replicas: Sequence[int]) -> tuple[int, ...]:
    return tuple(s for s in services for _ in range(replicas[s]))


def _round_robin(services: Sequence[int], replicas: Sequence[int]) -> tuple[int, ...]:
    """One replica of each service in turn, as equally fast ReplicaSets would create them."""
    return tuple(s for n in range(max(replicas, default=0)) for s in services if n < replicas[s])


def _slow_start(services: Sequence[int], replicas: Sequence[int]) -> tuple[int, ...]:
    """Bursts of 1, 2, 4, ... pods per service in turn (the ReplicaSet controller's slowStartBatch)."""
    left = {s: replicas[s] for s in services}
    sequence: list[int] = []
    burst = 1
    while any(left.values()):
        for s in services:
            take = min(burst, left[s])
            sequence.extend([s] * take)
            left[s] -= take
        burst *= 2
    return tuple(sequence)


def _permutations(sequence: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Every distinct permutation of a multiset, in lexicographic order (no duplicates generated)."""
    items = sorted(sequence)
    while True:
        yield tuple(items)
        i = len(items) - 2
        while i >= 0 and items[i] >= items[i + 1]:
            i -= 1
        if i < 0:
            return
        j = len(items) - 1
        while items[j] <= items[i]:
            j -= 1
        items[i], items[j] = items[j], items[i]
        items[i + 1:] = reversed(items[i + 1:])


def _unique(candidates: list[ArrivalOrder]) -> list[ArrivalOrder]:
    seen: set[tuple[int, ...]] = set()
    result = []
    for order in candidates:
        if order.services not in seen:
            seen.add(order.services)
            result.append(order)
    return result
