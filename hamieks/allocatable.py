"""What kube-scheduler lets pods request on a node, derived from its instance type.

The EKS AL2023 AMI (nodeadm) reserves CPU for kubelet by its published formula and memory as
255 MiB + 11 MiB per schedulable pod, plus a 100Mi hard-eviction threshold. On top of that the
kernel and firmware keep part of the RAM out of the node's capacity, and DaemonSets (aws-node,
kube-proxy, HAMi's device plugin and monitor, the pod identity agent) request their share.
Pod density is taken as the kubelet's 110 (250 on >= 30 vCPU nodes), at or above EKS's per-ENI
limits, so the check errs on the safe side.
"""

from __future__ import annotations

from hamieks import catalog

OS_MEMORY_FRACTION = 0.05
EVICTION_HARD_MIB = 100
DAEMONSET_CPU_MILLIS = 250
DAEMONSET_MEMORY_MIB = 512


def max_pods_estimate(vcpu: int) -> int:
    return 250 if vcpu >= 30 else 110


def kube_reserved_cpu_millis(vcpu: int) -> int:
    """EKS: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% of the rest."""
    millis = 60.0 * min(vcpu, 1) + 10.0 * min(max(vcpu - 1, 0), 1)
    millis += 5.0 * min(max(vcpu - 2, 0), 2) + 2.5 * max(vcpu - 4, 0)
    return int(round(millis))


def cpu_millis(instance: catalog.InstanceType) -> int:
    return instance.vcpu * 1000 - kube_reserved_cpu_millis(instance.vcpu) - DAEMONSET_CPU_MILLIS


def memory_mib(instance: catalog.InstanceType) -> int:
    capacity = instance.memory_gib * 1024 * (1 - OS_MEMORY_FRACTION)
    kube_reserved = 255 + 11 * max_pods_estimate(instance.vcpu)
    return int(capacity) - kube_reserved - EVICTION_HARD_MIB - DAEMONSET_MEMORY_MIB
