"""What kube-scheduler lets pods request on a node, derived from its instance type.

Mirrors the EKS AL2023 AMI's nodeadm (amazon-eks-ami v20260724, nodeadm/internal/kubelet):
- max pods: `eni_max_pods.go` calculateStandardMaxPods = ENIs of the default network card x
  (IPv4 per ENI - 1) + 2 (e.g. 3 x 9 + 2 = 29 on g4dn.xlarge). nodeadm itself applies no cap;
  EKS managed node groups (which hami-eks uses) enforce one: at most 110 pods on instances with
  fewer than 30 vCPUs, 250 on the others (EKS user guide, "Increase the available IP addresses":
  "Managed node groups enforces a maximum number on the value of maxPods").
- kube-reserved memory: `config.go` getMemoryMebibytesToReserve = 11 x maxPods + 255 MiB, with
  maxPods as nodeadm computed it (withDefaultReservedResources runs before any override, and
  nodeadm's docs say kubeReserved follows its own figure even when kubelet's maxPods is set), so
  the managed node group cap lowers the pod count but not the reservation.
- kube-reserved CPU: `config.go` getCPUMillicoresToReserve: 6% of the first core, 1% of the
  second, 0.5% of the next two, 0.25% of the rest, each range truncated to whole millicores.
- eviction: `config.go` default kubelet config, evictionHard memory.available 100Mi.

Estimates (no exact source; each errs towards less room, so a plan that fits here fits a node):
- OS_MEMORY_FRACTION: the kernel, firmware and crash kernel keep part of the RAM out of the
  node's capacity; a g4dn.xlarge (16 GiB) reports about 15.3-15.5 GiB, a little under 5% less.
- DaemonSets on every GPU node: aws-node (VPC CNI), kube-proxy, ebs-csi-node (the EBS CSI add-on
  tolerates every taint), eks-pod-identity-agent (the VPC CNI's credentials, components/cluster.py)
  and HAMi's device plugin (one pod holding the plugin and the vGPU monitor): DAEMONSET_PODS pods,
  with the CPU/memory they request rounded up to DAEMONSET_CPU_MILLIS / DAEMONSET_MEMORY_MIB
  (aws-node 25m, kube-proxy 100m, ebs-csi-node ~30m/~100Mi across its containers, the pod
  identity agent ~25m/~32Mi; HAMi's plugin requests nothing by default, its usage is allowed for).
"""

from __future__ import annotations

from hamieks import catalog

OS_MEMORY_FRACTION = 0.05
EVICTION_HARD_MIB = 100
DAEMONSET_PODS = 5
DAEMONSET_CPU_MILLIS = 250
DAEMONSET_MEMORY_MIB = 512
# EKS managed node groups: the maxPods cap and the vCPU count from which the larger one applies.
MANAGED_NODE_GROUP_MAX_PODS_SMALL = 110
MANAGED_NODE_GROUP_MAX_PODS_LARGE = 250
MANAGED_NODE_GROUP_LARGE_VCPU = 30


def eni_max_pods(instance: catalog.InstanceType) -> int:
    """nodeadm's standard max pods: ENIs x (IPv4 per ENI - 1) + 2 (eni_max_pods.go)."""
    return instance.enis * (instance.ipv4_per_eni - 1) + 2


def max_pods(instance: catalog.InstanceType) -> int:
    """The kubelet's maxPods on a managed node group node: nodeadm's figure under the MNG cap."""
    large = instance.vcpu >= MANAGED_NODE_GROUP_LARGE_VCPU
    cap = MANAGED_NODE_GROUP_MAX_PODS_LARGE if large else MANAGED_NODE_GROUP_MAX_PODS_SMALL
    return min(eni_max_pods(instance), cap)


def pods(instance: catalog.InstanceType) -> int:
    """How many pods of ours fit by count: max pods less the DaemonSet pods every node runs."""
    return max(max_pods(instance) - DAEMONSET_PODS, 0)


def kube_reserved_memory_mib(instance: catalog.InstanceType) -> int:
    """nodeadm getMemoryMebibytesToReserve(maxPods), with nodeadm's own (uncapped) maxPods."""
    return 11 * eni_max_pods(instance) + 255


def kube_reserved_cpu_millis(vcpu: int) -> int:
    """nodeadm getCPUMillicoresToReserve: per-range percentages (in 1/100 %) of the millicores."""
    total = vcpu * 1000
    bounds = (0, 1000, 2000, 4000, total)
    basis_points = (600, 100, 50, 25)
    reserved = 0
    for start, end, share in zip(bounds[:-1], bounds[1:], basis_points, strict=True):
        if total > start:
            reserved += (min(total, end) - start) * share // 10000
    return reserved


def cpu_millis(instance: catalog.InstanceType) -> int:
    return instance.vcpu * 1000 - kube_reserved_cpu_millis(instance.vcpu) - DAEMONSET_CPU_MILLIS


def memory_mib(instance: catalog.InstanceType) -> int:
    capacity = instance.memory_gib * 1024 * (1 - OS_MEMORY_FRACTION)
    return int(capacity) - kube_reserved_memory_mib(instance) - EVICTION_HARD_MIB - DAEMONSET_MEMORY_MIB
