"""The plan for people: a table per GPU, totals, cost and warnings.

Each replica shows the memory it will see; a node's idle GPUs share one line; on a terminal,
replicas that cannot be placed stand out in red (rich turns colour off when output is piped).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby

from rich.console import Console

from hamieks import cost
from hamieks.config.settings import Settings
from hamieks.modelfit import budget
from hamieks.modelfit import report as modelfit_report
from hamieks.modelfit.budget import ModelFit
from hamieks.scheduling import placement, placement_report
from hamieks.scheduling.placement_report import ranges

_COLUMNS = ("node", "group", "type", "gpu", "model", "MiB used/total", "pods (MiB each)")


def _rows(plan: placement.Plan) -> list[tuple[str, ...]]:
    memory = {p.pod: p.memory_mib for p in plan.placements}
    rows: list[tuple[str, ...]] = []
    for _, gpus in groupby(plan.gpus, key=lambda g: g.node):
        node_gpus = list(gpus)
        idle = [g for g in node_gpus if not g.pods]
        for g in node_gpus:
            if g.pods:
                pods = ", ".join(f"{pod} ({memory[pod]})" for pod in g.pods)
                rows.append((g.node, g.node_group, g.instance_type, str(g.index), g.model,
                             f"{g.allocated_mib}/{g.memory_mib}", pods))
            elif g is idle[0]:
                first = idle[0]
                rows.append((first.node, first.node_group, first.instance_type,
                             ranges([i.index for i in idle]), first.model, f"0/{first.memory_mib}",
                             "idle" if len(idle) == 1 else f"idle ({len(idle)} GPUs)"))
    return rows


def table(plan: placement.Plan) -> list[str]:
    rows = _rows(plan)
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(_COLUMNS), line("-" * w for w in widths), *(line(r) for r in rows)]


def cost_lines(plan: placement.Plan, settings: Settings) -> list[str]:
    estimate = plan.cost
    if estimate is None:
        return [f"Estimated cost: unknown. {cost.unpriced_message(settings)}"]
    hourly = estimate.usd_per_hour
    variable = " (Spot: varies)" if estimate.variable else ""
    lines = [f"Estimated cost: ${hourly:.4f}/hour in {estimate.region}{variable} "
             f"(~${hourly * cost.HOURS_PER_MONTH:,.0f}/month)"]
    lines += [f"  {item.item}: {item.count} x ${item.usd_per_hour_each:.4f} = ${item.usd_per_hour:.4f}"
              for item in estimate.lines]
    lines += [f"  prices: {source}" for source in estimate.sources]
    return lines


def summary_lines(plan: placement.Plan) -> list[str]:
    placed, stuck = len(plan.placements), len(plan.unschedulable)
    used_gpus = sum(1 for g in plan.gpus if g.pods)
    return [
        f"Replicas placed: {placed} of {placed + stuck}",
        f"GPUs provisioned: {len(plan.gpus)} ({used_gpus} in use)",
        f"GPU memory allocated: {plan.allocated_mib} of {plan.total_mib} MiB ({plan.gpu_memory_allocation:.1%})",
    ]


def model_lines(fits: Sequence[ModelFit]) -> list[str]:
    """One line per service: will the model load in its slice (hamieks/modelfit)."""
    if not fits:
        return []
    width = max(len(fit.service) for fit in fits)
    return ["Model fit (vLLM's memory budget inside each slice):",
            *(f"  {fit.service.ljust(width)}  {fit.verdict:<7}  {fit.reason}" for fit in fits)]


def print_report(plan: placement.Plan, settings: Settings, stack: str, fits: Sequence[ModelFit],
                 warnings: Sequence[str], console: Console, full: bool = True) -> None:
    """The whole report; `full=False` leaves out the per-GPU table (make up's summary). Problems
    come last, where a reader's eye lands, in red on a terminal."""
    def say(text: str = "", style: str | None = None) -> None:
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    say(f"Stack {stack}: HAMi placement of {', '.join(plan.services) or 'none'}")
    if full:
        say()
        for text in table(plan):
            say(text)
    say()
    for text in summary_lines(plan):
        say(text)
    for text in placement_report.guarantees(plan):
        say(text)
    for text in cost_lines(plan, settings):
        say(text)
    if fits:
        say()
        for text in model_lines(fits):
            say(text, style="bold red" if f" {budget.NO} " in text else None)
    if warnings:
        say()
        say("Warnings:", style="yellow")
        for warning in warnings:
            say(f"  - {warning}", style="yellow")
    if not plan.deployable:
        say()
        for text in placement_report.format_unschedulable(plan, stack).splitlines():
            say(text, style="bold red")
    if modelfit_report.misfits(fits):
        say()
        for text in modelfit_report.format_misfits(fits, stack).splitlines():
            say(text, style="bold red")
