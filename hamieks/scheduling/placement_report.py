"""The plan in words: the preflight error and the guarantees a plan does and does not give.

Kept apart from the simulation (hamieks/scheduling/placement.py) so the rules read without the prose;
it imports the simulation, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

from hamieks.scheduling.placement import Counterexample, Plan, Unschedulable

# How many pods of a counterexample's arrival order the message spells out.
ORDER_SHOWN = 24


def ranges(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7": a service with 500 stuck replicas stays one line."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _stuck_lines(unschedulable: Sequence[Unschedulable]) -> list[str]:
    grouped: dict[tuple[str, str], list[int]] = {}
    for item in unschedulable:
        grouped.setdefault((item.service, item.reason), []).append(item.replica)
    lines = []
    for (service, reason), replicas in grouped.items():
        label = "replica" if len(replicas) == 1 else "replicas"
        lines.append(f"  - {service} {label} {ranges(replicas)}: {reason}")
    return lines


def _escape_hatch(stack: str | None, consequence: str) -> str:
    where = f" --stack {stack}" if stack else ""
    return (f"See the whole plan with `hami-eks plan{where}`; to deploy anyway ({consequence}) "
            f"set hami-eks:allowUnschedulable to true.")


def format_unschedulable(plan: Plan, stack: str | None = None) -> str:
    """The preflight error: replicas that cannot be placed, or an arrival order that leaves some
    Pending although the stack order places them all; each with the reason and the fixes."""
    if not plan.all_placed:
        total = len(plan.placements) + len(plan.unschedulable)
        lines = [f"HAMi cannot place {len(plan.unschedulable)} of {total} replicas:"]
        lines += _stuck_lines(plan.unschedulable)
        lines.append(_escape_hatch(stack, "those replicas stay Pending"))
        return "\n".join(lines)
    example = plan.counterexample
    if example is None:
        if plan.order_unproven:
            return format_unproven(plan, stack)
        return "every replica can be placed, in every arrival order and every tie-break"
    return _order_dependent(plan, example, stack)


def format_unproven(plan: Plan, stack: str | None = None) -> str:
    """The preflight error (or, accepted, warning) when the order check could only sample."""
    checked = plan.orders
    where = f" --stack {stack}" if stack else ""
    return (f"The arrival-order check is a sample, not a proof: this stack has too many arrival orders and "
            f"tie-breaks to check them all (the exhaustive search gave up after {checked.states} states), and "
            f"each of the {checked.tried} orders tried places every replica, but another order may leave "
            f"replicas Pending.\n"
            f"Fix: spread the services over separate node groups (`nodeGroup`; the search takes node groups that "
            f"share no service one at a time, which keeps it small), or accept the sample: "
            f"set hami-eks:acceptSampledOrderCheck to true (`hami-eks plan{where} --accept-sampled-order-check`).")


def _order_dependent(plan: Plan, example: Counterexample, stack: str | None) -> str:
    total = len(plan.placements)
    stuck = len(example.unschedulable)
    others = [s for s in example.competing if s not in {u.service for u in example.unschedulable}]
    groups = ", ".join(example.groups)
    shown = ", ".join(example.order[:ORDER_SHOWN]) + (", ..." if len(example.order) > ORDER_SHOWN else "")
    lines = [
        f"HAMi may leave replicas Pending depending on the order their pods arrive: in stack order all "
        f"{total} replicas fit, but pods are created concurrently, and in another order a rollout can "
        f"produce ({example.name}) {stuck} of them stay Pending:",
        *_stuck_lines(example.unschedulable),
        f"  arrival order: {shown}",
        *(f"  HAMi breaking a tie: {tie.describe()}" for tie in example.ties),
        f"The services competing for node group(s) {groups}: {', '.join(example.competing)}"
        + (f" ({', '.join(others)} took the room first)" if others else "") + ".",
        f"Fix: add capacity (a larger desiredSize or instance type for {groups}), or give the competing "
        f"services separate node groups via each service's `nodeGroup`.",
        _escape_hatch(stack, "some replicas may stay Pending"),
    ]
    return "\n".join(lines)


def guarantees(plan: Plan) -> list[str]:
    """Which of the plan's promises hold, one line each, for the text report: never more than was
    checked ("every possible arrival order" only when the exhaustive search, ties included, proved it)."""
    checked = plan.orders
    if not plan.all_placed:
        return ["Every replica placed: no - some cannot be placed even in stack order (see below)"]
    if checked.counterexample is not None:
        how = "another order a rollout can produce" if not checked.counterexample.ties else \
            "another order a rollout can produce, with HAMi breaking score ties at random,"
        return [f"Every replica placed: only in some arrival orders - {how} leaves replicas Pending (see below)"]
    if plan.order_robust:
        lines = [f"Every replica placed: yes, in every possible arrival order and every way HAMi can break a score "
                 f"tie (proven by an exhaustive search of {checked.states} states)"]
    else:
        accepted = ("accepted by hami-eks:acceptSampledOrderCheck" if plan.accept_sampled
                    else "see below")
        lines = [f"Every replica placed: in each of {checked.tried} arrival orders tried (stack, reverse, "
                 f"round-robin, slow-start bursts, largest/smallest first, seeded shuffles; our tie convention) - "
                 f"a sample, not a proof: the exhaustive search gave up after {checked.states} states ({accepted})"]
    every = (f"all {checked.sharing_tried} arrival orders" if checked.sharing_exhaustive
             else f"a sample of {checked.sharing_tried} arrival orders")
    if checked.sharing_robust:
        lines.append(f"Which services share a GPU: the same in every order tried ({every}, with our tie convention)")
    else:
        lines.append("Which pods share a GPU: as printed only in stack order; other arrival orders pair them "
                     "differently")
    lines.append("Which node and GPU index: our tie convention (first node in stack order, highest GPU index); "
                 "HAMi breaks ties at random, so a live cluster may use another, equally scored node or GPU")
    lines += [f"Note: {note}" for note in plan.notes]
    return lines
