"""`hami-eks render --stack <name> [--check]`: write or check manifests/<stack>/.

See hamieks/kube/rendering.py for what is written. `--check` writes nothing and exits 1 when a
committed file differs from a fresh rendering; exit 2 when a stack cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hamieks.commands import add_stack_arguments
from hamieks.config import stackfiles
from hamieks.errors import HamiEksError
from hamieks.kube.rendering import render_stack, stale_files, write_stack

EXIT_CODES = ("exit codes: 0 written (or, with --check, up to date); 1 --check found stale files; 2 a stack cannot "
              "be read or manifests/ cannot be written")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", action="append", metavar="NAME",
                       help="stack to render (Pulumi.<NAME>.yaml); repeat for several")
    which.add_argument("--all", action="store_true", help="render every Pulumi.*.yaml stack")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the committed files are stale")
    add_stack_arguments(parser, stack=False)


def run(args: argparse.Namespace) -> int:
    project_dir: Path = args.project_dir.resolve()
    try:
        stacks = stackfiles.available_stacks(project_dir) if args.all else list(dict.fromkeys(args.stack))
        if not stacks:
            print(f"no Pulumi.<stack>.yaml files in {project_dir}", file=sys.stderr)
            return 2
        rendered = {stack: render_stack(project_dir, stack) for stack in stacks}
    except HamiEksError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2

    if args.check:
        stale = {stack: stale_files(project_dir, stack, files) for stack, files in rendered.items()}
        for stack, problems in stale.items():
            for problem in problems:
                print(f"manifests/{stack}/{problem}", file=sys.stderr)
            if problems:
                print(f"manifests/{stack}/ is stale: run `hami-eks render --stack {stack}`",
                      file=sys.stderr)
        if any(stale.values()):
            return 1
        print(f"manifests up to date for: {', '.join(stacks)}")
        return 0

    for stack, files in rendered.items():
        try:
            notes = write_stack(project_dir, stack, files)
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            print(f"render: cannot write manifests/{stack}/:{where}: {exc.strerror or exc}; "
                  f"render into a writable checkout (--project-dir)", file=sys.stderr)
            return 2
        for note in notes:
            print(note)
        if not notes:
            print(f"manifests/{stack}/ already up to date")
    return 0
