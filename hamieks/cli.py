"""`python -m hamieks <command>`: offline tools that read the same stack files as `pulumi up`."""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> module exposing add_arguments(parser) and run(args) -> exit code
COMMANDS = {
    "plan": ("hamieks.commands.plan", "simulate HAMi placement and cost for a stack (no cloud needed)"),
    "render": ("hamieks.commands.render", "write the stack's Kubernetes objects to manifests/<stack>/"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hamieks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(command)
        command.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return importlib.import_module(args.module).run(args)


if __name__ == "__main__":
    sys.exit(main())
