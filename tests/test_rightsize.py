"""`python -m hamieks rightsize` (issue 14) as a user runs it: a subprocess on copies of the real
project files, real exit codes, and the written stack read back through the same loaders,
planner and model-fit report that `plan` and `pulumi up` use."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hamieks import catalog, cost
from hamieks.config import stackfiles
from hamieks.config.settings import Settings, load_settings
from hamieks.modelfit import report as modelfit_report
from hamieks.scheduling import placement, placement_report
from tests.helpers import SHIPPED_STACKS

ROOT = Path(__file__).resolve().parent.parent
QWEN = "Qwen/Qwen2.5-1.5B-Instruct"
NODE_GROUP_KEYS = {"instanceTypes": list, "desiredSize": int, "minSize": int, "maxSize": int,
                   "diskSizeGiB": int, "capacityType": str}


def rightsize(project: Path, *args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "hamieks", "rightsize", "--project-dir", str(project), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def proposal_json(project: Path, *args: str) -> dict[str, Any]:
    result = rightsize(project, *args, "--json")
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's Pulumi.yaml and shipped stack files: --write never touches the checkout."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    for stack in SHIPPED_STACKS:
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", tmp_path / f"Pulumi.{stack}.yaml")
    return tmp_path


def write_stack(project: Path, name: str, body: str) -> None:
    (project / f"Pulumi.{name}.yaml").write_text(textwrap.dedent(body))


def settings_of(project: Path, stack: str) -> Settings:
    return load_settings(stackfiles.load_stack_config(project, stack))


def hourly(settings: Settings) -> float:
    estimate = cost.estimate_cost(settings)
    assert estimate is not None
    return estimate.usd_per_hour


def assert_plans_clean(settings: Settings) -> None:
    """What the preflight demands: every replica placed in every tried order, no model that cannot load."""
    plan = placement.plan(settings)
    assert plan.all_placed and plan.order_robust, placement_report.format_unschedulable(plan, "proposal")
    assert not modelfit_report.misfits(modelfit_report.model_fits(settings))


# ---- the shipped stacks -------------------------------------------------------------------------

@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_proposal_for_each_shipped_stack_plans_clean(project: Path, stack: str) -> None:
    result = rightsize(project, "--stack", stack, "--write", "proposed")
    assert result.returncode == 0, result.stderr
    source, proposed = settings_of(project, stack), settings_of(project, "proposed")
    assert_plans_clean(proposed)
    # Services exactly as they were; groups keep their names; a cluster of its own.
    assert proposed.services == source.services
    assert [g.name for g in proposed.node_groups] == [g.name for g in source.node_groups]
    assert proposed.cluster_name != source.cluster_name
    assert proposed.system_node_count >= 2
    assert not catalog.instance_type(proposed.system_instance_type).is_gpu
    for group in proposed.node_groups:
        assert len(group.instance_types) == 1
        assert group.min_size == group.desired_size == group.max_size
    # Never dearer than a stack that already plans clean (each shipped one does).
    assert hourly(proposed) <= hourly(source) + 1e-9
    text = (project / "Pulumi.proposed.yaml").read_text()
    assert text.splitlines()[:2] == [f"# Derived from Pulumi.{stack}.yaml by:",
                                     f"#   hami-eks rightsize --stack {stack} --write proposed"]


def test_lean_rewritten_plans_every_replica_and_costs_no_more(project: Path) -> None:
    """Done when: `rightsize --stack lean --write x` plans every replica and costs no more than lean."""
    result = rightsize(project, "--stack", "lean", "--write", "x")
    assert result.returncode == 0, result.stderr
    x = settings_of(project, "x")
    plan = placement.plan(x)
    assert plan.all_placed and len(plan.placements) == sum(s.replicas for s in x.services)
    assert hourly(x) <= hourly(settings_of(project, "lean"))


def test_demo_proposal_costs_at_most_half_of_demo(project: Path) -> None:
    doc = proposal_json(project, "--stack", "demo")
    demo = hourly(settings_of(project, "demo"))
    assert doc["current"]["estimatedHourlyCostUsd"] == pytest.approx(demo)
    assert doc["proposal"]["estimatedHourlyCostUsd"] <= demo / 2


def test_json_schema_is_exactly_issue_14s(project: Path) -> None:
    doc = proposal_json(project, "--stack", "demo")
    assert set(doc) == {"stack", "current", "proposal"} and doc["stack"] == "demo"
    assert set(doc["current"]) == {"estimatedHourlyCostUsd", "gpuMemoryAllocation", "nodeGroups"}
    assert set(doc["proposal"]) == {"estimatedHourlyCostUsd", "gpuMemoryAllocation", "nodeGroups",
                                    "systemInstanceType", "systemNodeCount"}
    for side in ("current", "proposal"):
        assert isinstance(doc[side]["estimatedHourlyCostUsd"], float)
        assert isinstance(doc[side]["gpuMemoryAllocation"], float)
        assert 0 < doc[side]["gpuMemoryAllocation"] <= 1
        assert set(doc[side]["nodeGroups"]) == {"t4", "a10g"}
        for group in doc[side]["nodeGroups"].values():
            assert {k: type(v) for k, v in group.items()} == NODE_GROUP_KEYS
    assert isinstance(doc["proposal"]["systemInstanceType"], str)
    assert isinstance(doc["proposal"]["systemNodeCount"], int)
    # The current side is the stack file as it stands.
    assert doc["current"]["nodeGroups"]["t4"]["instanceTypes"] == ["g4dn.12xlarge"]


def test_json_and_written_file_describe_the_same_proposal(project: Path) -> None:
    doc = proposal_json(project, "--stack", "demo", "--write", "small")
    small = settings_of(project, "small")
    assert doc["proposal"]["estimatedHourlyCostUsd"] == pytest.approx(hourly(small))
    assert doc["proposal"]["gpuMemoryAllocation"] == placement.plan(small).gpu_memory_allocation
    assert doc["proposal"]["systemInstanceType"] == small.system_instance_type
    for group in small.node_groups:
        entry = doc["proposal"]["nodeGroups"][group.name]
        assert entry["instanceTypes"] == list(group.instance_types) and entry["desiredSize"] == group.desired_size


def test_same_inputs_same_output(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Deterministic: other hash seeds, another run, the same JSON and byte-identical stack files."""
    first, second = rightsize(project, "--stack", "demo", "--json", seed="1"), rightsize(project, "--stack", "demo",
                                                                                          "--json", seed="2")
    assert first.returncode == second.returncode == 0 and first.stdout == second.stdout
    other = tmp_path_factory.mktemp("again")
    for directory in (project, other):
        shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
        shutil.copy(ROOT / "Pulumi.demo.yaml", directory / "Pulumi.demo.yaml")
        assert rightsize(directory, "--stack", "demo", "--write", "d2", seed=str(len(str(directory)))).returncode == 0
    assert (project / "Pulumi.d2.yaml").read_bytes() == (other / "Pulumi.d2.yaml").read_bytes()


# ---- the search is exact: a brute force over the catalog agrees ---------------------------------

MIXED = """\
    config:
      aws:region: us-west-2
      hami-eks:clusterName: mixed
      hami-eks:nodeGroups:
        chat:  {instanceTypes: [g4dn.12xlarge], desiredSize: 1}
        batch: {instanceTypes: [g4dn.12xlarge], desiredSize: 1}
      hami-eks:services:
        - {name: chat, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, nodeGroup: chat, replicas: 2, gpumem: 7000,
           cpu: "1", memory: 4Gi, args: [--dtype, half, --max-model-len, "2048", --max-num-seqs, "2"]}
        - {name: batch, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, nodeGroup: batch, replicas: 1, gpumem: 7500,
           cpu: "6", memory: 40Gi, args: [--dtype, half, --max-model-len, "2048", --max-num-seqs, "2"]}
"""


def _brute_force_gpu_cost(project: Path, stack: str) -> float:
    """Every T4 type x every count up to the group's replicas, for both groups at once, each
    combination planned as a whole stack: the cheapest that plans clean (no bounds, no order)."""
    config = stackfiles.load_stack_config(project, stack)
    source = load_settings(config)
    t4_types = [it for it in catalog.INSTANCE_TYPES.values() if it.gpu is catalog.T4]
    per_group = []
    for group in source.node_groups:
        replicas = sum(s.replicas for s in source.services if s.node_group == group.name)
        per_group.append([(group.name, it, n) for it in t4_types for n in range(1, replicas + 1)])
    best = float("inf")
    for combination in itertools.product(*per_group):
        groups = {name: {"instanceTypes": [it.name], "desiredSize": n} for name, it, n in combination}
        gpu_cost = sum(n * it.price(source.region) for _, it, n in combination)
        if gpu_cost >= best:
            continue
        candidate = load_settings({**config, "hami-eks:nodeGroups": groups})
        plan = placement.plan(candidate)
        if plan.all_placed and plan.order_robust and not modelfit_report.misfits(modelfit_report.model_fits(candidate)):
            best = gpu_cost
    return best


def test_the_cheapest_answer_mixes_instance_sizes_and_matches_a_brute_force(project: Path) -> None:
    write_stack(project, "mixed", MIXED)
    doc = proposal_json(project, "--stack", "mixed")
    groups = doc["proposal"]["nodeGroups"]
    # Same GPU model, different host needs: one shape per group, so the groups differ in size.
    assert groups["chat"]["instanceTypes"] != groups["batch"]["instanceTypes"]
    region = settings_of(project, "mixed").region
    proposed_gpu_cost = sum(g["desiredSize"] * catalog.instance_type(g["instanceTypes"][0]).price(region)
                            for g in groups.values())
    assert proposed_gpu_cost == pytest.approx(_brute_force_gpu_cost(project, "mixed"))
    cheapest_cpu = min(it.price(region) for it in catalog.INSTANCE_TYPES.values() if not it.is_gpu)
    assert doc["proposal"]["systemNodeCount"] == 2
    assert catalog.instance_type(doc["proposal"]["systemInstanceType"]).price(region) == cheapest_cpu


# ---- no feasible answer: the reason is named ---------------------------------------------------

def test_a_slice_larger_than_every_allowed_gpu_is_explained(project: Path) -> None:
    write_stack(project, "wide", f"""\
        config:
          aws:region: us-west-2
          hami-eks:nodeGroups:
            big: {{instanceTypes: [g6.xlarge], desiredSize: 1}}
          hami-eks:services:
            - {{name: wide, model: {QWEN}, gpuType: "T4,L4", replicas: 1, gpumem: 20000, cpu: "1", memory: 4Gi,
               args: [--dtype, half, --max-model-len, "2048"]}}
        """)
    assert rightsize(project, "--stack", "wide").returncode == 0  # an L4 (23034 MiB) holds it
    result = rightsize(project, "--stack", "wide", "--allow-gpu-types", "T4")
    assert result.returncode == 1 and not result.stdout
    assert "node group big (wide)" in result.stderr
    assert "20000 MiB slice, more than a whole T4 (15360 MiB" in result.stderr
    assert "Traceback" not in result.stderr


def test_host_memory_no_instance_of_the_gpu_type_has_is_explained(project: Path) -> None:
    write_stack(project, "huge", f"""\
        config:
          aws:region: us-west-2
          hami-eks:nodeGroups:
            t4: {{instanceTypes: [g4dn.metal], desiredSize: 1}}
          hami-eks:services:
            - {{name: huge, model: {QWEN}, gpuType: T4, replicas: 1, gpumem: 7500, cpu: "1", memory: 400Gi,
               args: [--dtype, half, --max-model-len, "2048"]}}
        """)
    result = rightsize(project, "--stack", "huge")
    assert result.returncode == 1
    assert "requests 400Gi of host memory" in result.stderr
    t4_types = [name for name, it in catalog.INSTANCE_TYPES.items() if it.gpu is catalog.T4]
    assert all(name in result.stderr for name in t4_types)


def test_a_gpu_type_the_flag_excludes_is_explained(project: Path) -> None:
    result = rightsize(project, "--stack", "demo", "--allow-gpu-types", "T4,L4")
    assert result.returncode == 1
    assert "node group a10g" in result.stderr and "A10G" in result.stderr and "--allow-gpu-types" in result.stderr


# ---- flags and the stack file ------------------------------------------------------------------

def test_spot_capacity_is_set_and_its_price_called_an_upper_bound(project: Path) -> None:
    result = rightsize(project, "--stack", "lean", "--capacity", "SPOT", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {g["capacityType"] for g in doc["proposal"]["nodeGroups"].values()} == {"SPOT"}
    assert {g["capacityType"] for g in doc["current"]["nodeGroups"].values()} == {"ON_DEMAND"}
    assert "on-demand list price" in result.stderr and "upper bound" in result.stderr


def test_a_group_that_changes_gpu_model_keeps_its_services_pinned(project: Path) -> None:
    """Moving group y from T4 to L4 would make s1's gpuType 'L4' match two groups: the written
    stack pins s1 to the group it is in today, and still plans clean."""
    write_stack(project, "pin", f"""\
        config:
          aws:region: us-west-2
          hami-eks:nodeGroups:
            x: {{instanceTypes: [g6.xlarge], desiredSize: 1}}
            y: {{instanceTypes: [g4dn.xlarge], desiredSize: 1}}
          hami-eks:services:
            - {{name: s1, model: {QWEN}, gpuType: L4, replicas: 1, gpumem: 7500, cpu: "1", memory: 4Gi,
               args: [--dtype, half, --max-model-len, "2048"]}}
            - {{name: s2, model: {QWEN}, gpuType: "T4,L4", nodeGroup: y, replicas: 1, gpumem: 7500, cpu: "1",
               memory: 4Gi, args: [--dtype, half, --max-model-len, "2048"]}}
        """)
    result = rightsize(project, "--stack", "pin", "--allow-gpu-types", "L4", "--write", "pinned")
    assert result.returncode == 0, result.stderr
    pinned = settings_of(project, "pinned")
    assert {g.name: g.gpu.short for g in pinned.node_groups} == {"x": "L4", "y": "L4"}
    assert {s.name: s.node_group for s in pinned.services} == {"s1": "x", "s2": "y"}
    assert_plans_clean(pinned)


def test_secrets_are_not_copied_into_the_new_stack(project: Path) -> None:
    """A `secure:` value is encrypted for its own stack; copied, the new stack could not decrypt it."""
    lean = (project / "Pulumi.lean.yaml").read_text()
    (project / "Pulumi.lean.yaml").write_text("encryptionsalt: v1:c2FsdA==:v1:abc\n"
                                              + lean.replace("config:\n", "config:\n  hami-eks:hfToken:\n"
                                                                          "    secure: v1:Y2lwaGVy\n", 1))
    assert rightsize(project, "--stack", "lean", "--write", "copy").returncode == 0
    text = (project / "Pulumi.copy.yaml").read_text()
    assert "v1:Y2lwaGVy" not in text and "encryptionsalt" not in text
    assert "hami-eks:hfToken" in text.split("config:")[0]  # named in the header, to be set again
    assert not settings_of(project, "copy").hf_token_configured


@pytest.mark.parametrize("args, message", [
    (["--stack", "nope"], "no stack file Pulumi.nope.yaml"),
    (["--stack", "demo", "--allow-gpu-types", "X100"], "--allow-gpu-types: X100"),
    (["--stack", "demo", "--write", "../escape"], "--write: '../escape' is not a stack name"),
    (["--stack", "demo", "--write", "lean"], "Pulumi.lean.yaml exists"),
])
def test_unreadable_stacks_and_bad_flags_exit_2(project: Path, args: list[str], message: str) -> None:
    before = (project / "Pulumi.lean.yaml").read_bytes()
    result = rightsize(project, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert (project / "Pulumi.lean.yaml").read_bytes() == before


def test_force_replaces_an_existing_stack_file(project: Path) -> None:
    (project / "Pulumi.old.yaml").write_text("config: {}\n")
    assert rightsize(project, "--stack", "demo", "--write", "old").returncode == 2
    assert rightsize(project, "--stack", "demo", "--write", "old", "--force").returncode == 0
    assert_plans_clean(settings_of(project, "old"))


def test_text_report_shows_both_stacks_side_by_side(project: Path) -> None:
    result = rightsize(project, "--stack", "demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "current" in line and "proposal" in line)
    assert header.index("current") < header.index("proposal")
    for label in ("t4 nodes", "a10g nodes", "system nodes", "GPUs", "GPU memory allocated", "$/hour", "$/month"):
        assert any(line.strip().startswith(label) for line in lines), label
    hour = next(line for line in lines if line.strip().startswith("$/hour"))
    assert f"${hourly(settings_of(project, 'demo')):.4f}" in hour
