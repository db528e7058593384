"""`python -m hamieks verify --stack NAME --kubeconfig FILE [--json] [--wait SECONDS] [--exec] [--no-inference]`

Prove a deploy worked: HAMi is up and alone, every GPU node registered the GPUs the catalog
promises, every service has its replicas Ready, placed by hami-scheduler with the planned slice
and grouping, (with --exec) nvidia-smi inside each pod shows the cap, and each service answers a
chat completion through the API server's service proxy (or, when its NetworkPolicy keeps the
control plane out, from inside one of its Ready pods). See hamieks/verify/checks.py.
Exit 0 when every check passes, 1 when any fails, 2 when the cluster cannot be reached or the
stack cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from hamieks import terminal
from hamieks.check import Check, all_ok, verdict
from hamieks.commands import add_stack_arguments, read_stack
from hamieks.errors import HamiEksError
from hamieks.scheduling import placement
from hamieks.verify import runner
from hamieks.verify.cluster import Cluster, ClusterUnreachable

DEFAULT_INTERVAL_SECONDS = 15.0
EXIT_CODES = ("exit codes: 0 every check passes; 1 some check fails (each failing check says why and how to fix "
              "it); 2 the cluster cannot be reached or the stack cannot be read")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser, stack_help="stack name: reads Pulumi.<stack>.yaml for what to expect")
    parser.add_argument("--kubeconfig", type=Path,
                        help="kubeconfig file (`pulumi stack output kubeconfig --show-secrets > FILE`); default: "
                             "the first file of $KUBECONFIG, as kubectl reads it")
    parser.add_argument("--json", action="store_true",
                        help='print {"ok": bool, "checks": [{"name", "target", "ok", "detail"}]} instead of a table')
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="re-check until every check passes or SECONDS have passed (first model downloads "
                             "take minutes); progress goes to stderr")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_SECONDS, metavar="SECONDS",
                        help=f"pause between rounds with --wait (default {DEFAULT_INTERVAL_SECONDS:.0f})")
    parser.add_argument("--exec", dest="exec_nvidia_smi", action="store_true",
                        help="run nvidia-smi in every pod: memory.total must be the slice, memory.used below it")
    parser.add_argument("--no-inference", dest="inference", action="store_false",
                        help="skip the chat completion per service")
    parser.add_argument("--inference-timeout", type=float, default=runner.Options.inference_timeout,
                        metavar="SECONDS",
                        help="wait this long for the chat completion through the service proxy before asking from "
                             f"inside a pod instead (default {runner.Options.inference_timeout:.0f})")


def kubeconfig_path(flag: Path | None, env: str) -> Path:
    """--kubeconfig, else $KUBECONFIG (its first file: kubectl merges a list, and the stack's
    kubeconfig is one file). Never ~/.kube/config silently: that may be another cluster."""
    if flag is not None:
        return flag
    first = next((part for part in env.split(os.pathsep) if part), None)
    if first is None:
        raise ClusterUnreachable("no kubeconfig: pass --kubeconfig FILE or set KUBECONFIG "
                                 "(`pulumi stack output kubeconfig --show-secrets > FILE`)")
    return Path(first).expanduser()


def run(args: argparse.Namespace) -> int:
    try:
        _, settings = read_stack(args)
        plan = placement.plan(settings)
        cluster = Cluster(kubeconfig_path(args.kubeconfig, os.environ.get("KUBECONFIG", "")))
        options = runner.Options(exec_nvidia_smi=args.exec_nvidia_smi, inference=args.inference,
                                 inference_timeout=max(args.inference_timeout, 0.1))
        results = runner.poll(lambda: runner.verify_once(cluster, settings, plan, options),
                              max(args.wait, 0.0), max(args.interval, 0.0), _progress(terminal.console(stderr=True)))
    except HamiEksError as exc:  # the stack cannot be read, or the cluster cannot be reached
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    if args.wait > 0 and not all_ok(results):
        failing = sum(1 for c in results if not c.ok)
        print(f"verify: gave up after --wait {args.wait:.0f} s with {failing} check(s) failing", file=sys.stderr)
    if args.json:
        print(json.dumps(verdict(results), indent=2))
    else:
        print_report(results, args.stack, terminal.console())
    return 0 if all_ok(results) else 1


def _progress(console: Console) -> runner.Progress:
    """One line per round on stderr: readable in a CI log as on a terminal."""
    def show(elapsed: float, budget: float, results: list[Check]) -> None:
        failing = [c for c in results if not c.ok]
        waiting = ", ".join(f"{c.name} {c.target}" for c in failing[:3])
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        console.print(f"verify: {len(results) - len(failing)}/{len(results)} checks pass after {elapsed:.0f} s of "
                      f"{budget:.0f} s; waiting for {waiting}{more}", markup=False, highlight=False, soft_wrap=True)
    return show


_COLUMNS = ("check", "target", "result", "detail")


def print_report(results: list[Check], stack: str, console: Console) -> None:
    """A table, one check per line; details are never wrapped, so a log keeps one line each."""
    rows = [(c.name, c.target, "ok" if c.ok else "FAIL", c.detail) for c in results]
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(3)]

    def say(text: str = "", style: str | None = None) -> None:
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def line(cells: tuple[str, ...]) -> str:
        return ("  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3]).rstrip()

    say(f"Stack {stack}: verify against the live cluster")
    say()
    say(line(_COLUMNS))
    say(line(tuple("-" * w for w in [*widths, len(_COLUMNS[3])])))
    for row, check in zip(rows, results, strict=True):
        say(line(row), None if check.ok else "bold red")
    say()
    failing = sum(1 for c in results if not c.ok)
    verdict = "all pass" if not failing else f"{failing} FAIL"
    say(f"{len(results) - failing} of {len(results)} checks pass ({verdict})", None if not failing else "bold red")
