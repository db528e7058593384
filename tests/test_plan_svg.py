"""`plan --svg`: the picture README shows, drawn to scale and kept current."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from helpers import REPO, group, stack_settings, svc

from hamieks.report import plan_svg
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


# ---- the picture never looks cleaner than the plan --------------------------------------------------

def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def _run_svg(project, name: str, body: dict, out: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    path = project(name, yaml.safe_dump({"config": body}))
    result = subprocess.run([sys.executable, "-m", "hamieks", "plan", "--stack", name, "--project-dir", str(path),
                             "--svg", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    return result, out.read_text() if out.exists() else ""


def test_unplaced_replicas_get_a_pending_row(project, tmp_path):
    body = {"hami-eks:clusterName": "svg", "hami-eks:nodeGroups": {"t4": group("g4dn.xlarge")},
            "hami-eks:services": [svc("x", replicas=3, gpumem=7500)]}
    result, svg = _run_svg(project, "stuck", body, tmp_path / "p.svg")
    assert result.returncode == 1
    texts = _texts(svg)
    assert "Pending" in texts
    assert any(t.startswith("x-3: ") for t in texts)  # the third replica is named with its reason
    assert any("1 replica(s) cannot be placed" in t for t in texts)


def test_an_order_dependent_plan_says_so_in_red(project, tmp_path):
    body = {"hami-eks:clusterName": "svg", "hami-eks:nodeGroups": {"t4": group("g4dn.12xlarge")},
            "hami-eks:services": [svc("big", replicas=4, gpumem=8000, cpu="1", memory="4Gi"),
                                  svc("small", replicas=4, gpumem=7360, cpu="1", memory="4Gi")]}
    result, svg = _run_svg(project, "order", body, tmp_path / "p.svg")
    assert result.returncode == 1, result.stderr
    root = ET.fromstring(svg)
    alarms = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("fill") == "#b00"]
    assert any("only in some arrival orders" in t and "big-" in t for t in alarms)


def test_a_model_that_does_not_fit_is_marked(project, tmp_path):
    tight = ["--max-model-len", "32768", "--max-num-seqs", "3", "--gpu-memory-utilization", "0.65"]
    body = {"hami-eks:clusterName": "svg", "hami-eks:nodeGroups": {"t4": group("g4dn.xlarge")},
            "hami-eks:services": [svc("tiny", gpumem=3000, args=tight)]}
    result, svg = _run_svg(project, "misfit", body, tmp_path / "p.svg")
    assert result.returncode == 1, result.stderr
    assert any("tiny: the model does not fit its slice" in t for t in _texts(svg))
    marked = [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("stroke") == "#b00"]
    assert len(marked) == 1 and "model does not fit" in (marked[0].find(f"{SVG}title").text or "")


def test_a_long_title_wraps_inside_the_picture(project, tmp_path):
    body = {"hami-eks:clusterName": "svg", "hami-eks:nodeGroups": {"t4": group("g4dn.xlarge")},
            "hami-eks:services": [svc("x", replicas=3, gpumem=7500)]}
    _, svg = _run_svg(project, "a-stack-name-long-enough-to-push-the-title-past-the-width-of-the-picture", body,
                      tmp_path / "p.svg")
    root = ET.fromstring(svg)
    title_lines = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("font-size") == "15"]
    assert len(title_lines) >= 2 and all(len(line) <= plan_svg.TITLE_CHARS for line in title_lines)
    assert " ".join(title_lines).startswith("Stack a-stack-name-long") and "/hour" in title_lines[-1]


def test_slice_labels_are_clipped_to_their_slice(tmp_path):
    root = ET.fromstring(draw("demo", tmp_path / "plan.svg"))
    clips = {c.get("id"): c.find(f"{SVG}rect") for c in root.iter(f"{SVG}clipPath")}
    groups = [g for g in root.iter(f"{SVG}g") if g.get("clip-path")]
    assert groups and len(groups) == len(clips)
    for g in groups:
        clip = clips[g.get("clip-path")[len("url(#"):-1]]
        assert all(float(t.get("x")) >= float(clip.get("x")) for t in g.iter(f"{SVG}text"))


def test_a_sampled_order_check_is_not_drawn_as_proven(project, tmp_path):
    from test_arrival_order import MANY_ORDERS_STACK

    path = project("many", MANY_ORDERS_STACK)
    out = tmp_path / "p.svg"
    result = subprocess.run([sys.executable, "-m", "hamieks", "plan", "--stack", "many", "--project-dir", str(path),
                             "--svg", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert any("only sampled, not proven" in t for t in _texts(out.read_text()))
