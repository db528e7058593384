"""`python -m hamieks plan` as a user runs it: a subprocess, real stack files, real exit codes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hamieks import catalog

ROOT = Path(__file__).resolve().parent.parent


def plan(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hamieks", "plan", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def plan_json(*args: str) -> tuple[int, dict]:
    result = plan(*args, "--json")
    return result.returncode, json.loads(result.stdout)


def check_schema(doc: dict) -> None:
    """Issue 4's JSON plus issue 8's orderRobust/counterexample and issue 20's orderCheck, key for
    key and type for type."""
    # "models" is the model-fit check's (hamieks/modelfit), added by the command, not by the plan.
    assert set(doc) - {"models"} == {"stack", "gpus", "placements", "unschedulable", "gpuMemoryAllocation",
                                     "estimatedHourlyCostUsd", "orderRobust", "orderCheck", "counterexample"}
    assert isinstance(doc["stack"], str)
    assert isinstance(doc["orderRobust"], bool)
    assert set(doc["orderCheck"]) == {"method", "ordersTried", "statesVisited"}
    assert doc["orderCheck"]["method"] in ("exhaustive", "sampled")
    example = doc["counterexample"]
    if example is not None:
        assert set(example) == {"order", "ties", "unschedulable"}
        assert example["order"] and all(isinstance(pod, str) for pod in example["order"])
        assert example["unschedulable"]
        for u in example["unschedulable"]:
            assert {k: type(v) for k, v in u.items()} == {"service": str, "replica": int, "reason": str}
    assert isinstance(doc["gpuMemoryAllocation"], float) and isinstance(doc["estimatedHourlyCostUsd"], float)
    gpu_types = {"node": str, "nodeGroup": str, "instanceType": str, "index": int, "model": str,
                 "memoryMiB": int, "allocatedMiB": int, "pods": list}
    for gpu in doc["gpus"]:
        assert {k: type(v) for k, v in gpu.items()} == gpu_types
        assert all(isinstance(p, str) for p in gpu["pods"])
    for p in doc["placements"]:
        assert {k: type(v) for k, v in p.items()} == {"service": str, "replica": int, "node": str, "gpu": int,
                                                      "memoryMiB": int}
    for u in doc["unschedulable"]:
        assert {k: type(v) for k, v in u.items()} == {"service": str, "replica": int, "reason": str}


def test_demo_json_shows_the_reference_result():
    code, doc = plan_json("--stack", "demo")
    assert code == 0
    check_schema(doc)
    assert doc["stack"] == "demo" and doc["unschedulable"] == []
    t4 = [p for p in doc["placements"] if p["service"] == "vllm-t4-qwen25-1-5b"]
    assert len({(p["node"], p["gpu"]) for p in t4}) == 1 and [p["memoryMiB"] for p in t4] == [7500, 7500]
    a10g = [p for p in doc["placements"] if p["service"].startswith("vllm-a10g")]
    assert len({(p["node"], p["gpu"]) for p in a10g}) == 1
    assert [p["memoryMiB"] for p in a10g] == [math.floor(catalog.A10G.memory_mib * 0.45)] * 2
    # Every pod named in a GPU's list is a placement on that GPU, named <service>-<replica>.
    on_gpus = {(g["node"], g["index"], pod) for g in doc["gpus"] for pod in g["pods"]}
    assert on_gpus == {(p["node"], p["gpu"], f"{p['service']}-{p['replica']}") for p in doc["placements"]}
    assert {g["node"] for g in doc["gpus"]} == {"t4-1", "a10g-1"}
    assert doc["orderRobust"] is True and doc["counterexample"] is None


def test_demo_table_for_people():
    result = plan("--stack", "demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "MiB used/total" in out
    assert "15000/15360" in out  # the shared T4: 2 x 7500
    assert f"{2 * (catalog.A10G.memory_mib * 45 // 100)}/{catalog.A10G.memory_mib}" in out
    assert "Replicas placed: 4 of 4" in out
    assert f"prices as of {catalog.PRICES_AS_OF}" in out
    assert "/hour in us-west-2" in out
    assert "Every replica placed: yes, in every possible arrival order" in out
    assert "Which services share a GPU: the same in every order tried" in out


def test_lean_meets_its_targets_against_demo():
    code_demo, demo = plan_json("--stack", "demo")
    code_lean, lean = plan_json("--stack", "lean")
    assert (code_demo, code_lean) == (0, 0)
    assert lean["unschedulable"] == []
    assert lean["gpuMemoryAllocation"] >= 0.85
    assert lean["estimatedHourlyCostUsd"] <= 0.30 * demo["estimatedHourlyCostUsd"]
    assert len(lean["gpus"]) < len(demo["gpus"])


@pytest.mark.parametrize("services, expected_pods", [
    (["demo-a"], 4),
    (["demo-b", "demo-d"], 8),
])
def test_service_filter_plans_only_those(services, expected_pods):
    args = [a for s in services for a in ("--service", s)]
    code, doc = plan_json("--stack", "policies", *args)
    assert code == 0
    assert {p["service"] for p in doc["placements"]} == set(services)
    assert len(doc["placements"]) == expected_pods


def test_unplaceable_replica_exits_1_with_its_reason(project):
    # One T4 (15360 MiB) cannot hold three 7500 MiB slices: the third replica has no room.
    path = project("tight", """\
        config:
          aws:region: us-east-1
          hami-eks:nodeGroups:
            t4: {instanceTypes: [g4dn.xlarge], desiredSize: 1, minSize: 1, maxSize: 1}
          hami-eks:services:
            - {name: vllm-x, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 3, gpumem: 7500,
               cpu: "1", memory: 4Gi}
        """)
    result = plan("--stack", "tight", "--json", "--project-dir", str(path))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    check_schema(doc)
    assert [(u["service"], u["replica"]) for u in doc["unschedulable"]] == [("vllm-x", 3)]
    assert "vllm-x" in doc["unschedulable"][0]["reason"]

    human = plan("--stack", "tight", "--project-dir", str(path))
    assert human.returncode == 1
    assert "vllm-x replica 3:" in human.stdout and "allowUnschedulable" in human.stdout


@pytest.mark.parametrize("body, message", [
    ("""\
        config:
          hami-eks:services:
            - {name: x, model: org/m, gpuType: T4, replicas: 1, gpumemPercentage: 150}
        """, "gpumemPercentage"),
])
def test_bad_stack_exits_2_naming_the_problem(project, body, message):
    path = project("bad", body)
    result = plan("--stack", "bad", "--project-dir", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_plan_json_is_the_same_in_processes_with_different_hash_seeds():
    """Set and dict iteration order differ between interpreters with different hash seeds; a
    plan that leaned on it would change between `plan` and `pulumi up`."""
    outputs = set()
    for seed in ("0", "1", "4242"):
        result = subprocess.run([sys.executable, "-m", "hamieks", "plan", "--stack", "policies", "--json"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_a_region_without_prices_is_planned_and_says_cost_is_unknown(project):
    path = project("north", """\
        config:
          aws:region: eu-north-1
          hami-eks:clusterName: north
        """)
    human = plan("--stack", "north", "--project-dir", str(path))
    assert human.returncode == 0, human.stderr
    assert "Replicas placed: 4 of 4" in human.stdout
    assert "cost unknown: no recorded prices for eu-north-1" in human.stdout
    doc = json.loads(plan("--stack", "north", "--project-dir", str(path), "--json").stdout)
    assert doc["estimatedHourlyCostUsd"] is None and len(doc["placements"]) == 4


@pytest.mark.parametrize("args, message", [
    (["--stack", "nope"], "no stack file Pulumi.nope.yaml"),
    (["--stack", "demo", "--service", "nope"], "no service named nope"),
])
def test_unknown_stack_or_service_exits_2(args, message):
    result = plan(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_an_order_dependent_plan_exits_1_with_its_counterexample(project):
    # Issue 8's example: one 4xT4 node, 4 x 8000 MiB and 4 x 7360 MiB. All fit in stack order;
    # if the 7360s arrive first they pair up (GPU binpack) and two 8000s stay Pending.
    path = project("scarce", """\
        config:
          aws:region: us-west-2
          hami-eks:nodeGroups:
            t4: {instanceTypes: [g4dn.12xlarge], desiredSize: 1, minSize: 1, maxSize: 1}
          hami-eks:services:
            - {name: big, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 4, gpumem: 8000,
               cpu: "1", memory: 4Gi}
            - {name: small, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 4, gpumem: 7360,
               cpu: "1", memory: 4Gi}
        """)
    result = plan("--stack", "scarce", "--json", "--project-dir", str(path))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    check_schema(doc)
    assert doc["unschedulable"] == [] and len(doc["placements"]) == 8
    assert doc["orderRobust"] is False
    assert [(u["service"], u["replica"]) for u in doc["counterexample"]["unschedulable"]] == [("big", 3), ("big", 4)]

    human = plan("--stack", "scarce", "--project-dir", str(path))
    assert human.returncode == 1
    assert "Replicas placed: 8 of 8" in human.stdout
    assert "Every replica placed: only in some arrival orders" in human.stdout
    assert "depending on the order" in human.stdout and "`nodeGroup`" in human.stdout
