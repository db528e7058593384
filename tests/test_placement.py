"""The HAMi placement simulator against HAMi's own rules.

Expected values are worked out here from the rules (DESIGN.md §3, HAMi's pkg/scheduler) and the
catalog's registered GPU memory, never copied from the planner's output. Pods always come from
`workloads.deployment` (the one source of truth); a test that needs a pod the settings cannot
express edits that Deployment, the way a user editing a rendered manifest would.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
from helpers import group, stack, stack_settings, svc

from hamieks import catalog, hami
from hamieks.config.conventions import GPU_TAINT
from hamieks.errors import ConfigError
from hamieks.hami import DEVICE_SPLIT_COUNT
from hamieks.kube import workloads
from hamieks.scheduling import allocatable, placement, placement_report

ROOT = Path(__file__).resolve().parent.parent
T4_MIB = catalog.T4.memory_mib  # 15360, as HAMi registers it
A10G_MIB = catalog.A10G.memory_mib  # 23028


# ---- helpers: stacks through the real settings loader ------------------------------------------

def deployment_of(settings, service_name: str) -> dict:
    service = next(s for s in settings.services if s.name == service_name)
    return copy.deepcopy(workloads.deployment(settings, service))


def container_limits(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def annotations(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["annotations"]


def run(settings, *deployments):
    """Simulate the given (possibly edited) Deployments on the stack's nodes."""
    pods = [placement.pod_request(d) for d in deployments]
    return placement.simulate(placement.nodes_from_settings(settings), pods)


def where(result) -> dict[str, tuple[str, int]]:
    return {f"{p.service}-{p.replica}": (p.node, p.gpu) for p in result.placements}


# ---- the reference demo -------------------------------------------------------------------------

def test_demo_colocates_both_pairs_with_the_memory_each_pod_sees():
    plan = placement.plan(stack_settings("demo"))
    assert plan.unschedulable == ()
    by_service: dict[str, list] = {}
    for p in plan.placements:
        by_service.setdefault(p.service, []).append(p)

    t4 = by_service["vllm-t4-qwen25-1-5b"]
    assert len(t4) == 2
    assert {(p.node, p.gpu) for p in t4} == {(t4[0].node, t4[0].gpu)}  # one physical T4
    assert [p.memory_mib for p in t4] == [7500, 7500]  # gpumem is the cap, in MiB

    a10g = by_service["vllm-a10g-mistral7b-awq"] + by_service["vllm-a10g-qwen25-7b-awq"]
    assert len({(p.node, p.gpu) for p in a10g}) == 1  # 45% + 45% < 100%: one A10G
    expected = math.floor(A10G_MIB * 45 / 100)
    assert expected == 10362
    assert [p.memory_mib for p in a10g] == [expected, expected]


def test_demo_allocation_and_cost_follow_from_the_catalog():
    settings = stack_settings("demo")
    plan = placement.plan(settings)
    allocated = 2 * 7500 + 2 * (A10G_MIB * 45 // 100)
    provisioned = 4 * T4_MIB + 4 * A10G_MIB  # g4dn.12xlarge and g5.12xlarge carry 4 GPUs each
    assert plan.allocated_mib == allocated
    assert plan.total_mib == provisioned
    assert plan.gpu_memory_allocation == pytest.approx(allocated / provisioned, abs=1e-4)

    price = lambda name: catalog.instance_type(name).price("us-west-2")  # noqa: E731
    expected = (price("g4dn.12xlarge") + price("g5.12xlarge") + 2 * price("m6i.large")
                + catalog.EKS_CONTROL_PLANE_USD_PER_HOUR + catalog.NAT_GATEWAY_USD_PER_HOUR)
    assert plan.estimated_hourly_cost_usd == pytest.approx(expected, abs=1e-4)


# ---- memory keys ------------------------------------------------------------------------------

@pytest.mark.parametrize("instance_type, percentage, expected", [
    ("g4dn.xlarge", 33, 5068),   # 15360 * 0.33 = 5068.8 -> floor
    ("g5.xlarge", 45, 10362),    # 23028 * 0.45 = 10362.6
    ("g6.xlarge", 10, 2303),     # 23034 * 0.10 = 2303.4
    ("g5.xlarge", 1, 230),       # 230.28
    ("g4dn.xlarge", 100, 15360),
])
def test_percentage_is_the_floor_of_the_registered_memory(instance_type, percentage, expected):
    gpu_type = catalog.instance_type(instance_type).gpu.short
    settings = stack({"g": group(instance_type)}, [svc("p", gpu_type, gpumemPercentage=percentage)])
    plan = placement.plan(settings)
    assert [p.memory_mib for p in plan.placements] == [expected]


def test_gpumem_wins_over_percentage():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("both", gpumem=7500)])
    dep = deployment_of(settings, "both")
    container_limits(dep)[hami.RESOURCE_GPUMEM_PERCENTAGE] = "90"
    result = run(settings, dep)
    assert [p.memory_mib for p in result.placements] == [7500]


def test_no_memory_key_takes_the_whole_gpu_exclusively():
    settings = stack({"t4": group("g4dn.12xlarge")}, [svc("whole", replicas=5)])
    dep = deployment_of(settings, "whole")
    del container_limits(dep)[hami.RESOURCE_GPUMEM]
    result = run(settings, dep)
    # 100% memory and all cores: one replica per GPU, so 4 GPUs take 4 of the 5 replicas.
    assert [p.memory_mib for p in result.placements] == [T4_MIB] * 4
    assert len({p.gpu for p in result.placements}) == 4
    assert [u.replica for u in result.unschedulable] == [5]
    # HAMi checks memory before exclusivity: every GPU has 0 of the 15360 MiB the fifth needs.
    assert f"4 have less than the {T4_MIB} MiB it needs free (most free: 0 MiB)" in result.unschedulable[0].reason


def test_exclusive_pod_cannot_join_a_gpu_that_has_a_small_pod():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("small", gpumem=100), svc("whole")])
    small = deployment_of(settings, "small")
    whole = deployment_of(settings, "whole")
    del container_limits(whole)[hami.RESOURCE_GPUMEM]
    result = run(settings, small, whole)
    assert where(result) == {"small-1": ("t4-1", 0)}
    assert [u.service for u in result.unschedulable] == ["whole"]


@pytest.mark.parametrize("cores_a, cores_b, share", [
    (50, 50, True),    # 50 + 50 <= 100
    (60, 50, False),   # 60 + 50 > 100 cores, though memory would fit
    (100, None, False),  # a to-the-brim GPU takes no pod that asks for no cores
    (None, 100, False),  # gpucores 100 is exclusive: the GPU must be empty
    (30, None, True),
])
def test_gpucores_limit_sharing(cores_a, cores_b, share):
    a = svc("a", gpumem=1000, **({"gpucores": cores_a} if cores_a else {}))
    b = svc("b", gpumem=1000, **({"gpucores": cores_b} if cores_b else {}))
    settings = stack({"t4": group("g4dn.xlarge")}, [a, b])  # one GPU only
    plan = placement.plan(settings)
    assert (len(plan.placements) == 2) is share
    if not share:
        assert [u.service for u in plan.unschedulable] == ["b"]


def test_at_most_device_split_count_pods_per_gpu():
    replicas = DEVICE_SPLIT_COUNT + 1
    settings = stack({"t4": group("g4dn.xlarge")},
                     [svc("tiny", replicas=replicas, gpumem=100, cpu="100m", memory="128Mi")])
    plan = placement.plan(settings)
    assert DEVICE_SPLIT_COUNT == 10
    assert len(plan.placements) == 10  # 11 x 100 MiB fit by memory; the 11th has no slot
    assert [u.replica for u in plan.unschedulable] == [replicas]
    assert "10 pods" in plan.unschedulable[0].reason


def test_memory_exhaustion_reason_names_the_free_memory():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("big", replicas=3, gpumem=7500, cpu="1", memory="4Gi")])
    plan = placement.plan(settings)
    assert len(plan.placements) == 2
    reason = plan.unschedulable[0].reason
    assert plan.unschedulable[0].replica == 3
    assert f"most free: {T4_MIB - 2 * 7500} MiB" in reason  # 360 MiB left on the only T4
    assert reason.startswith("big ")


def test_request_larger_than_any_gpu():
    settings = stack({"t4": group("g4dn.12xlarge")}, [svc("vllm-x", gpumem=7500)])
    dep = deployment_of(settings, "vllm-x")
    container_limits(dep)[hami.RESOURCE_GPUMEM] = "20000"  # settings refuse it; a hand edit does not
    result = run(settings, dep)
    assert result.placements == ()
    assert result.unschedulable[0].reason == f"vllm-x needs 20000 MiB; the largest T4 has {T4_MIB}"


# ---- type filters -------------------------------------------------------------------------------

@pytest.mark.parametrize("use, registered, allowed", [
    ("T4", "NVIDIA-Tesla T4", True),
    ("t4", "NVIDIA-Tesla T4", True),                       # case-insensitive
    ("A10", "NVIDIA A100-SXM4-40GB", True),                # the trap: a substring of A100
    ("A10G", "NVIDIA A100-SXM4-40GB", False),
    ("L4", "NVIDIA L40S", True),                           # L4 also matches L40S
    ("", "NVIDIA-Tesla T4", True),                         # devices.go CheckType: empty = no constraint
    ("  ", "NVIDIA A10G", True),
    ("V100,T4", "NVIDIA-Tesla T4", True),                  # a comma list: any entry
    ("H100", "NVIDIA-Tesla T4", False),
])
def test_use_gputype_is_a_case_insensitive_substring_list(use, registered, allowed):
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("s")])
    dep = deployment_of(settings, "s")
    annotations(dep)[hami.ANNOTATION_USE_GPUTYPE] = use
    assert placement.gpu_type_allowed(placement.pod_request(dep), registered) is allowed


def test_a10_lands_on_an_a100_node_when_that_comes_first():
    settings = stack({"a100": group("p4d.24xlarge"), "a10g": group("g5.xlarge")},
                     [svc("x", "A10", nodeGroup="a100", cpu="1", memory="4Gi")])
    dep = deployment_of(settings, "x")
    del dep["spec"]["template"]["spec"]["nodeSelector"]  # only HAMi's type filter decides now
    result = run(settings, dep)
    # Both nodes pass "A10"; both are empty, so the node tie goes to the first in settings order.
    assert [p.node for p in result.placements] == ["a100-1"]


def test_nouse_gputype_excludes_a_model():
    settings = stack({"a100": group("p4d.24xlarge"), "a10g": group("g5.xlarge")},
                     [svc("x", "A10G", cpu="1", memory="4Gi")])
    dep = deployment_of(settings, "x")
    del dep["spec"]["template"]["spec"]["nodeSelector"]
    del annotations(dep)[hami.ANNOTATION_USE_GPUTYPE]
    annotations(dep)[hami.ANNOTATION_NOUSE_GPUTYPE] = "a100"
    result = run(settings, dep)
    assert [p.node for p in result.placements] == ["a10g-1"]

    annotations(dep)[hami.ANNOTATION_NOUSE_GPUTYPE] = "A100,a10g"
    result = run(settings, dep)
    assert result.placements == ()
    assert "nouse-gputype 'A100,a10g'" in result.unschedulable[0].reason


def test_type_mismatch_is_reported_with_what_the_nodes_register():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    annotations(dep)[hami.ANNOTATION_USE_GPUTYPE] = "H100"
    result = run(settings, dep)
    assert result.placements == ()
    assert "use-gputype 'H100'" in result.unschedulable[0].reason
    assert catalog.T4.registered_type in result.unschedulable[0].reason


# ---- kube-scheduler filters: nodeSelector, taints, CPU/memory ------------------------------------

def test_nodes_carry_the_group_labels_and_gpu_taint():
    settings = stack({"t4": {**group("g4dn.xlarge", 2), "labels": {"team": "ml"}}}, [svc("x")])
    nodes = placement.nodes_from_settings(settings)
    assert [n.name for n in nodes] == ["t4-1", "t4-2"]
    assert nodes[0].labels["accelerator"] == "t4" and nodes[0].labels["gpu"] == "on"
    assert nodes[0].labels["team"] == "ml"
    assert list(nodes[0].taints) == [GPU_TAINT.as_dict()]


def test_node_group_with_no_nodes_fails_the_node_selector():
    settings = stack({"t4": group("g4dn.xlarge", 0), "a10g": group("g5.xlarge", 1)}, [svc("x", "T4")])
    plan = placement.plan(settings)
    assert plan.placements == ()
    assert plan.unschedulable[0].reason.startswith("no node matches nodeSelector accelerator=t4")


def test_edited_node_selector_matches_no_node():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    dep["spec"]["template"]["spec"]["nodeSelector"] = {"accelerator": "h100"}
    result = run(settings, dep)
    assert "no node matches nodeSelector accelerator=h100" in result.unschedulable[0].reason


def test_pod_without_the_toleration_is_kept_off_gpu_nodes():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    dep["spec"]["template"]["spec"]["tolerations"] = []
    result = run(settings, dep)
    assert result.placements == ()
    assert "nvidia.com/gpu=present:NoSchedule" in result.unschedulable[0].reason


@pytest.mark.parametrize("toleration, tolerated", [
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
    ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),              # any effect
    ({"operator": "Exists"}, True),                                       # empty key + Exists: every taint
    ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, True),  # Equal is the default
    ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent"}, False),
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "dedicated", "operator": "Exists"}, False),
])
def test_toleration_rules(toleration, tolerated):
    assert placement.tolerates([toleration], GPU_TAINT.as_dict()) is tolerated


def test_pod_larger_than_the_node_is_refused():
    # 16Gi of requested host memory cannot fit a 16 GiB instance once anything is reserved.
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("fat", cpu="2", memory="16Gi")])
    plan = placement.plan(settings)
    assert plan.placements == ()
    assert "allocatable" in plan.unschedulable[0].reason and "g4dn.xlarge" in plan.unschedulable[0].reason


def test_host_memory_of_the_pods_on_a_node_must_fit_together():
    # Each replica fits the GPU (3 x 4000 MiB < 15360) but 3 x 6 GiB > the 16 GiB of RAM.
    settings = stack({"t4": group("g4dn.xlarge")},
                     [svc("m", replicas=3, gpumem=4000, cpu="1", memory="6Gi")])
    plan = placement.plan(settings)
    assert len(plan.placements) == 2
    assert plan.unschedulable[0].replica == 3
    assert "no CPU/memory left" in plan.unschedulable[0].reason


# ---- policies -----------------------------------------------------------------------------------

def policies_plan(service: str):
    return placement.plan(stack_settings("policies"), [service])


# Two g4dn.12xlarge nodes, 4 T4s each; 4 replicas of 7500 MiB, so two fit one T4 (15000 <= 15360).
# Node binpack takes the busiest node, spread the idlest; GPU binpack the busiest GPU, spread the
# idlest. Ties follow our convention (first node, highest GPU index); HAMi breaks them at random.
@pytest.mark.parametrize("service, expected", [
    # binpack/binpack: everything on t4-1, two per GPU, filling GPU 3 then GPU 2.
    ("demo-a", {"demo-a-1": ("t4-1", 3), "demo-a-2": ("t4-1", 3), "demo-a-3": ("t4-1", 2), "demo-a-4": ("t4-1", 2)}),
    # node spread, GPU binpack: alternate nodes, pairing up on each node's GPU 3.
    ("demo-b", {"demo-b-1": ("t4-1", 3), "demo-b-2": ("t4-2", 3), "demo-b-3": ("t4-1", 3), "demo-b-4": ("t4-2", 3)}),
    # node binpack, GPU spread: all on t4-1, one per GPU.
    ("demo-c", {"demo-c-1": ("t4-1", 3), "demo-c-2": ("t4-1", 2), "demo-c-3": ("t4-1", 1), "demo-c-4": ("t4-1", 0)}),
    # spread/spread: alternate nodes, each replica on an idle GPU.
    ("demo-d", {"demo-d-1": ("t4-1", 3), "demo-d-2": ("t4-2", 3), "demo-d-3": ("t4-1", 2), "demo-d-4": ("t4-2", 2)}),
])
def test_reference_binpack_spread_combinations(service, expected):
    assert where(policies_plan(service)) == expected


def test_policies_stack_mirrors_the_reference_annotations():
    settings = stack_settings("policies")
    wanted = {"demo-a": ("binpack", "binpack"), "demo-b": ("spread", "binpack"),
              "demo-c": ("binpack", "spread"), "demo-d": ("spread", "spread")}
    for service in settings.services:
        notes = annotations(workloads.deployment(settings, service))
        assert (notes[hami.ANNOTATION_NODE_POLICY], notes[hami.ANNOTATION_GPU_POLICY]) == wanted[service.name]
        assert (service.replicas, service.gpumem) == (4, 7500)
    assert [(g.instance_types, g.desired_size) for g in settings.node_groups] == [(("g4dn.12xlarge",), 2)]


def test_hami_defaults_apply_without_annotations():
    settings = stack({"t4": group("g4dn.12xlarge", 2)}, [svc("x", replicas=2, gpumem=1000)])
    dep = deployment_of(settings, "x")
    for key in (hami.ANNOTATION_NODE_POLICY, hami.ANNOTATION_GPU_POLICY):
        annotations(dep).pop(key, None)
    # Default node binpack keeps both on t4-1; default GPU spread gives each its own GPU.
    assert where(run(settings, dep)) == {"x-1": ("t4-1", 3), "x-2": ("t4-1", 2)}

    annotations(dep)[hami.ANNOTATION_GPU_POLICY] = "sideways"  # unknown: HAMi keeps its default
    assert where(run(settings, dep)) == {"x-1": ("t4-1", 3), "x-2": ("t4-1", 2)}


@pytest.mark.parametrize("node_policy, expected", [
    ("binpack", ["t4-1", "t4-1", "t4-2"]),  # fill the busier node while its T4 has room
    ("spread", ["t4-1", "t4-2", "t4-1"]),
])
def test_node_policy_across_single_gpu_nodes(node_policy, expected):
    settings = stack({"t4": group("g4dn.2xlarge", 2)},
                     [svc("x", replicas=3, gpumem=7500, nodeSchedulerPolicy=node_policy, cpu="1", memory="4Gi")])
    assert [p.node for p in placement.plan(settings).placements] == expected


def test_gpu_binpack_prefers_the_busier_gpu_even_from_another_service():
    settings = stack({"t4": group("g4dn.12xlarge")},
                     [svc("a", gpumem=4000), svc("b", gpumem=4000, gpuSchedulerPolicy="binpack"),
                      svc("c", gpumem=4000, gpuSchedulerPolicy="spread")])
    placed = where(placement.plan(settings))
    assert placed["b-1"] == placed["a-1"]  # binpack joins the used GPU
    assert placed["c-1"] != placed["a-1"]  # spread takes an idle one


# ---- plan API, output and messages --------------------------------------------------------------

def test_pods_are_read_from_the_workloads_deployment():
    settings = stack_settings("demo")
    pods = placement.pods_from_settings(settings)
    assert pods == [placement.pod_request(workloads.deployment(settings, s)) for s in settings.services]
    t4 = pods[0]
    assert (t4.gpumem, t4.gpumem_percentage, t4.use_gputype, t4.gpu_policy) == (7500, None, "T4", "binpack")
    assert t4.node_selector == {"accelerator": "t4"}


def test_a_pod_with_more_than_one_gpu_is_a_plan_error():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    container_limits(dep)[hami.RESOURCE_GPU] = 2
    with pytest.raises(placement.PlanError, match="exactly one"):
        placement.pod_request(dep)


def test_unknown_service_filter_is_a_plan_error():
    with pytest.raises(placement.PlanError, match="no service named nope"):
        placement.plan(stack_settings("demo"), ["nope"])


def test_to_dict_has_exactly_the_issue_schema():
    doc = placement.plan(stack_settings("demo")).to_dict("demo")
    assert set(doc) == {"stack", "gpus", "placements", "unschedulable", "gpuMemoryAllocation",
                        "estimatedHourlyCostUsd", "orderRobust", "orderCheck", "counterexample"}
    assert doc["orderRobust"] is True and doc["counterexample"] is None
    assert doc["orderCheck"]["method"] == "exhaustive" and doc["orderCheck"]["ordersTried"] == 12
    assert set(doc["gpus"][0]) == {"node", "nodeGroup", "instanceType", "index", "model", "memoryMiB",
                                   "allocatedMiB", "pods"}
    assert set(doc["placements"][0]) == {"service", "replica", "node", "gpu", "memoryMiB"}
    assert [g["node"] for g in doc["gpus"]] == ["t4-1"] * 4 + ["a10g-1"] * 4
    assert doc["gpus"][0]["model"] == catalog.T4.name


def test_preflight_message_names_service_replicas_reason_and_escape_hatch():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("vllm-x", replicas=4, gpumem=7500, cpu="1", memory="4Gi")])
    plan = placement.plan(settings)
    message = placement_report.format_unschedulable(plan, "dev")
    assert "cannot place 2 of 4 replicas" in message
    assert "vllm-x replicas 3-4:" in message
    assert plan.unschedulable[0].reason in message
    assert "allowUnschedulable" in message and "--stack dev" in message


# ---- the lean stack -----------------------------------------------------------------------------

def test_lean_runs_demos_services_on_right_sized_nodes():
    demo, lean = stack_settings("demo"), stack_settings("lean")
    same = lambda s: (s.name, s.model, s.gpu_type, s.replicas, s.gpumem, s.gpumem_percentage,  # noqa: E731
                      s.node_scheduler_policy, s.gpu_scheduler_policy, s.node_group)
    assert [same(s) for s in lean.services] == [same(s) for s in demo.services]
    # Args differ only where parity is not the point (issue 9): --dtype half on the T4, and no
    # --quantization awq on the A10G so that vLLM picks its Marlin kernel.
    for demo_svc, lean_svc in zip(demo.services, lean.services, strict=True):
        tuned = [*demo_svc.args]
        if demo_svc.gpu_type == "T4":
            tuned[tuned.index("--dtype") + 1] = "half"
        if "--quantization" in tuned:
            del tuned[tuned.index("--quantization"):tuned.index("--quantization") + 2]
        assert list(lean_svc.args) == tuned, lean_svc.name

    demo_plan, lean_plan = placement.plan(demo), placement.plan(lean)
    assert lean_plan.unschedulable == ()
    shared = lambda plan: sorted(sorted(g.pods) for g in plan.gpus if g.pods)  # noqa: E731
    assert shared(lean_plan) == shared(demo_plan)  # the same pods share a GPU
    assert lean_plan.gpu_memory_allocation >= 0.85
    assert lean_plan.estimated_hourly_cost_usd <= 0.30 * demo_plan.estimated_hourly_cost_usd


# ---- HAMi 2.10 divergences, each expectation derived from HAMi's code ---------------------------

def without_memory_key(dep: dict) -> dict:
    del container_limits(dep)[hami.RESOURCE_GPUMEM]
    return dep


def test_percentage_100_is_made_exclusive_by_the_webhook_and_weighs_on_the_node_score():
    """pkg/device/nvidia/device.go defaultExclusiveCoreIfNeeded: no gpucores and
    gpumem-percentage 100 -> the webhook sets gpucores 100. node_policy.go ComputeDefaultScore
    counts those cores: 10 x (1/40 + 100/400 + 15360/61440) = 5.25 for the node holding it, against
    10 x (2/40 + 0/400 + 24000/61440) = 4.41 for the node holding two 12000 MiB pods; without
    the cores the first would score 2.75. NodeScoreList.Less + Filter's last element: binpack
    takes the highest, so the probe joins the exclusive pod's node."""
    settings = stack({"t4": group("g4dn.12xlarge", 2)},
                     [svc("whole", gpumemPercentage=100, gpuSchedulerPolicy="binpack"),
                      svc("big", replicas=2, gpumem=12000, nodeSchedulerPolicy="spread"),
                      svc("probe", gpumem=1000, nodeSchedulerPolicy="binpack")])
    placed = where(placement.plan(settings))
    assert placed["whole-1"][0] == "t4-1"
    assert {placed["big-1"][0], placed["big-2"][0]} == {"t4-2"}  # spread: the node without cores booked
    assert placed["probe-1"][0] == "t4-1"


def test_percentage_100_next_to_gpumem_is_still_exclusive():
    """defaultExclusiveCoreIfNeeded looks at the percentage first: present and 100 -> gpucores 100,
    though gpumem (which wins for memory, Fit: Memreq > 0) leaves 7860 MiB free. Fit then refuses a
    gpucores-0 pod on a GPU whose cores are all used ("can't allocate core=0 job to an already full
    GPU")."""
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("a", gpumem=7500), svc("b", gpumem=1000)])
    a, b = deployment_of(settings, "a"), deployment_of(settings, "b")
    container_limits(a)[hami.RESOURCE_GPUMEM_PERCENTAGE] = "100"
    result = run(settings, a, b)
    assert [(p.pod, p.memory_mib) for p in result.placements] == [("a-1", 7500)]
    assert [u.service for u in result.unschedulable] == ["b"]
    assert "not enough free cores" in result.unschedulable[0].reason


def test_explicit_gpucores_keeps_a_whole_memory_pod_shareable_by_cores():
    """defaultExclusiveCoreIfNeeded returns early when gpucores is set: percentage 100 with
    gpucores 50 books 50 cores, so the GPU is not exclusive (a second pod only lacks memory)."""
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("a", gpumemPercentage=100, gpucores=50)])
    pod = placement.pods_from_settings(settings)[0]
    assert (pod.exclusive, pod.cores, pod.memory_on(T4_MIB)) == (False, 50, T4_MIB)


def _float32_case(probe_policy: str):
    """One 4xT4 node. Two exclusive pods (no memory key: gpucores 100, device.go) take GPUs 3 and 2;
    `a` (1928 MiB) lands on GPU 1 and `b`'s two 196 MiB replicas on GPU 0, all by GPU spread."""
    settings = stack({"t4": group("g4dn.12xlarge")},
                     [svc("f", replicas=2, gpumem=7500), svc("a", gpumem=1928, gpuSchedulerPolicy="spread"),
                      svc("b", replicas=2, gpumem=196, gpuSchedulerPolicy="spread"),
                      svc("probe", gpumem=3000, gpuSchedulerPolicy=probe_policy)])
    deps = [deployment_of(settings, s.name) for s in settings.services]
    without_memory_key(deps[0])
    return where(run(settings, *deps))


def test_gpu_score_is_float32_usage_without_the_request():
    """gpu_policy.go ComputeScore: GPU 0 holds 2 pods / 392 MiB, GPU 1 one pod / 1928 MiB: in exact
    arithmetic both score 10 x (0.1 + 1928/15360) = 10 x (0.2 + 392/15360). HAMi computes in
    float32 and skips the pod's own request (`container.Type` "NVIDIA" never equals the device's
    registered type), which leaves GPU 0 one ulp lower (2.25520825 < 2.25520849); spread sorts
    descending and Fit walks from the end, so the probe takes GPU 0. Counting the request would make
    GPU 0 the higher one, and an exact tie would go to our highest-index convention (GPU 1)."""
    placed = _float32_case("spread")
    assert (placed["f-1"], placed["f-2"]) == (("t4-1", 3), ("t4-1", 2))
    assert placed["a-1"] == ("t4-1", 1)
    assert placed["b-1"] == placed["b-2"] == ("t4-1", 0)
    assert placed["probe-1"] == ("t4-1", 0)
    assert placement.usage_score(2, 10, 0, 100, 392, T4_MIB) < placement.usage_score(1, 10, 0, 100, 1928, T4_MIB)


def test_usage_score_matches_an_independent_float32_computation():
    """The same formula through ctypes' C float (IEEE binary32), one rounding per Go operation."""
    import ctypes

    def f(x):
        return ctypes.c_float(x).value

    for used, cores, mem, total in [(1, 0, 7500, T4_MIB), (3, 100, 10362, A10G_MIB), (7, 30, 1607, T4_MIB)]:
        expected = f(10 * f(f(f(used / 10) + f(cores / 100)) + f(mem / total)))
        assert placement.usage_score(used, 10, cores, 100, mem, total) == expected


def test_registered_type_strings_are_hami_2_10s():
    """register.go getAPIDevices: "NVIDIA A10G" is registered as nvidia-smi prints it, so a
    use-gputype of "NVIDIA A10G" matches and the pre-2.8 "NVIDIA-NVIDIA A10G" matches nothing."""
    settings = stack({"a10g": group("g5.xlarge")}, [svc("x", "A10G", cpu="1", memory="4Gi")])
    dep = deployment_of(settings, "x")
    annotations(dep)[hami.ANNOTATION_USE_GPUTYPE] = "nvidia a10g"
    assert [p.node for p in run(settings, dep).placements] == ["a10g-1"]
    annotations(dep)[hami.ANNOTATION_USE_GPUTYPE] = "NVIDIA-NVIDIA A10G"
    result = run(settings, dep)
    assert result.placements == ()
    assert "register NVIDIA A10G)" in result.unschedulable[0].reason
    assert "NVIDIA-NVIDIA" not in result.unschedulable[0].reason.replace("'NVIDIA-NVIDIA A10G'", "")


def test_empty_use_gputype_is_no_constraint():
    """devices.go CheckType: a blank use-gputype value means "no constraint", not "match nothing"."""
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    annotations(dep)[hami.ANNOTATION_USE_GPUTYPE] = ""
    assert [p.node for p in run(settings, dep).placements] == ["t4-1"]


@pytest.mark.parametrize("value, expected", [
    ("binpack", "binpack"),
    ("spread", "spread"),
    ("Binpack", "spread"),   # gpu_policy.go Less: only exactly "binpack" packs; anything else spreads
    (" binpack", "spread"),  # util.go GetGPUSchedulerPolicyByPod does not trim
    ("sideways", "spread"),
])
def test_gpu_policy_values_as_hami_reads_them(value, expected):
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    annotations(dep)[hami.ANNOTATION_GPU_POLICY] = value
    assert placement.pod_request(dep).gpu_policy == expected


@pytest.mark.parametrize("value, expected", [
    ("spread", "spread"), ("Spread", "binpack"), ("sideways", "binpack"),  # NodeScoreList.Less
])
def test_node_policy_values_as_hami_reads_them(value, expected):
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    annotations(dep)[hami.ANNOTATION_NODE_POLICY] = value
    assert placement.pod_request(dep).node_policy == expected


@pytest.mark.parametrize("value", ["binpack,numa", "numa", "mutex", "topology-aware"])
def test_gpu_policies_the_planner_does_not_model_are_refused(value):
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x")])
    dep = deployment_of(settings, "x")
    annotations(dep)[hami.ANNOTATION_GPU_POLICY] = value
    with pytest.raises(placement.PlanError, match="not modelled"):
        placement.pod_request(dep)


def test_percentage_outside_0_100_is_refused_like_the_webhook_does():
    settings = stack({"t4": group("g4dn.xlarge")}, [svc("x", gpumemPercentage=50)])
    dep = deployment_of(settings, "x")
    container_limits(dep)[hami.RESOURCE_GPUMEM_PERCENTAGE] = "101"
    with pytest.raises(placement.PlanError, match="validateMemoryPercentage"):
        placement.pod_request(dep)


@pytest.mark.parametrize("policy", ["binpack", "spread"])
def test_numa_breaks_gpu_ties_towards_the_higher_node(policy):
    """gpu_policy.go Less: equal scores sort by NUMA ascending; device.go Fit walks from the end, so
    among equal GPUs the higher NUMA node wins (then our highest-index convention). With GPUs 0-1 on
    NUMA 1 and 2-3 on NUMA 0 the first pod takes GPU 1, not GPU 3."""
    settings = stack({"t4": group("g4dn.12xlarge")}, [svc("x", gpuSchedulerPolicy=policy)])
    node = placement.nodes_from_settings(settings)[0]
    numa_node = dataclasses.replace(node, instance=dataclasses.replace(node.instance, gpu_numa=(1, 1, 0, 0)))
    result = placement.simulate([numa_node], placement.pods_from_settings(settings))
    assert [p.gpu for p in result.placements] == [1]


def test_a_node_takes_no_more_pods_than_its_max_pods():
    """nodeadm eni_max_pods.go: ENIs x (IPv4 per ENI - 1) + 2. A node with 1 ENI of D addresses
    runs D + 1 pods; D are DaemonSets (allocatable.DAEMONSET_PODS), so one replica fits by count."""
    settings = stack({"t4": group("g4dn.12xlarge")}, [svc("x", replicas=2, gpumem=1000)])
    node = placement.nodes_from_settings(settings)[0]
    daemonsets = allocatable.DAEMONSET_PODS
    tiny = dataclasses.replace(node, instance=dataclasses.replace(node.instance, enis=1, ipv4_per_eni=daemonsets))
    assert allocatable.max_pods(tiny.instance) == daemonsets + 1
    result = placement.simulate([tiny], placement.pods_from_settings(settings))
    assert len(result.placements) == 1
    assert "max pods" in result.unschedulable[0].reason


def test_a_group_of_several_types_is_planned_with_its_smallest_member():
    settings = stack({"t4": {**group("g4dn.2xlarge"), "instanceTypes": ["g4dn.4xlarge", "g4dn.xlarge"]}},
                     [svc("x", cpu="3", memory="8Gi")])
    plan = placement.plan(settings)
    assert [g.instance_type for g in plan.gpus] == ["g4dn.xlarge"]
    assert any("planned with its smallest, g4dn.xlarge" in note for note in plan.notes)
    assert any("g4dn.xlarge" in line for line in placement_report.guarantees(plan))


@pytest.mark.parametrize("blank", [" ", "", "  "])
def test_a_blank_gpu_type_is_no_constraint_as_in_hami(blank):
    """pkg/device/devices.go CheckType (v2.10.0) matches only when `strings.TrimSpace(inuse) != ""`:
    a blank use-gputype lets the pod onto any GPU, so the planner places it (one group: that group;
    several: the one nodeGroup names) instead of refusing it."""
    one = placement.plan(stack({"t4": group("g4dn.xlarge")}, [svc("x", gpu=blank)]))
    assert one.all_placed and one.placements[0].node == "t4-1"
    two = {"t4": group("g4dn.xlarge"), "a10g": group("g5.xlarge")}
    pinned = placement.plan(stack(two, [svc("x", gpu=blank, nodeGroup="a10g")]))
    assert pinned.all_placed and pinned.placements[0].node == "a10g-1"
    with pytest.raises(ConfigError, match=r"services\[x\]\.nodeGroup: gpuType .* matches several node groups"):
        stack(two, [svc("x", gpu=blank)])


def test_a_gpu_type_of_only_commas_matches_nothing_as_in_hami():
    """CheckType: "," is not blank, and none of its (empty) entries matches a card type."""
    with pytest.raises(ConfigError, match=r"services\[x\]\.gpuType: ',' does not match node group 't4'"):
        stack({"t4": group("g4dn.xlarge")}, [svc("x", gpu=",", nodeGroup="t4")])
