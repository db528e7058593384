"""What hami-scheduler and kube-scheduler will be given: pods read from the Deployments hami-eks
builds, and nodes from the node groups at their desired size.

The pods are read from the very Deployment `workloads.deployment(settings, service)` builds
(annotations, `nvidia.com/*` limits, nodeSelector, tolerations, CPU/memory requests), so the plan
cannot drift from what the cluster will be asked to schedule; they are read the way HAMi 2.10's
webhook and scheduler read them (pkg/device/nvidia/device.go). Nodes carry the GPUs and memory
HAMi registers (catalog), the node's allocatable (hamieks/scheduling/allocatable.py) and the labels/taint
hami-eks puts on them. The static filters (nodeSelector, taints, use/nouse-gputype) live here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hamieks import catalog, hami
from hamieks.config import quantity, stackfiles
from hamieks.config.conventions import GPU_TAINT
from hamieks.config.node_groups import NodeGroupSettings
from hamieks.config.settings import Settings
from hamieks.errors import PlanError
from hamieks.hami import BINPACK, CORES_PER_GPU, SPREAD
from hamieks.kube import workloads
from hamieks.scheduling import allocatable

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")  # PreferNoSchedule only lowers a node's score

# ---- inputs: pods from the pod template, nodes from the node groups ----------------------------


@dataclass(frozen=True)
class PodRequest:
    """What HAMi and kube-scheduler read from one pod template (all replicas are identical)."""

    service: str
    replicas: int
    gpumem: int | None
    gpumem_percentage: int | None
    gpucores: int | None
    use_gputype: str | None
    nouse_gputype: str | None
    node_policy: str
    gpu_policy: str
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    cpu_millis: int
    memory_mib: float
    cpu_text: str  # the quantities as written, for messages
    memory_text: str

    @property
    def exclusive(self) -> bool:
        """HAMi's webhook makes the pod exclusive (gpucores 100) when it sets no gpucores and asks
        for 100% of the memory: gpumem-percentage 100, or no memory key at all
        (pkg/device/nvidia/device.go defaultExclusiveCoreIfNeeded: the percentage decides when
        present, even next to a gpumem; otherwise the absence of gpumem does)."""
        if self.gpucores is not None:
            return False
        if self.gpumem_percentage is not None:
            return self.gpumem_percentage == 100
        return self.gpumem is None

    @property
    def cores(self) -> int:
        """The cores HAMi books on the GPU (device.go Fit caps a larger request at 100)."""
        if self.gpucores is not None:
            return max(min(self.gpucores, CORES_PER_GPU), 0)
        return CORES_PER_GPU if self.exclusive else 0

    def memory_on(self, gpu_memory_mib: int) -> int:
        """The MiB HAMi grants, i.e. memory.total inside the pod, on a GPU of that size.

        device.go GenerateResourceRequests ignores a gpumem of 0 and a percentage <= 0 (and clamps
        one above 100); with neither left the pod gets 100% (Fit: Totalmem * pct / 100)."""
        gpumem = self.gpumem if self.gpumem else None
        percentage = self.gpumem_percentage
        percentage = min(percentage, 100) if percentage is not None and percentage > 0 else None
        return hami.granted_memory_mib(gpumem, percentage, gpu_memory_mib)


def _node_policy(annotations: Mapping[str, str]) -> str:
    # scheduler.go resolveNodeSchedulerPolicy takes the annotation as written; node_policy.go
    # NodeScoreList.Less treats exactly "spread" as spread and anything else as binpack.
    if hami.ANNOTATION_NODE_POLICY not in annotations:
        return hami.DEFAULT_NODE_POLICY
    return SPREAD if str(annotations[hami.ANNOTATION_NODE_POLICY]) == SPREAD else BINPACK


def _gpu_policy(service: str, annotations: Mapping[str, str]) -> str:
    # util.go GetGPUSchedulerPolicyByPod takes the annotation as written; gpu_policy.go
    # DeviceUsageList.Less: exactly "binpack" is binpack, chains/numa/mutex/topology-aware have
    # their own paths (not modelled), anything else sorts as spread.
    if hami.ANNOTATION_GPU_POLICY not in annotations:
        return hami.DEFAULT_GPU_POLICY
    value = str(annotations[hami.ANNOTATION_GPU_POLICY])
    if value == BINPACK:
        return BINPACK
    unmodelled = (hami.GPU_POLICY_NUMA, hami.GPU_POLICY_MUTEX, hami.GPU_POLICY_TOPOLOGY)
    if "," in value or value.strip() in unmodelled:
        raise PlanError(f"{service}: {hami.ANNOTATION_GPU_POLICY} {value!r} is not modelled by the planner "
                        f"(only binpack and spread are); see docs/hami-rules.md")
    return SPREAD


def _summed(containers: Sequence[Mapping[str, Any]], name: str,
            parse: Callable[[Any], Any]) -> tuple[Any, list[str]]:
    """Sum a resource over containers, limits first then requests (as HAMi reads devices)."""
    total, texts = None, []
    for container in containers:
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            value = (resources.get(section) or {}).get(name)
            if value is not None:
                total = parse(value) if total is None else total + parse(value)
                texts.append(str(value))
                break
    return total, texts


def _requested(containers: Sequence[Mapping[str, Any]], name: str,
               parse: Callable[[Any], Any]) -> tuple[Any, list[str]]:
    """CPU/memory as kube-scheduler counts them: requests, or the limit when only that is set."""
    total, texts = 0, []
    for container in containers:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(name, (resources.get("limits") or {}).get(name))
        if value is not None:
            total += parse(value)
            texts.append(str(value))
    return total, texts


def pod_request(deployment: Mapping[str, Any]) -> PodRequest:
    """Read a Deployment's pod template the way hami-scheduler and kube-scheduler do."""
    try:
        return _pod_request(deployment)
    except PlanError:
        raise
    except ValueError as exc:  # a quantity that is not one (settings refuse it; a hand edit may not)
        raise PlanError(f"{deployment['metadata']['name']}: {exc}") from None


def _pod_request(deployment: Mapping[str, Any]) -> PodRequest:
    name = deployment["metadata"]["name"]
    template = deployment["spec"]["template"]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    spec = template["spec"]
    containers = spec.get("containers") or []
    gpus, _ = _summed(containers, hami.RESOURCE_GPU, quantity.whole_number)
    if gpus != 1:
        raise PlanError(f"{name} requests {gpus or 0} x {hami.RESOURCE_GPU}; the planner models "
                        f"pods with exactly one (shared) GPU, as hamieks/kube/workloads.py builds them")
    gpumem, _ = _summed(containers, hami.RESOURCE_GPUMEM, quantity.whole_number)
    percentage, _ = _summed(containers, hami.RESOURCE_GPUMEM_PERCENTAGE, quantity.whole_number)
    low, high = hami.GPUMEM_PERCENTAGE_RANGE
    if percentage is not None and not low <= percentage <= high:
        raise PlanError(f"{name}: {hami.RESOURCE_GPUMEM_PERCENTAGE} {percentage} is outside {low}..{high}; "
                        f"HAMi's webhook rejects the pod (device.go validateMemoryPercentage)")
    gpucores, _ = _summed(containers, hami.RESOURCE_GPUCORES, quantity.whole_number)
    cpu, cpu_texts = _requested(containers, "cpu", quantity.cpu_millis)
    memory, memory_texts = _requested(containers, "memory", quantity.mebibytes)
    return PodRequest(
        service=name,
        replicas=int(deployment["spec"].get("replicas", 1)),
        gpumem=gpumem,
        gpumem_percentage=percentage,
        gpucores=gpucores,
        use_gputype=annotations.get(hami.ANNOTATION_USE_GPUTYPE),
        nouse_gputype=annotations.get(hami.ANNOTATION_NOUSE_GPUTYPE),
        node_policy=_node_policy(annotations),
        gpu_policy=_gpu_policy(name, annotations),
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        cpu_millis=cpu,
        memory_mib=memory,
        cpu_text="+".join(cpu_texts) or "0",
        memory_text="+".join(memory_texts) or "0",
    )


@dataclass(frozen=True)
class NodeSpec:
    """One GPU node as the scheduler will see it once the node group is up."""

    name: str
    group: str
    instance: catalog.InstanceType
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]

    @property
    def gpu(self) -> catalog.GpuModel:
        assert self.instance.gpu is not None
        return self.instance.gpu


def planned_instance(group: NodeGroupSettings) -> catalog.InstanceType:
    """The member a group is planned with: EKS may launch any of its instance types (all carry
    the same GPUs, settings check it), so the one leaving the least CPU, memory and pod room."""
    members = group.instances or (group.instance,)
    return min(members, key=lambda it: (allocatable.cpu_millis(it), allocatable.memory_mib(it),
                                        allocatable.pods(it), it.name))


def planning_notes(settings: Settings) -> tuple[str, ...]:
    """What the plan assumes about the nodes that a reader should know."""
    notes = []
    for group in settings.node_groups:
        if len(group.instance_types) > 1:
            notes.append(f"node group {group.name} lists {', '.join(group.instance_types)}; EKS may launch "
                         f"any of them, so it is planned with its smallest, {planned_instance(group).name}")
    return tuple(notes)


def nodes_from_settings(settings: Settings) -> list[NodeSpec]:
    """Every GPU node at the groups' desired size, named `<group>-<n>` from 1, in settings order."""
    nodes = []
    for group in settings.node_groups:
        instance = planned_instance(group)
        labels = {**group.labels, INSTANCE_TYPE_LABEL: instance.name}
        for n in range(1, group.desired_size + 1):
            nodes.append(NodeSpec(f"{group.name}-{n}", group.name, instance, labels, (GPU_TAINT.as_dict(),)))
    return nodes


def pods_from_settings(settings: Settings, only: Iterable[str] | None = None) -> list[PodRequest]:
    """The pod template of every service (or of the named ones), in settings order."""
    services = settings.services
    if only is not None:
        wanted = list(dict.fromkeys(only))
        known = [s.name for s in services]  # a list: the message must not depend on hash order
        unknown = [name for name in wanted if name not in known]
        if unknown:
            hint = stackfiles.closest(unknown[0], known)
            raise PlanError(f"no service named {', '.join(unknown)}{hint}; services: {', '.join(known) or 'none'}")
        services = tuple(s for s in services if s.name in wanted)
    return [pod_request(workloads.deployment(settings, service)) for service in services]


# ---- filters kube-scheduler and HAMi apply before scoring --------------------------------------

def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, str]) -> bool:
    """Kubernetes' rule: effect and key match when set; Exists ignores the value, Equal compares it."""
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("key") and tol["key"] != taint.get("key"):
            continue
        if tol.get("operator", "Equal") == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def blocking_taint(node: NodeSpec, tolerations: Sequence[Mapping[str, Any]]) -> Mapping[str, str] | None:
    for taint in node.taints:
        if taint.get("effect") in _BLOCKING_EFFECTS and not tolerates(tolerations, taint):
            return taint
    return None


def gpu_type_allowed(pod: PodRequest, registered_type: str) -> bool:
    """pkg/device/devices.go CheckType: must match use-gputype, must not match nouse-gputype;
    an empty (or blank) value is no constraint at all."""
    use, nouse = (pod.use_gputype or "").strip(), (pod.nouse_gputype or "").strip()
    if use and not hami.gpu_type_matches(use, registered_type):
        return False
    return not (nouse and hami.gpu_type_matches(nouse, registered_type))


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())
