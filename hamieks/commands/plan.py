"""`python -m hamieks plan --stack NAME [--json] [--service NAME ...]`

Where HAMi will place every replica of the stack, what each will see as GPU memory, how much of
the provisioned GPU memory is allocated and what the stack costs per hour: offline, from the same
Pulumi.yaml + Pulumi.<stack>.yaml and settings code that `pulumi up` uses.
Exit 0 when every replica is placed, 1 when some cannot be, 2 when the stack cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from hamieks import cost, placement, stackfiles
from hamieks.errors import HamiEksError
from hamieks.settings import Settings, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON (the placementPlan output)")
    parser.add_argument("--project-dir", type=Path, default=stackfiles.project_dir_default(),
                        help="directory holding Pulumi.yaml (default: this repository)")
    parser.add_argument("--service", action="append", metavar="NAME",
                        help="plan only this service (repeatable); the others are left out")


def run(args: argparse.Namespace) -> int:
    try:
        config = stackfiles.load_stack_config(args.project_dir, args.stack)
        settings = load_settings(config)
        result = placement.plan(settings, args.service)
    except HamiEksError as exc:
        print(f"plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(result.to_json(args.stack))
    else:
        print_report(result, settings, args.stack, sys.stdout)
    return 0 if result.all_placed else 1


# ---- human output -----------------------------------------------------------------------------

_COLUMNS = ("node", "group", "type", "gpu", "model", "MiB used/total", "pods")


def _rows(plan: placement.Plan) -> list[tuple[str, ...]]:
    return [
        (g.node, g.node_group, g.instance_type, str(g.index), g.model,
         f"{g.allocated_mib}/{g.memory_mib}", ", ".join(g.pods) or "-")
        for g in plan.gpus
    ]


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(_COLUMNS), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]


def print_report(plan: placement.Plan, settings: Settings, stack: str, out: TextIO) -> None:
    services = ", ".join(plan.services) or "none"
    print(f"Stack {stack}: HAMi placement of {services}", file=out)
    print(file=out)
    for text in _table(_rows(plan)):
        print(text, file=out)
    print(file=out)
    placed, stuck = len(plan.placements), len(plan.unschedulable)
    print(f"Replicas placed: {placed} of {placed + stuck}", file=out)
    used_gpus = sum(1 for g in plan.gpus if g.pods)
    print(f"GPUs provisioned: {len(plan.gpus)} ({used_gpus} in use)", file=out)
    print(f"GPU memory allocated: {plan.allocated_mib} of {plan.total_mib} MiB "
          f"({plan.gpu_memory_allocation:.1%})", file=out)
    _print_cost(plan, settings, out)
    if stuck:
        print(file=out)
        print(placement.format_unschedulable(plan, stack), file=out)


def _print_cost(plan: placement.Plan, settings: Settings, out: TextIO) -> None:
    estimate = plan.cost
    if estimate is None:
        print(f"Estimated cost: unknown. {cost.unpriced_message(settings)}", file=out)
        return
    hourly = estimate.usd_per_hour
    variable = " (Spot: varies)" if estimate.variable else ""
    print(f"Estimated cost: ${hourly:.4f}/hour in {estimate.region}{variable} "
          f"(~${hourly * cost.HOURS_PER_MONTH:,.0f}/month)", file=out)
    for line in estimate.lines:
        print(f"  {line.item}: {line.count} x ${line.usd_per_hour_each:.4f} = ${line.usd_per_hour:.4f}", file=out)
    for source in estimate.sources:
        print(f"  prices: {source}", file=out)
