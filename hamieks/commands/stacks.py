"""`hami-eks stacks`: the stack files of this project, with region, GPUs and $/hour.

A stack that cannot be read is listed with its first problem instead of its figures.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from hamieks import cost
from hamieks.commands import add_stack_arguments
from hamieks.config import stackfiles
from hamieks.config.settings import Settings, load_settings
from hamieks.errors import HamiEksError

EXIT_CODES = "exit codes: 0 every stack reads; 1 some stack cannot be read; 2 no project here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser, stack=False)


def gpus(settings: Settings) -> str:
    """'8 (4 T4, 4 A10G)': GPUs at desired size, by model."""
    models: Counter[str] = Counter()
    for group in settings.node_groups:
        models[group.gpu.short] += group.desired_size * group.instance.gpu_count
    total = sum(models.values())
    return f"{total} ({', '.join(f'{n} {m}' for m, n in models.items())})" if total else "0"


def run(args: argparse.Namespace) -> int:
    project_dir: Path = args.project_dir
    try:
        stackfiles.load_project(project_dir)
    except HamiEksError as exc:
        print(f"stacks: {exc}", file=sys.stderr)
        return 2
    rows = [("stack", "region", "GPUs", "$/hour")]
    failed = 0
    for stack in stackfiles.available_stacks(project_dir):
        try:
            settings = load_settings(stackfiles.load_stack_config(project_dir, stack))
        except HamiEksError as exc:
            failed += 1
            rows.append((stack, "-", "-", f"unreadable: {str(exc).splitlines()[-1].strip(' -')}"))
            continue
        estimate = cost.estimate_cost(settings)
        price = f"{estimate.usd_per_hour:.4f}" if estimate is not None else "unknown"
        rows.append((stack, settings.region, gpus(settings), price))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    return 1 if failed else 0
