"""hami-eks: plan GPU sharing before you pay, deploy it with Pulumi, prove it worked after.

Offline tools that read the same stack files as `pulumi up` (Pulumi.yaml + Pulumi.<stack>.yaml).
Installed as `hami-eks` (`pip install -e .`); `python -m hamieks` is the same program.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType
from typing import Any

from hamieks import __version__

# command -> (module exposing add_arguments(parser) and run(args) -> exit code, one-line help).
# Modules are imported only when their command runs, so one broken command cannot break another.
COMMANDS = {
    "plan": ("hamieks.commands.plan", "simulate HAMi placement and cost for a stack (no cloud needed)"),
    "rightsize": ("hamieks.commands.rightsize", "propose the cheapest node groups that still serve every replica"),
    "stacks": ("hamieks.commands.stacks", "list the stack files here with region, GPUs and $/hour"),
    "render": ("hamieks.commands.render", "write the stack's Kubernetes objects to manifests/<stack>/"),
    "preflight": ("hamieks.commands.preflight",
                  "check the AWS account for a stack: credentials, instance types and GPUs, zones, vCPU quotas, EKS version"),
    "verify": ("hamieks.commands.verify", "check a deployed stack against its live cluster (HAMi, slices, sharing, inference)"),
    "leaks": ("hamieks.commands.leaks", "after destroy: what the stack's cluster left in the AWS account, with delete commands"),
}

PROG = "hami-eks"
# SIGPIPE's exit status in a shell: `hami-eks plan | head` ends as quietly as `yes | head`.
EXIT_BROKEN_PIPE = 141


class _StoreOnce(argparse._StoreAction):
    """`--stack demo --stack lean` is refused, not silently read as lean: a repeated flag that
    takes one value is a mistake whichever copy was meant (append flags stay repeatable)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        _once(parser, namespace, self.dest, option_string)
        super().__call__(parser, namespace, values, option_string)


class _StoreTrueOnce(argparse._StoreTrueAction):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        _once(parser, namespace, self.dest, option_string)
        super().__call__(parser, namespace, values, option_string)


def _once(parser: argparse.ArgumentParser, namespace: argparse.Namespace, dest: str, option_string: str | None) -> None:
    seen: set[str] = namespace.__dict__.setdefault("_given_once", set())
    if dest in seen:
        parser.error(f"{option_string} is given twice; give it once")
    seen.add(dest)


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def _command_parser(parser: argparse.ArgumentParser, name: str | None) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """Subcommands listed from COMMANDS; only the chosen one imports its module and arguments."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None
    for command, (module_name, help_text) in COMMANDS.items():
        if command != name:
            sub.add_parser(command, help=help_text)
            continue
        chosen = importlib.import_module(module_name)
        command_parser = sub.add_parser(command, help=help_text, description=chosen.__doc__,
                                        epilog=getattr(chosen, "EXIT_CODES", None),
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        for name in (None, "store"):  # None: add_argument without action= (argparse's own default)
            command_parser.register("action", name, _StoreOnce)
        command_parser.register("action", "store_true", _StoreTrueOnce)
        chosen.add_arguments(command_parser)
    return parser, chosen


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    name = next((arg for arg in argv if not arg.startswith("-")), None)
    return _command_parser(_top_parser(), name if name in COMMANDS else None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if sys.stdout is None:  # started with standard output closed (`hami-eks plan >&-`)
        print(f"{PROG}: standard output is closed, so nothing can be printed; redirect it instead "
              f"(> plan.txt, or > /dev/null to keep only the exit code)", file=sys.stderr)
        return 2
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)  # an unknown command exits 2 here, listing the commands
    assert module is not None
    try:
        code: int = module.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): no traceback, and no second error when Python
        # flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
