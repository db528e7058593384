"""`hami-eks preflight --stack NAME [--json]`: is the AWS account ready for this stack?

Asks AWS (boto3; AWS_PROFILE, the stack's aws:region, AWS_ENDPOINT_URL honoured) what would
otherwise fail twenty minutes into `pulumi up`: who the credentials are, whether every instance
type exists with the GPUs we plan for, whether enough zones offer them, whether the vCPU quotas
cover the node groups at maxSize, whether EKS offers the Kubernetes version. See
hamieks/aws/preflight.py. Exit 0 all good, 1 a check failed, 2 no usable credentials, AWS
unreachable or the stack unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from hamieks import terminal
from hamieks.aws.preflight import run_preflight
from hamieks.aws.session import Aws, stack_profile, translated_errors
from hamieks.check import Check, verdict
from hamieks.commands import add_stack_arguments, read_stack
from hamieks.errors import HamiEksError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help='print {"ok": bool, "checks": [{"name", "target", "ok", "detail"}]}')


def run(args: argparse.Namespace) -> int:
    try:
        config, settings = read_stack(args)
        aws = Aws(settings.region, profile=stack_profile(config))
        with translated_errors("checking the account"), terminal.waiting(f"preflight: asking AWS in {settings.region}..."):
            checks = run_preflight(aws, settings, stack=args.stack)
    except HamiEksError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return 2
    ok = all(check.ok for check in checks)
    if args.json:
        print(json.dumps(verdict(checks), indent=2))
    else:
        print_report(checks, args.stack, sys.stdout)
    return 0 if ok else 1


def print_report(checks: list[Check], stack: str, out: TextIO) -> None:
    rows = [("OK" if c.ok else "FAIL", c.name, c.target) for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"Preflight of stack {stack}", file=out)
    for row, check in zip(rows, checks, strict=True):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
        print(f"    {check.detail}", file=out)
    failed = sum(1 for c in checks if not c.ok)
    if failed:
        print(f"{failed} of {len(checks)} checks failed: fix them before `pulumi up`.", file=out)
    else:
        print(f"All {len(checks)} checks passed.", file=out)
