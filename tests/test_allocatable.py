"""Node allocatable as the EKS AL2023 AMI (nodeadm) leaves it for pods."""

from __future__ import annotations

import pytest

from hamieks import allocatable


@pytest.mark.parametrize("vcpu, millis", [
    (1, 60), (2, 70), (4, 80), (8, 90), (48, 190),  # EKS: 6% + 1% + 2 x 0.5% + 0.25% per further core
])
def test_kube_reserved_cpu_follows_the_eks_formula(vcpu, millis):
    assert allocatable.kube_reserved_cpu_millis(vcpu) == millis
