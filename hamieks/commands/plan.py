"""`hami-eks plan --stack NAME [--json | --summary] [--svg FILE] [--service NAME ...]`

Where HAMi will place every replica of the stack, what each will see as GPU memory, how much of
the provisioned GPU memory is allocated and what the stack costs per hour: offline, from the same
Pulumi.yaml + Pulumi.<stack>.yaml and settings code that `pulumi up` uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from hamieks import catalog, terminal
from hamieks.aws import pricing as aws_pricing
from hamieks.aws import session as aws_session
from hamieks.commands import add_stack_arguments, read_stack
from hamieks.config import stackfiles
from hamieks.errors import HamiEksError
from hamieks.modelfit import report as modelfit_report
from hamieks.report import plan_svg, plan_text, risks
from hamieks.scheduling import placement
from hamieks.sizing import system_nodes

EXIT_CODES = ("exit codes: 0 every replica is placed in every arrival order and tie-break (proven exhaustively, "
              "or sampled and accepted by --accept-sampled-order-check / acceptSampledOrderCheck) and every model "
              "fits its slice (or the stack's allowUnschedulable / allowModelMisfit accepts it, as pulumi up would); "
              "1 some replica cannot be placed, or only in some arrival orders, or the order check is only a sample "
              "(not accepted), or a model cannot load in its slice; 2 the stack cannot be read (bad config, unknown "
              "stack or service) or --svg cannot be written")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the plan as JSON (the placementPlan output)")
    output.add_argument("--summary", action="store_true", help="totals, cost and warnings without the GPU table")
    parser.add_argument("--prices", choices=catalog.PRICE_MODES, default="recorded",
                        help="recorded (default: offline, the same every run), live from AWS (needs credentials), "
                             "or auto (live where AWS answers, else recorded)")
    parser.add_argument("--svg", type=Path, metavar="FILE", help="also draw the plan as an SVG picture")
    parser.add_argument("--service", action="append", metavar="NAME",
                        help="plan only this service (repeatable); the others are left out")
    parser.add_argument("--accept-sampled-order-check", action="store_true",
                        help="exit 0 when the arrival-order check could only sample orders (too many to check "
                             "exhaustively) and none it tried left a replica Pending (as hami-eks:acceptSampledOrderCheck)")


def run(args: argparse.Namespace) -> int:
    try:
        config, settings = read_stack(args)
        if args.accept_sampled_order_check:
            settings = dataclasses.replace(settings, accept_sampled_order_check=True)
        prices, price_note = aws_pricing.price_lookup(args.prices, settings.region, aws_session.stack_profile(config))
        asking = terminal.waiting("plan: asking AWS for prices...") if args.prices != "recorded" else nullcontext()
        with asking:
            result = placement.plan(settings, args.service, prices=prices)
    except HamiEksError as exc:
        print(f"plan: {exc}", file=sys.stderr)
        return 2
    fits = modelfit_report.model_fits(settings, args.service)
    warnings = [*risks.risks(settings, result.cost), *modelfit_report.format_warnings(fits),
                *modelfit_report.vllm_warnings(settings, args.service)]
    if (problem := system_nodes.system_type_problem(settings)) is not None:
        warnings.append(f"hami-eks:systemInstanceType: {problem}")
    if sharing := stackfiles.stacks_sharing_cluster_name(args.project_dir, args.stack, settings.cluster_name):
        warnings.append(f"hami-eks:clusterName {settings.cluster_name!r} is also the cluster of stack(s) "
                        f"{', '.join(sharing)}: deployed to one account and region, the second `up` fails on the "
                        f"EKS cluster, IAM role and log group names; give this stack a clusterName of its own")
    # The stack's own overrides count as they do in `pulumi up`: the deploy goes ahead, warned.
    unplaceable, misfit = not result.deployable, bool(modelfit_report.misfits(fits))
    if unplaceable and settings.allow_unschedulable:
        warnings.append("hami-eks:allowUnschedulable is true: pulumi up deploys anyway; the replicas below stay Pending")
    if result.accept_sampled and result.order_unproven:
        warnings.append(f"the arrival-order check is a sample of {result.orders.tried} orders, not a proof; "
                        f"accepted (acceptSampledOrderCheck)")
    if misfit and settings.allow_model_misfit:
        warnings.append("hami-eks:allowModelMisfit is true: pulumi up deploys anyway; the servers below crash-loop")
    if args.svg is not None:
        try:
            args.svg.write_text(plan_svg.draw(result, args.stack, [fit.service for fit in modelfit_report.misfits(fits)]),
                                encoding="utf-8")
        except OSError as exc:
            print(f"plan: --svg {args.svg}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if args.json:
        document = result.to_dict(args.stack)
        document["models"] = [fit.to_dict() for fit in fits]
        print(json.dumps(document, indent=2))
        if args.prices != "recorded":
            print(f"plan: {price_note}", file=sys.stderr)
        for warning in warnings:  # stderr: stdout stays one JSON document
            print(f"plan: warning: {warning}", file=sys.stderr)
    else:
        if args.prices != "recorded":
            warnings.insert(0, price_note)
        plan_text.print_report(result, settings, args.stack, fits, warnings, terminal.console(), full=not args.summary)
    blocked = (unplaceable and not settings.allow_unschedulable) or (misfit and not settings.allow_model_misfit)
    return 1 if blocked else 0
