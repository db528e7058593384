"""The plan as a picture: each node a row, each GPU a bar divided into its pods' slices.

Slices are drawn to scale of the GPU's registered memory and labelled with pod and MiB; idle
memory is grey. Plain SVG written with the standard library, so the committed pictures in
docs/ are byte-for-byte reproducible (tests/test_plan_svg.py keeps them current).
"""

from __future__ import annotations

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


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start", fill: str = "#222",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}" {FONT}>{escape(text)}</text>')


def draw(plan: placement.Plan, stack: str) -> str:
    colours = {service: PALETTE[i % len(PALETTE)] for i, service in enumerate(plan.services)}
    memory = {p.pod: p.memory_mib for p in plan.placements}
    service_of = {p.pod: p.service for p in plan.placements}
    parts: list[str] = []
    y = TOP
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
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" '
                             f'fill="{colours[service_of[pod]]}" stroke="#fff"><title>{escape(pod)}: '
                             f'{memory[pod]} MiB</title></rect>')
                parts.append(_text(x + 4, y + 14, pod, 10, fill="#fff"))
                parts.append(_text(x + 4, y + 28, f"{memory[pod]} MiB", 10, fill="#fff"))
                x += width
            free = gpu.memory_mib - gpu.allocated_mib
            parts.append(_text(LEFT + BAR_WIDTH + 8, y + BAR_HEIGHT / 2 + 4,
                               f"{gpu.allocated_mib}/{gpu.memory_mib} MiB" if gpu.pods else f"idle, {free} MiB",
                               11, fill="#333" if gpu.pods else "#888"))
            y += BAR_HEIGHT + ROW_GAP
        y += ROW_GAP * 2
    cost = plan.estimated_hourly_cost_usd
    title = (f"Stack {stack}: {len(plan.placements)} replicas on {sum(1 for g in plan.gpus if g.pods)} of "
             f"{len(plan.gpus)} GPUs, {plan.gpu_memory_allocation:.1%} of GPU memory allocated"
             + (f", ${cost:.2f}/hour" if cost is not None else ""))
    stuck = f"; {len(plan.unschedulable)} replica(s) cannot be placed" if plan.unschedulable else ""
    width, height = LEFT + BAR_WIDTH + 150, y + 10
    header = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
              f'viewBox="0 0 {width} {height:.0f}">',
              f'<rect width="{width}" height="{height:.0f}" fill="#fff"/>',
              _text(10, 26, title + stuck, 15, weight="bold", fill="#b00" if stuck else "#222")]
    return "\n".join([*header, *parts, "</svg>"]) + "\n"
