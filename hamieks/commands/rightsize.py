"""`hami-eks rightsize --stack NAME [--json] [--write NEW [--force]] [--allow-gpu-types T4,L4] [--capacity ON_DEMAND|SPOT]`

The cheapest node groups and system nodes that still serve every replica of the stack, its
services unchanged: each group's instance type (any catalog type whose GPU its services accept)
and node count, found by an exact search with the planner as the judge (hamieks/sizing/rightsize.py).
Prints the current and proposed stack side by side; `--write NEW` writes Pulumi.NEW.yaml.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from rich.console import Console

from hamieks import terminal
from hamieks.commands import add_stack_arguments
from hamieks.config import stackfiles
from hamieks.config.node_groups import CAPACITY_TYPES
from hamieks.errors import HamiEksError, NoFeasibleProposal, RightsizeInputError
from hamieks.sizing import rightsize
from hamieks.sizing import stackfile as rightsize_stackfile
from hamieks.sizing.rightsize import Rightsizing, StackFigures

EXIT_CODES = ("exit codes: 0 a proposal was found (and written with --write); 1 no catalog option serves every "
              "replica (the reasons are printed); 2 the stack cannot be read, a flag is wrong, or --write would "
              "overwrite a stack file without --force")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print current and proposal as one JSON document")
    parser.add_argument("--write", metavar="NEW", help="write the proposal as Pulumi.NEW.yaml (services unchanged)")
    parser.add_argument("--force", action="store_true",
                        help="let --write replace an existing stack file; it keeps that stack's clusterName, "
                             "encryption salt and secure: values")
    parser.add_argument("--allow-gpu-types", metavar="MODELS",
                        help="only these GPU models, a comma list of catalog names, e.g. T4,L4")
    parser.add_argument("--capacity", choices=CAPACITY_TYPES,
                        help="capacity type of the proposed GPU groups (default: each group keeps its own)")


def _command(args: argparse.Namespace) -> str:
    """The command as a user would retype it (no --project-dir/--json/--force: they do not change the result)."""
    words = ["hami-eks", "rightsize", "--stack", args.stack]
    if args.allow_gpu_types:
        words += ["--allow-gpu-types", args.allow_gpu_types]
    if args.capacity:
        words += ["--capacity", args.capacity]
    if args.write:
        words += ["--write", args.write]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    project_dir: Path = args.project_dir
    try:
        allowed = rightsize.parse_gpu_models(args.allow_gpu_types) if args.allow_gpu_types is not None else None
        target = None
        if args.write is not None:
            target = project_dir / f"Pulumi.{rightsize_stackfile.check_stack_name(args.write)}.yaml"
            if target.exists() and not args.force:
                raise RightsizeInputError(f"--write: {target.name} exists; choose another name or add --force "
                                                    f"to replace it")
        config = stackfiles.load_stack_config(project_dir, args.stack)
    except HamiEksError as exc:
        print(f"rightsize: {exc}", file=sys.stderr)
        return 2
    try:
        result = rightsize.rightsize(args.stack, config, allowed_gpu_models=allowed, capacity_type=args.capacity)
    except NoFeasibleProposal as exc:
        print(f"rightsize: {exc}", file=sys.stderr)
        return 1
    except HamiEksError as exc:
        print(f"rightsize: {exc}", file=sys.stderr)
        return 2
    if target is not None:
        try:
            raw = stackfiles.read_yaml_mapping(project_dir / f"Pulumi.{args.stack}.yaml", "a mapping with a `config:` key")
            existing = stackfiles.read_yaml_mapping(target, "a mapping with a `config:` key") if target.exists() else None
            project = str(stackfiles.load_project(project_dir)["name"])
            text = rightsize_stackfile.stack_file_text(result, raw_config=raw.get("config") or {}, project=project,
                                                       new_stack=args.write, command=_command(args), existing=existing)
            target.write_text(text, encoding="utf-8")
        except HamiEksError as exc:
            print(f"rightsize: --write: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"rightsize: --write: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        for note in result.notes:  # stderr: stdout stays one JSON document
            print(f"rightsize: note: {note}", file=sys.stderr)
        if target is not None:
            print(f"rightsize: wrote {target}", file=sys.stderr)
    else:
        console = terminal.console()
        _print_report(result, console)
        if target is not None:
            console.print(f"Wrote {target.name}; check it with `hami-eks plan --stack {args.write}`.",
                          markup=False, highlight=False, soft_wrap=True)
    return 0


def _groups_cell(figures: StackFigures, name: str) -> str:
    return rightsize_stackfile.describe_group(figures.settings.node_group(name))


def _money(usd: float | None, digits: int) -> str:
    return "unknown" if usd is None else f"${usd:,.{digits}f}"


def _print_report(result: Rightsizing, console: Console) -> None:
    current, proposal = result.current, result.proposal

    def gpus(figures: StackFigures) -> str:
        counts = figures.gpus()
        return f"{sum(counts.values())} ({', '.join(f'{n} {m}' for m, n in counts.items())})"

    def allocation(figures: StackFigures) -> str:
        plan = figures.plan
        return f"{plan.gpu_memory_allocation:.1%} ({plan.allocated_mib} of {plan.total_mib} MiB)"

    def placed(figures: StackFigures) -> str:
        plan = figures.plan
        if plan.deployable:
            return "yes, in every order tried"
        if not plan.all_placed:
            return f"no ({len(plan.unschedulable)} Pending)"
        return "only in some orders"

    rows = [("", "current", "proposal")]
    rows += [(f"{g.name} nodes", _groups_cell(current, g.name), _groups_cell(proposal, g.name))
             for g in proposal.settings.node_groups]
    rows += [
        ("system nodes", f"{current.settings.system_node_count} x {current.settings.system_instance_type}",
         f"{proposal.settings.system_node_count} x {proposal.settings.system_instance_type}"),
        ("every replica placed", placed(current), placed(proposal)),
        ("GPUs", gpus(current), gpus(proposal)),
        ("GPU memory allocated", allocation(current), allocation(proposal)),
        ("$/hour", _money(current.usd_per_hour, 4), _money(proposal.usd_per_hour, 4)),
        ("$/month", _money(current.usd_per_month, 0), _money(proposal.usd_per_month, 0)),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    say(f"Rightsize stack {result.stack} ({proposal.settings.region}): services unchanged, node groups searched "
        f"over the catalog{_flags(result)}")
    say("")
    for row in rows:
        say("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    say("")
    if current.usd_per_hour is not None and proposal.usd_per_hour is not None and current.usd_per_hour > 0:
        saved = round(current.usd_per_hour - proposal.usd_per_hour, 4)
        if saved == 0:
            say("Proposal: the same $/hour as the current stack; no cheaper catalog option serves it.")
        else:
            change = f"saves {_money(saved, 4)}/hour" if saved > 0 else f"costs {_money(-saved, 4)}/hour more"
            say(f"Proposal: {proposal.usd_per_hour / current.usd_per_hour:.1%} of the current $/hour ({change}).")
    say("Guarantee: the cheapest catalog option on which the planner places every replica in every arrival order it "
        "tries (host CPU and memory included) and no model is `no` in the fit report; prices: "
        f"{' / '.join(proposal.plan.cost.sources) if proposal.plan.cost else 'unknown'}.")
    say(f"Searched: {result.plans_run} plans.")
    for note in result.notes:
        say(f"Note: {note}")


def _flags(result: Rightsizing) -> str:
    parts = []
    if result.allowed_gpu_models is not None:
        parts.append(f"GPU models {', '.join(result.allowed_gpu_models)}")
    if result.capacity_type is not None:
        parts.append(f"capacity {result.capacity_type}")
    return f" ({'; '.join(parts)})" if parts else ""
