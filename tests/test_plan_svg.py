"""`plan --svg`: the picture README shows, drawn to scale and kept current."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import REPO, stack_settings

from hamieks.scheduling import placement

SVG = "{http://www.w3.org/2000/svg}"
PICTURES = {"demo": REPO / "docs" / "plan-demo.svg", "lean": REPO / "docs" / "plan-lean.svg"}


def draw(stack: str, out: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "hamieks", "plan", "--stack", stack, "--svg", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return out.read_text()


@pytest.mark.parametrize("stack", sorted(PICTURES))
def test_committed_pictures_are_current(stack, tmp_path):
    assert PICTURES[stack].read_text() == draw(stack, tmp_path / "plan.svg"), (
        f"docs/{PICTURES[stack].name} is stale: run `hami-eks plan --stack {stack} --svg docs/{PICTURES[stack].name}`")
    assert f"docs/{PICTURES[stack].name}" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("stack", sorted(PICTURES))
def test_every_pod_is_a_slice_drawn_to_scale(stack, tmp_path):
    root = ET.fromstring(draw(stack, tmp_path / "plan.svg"))
    plan = placement.plan(stack_settings(stack))
    slices = {}
    for rect in root.iter(f"{SVG}rect"):
        title = rect.find(f"{SVG}title")
        if title is not None:
            pod, mib = re.fullmatch(r"(.+): (\d+) MiB", title.text or "").groups()
            slices[pod] = (int(mib), float(rect.get("width", 0)))
    assert set(slices) == {p.pod for p in plan.placements}
    bars = {g.memory_mib for g in plan.gpus}
    full = [float(r.get("width", 0)) for r in root.iter(f"{SVG}rect") if r.get("stroke") == "#888"]
    assert len(full) == len(plan.gpus)  # one grey bar per GPU, idle ones included
    for p in plan.placements:
        mib, width = slices[p.pod]
        gpu_mib = next(g.memory_mib for g in plan.gpus if g.node == p.node and g.index == p.gpu)
        assert mib == p.memory_mib and gpu_mib in bars
        assert width == pytest.approx(full[0] * mib / gpu_mib, abs=0.1)
