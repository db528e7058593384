"""The plan as a picture: each node a row, each GPU a bar divided into its pods' slices.

Slices are drawn to scale of the GPU's registered memory and labelled with pod and MiB (clipped
to the slice; the full text is the slice's tooltip); idle memory is grey. A picture never looks
cleaner than the plan: replicas that cannot be placed get a row of their own, and a plan that
holds only in some arrival orders, or a model that does not fit its slice, is said in red under
the title. Plain SVG written with the standard library, so the committed pictures in docs/ are
byte-for-byte reproducible (tests/test_plan_svg.py keeps them current).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from itertools import groupby
from xml.sax.saxutils import escape

from hamieks.scheduling import placement

BAR_WIDTH = 560
BAR_HEIGHT = 34
ROW_GAP = 10
LEFT = 240
TOP = 48
FONT = "font-family=\"DejaVu Sans, Arial, sans-serif\""
# One colour per service, in stack order (colour-blind-safe Okabe-Ito palette).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
IDLE = "#d9d9d9"
ALARM = "#b00"
LINE_HEIGHT = 20
# Characters of 15px bold text that fit the picture's width; longer lines wrap, never run off.
TITLE_CHARS = 100
NOTE_CHARS = 120


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start", fill: str = "#222",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}" {FONT}>{escape(text)}</text>')


def _verdicts(plan: placement.Plan, misfits: Sequence[str]) -> list[str]:
    """What the bars alone would hide, one sentence each."""
    lines = []
    if plan.unschedulable:
        lines.append(f"{len(plan.unschedulable)} replica(s) cannot be placed (Pending, drawn below)")
    elif plan.counterexample is not None:
        stuck = ", ".join(f"{u.service}-{u.replica}" for u in plan.counterexample.unschedulable)
        how = " and tie-breaks" if plan.counterexample.ties else ""
        lines.append(f"Placed only in some arrival orders{how}: in another, {stuck} stay Pending")
    elif not plan.order_robust:
        accepted = " (accepted by acceptSampledOrderCheck)" if plan.deployable else ""
        lines.append(f"Arrival orders only sampled, not proven: the exhaustive search gave up{accepted}")
    for service in misfits:
        lines.append(f"{service}: the model does not fit its slice (vLLM would not start)")
    return lines


def draw(plan: placement.Plan, stack: str, misfits: Sequence[str] = ()) -> str:
    """The picture; `misfits` names the services whose model does not fit its slice."""
    colours = {service: PALETTE[i % len(PALETTE)] for i, service in enumerate(plan.services)}
    memory = {p.pod: p.memory_mib for p in plan.placements}
    service_of = {p.pod: p.service for p in plan.placements}
    cost = plan.estimated_hourly_cost_usd
    title = (f"Stack {stack}: {len(plan.placements)} replicas on {sum(1 for g in plan.gpus if g.pods)} of "
             f"{len(plan.gpus)} GPUs, {plan.gpu_memory_allocation:.1%} of GPU memory allocated"
             + (f", ${cost:.2f}/hour" if cost is not None else ""))
    verdicts = _verdicts(plan, misfits)
    header: list[str] = []
    y = 26.0
    for line in textwrap.wrap(title, TITLE_CHARS):
        header.append(_text(10, y, line, 15, weight="bold", fill=ALARM if verdicts else "#222"))
        y += LINE_HEIGHT
    for verdict in verdicts:
        for line in textwrap.wrap(verdict, NOTE_CHARS):
            header.append(_text(10, y, line, 12, weight="bold", fill=ALARM))
            y += LINE_HEIGHT - 4
    parts: list[str] = []
    y += TOP - 26 - LINE_HEIGHT
    clip = 0
    for node, gpus in groupby(plan.gpus, key=lambda g: g.node):
        node_gpus = list(gpus)
        first = node_gpus[0]
        parts.append(_text(10, y + 16, node, 14, weight="bold"))
        parts.append(_text(10, y + 32, f"{first.instance_type}, {len(node_gpus)}x {first.model}", 11, fill="#555"))
        for gpu in node_gpus:
            parts.append(_text(LEFT - 8, y + BAR_HEIGHT / 2 + 4, f"GPU {gpu.index}", 11, anchor="end"))
            parts.append(f'<rect x="{LEFT}" y="{y}" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" fill="{IDLE}" '
                         f'stroke="#888"/>')
            x = float(LEFT)
            for pod in gpu.pods:
                width = BAR_WIDTH * memory[pod] / gpu.memory_mib
                clip += 1
                misfit = service_of[pod] in misfits
                parts.append(f'<clipPath id="slice{clip}"><rect x="{x:.1f}" y="{y}" width="{width:.1f}" '
                             f'height="{BAR_HEIGHT}"/></clipPath>')
                stroke = f'stroke="{ALARM}" stroke-width="3"' if misfit else 'stroke="#fff"'
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" '
                             f'fill="{colours[service_of[pod]]}" {stroke}><title>{escape(pod)}: '
                             f'{memory[pod]} MiB{" (model does not fit)" if misfit else ""}</title></rect>')
                parts.append(f'<g clip-path="url(#slice{clip})">')
                parts.append(_text(x + 4, y + 14, pod, 10, fill="#fff"))
                parts.append(_text(x + 4, y + 28, f"{memory[pod]} MiB", 10, fill="#fff"))
                parts.append("</g>")
                x += width
            free = gpu.memory_mib - gpu.allocated_mib
            parts.append(_text(LEFT + BAR_WIDTH + 8, y + BAR_HEIGHT / 2 + 4,
                               f"{gpu.allocated_mib}/{gpu.memory_mib} MiB" if gpu.pods else f"idle, {free} MiB",
                               11, fill="#333" if gpu.pods else "#888"))
            y += BAR_HEIGHT + ROW_GAP
        y += ROW_GAP * 2
    if plan.unschedulable:
        parts.append(_text(10, y + 16, "Pending", 14, weight="bold", fill=ALARM))
        for stuck in plan.unschedulable:
            reason = textwrap.shorten(stuck.reason, NOTE_CHARS - 30, placeholder="...")
            parts.append(f'<g><title>{escape(stuck.reason)}</title>'
                         + _text(LEFT, y + 16, f"{stuck.service}-{stuck.replica}: {reason}", 11, fill=ALARM) + "</g>")
            y += LINE_HEIGHT
        y += ROW_GAP * 2
    width, height = LEFT + BAR_WIDTH + 150, y + 10
    frame = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
             f'viewBox="0 0 {width} {height:.0f}">',
             f'<rect width="{width}" height="{height:.0f}" fill="#fff"/>']
    return "\n".join([*frame, *header, *parts, "</svg>"]) + "\n"
