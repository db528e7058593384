"""Bad configuration: rejected before any resource is registered, naming the key and the fix.

One table, every case run through the program exactly as `pulumi up` would run it.
"""

from __future__ import annotations

import copy

import pytest
from pulumi_harness import REPO, run_program

from hamieks.config import stackfiles

DEMO = stackfiles.load_stack_config(REPO, "demo")
SERVICES = "hami-eks:services"
GROUPS = "hami-eks:nodeGroups"


def with_service(index: int, **changes):
    services = copy.deepcopy(DEMO[SERVICES])
    for key, value in changes.items():
        if value is None:
            services[index].pop(key, None)
        else:
            services[index][key] = value
    return {SERVICES: services}


def with_group(name: str, **changes):
    groups = copy.deepcopy(DEMO[GROUPS])
    groups[name].update(changes)
    return {GROUPS: groups}


def with_extra_service(**fields):
    services = copy.deepcopy(DEMO[SERVICES])
    services.append({"model": "org/m", "gpuType": "T4", "replicas": 1, "gpumem": 1000, **fields})
    return {SERVICES: services}


CASES = {
    # case: (overrides, offending key, words the fix must contain)
    "gpuType no group provides": (with_service(0, gpuType="H100"), "hami-eks:services[vllm-t4-qwen25-1-5b].gpuType", "no node group"),
    "both memory keys": (with_service(0, gpumemPercentage=50), "hami-eks:services[vllm-t4-qwen25-1-5b]", "exactly one of gpumem"),
    "neither memory key": (with_service(0, gpumem=None), "hami-eks:services[vllm-t4-qwen25-1-5b]", "exactly one of gpumem"),
    "percentage above 100": (with_service(1, gpumemPercentage=101), "hami-eks:services[vllm-a10g-mistral7b-awq].gpumemPercentage", "between 1 and 100"),
    "percentage zero": (with_service(1, gpumemPercentage=0), "hami-eks:services[vllm-a10g-mistral7b-awq].gpumemPercentage", "between 1 and 100"),
    "gpumem above the GPU": (with_service(0, gpumem=16000), "hami-eks:services[vllm-t4-qwen25-1-5b].gpumem", "15360"),
    "name not a DNS label": (with_service(0, name="Vllm_T4"), "hami-eks:services[Vllm_T4].name", "DNS label"),
    "name starting with a digit": (with_service(0, name="1-vllm"), "hami-eks:services[1-vllm].name", "starting with a letter"),
    "duplicate names": (with_extra_service(name="vllm-t4-qwen25-1-5b"), "hami-eks:services[vllm-t4-qwen25-1-5b].name", "duplicate"),
    "negative replicas": (with_service(0, replicas=-1), "hami-eks:services[vllm-t4-qwen25-1-5b].replicas", "0 or more"),
    "min above desired": (with_group("t4", minSize=2), "hami-eks:nodeGroups.t4", "minSize <= desiredSize"),
    "desired above max": (with_group("t4", desiredSize=3), "hami-eks:nodeGroups.t4", "desiredSize <= maxSize"),
    "CPU instance in a GPU group": (with_group("t4", instanceTypes=["m6i.large"]), "hami-eks:nodeGroups.t4.instanceTypes", "has no GPU"),
    "instance type not in catalog": (with_group("t4", instanceTypes=["g9.huge"]), "hami-eks:nodeGroups.t4.instanceTypes", "not in the hami-eks catalog"),
    "bad VPC CIDR": ({"hami-eks:vpcCidr": "10.0.0.300/16"}, "hami-eks:vpcCidr", "not a valid IPv4 CIDR"),
    "VPC CIDR too small": ({"hami-eks:vpcCidr": "10.0.0.0/24"}, "hami-eks:vpcCidr", "too small"),
    "Kubernetes version not offered": ({"hami-eks:kubernetesVersion": "1.29"}, "hami-eks:kubernetesVersion", "1.34, 1.35, 1.36"),
    "misspelt key": ({"hami-eks:nodegroup": {}}, "hami-eks:nodegroup", "did you mean 'hami-eks:nodeGroups'"),
    "unpinned image": (with_service(0, image="vllm/vllm-openai:latest"), "hami-eks:services[vllm-t4-qwen25-1-5b].image", "not pinned"),
    "unknown service field": (with_service(0, gpuMem=1), "hami-eks:services[vllm-t4-qwen25-1-5b].gpuMem", "did you mean 'gpumem'"),
    "one availability zone": ({"hami-eks:availabilityZoneCount": 1}, "hami-eks:availabilityZoneCount", "at least two AZs"),
    "integer that is not": (with_service(0, replicas="two"), "hami-eks:services[vllm-t4-qwen25-1-5b].replicas", "expected an integer"),
    # What Helm, Kubernetes or AWS would refuse only after paid minutes (issue 23).
    "chart version latest": ({"hami-eks:hamiChartVersion": "latest"}, "hami-eks:hamiChartVersion", "pin an exact release"),
    "namespace kube-system": ({"hami-eks:namespace": "kube-system"}, "hami-eks:namespace", "belongs to Kubernetes"),
    "empty service name": (with_service(0, name=""), "hami-eks:services[0].name", "must not be empty"),
    "region typo": ({"aws:region": "us-west2"}, "aws:region", "did you mean 'us-west-2'"),
    "reserved node label": (with_group("t4", labels={"node-role.kubernetes.io/gpu": ""}), "hami-eks:nodeGroups.t4.labels", "never join"),
    "disk over gp3": (with_group("t4", diskSizeGiB=100000), "hami-eks:nodeGroups.t4.diskSizeGiB", "16384"),
    "zero memory": (with_service(0, memory="0"), "hami-eks:services[vllm-t4-qwen25-1-5b].memory", "more than 0"),
    "shm above memory": (with_service(0, shmSize="64Gi"), "hami-eks:services[vllm-t4-qwen25-1-5b].shmSize", "more than memory"),
    "plaintext HF token": ({"hami-eks:hfToken": "hf_plain"}, "hami-eks:hfToken", "written in plain text"),
}


@pytest.mark.parametrize("overrides, key, fix", CASES.values(), ids=CASES.keys())
def test_bad_config_is_rejected_before_any_resource(overrides, key, fix):
    run = run_program("demo", overrides=overrides, expect_error=True)
    message = str(run.error)
    assert f"  - {key}:" in message, message
    assert fix in message, message
    assert run.resources == [], "resources were registered before the configuration was validated"


def test_every_problem_is_reported_at_once():
    overrides = {**with_service(0, gpumem=None, replicas=-2), "hami-eks:vpcCidr": "nonsense"}
    message = str(run_program("demo", overrides=overrides, expect_error=True).error)
    assert message.count("\n  - ") == 3, message
