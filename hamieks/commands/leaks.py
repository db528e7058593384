"""`hami-eks leaks --stack NAME [--json]`: what the stack's cluster left in the account.

Run after `pulumi destroy`: lists what Kubernetes, EKS or a half-finished destroy left behind
(tagged for the cluster or the stack; see hamieks/aws/leaks.py), each with the AWS CLI command
that deletes it, in an order that works. Exit 0 clean, 1 something is left, 2 no usable
credentials, AWS unreachable, a listing refused (the audit would be partial) or the stack unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from hamieks import terminal
from hamieks.aws.leaks import Leftover, Owner, find_leftovers
from hamieks.aws.session import Aws, stack_profile, translated_errors
from hamieks.commands import add_stack_arguments, read_stack
from hamieks.errors import HamiEksError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help='print {"clean": bool, "leftovers": [{"kind", "id", "region", "reason", '
                             '"deleteCommand"}]}')


def run(args: argparse.Namespace) -> int:
    try:
        config, settings = read_stack(args)
        owner = Owner(settings.cluster_name, args.stack, settings.region)
        aws = Aws(settings.region, profile=stack_profile(config))
        with translated_errors("listing the account"), terminal.waiting(f"leaks: listing what {owner.cluster_name} "
                                                                             f"left in {settings.region}..."):
            aws.sts().get_caller_identity()  # fail on bad credentials before a dozen listings
            leftovers = find_leftovers(aws, owner)
    except HamiEksError as exc:
        print(f"leaks: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"clean": not leftovers, "leftovers": [item.to_dict() for item in leftovers]}, indent=2))
    else:
        print_report(leftovers, owner, sys.stdout)
    return 1 if leftovers else 0


def print_report(leftovers: list[Leftover], owner: Owner, out: TextIO) -> None:
    where = f"cluster {owner.cluster_name} (stack {owner.stack}) in {owner.region}"
    if not leftovers:
        print(f"Clean: nothing of {where} is left.", file=out)
        return
    print(f"{len(leftovers)} leftover(s) of {where}:", file=out)
    width = max(len(item.kind) for item in leftovers)
    for item in leftovers:
        print(f"  {item.kind.ljust(width)}  {item.id}", file=out)
        print(f"  {'':{width}}    {item.reason}", file=out)
    print(file=out)
    print("Delete them in this order:", file=out)
    for item in leftovers:
        print(f"  {item.delete_command}", file=out)
