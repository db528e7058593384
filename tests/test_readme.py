"""The README is the front door: what it states about keys, outputs, commands and plans is
checked against the code that produces them, so it cannot quietly go stale."""

from __future__ import annotations

import re

import pytest

from hamieks import placement, settings as settings_mod, stackfiles
from pulumi_harness import REPO, run_program

README = (REPO / "README.md").read_text()


def _plan(stack: str, services=None) -> placement.Plan:
    return placement.plan(settings_mod.load_settings(stackfiles.load_stack_config(REPO, stack)), services)


def test_the_two_commands_and_ci_use_the_makefile():
    assert "make up" in README and "make test" in README
    makefile = (REPO / "Makefile").read_text()
    for target in ("up", "test", "plan", "render", "bench", "destroy"):
        assert re.search(rf"^{target}:", makefile, re.M), target
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
    assert set(re.findall(r"^\| `([\w-]+)` \|", section, re.M)) == set(stackfiles.available_stacks(REPO))


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
    for (name, node_policy, gpu_policy, predicted), service in zip(rows, policies):
        assert (node_policy, gpu_policy) == (service["nodeSchedulerPolicy"], service["gpuSchedulerPolicy"])
        plan = _plan("policies", [name])
        expected = "; ".join(f"{g.node} GPU {g.index}: {', '.join(g.pods)}" for g in plan.gpus if g.pods)
        assert predicted == expected, name
