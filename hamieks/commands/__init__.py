"""The CLI's commands, one module each, exposing `add_arguments(parser)` and `run(args) -> int`.

Command modules parse arguments, call the library modules of `hamieks` and print; they hold no
domain logic, so a library module and a command module are never the same file. The arguments
every stack-reading command shares, and reading that stack, live here once.

May import: top level, config, kube, scheduling, modelfit, sizing, report, aws, verify.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hamieks.config import stackfiles
from hamieks.config.settings import Settings, load_settings


def add_stack_arguments(parser: argparse.ArgumentParser, stack_help: str = "stack name: reads Pulumi.<stack>.yaml",
                        stack: bool = True) -> None:
    """--stack (unless the command takes stacks its own way) and --project-dir."""
    if stack:
        parser.add_argument("--stack", required=True, help=stack_help)
    parser.add_argument("--project-dir", type=Path, default=stackfiles.project_dir_default(),
                        help="directory holding Pulumi.yaml (default: here if it has one, else this checkout)")


def read_stack(args: argparse.Namespace) -> tuple[dict[str, Any], Settings]:
    """The stack's config as the Pulumi CLI would hand it over, and its validated settings;
    raises a HamiEksError naming the file, key or line at fault."""
    config = stackfiles.load_stack_config(args.project_dir, args.stack)
    return config, load_settings(config)
