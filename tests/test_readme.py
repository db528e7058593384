"""The README is the front door: what it states about keys, outputs, commands and plans is
checked against the code that produces them, so it cannot quietly go stale."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import SHIPPED_STACKS
from pulumi_harness import REPO, run_program

from hamieks.config import settings as settings_mod
from hamieks.config import stackfiles
from hamieks.scheduling import placement

README = (REPO / "README.md").read_text()


def _plan(stack: str, services=None) -> placement.Plan:
    return placement.plan(settings_mod.load_settings(stackfiles.load_stack_config(REPO, stack)), services)


def test_the_two_commands_and_ci_use_the_makefile():
    assert "make up" in README and "make test" in README
    makefile = (REPO / "Makefile").read_text()
    targets = {name for line in re.findall(r"^([\w .-]+):(?!=)", makefile, re.M) for name in line.split()}
    assert targets >= {"up", "test", "plan", "render", "bench", "destroy", "preview", "venv"}
    assert "make test" in (REPO / ".ci/run").read_text()


def test_every_config_key_is_documented():
    for key in settings_mod.CONFIG_KEYS:
        assert re.search(rf"`hami-eks:{key.name}`|/ `{key.name}`", README), key.name
    for key in settings_mod.STRUCTURED_KEYS:
        assert f"`hami-eks:{key}`" in README


def test_every_stack_output_is_documented():
    outputs = run_program("demo").outputs
    section = README.split("## Stack outputs", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`(\w+)`", section)) >= set(outputs)


def test_every_shipped_stack_is_listed():
    section = README.split("## Stacks", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([\w-]+)` \|", section, re.M)) == set(SHIPPED_STACKS)


@pytest.mark.parametrize("stack", ["demo", "lean"])
def test_demo_vs_lean_figures_are_the_planners(stack):
    plan = _plan(stack)
    assert f"${plan.estimated_hourly_cost_usd:.4f}" in README
    assert f"{plan.allocated_mib} of {plan.total_mib} MiB ({plan.gpu_memory_allocation:.1%})" in README


def test_lean_meets_its_targets():
    demo, lean = _plan("demo"), _plan("lean")
    assert lean.all_placed and lean.gpu_memory_allocation >= 0.85
    assert lean.estimated_hourly_cost_usd <= 0.30 * demo.estimated_hourly_cost_usd
    share = lean.estimated_hourly_cost_usd / demo.estimated_hourly_cost_usd
    assert f"({share:.1%} of demo)" in README


def test_policy_table_rows_are_the_planners_predictions():
    policies = stackfiles.load_stack_config(REPO, "policies")["hami-eks:services"]
    rows = re.findall(r"^\| (demo-\w) \| (\w+) \| (\w+) \| (.+?) — .+ \|$", README, re.M)
    assert [r[0] for r in rows] == [s["name"] for s in policies]
    for (name, node_policy, gpu_policy, predicted), service in zip(rows, policies, strict=True):
        assert (node_policy, gpu_policy) == (service["nodeSchedulerPolicy"], service["gpuSchedulerPolicy"])
        plan = _plan("policies", [name])
        expected = "; ".join(f"{g.node} GPU {g.index}: {', '.join(g.pods)}" for g in plan.gpus if g.pods)
        assert predicted == expected, name


def test_the_example_plan_table_is_the_clis_output():
    """README's `plan --service demo-b` example, line for line (the table part)."""
    example = README.split("$ hami-eks plan --stack policies --service demo-b\n", 1)[1].split("...\n", 1)[0]
    printed = subprocess.run([sys.executable, "-m", "hamieks", "plan", "--stack", "policies", "--service", "demo-b"],
                             cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    assert example.strip() and example in printed


EXAMPLE_STACKS = {
    # README: "a stack asking for 3 replicas of 7500 MiB on one g4dn.xlarge"
    "tight": """\
        config:
          hami-eks:nodeGroups:
            t4: {instanceTypes: [g4dn.xlarge], desiredSize: 1, minSize: 1, maxSize: 1}
          hami-eks:services:
            - {name: vllm-x, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 3, gpumem: 7500, cpu: "1", memory: 2Gi}
        """,
    # README: "One 4x T4 node, 4 replicas of 8000 MiB and 4 of 7360 MiB"
    "scarce": """\
        config:
          hami-eks:nodeGroups:
            t4: {instanceTypes: [g4dn.12xlarge], desiredSize: 1, minSize: 1, maxSize: 1}
          hami-eks:services:
            - {name: big, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 4, gpumem: 8000, cpu: "1", memory: 4Gi}
            - {name: small, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 4, gpumem: 7360, cpu: "1", memory: 4Gi}
        """,
}


@pytest.mark.parametrize("stack", sorted(EXAMPLE_STACKS))
def test_failure_examples_are_the_clis_words(stack, tmp_path):
    """Every line README shows under `$ hami-eks plan --stack <example>` is what the CLI prints."""
    import shutil
    import textwrap
    shutil.copy(REPO / "Pulumi.yaml", tmp_path)
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(textwrap.dedent(EXAMPLE_STACKS[stack]))
    printed = subprocess.run([sys.executable, "-m", "hamieks", "plan", "--stack", stack, "--project-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 1
    block = README.split(f"$ hami-eks plan --stack {stack}", 1)[1].split("```", 1)[0]
    shown = [line for line in block.splitlines()[1:] if line.strip() and line != "..."]
    assert shown and all(line in printed.stdout for line in shown), printed.stdout


def test_default_host_requests_table_is_the_allocatable_models():
    """README's "servers with the default 2 CPU / 16Gi" column, from hamieks/scheduling/allocatable.py."""
    from hamieks import catalog
    from hamieks.config import quantity
    from hamieks.config.services import ServiceSettings
    from hamieks.scheduling import allocatable
    cpu = quantity.cpu_millis(ServiceSettings.cpu)
    memory = quantity.mebibytes(ServiceSettings.memory)
    rows = re.findall(r"^\| ((?:g[\w.]+(?:, )?)+) \| \d+ / \d+ \| (\d+)", README, re.M)
    assert len(rows) == 5
    for names, count in rows:
        for name in names.split(", "):
            it = catalog.instance_type(name)
            fits = min(allocatable.cpu_millis(it) // cpu, int(allocatable.memory_mib(it) // memory),
                       allocatable.max_pods(it))
            assert fits == int(count), name


def test_rightsize_example_is_the_clis_output():
    printed = subprocess.run([sys.executable, "-m", "hamieks", "rightsize", "--stack", "demo"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    block = README.split("$ hami-eks rightsize --stack demo\n", 1)[1].split("```", 1)[0]
    shown = [line for line in block.splitlines() if line.strip()]
    assert len(shown) >= 8 and all(line in printed.stdout for line in shown), printed.stdout
