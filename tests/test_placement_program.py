"""The Pulumi program's preflight on what issue 20 added: a sampled arrival-order check fails it
unless hami-eks:acceptSampledOrderCheck accepts the sample, and a blank gpuType (no constraint in
HAMi) deploys without a traceback. Run under pulumi mocks (tests/pulumi_harness.py)."""

from __future__ import annotations

import pytest
from pulumi_harness import REPO, run_program

from hamieks import hami
from hamieks.config import stackfiles
from hamieks.scheduling import order_proof

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
REPO_STACK = "demo"


def _many_orders() -> dict:
    """Six services of three replicas on two 4 x T4 nodes: more states than the search may visit."""
    services = [{"name": f"s{i}", "model": "Qwen/Qwen2.5-1.5B-Instruct", "gpuType": "T4", "replicas": 3,
                 "gpumem": 1000 + 700 * i, "cpu": "100m", "memory": "256Mi"} for i in range(6)]
    return {"hami-eks:nodeGroups": {"t4": {"instanceTypes": ["g4dn.12xlarge"], "desiredSize": 2, "minSize": 2,
                                           "maxSize": 2}},
            "hami-eks:services": services, "hami-eks:allowModelMisfit": True}


def test_a_sampled_order_check_fails_the_preflight_before_any_resource():
    run = run_program(REPO_STACK, overrides=_many_orders(), preview=True, expect_error=True)
    message = str(run.error)
    assert "a sample, not a proof" in message and f"after {order_proof.MAX_STATES} states" in message
    assert "hami-eks:acceptSampledOrderCheck" in message
    assert run.resources == []


def test_accept_sampled_order_check_deploys_with_a_warning():
    run = run_program(REPO_STACK, overrides={**_many_orders(), "hami-eks:acceptSampledOrderCheck": True})
    assert len(run.of_type(DEPLOYMENT)) == 6
    assert any("a sample, not a proof" in w for w in run.warnings)
    plan = run.outputs["placementPlan"]
    assert plan["orderRobust"] is False and plan["counterexample"] is None
    assert plan["orderCheck"]["method"] == "sampled"


@pytest.mark.parametrize("blank", [" ", ""])
def test_a_blank_gpu_type_deploys_like_hami_places_it(blank):
    """device.go/devices.go CheckType: a blank use-gputype is no constraint, so the service goes to
    the group its nodeGroup names (with several groups it must name one)."""
    services = [dict(s) for s in stackfiles.load_stack_config(REPO, REPO_STACK)["hami-eks:services"]]
    services[0] = {**services[0], "gpuType": blank, "nodeGroup": "t4"}
    run = run_program(REPO_STACK, overrides={"hami-eks:services": services})
    deployment = next(d for d in run.of_type(DEPLOYMENT) if d.name.endswith(services[0]["name"]))
    template = deployment.inputs["spec"]["template"]
    assert template["metadata"]["annotations"][hami.ANNOTATION_USE_GPUTYPE] == blank
    assert template["spec"]["nodeSelector"]["accelerator"] == "t4"
    placed = run.outputs["placementPlan"]["placements"]
    assert {p["node"] for p in placed if p["service"] == services[0]["name"]} == {"t4-1"}
