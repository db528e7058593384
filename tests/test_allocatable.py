"""Node allocatable as the EKS AL2023 AMI (nodeadm) and managed node groups leave it for pods.

Expected figures are worked out from nodeadm's code (amazon-eks-ami v20260724,
nodeadm/internal/kubelet: eni_max_pods.go calculateStandardMaxPods, config.go
getMemoryMebibytesToReserve / getCPUMillicoresToReserve) and the EKS user guide's managed node
group cap, with the ENI figures EC2 publishes (tests/test_catalog.py checks those against moto).
"""

from __future__ import annotations

import pytest

from hamieks import catalog
from hamieks.scheduling import allocatable


@pytest.mark.parametrize("vcpu, millis", [
    # 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% of the rest
    (1, 60), (2, 70), (4, 80), (8, 90), (48, 190),
    (5, 82),  # the 0.25% range holds 1000 m: 2.5 truncated to 2 (integer division per range)
    (3, 75),
])
def test_kube_reserved_cpu_follows_nodeadm(vcpu, millis):
    assert allocatable.kube_reserved_cpu_millis(vcpu) == millis


@pytest.mark.parametrize("name, enis, ipv4, eni_max_pods, max_pods", [
    ("g4dn.xlarge", 3, 10, 29, 29),       # DESIGN.md's example: 3 x 9 + 2
    ("g4dn.12xlarge", 8, 30, 234, 234),   # 48 vCPU: under the 250 cap
    ("g5.4xlarge", 8, 30, 234, 110),      # 16 vCPU: the managed node group caps it at 110
    ("g5.48xlarge", 7, 50, 345, 250),     # 192 vCPU: capped at 250
    ("p5.48xlarge", 2, 50, 100, 100),     # only the default network card's 2 ENIs count
    ("t3.large", 3, 12, 35, 35),
])
def test_max_pods_from_eni_limits_under_the_managed_node_group_cap(name, enis, ipv4, eni_max_pods, max_pods):
    instance = catalog.instance_type(name)
    assert (instance.enis, instance.ipv4_per_eni) == (enis, ipv4)
    assert allocatable.eni_max_pods(instance) == enis * (ipv4 - 1) + 2 == eni_max_pods
    assert allocatable.max_pods(instance) == max_pods


def test_kube_reserved_memory_follows_nodeadms_own_max_pods():
    # 255 + 11 x 29 on g4dn.xlarge; the old 110-pod assumption reserved 891 MiB (~0.9 GiB) more.
    small = catalog.instance_type("g4dn.xlarge")
    assert allocatable.kube_reserved_memory_mib(small) == 574
    assert (255 + 11 * 110) - 574 == 891
    # nodeadm computes kubeReserved before any maxPods override: the cap does not lower it.
    capped = catalog.instance_type("g5.4xlarge")
    assert allocatable.kube_reserved_memory_mib(capped) == 255 + 11 * 234


def test_pods_left_for_model_servers_exclude_the_daemonsets():
    instance = catalog.instance_type("g4dn.xlarge")
    assert allocatable.pods(instance) == 29 - allocatable.DAEMONSET_PODS


@pytest.mark.parametrize("name", sorted(n for n, it in catalog.INSTANCE_TYPES.items() if it.is_gpu))
def test_allocatable_is_positive_and_below_the_instance(name):
    """Whatever the ENI limit, allocatable stays positive and below the raw instance size."""
    instance = catalog.instance_type(name)
    assert 0 < allocatable.cpu_millis(instance) < instance.vcpu * 1000
    assert 0 < allocatable.memory_mib(instance) < instance.memory_gib * 1024
    assert allocatable.pods(instance) >= 1

