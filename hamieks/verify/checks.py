"""The checks: pure functions from API objects (plain dicts) + the stack's settings and plan to
`Check` records. Each failing record says what is wrong and how to fix it.

What "right" means comes from the stack itself: the services, namespace and node groups of its
settings, the Deployment the workload builder makes (its pod selector), the catalog's GPUs per
instance type, and `placement.plan(settings)` for the slice each pod gets and which pods share a
GPU. HAMi breaks ties randomly (DESIGN.md §3), so the grouping is compared, never GPU indexes or
node names: replicas the plan puts on one GPU must share one GPU UUID in the cluster, and no
other pod may be on it.

A pod's failures are attributed to their first cause: a pod that bypassed hami-scheduler is
reported once, by `scheduled-by-hami`, not again as a missing slice or a wrong grouping.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hamieks import catalog, hami, workloads
from hamieks.check import Check
from hamieks.conventions import ACCELERATOR_LABEL_KEY, GPU_NODE_LABEL
from hamieks.placement import Plan
from hamieks.placement_inputs import INSTANCE_TYPE_LABEL
from hamieks.services import ServiceSettings
from hamieks.settings import Settings
from hamieks.verify import annotations as hami_annotations
from hamieks.verify.annotations import AllocatedDevice, AnnotationError, NodeRegistration
from hamieks.verify.cluster import ExecResult, JsonObject, ProxyResponse, Snapshot

# Check names, in report order.
SCHEDULER = "hami-scheduler"
DEVICE_PLUGIN = "device-plugin"
OTHER_DEVICE_PLUGIN = "no-other-device-plugin"
REGISTERED = "gpus-registered"
REPLICAS = "replicas-ready"
SCHEDULED_BY_HAMI = "scheduled-by-hami"
SLICE = "gpu-slice"
SHARING = "gpu-sharing"
MEMORY_CAP = "memory-cap"
INFERENCE = "inference"
CHECK_NAMES = (SCHEDULER, DEVICE_PLUGIN, OTHER_DEVICE_PLUGIN, REGISTERED, REPLICAS, SCHEDULED_BY_HAMI,
               SLICE, SHARING, MEMORY_CAP, INFERENCE)

# NVIDIA's k8s-device-plugin: its image (nvcr.io/nvidia/k8s-device-plugin) and the DaemonSet
# names its Helm chart and the GPU operator give it (nvidia-device-plugin-daemonset,
# <release>-nvidia-device-plugin).
_NVIDIA_PLUGIN_IMAGE = "k8s-device-plugin"
_NVIDIA_PLUGIN_NAME = "nvidia-device-plugin"

NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=uuid,memory.total,memory.used", "--format=csv,noheader"]


# ---- reading API objects -----------------------------------------------------------------------

def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def _qualified(obj: Mapping[str, Any]) -> str:
    return f"{_meta(obj).get('namespace', '')}/{_name(obj)}"


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = _meta(obj).get("labels") or {}
    return labels


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    notes: Mapping[str, str] = _meta(obj).get("annotations") or {}
    return notes


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec: Mapping[str, Any] = obj.get("spec") or {}
    return spec


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status: Mapping[str, Any] = obj.get("status") or {}
    return status


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind:
            found: Mapping[str, Any] = condition
            return found
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    ready = _condition(pod, "Ready")
    return _status(pod).get("phase") == "Running" and ready is not None and ready.get("status") == "True"


def _pod_state(pod: Mapping[str, Any]) -> str:
    """Why a pod is not Running and Ready, in kubectl's words."""
    status = _status(pod)
    phase = str(status.get("phase", "Unknown"))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        message = scheduled.get("message")
        return f"{phase} ({scheduled.get('reason', 'not scheduled')}{': ' + message if message else ''})"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return f"{phase}, container {container.get('name')} {waiting.get('reason', 'waiting')}"
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return f"{phase}, container {container.get('name')} terminated ({terminated.get('reason', '')})"
    if phase == "Running":
        return "Running, not Ready (readiness probe failing: still loading the model?)"
    reason = status.get("reason")
    return f"{phase} ({reason})" if reason else phase


def _terminating(obj: Mapping[str, Any]) -> bool:
    return _meta(obj).get("deletionTimestamp") is not None


def _gpu_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in _spec(pod).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        if hami.RESOURCE_GPU in limits:
            found: Mapping[str, Any] = container
            return found
    return None


def _node_of(pod: Mapping[str, Any]) -> str:
    return str(_spec(pod).get("nodeName") or _annotations(pod).get(hami.ANNOTATION_ASSIGNED_NODE) or "-")


def _instance(node: Mapping[str, Any]) -> catalog.InstanceType | None:
    return catalog.INSTANCE_TYPES.get(_labels(node).get(INSTANCE_TYPE_LABEL, ""))


def gpu_nodes(snapshot: Snapshot, settings: Settings) -> list[JsonObject]:
    """Nodes of the stack's GPU node groups (accelerator=<group>) and any node carrying the
    device plugin's selector label gpu=on."""
    groups = {group.name for group in settings.node_groups}
    return [node for node in snapshot.nodes
            if _labels(node).get(ACCELERATOR_LABEL_KEY) in groups
            or _labels(node).get(GPU_NODE_LABEL.key) == GPU_NODE_LABEL.value]


def service_pods(snapshot: Snapshot, settings: Settings, svc: ServiceSettings) -> list[JsonObject]:
    """The live pods of a service: the selector of the Deployment the stack builds; not terminating."""
    selector: Mapping[str, str] = workloads.deployment(settings, svc)["spec"]["selector"]["matchLabels"]
    return [pod for pod in snapshot.pods
            if not _terminating(pod) and all(_labels(pod).get(k) == v for k, v in selector.items())]


def _bypassed(pod: Mapping[str, Any]) -> bool:
    return _gpu_container(pod) is not None and _spec(pod).get("schedulerName") != hami.SCHEDULER_NAME


def _allocation(pod: Mapping[str, Any]) -> tuple[AllocatedDevice, ...] | str:
    """The pod's HAMi devices, or why there are none."""
    text = _annotations(pod).get(hami.ANNOTATION_DEVICES_ALLOCATED)
    if not text:
        return (f"no {hami.ANNOTATION_DEVICES_ALLOCATED} annotation: hami-scheduler has not placed it "
                f"({_pod_state(pod)})")
    try:
        devices = hami_annotations.allocated_devices(text)
    except AnnotationError as exc:
        return f"{hami.ANNOTATION_DEVICES_ALLOCATED} is unreadable: {exc}"
    if len(devices) != 1:
        return f"{hami.ANNOTATION_DEVICES_ALLOCATED} lists {len(devices)} devices ({text!r}); each server asks for 1"
    return devices


def _registration(node: Mapping[str, Any]) -> NodeRegistration | str:
    text = _annotations(node).get(hami.ANNOTATION_NODE_REGISTER)
    if not text:
        return (f"no {hami.ANNOTATION_NODE_REGISTER} annotation: HAMi's device plugin has not registered "
                f"this node's GPUs (kubectl -n {hami.RELEASE_NAMESPACE} logs "
                f"ds/{hami.DEVICE_PLUGIN_DAEMONSET} -c device-plugin)")
    try:
        return hami_annotations.parse_node_register(text)
    except AnnotationError as exc:
        return f"{hami.ANNOTATION_NODE_REGISTER} is unreadable: {exc}"


# ---- HAMi is up --------------------------------------------------------------------------------

def check_scheduler(snapshot: Snapshot) -> list[Check]:
    target = f"{hami.RELEASE_NAMESPACE}/{hami.SCHEDULER_DEPLOYMENT}"
    if not snapshot.scheduler_deployments:
        return [Check(SCHEDULER, target, False,
                      f"no Deployment labelled {hami.COMPONENT_LABEL}={hami.SCHEDULER_COMPONENT}: "
                      f"the HAMi release is not installed (helm -n {hami.RELEASE_NAMESPACE} status hami; "
                      f"pulumi up installs it)")]
    checks = []
    for deployment in snapshot.scheduler_deployments:
        wanted = int(_spec(deployment).get("replicas", 1))
        available = int(_status(deployment).get("availableReplicas") or 0)
        if wanted > 0 and available >= wanted:
            checks.append(Check(SCHEDULER, _qualified(deployment), True, f"{available}/{wanted} replicas available"))
            continue
        condition = _condition(deployment, "Available") or {}
        why = f" ({condition.get('message')})" if condition.get("message") else ""
        checks.append(Check(
            SCHEDULER, _qualified(deployment), False,
            f"{available} of {wanted} replicas available{why}: GPU pods cannot be scheduled or admitted "
            f"until it is; see kubectl -n {_meta(deployment).get('namespace')} describe deployment "
            f"{_name(deployment)}"))
    return checks


def check_device_plugins(snapshot: Snapshot, settings: Settings) -> list[Check]:
    checks = []
    nodes = gpu_nodes(snapshot, settings)
    for group in settings.node_groups:
        if not any(_labels(n).get(ACCELERATOR_LABEL_KEY) == group.name for n in nodes):
            checks.append(Check(DEVICE_PLUGIN, f"node group {group.name}", False,
                                f"no node labelled {ACCELERATOR_LABEL_KEY}={group.name} is in the cluster "
                                f"(desiredSize {group.desired_size}): the node group has not joined; check its "
                                f"health in the EKS console or `aws eks describe-nodegroup`"))
    for node in nodes:
        plugins = [p for p in snapshot.device_plugin_pods
                   if _spec(p).get("nodeName") == _name(node) and not _terminating(p)]
        ready = [p for p in plugins if pod_ready(p)]
        if ready:
            checks.append(Check(DEVICE_PLUGIN, _name(node), True, f"{_qualified(ready[0])} Ready"))
        elif plugins:
            pod = plugins[0]
            checks.append(Check(DEVICE_PLUGIN, _name(node), False,
                                f"{_qualified(pod)} is not Ready: {_pod_state(pod)}; GPUs on this node cannot be "
                                f"registered or allocated (kubectl -n {_meta(pod).get('namespace')} logs "
                                f"{_name(pod)} -c device-plugin)"))
        else:
            checks.append(Check(DEVICE_PLUGIN, _name(node), False,
                                f"no HAMi device-plugin pod on this GPU node: the DaemonSet runs only on nodes "
                                f"labelled {GPU_NODE_LABEL.key}={GPU_NODE_LABEL.value} and tolerating their taints; "
                                f"label the node group {GPU_NODE_LABEL.key}={GPU_NODE_LABEL.value}"))
    return checks


def _looks_like_nvidia_plugin(daemonset: Mapping[str, Any]) -> str | None:
    """The evidence that a DaemonSet runs NVIDIA's device plugin, or None."""
    template = _spec(_spec(daemonset).get("template") or {})
    for container in [*(template.get("initContainers") or []), *(template.get("containers") or [])]:
        image = str(container.get("image", ""))
        if _NVIDIA_PLUGIN_IMAGE in image:
            return f"image {image}"
    if _NVIDIA_PLUGIN_NAME in _name(daemonset):
        return "its name"
    return None


def check_other_device_plugins(snapshot: Snapshot, settings: Settings) -> list[Check]:
    """Nothing but HAMi's device plugin may advertise nvidia.com/gpu.

    Two precise rules:
    1. A DaemonSet other than HAMi's (component label) whose container image is NVIDIA's
       k8s-device-plugin, or whose name contains "nvidia-device-plugin".
    2. On a GPU node, allocatable nvidia.com/gpu must be what HAMi's plugin advertises:
       deviceSplitCount devices per healthy GPU (rm/devices.go GetPluginDevices), so a multiple
       of deviceSplitCount and at most deviceSplitCount x the instance type's GPUs. Anything else
       means another plugin registered the resource with the kubelet (NVIDIA's advertises one per
       GPU, e.g. 4 on a g4dn.12xlarge), which catches host-level plugins (Bottlerocket, EKS Auto
       Mode) that no DaemonSet shows.
    """
    checks = []
    for daemonset in snapshot.daemonsets:
        if _labels(daemonset).get(hami.COMPONENT_LABEL) == hami.DEVICE_PLUGIN_COMPONENT:
            continue
        evidence = _looks_like_nvidia_plugin(daemonset)
        if evidence is None:
            continue
        namespace = _meta(daemonset).get("namespace")
        scheduled = int(_status(daemonset).get("desiredNumberScheduled") or 0)
        checks.append(Check(
            OTHER_DEVICE_PLUGIN, _qualified(daemonset), False,
            f"DaemonSet runs NVIDIA's device plugin ({evidence}) on {scheduled} node(s): it advertises "
            f"{hami.RESOURCE_GPU} beside HAMi's, so GPU pods can get whole GPUs without HAMi's memory cap; "
            f"remove it (kubectl -n {namespace} delete daemonset {_name(daemonset)}, or disable the GPU "
            f"operator's devicePlugin), then delete the GPU pods it served"))
    if not checks:
        checks.append(Check(OTHER_DEVICE_PLUGIN, "daemonsets", True,
                            f"none of {len(snapshot.daemonsets)} DaemonSets runs NVIDIA's device plugin"))
    split = hami.DEVICE_SPLIT_COUNT
    for node in gpu_nodes(snapshot, settings):
        raw = (_status(node).get("allocatable") or {}).get(hami.RESOURCE_GPU)
        if raw is None:
            continue  # nothing advertises the resource yet: the device-plugin check says why
        advertised = int(raw)
        instance = _instance(node)
        most = split * instance.gpu_count if instance is not None else None
        if advertised % split == 0 and (most is None or advertised <= most):
            checks.append(Check(OTHER_DEVICE_PLUGIN, _name(node), True,
                                f"allocatable {hami.RESOURCE_GPU} {advertised} = {advertised // split} GPUs x {split} "
                                f"(HAMi's deviceSplitCount)"))
            continue
        expected = (f"a multiple of {split}, {most} on this {instance.name} with all {instance.gpu_count} GPUs healthy"
                    if instance is not None else f"a multiple of {split}")
        checks.append(Check(
            OTHER_DEVICE_PLUGIN, _name(node), False,
            f"allocatable {hami.RESOURCE_GPU} is {advertised}, but HAMi's device plugin advertises {split} per GPU "
            f"(deviceSplitCount), so {expected}: another device plugin registered {hami.RESOURCE_GPU} with this "
            f"node's kubelet (NVIDIA's advertises one per GPU); remove it (a DaemonSet, or the host's own plugin "
            f"on Bottlerocket/EKS Auto Mode), then restart HAMi's device-plugin pod on the node"))
    return checks


def _expected_type(gpu: catalog.GpuModel, registration: NodeRegistration) -> str:
    # Device plugins before 2.8 (which wrote the record format) always prefixed "NVIDIA-"
    # (v2.7.0 register.go getAPIDevices: "NVIDIA-NVIDIA A10G", as the blog shows); 2.8+ only
    # when the name lacks it (hami.registered_type).
    if registration.format == hami_annotations.RECORD_FORMAT:
        return f"NVIDIA-{gpu.name}"
    return gpu.registered_type


def check_registrations(snapshot: Snapshot, settings: Settings) -> list[Check]:
    checks = []
    for node in gpu_nodes(snapshot, settings):
        registration = _registration(node)
        if isinstance(registration, str):
            checks.append(Check(REGISTERED, _name(node), False, registration))
            continue
        instance = _instance(node)
        type_label = _labels(node).get(INSTANCE_TYPE_LABEL, "(no label)")
        if instance is None or instance.gpu is None:
            checks.append(Check(REGISTERED, _name(node), False,
                                f"instance type {type_label} ({INSTANCE_TYPE_LABEL}) is not a GPU type in "
                                f"hamieks.catalog, so its registration cannot be checked; add it to "
                                f"hamieks/catalog.py"))
            continue
        gpu = instance.gpu
        memory = gpu.memory_mib * hami.DEVICE_MEMORY_SCALING
        kind = _expected_type(gpu, registration)
        problems = []
        if len(registration.gpus) != instance.gpu_count:
            problems.append(f"{len(registration.gpus)} GPUs registered, a {instance.name} has {instance.gpu_count}")
        for device in registration.gpus:
            label = f"GPU {device.index} ({device.uuid})"
            if device.memory_mib != memory:
                problems.append(f"{label} registered {device.memory_mib} MiB, the catalog says {memory} "
                                f"(nvidia-smi memory.total of a {gpu.name}); update hamieks/catalog.py if the "
                                f"driver reports a new figure, plans are computed from it")
            if device.type != kind:
                problems.append(f"{label} registered type {device.type!r}, expected {kind!r}")
            if not device.health:
                problems.append(f"{label} is unhealthy (Xid error or lost GPU: check the node's dmesg)")
            if device.count != hami.DEVICE_SPLIT_COUNT:
                problems.append(f"{label} takes {device.count} pods, the release sets deviceSplitCount "
                                f"{hami.DEVICE_SPLIT_COUNT}")
        if problems:
            checks.append(Check(REGISTERED, _name(node), False, "; ".join(problems)))
        else:
            checks.append(Check(REGISTERED, _name(node), True,
                                f"{len(registration.gpus)} x {kind}, {memory} MiB, {hami.DEVICE_SPLIT_COUNT} slots "
                                f"each ({registration.format} format) = catalog for {instance.name}"))
    return checks


# ---- the model servers -------------------------------------------------------------------------

def check_replicas(snapshot: Snapshot, settings: Settings) -> list[Check]:
    checks = []
    deployments = {_name(d) for d in snapshot.deployments}
    for svc in settings.services:
        target = f"{settings.namespace}/{svc.name}"
        if svc.name not in deployments:
            checks.append(Check(REPLICAS, target, False,
                                f"Deployment {target} not found: run pulumi up (or kubectl apply -f manifests/)"))
            continue
        pods = service_pods(snapshot, settings, svc)
        ready = [p for p in pods if pod_ready(p)]
        if len(ready) >= svc.replicas:
            checks.append(Check(REPLICAS, target, True, f"{len(ready)}/{svc.replicas} Running and Ready"))
            continue
        parts = [f"{len(ready)} of {svc.replicas} replicas Running and Ready"]
        parts.extend(f"{_name(p)}: {_pod_state(p)}" for p in pods if not pod_ready(p))
        if len(pods) < svc.replicas:
            parts.append(f"only {len(pods)} pod(s) exist "
                         f"(kubectl -n {settings.namespace} describe deployment {svc.name})")
        checks.append(Check(REPLICAS, target, False, "; ".join(parts)))
    return checks


def _webhook_label_missing(snapshot: Snapshot) -> bool:
    key, value = hami.WEBHOOK_SCOPE_LABEL
    return snapshot.namespace is None or _labels(snapshot.namespace).get(key) != value


def check_scheduled_by_hami(snapshot: Snapshot, settings: Settings) -> list[Check]:
    checks = []
    for svc in settings.services:
        for pod in service_pods(snapshot, settings, svc):
            target = f"{settings.namespace}/{_name(pod)}"
            if not _bypassed(pod):
                checks.append(Check(SCHEDULED_BY_HAMI, target, True, f"schedulerName {hami.SCHEDULER_NAME}"))
                continue
            scheduler = _spec(pod).get("schedulerName") or "default-scheduler"
            fix = f"kubectl -n {settings.namespace} delete pod {_name(pod)}"
            if _webhook_label_missing(snapshot):
                key, value = hami.WEBHOOK_SCOPE_LABEL
                cause = (f"namespace {settings.namespace} lacks the label {key}={value} that the webhook "
                         f"selects; `kubectl label namespace {settings.namespace} {key}={value}`, then `{fix}`")
            else:
                cause = (f"the pod was created before HAMi's webhook was up; now that it is, delete the pod "
                         f"so its ReplicaSet recreates it through the webhook: `{fix}`")
            checks.append(Check(
                SCHEDULED_BY_HAMI, target, False,
                f"GPU pod has schedulerName {scheduler}, not {hami.SCHEDULER_NAME}: HAMi's webhook bypassed it, "
                f"so HAMi neither places it nor caps its GPU memory; {cause}"))
    return checks


def planned_slices(plan: Plan, settings: Settings) -> dict[str, int]:
    """Service -> the MiB each of its pods sees as memory.total, as planned."""
    slices = {p.service: p.memory_mib for p in plan.placements}
    for svc in settings.services:
        if svc.name not in slices:  # the plan could not place it (allowUnschedulable)
            group = next(g for g in settings.node_groups if g.name == svc.node_group)
            slices[svc.name] = hami.granted_memory_mib(svc.gpumem, svc.gpumem_percentage, group.gpu.memory_mib)
    return slices


def _placed_pods(snapshot: Snapshot, settings: Settings) -> list[tuple[ServiceSettings, JsonObject]]:
    """Every live pod of every service that went through hami-scheduler."""
    return [(svc, pod) for svc in settings.services for pod in service_pods(snapshot, settings, svc)
            if not _bypassed(pod)]


def check_slices(snapshot: Snapshot, settings: Settings, plan: Plan) -> list[Check]:
    slices = planned_slices(plan, settings)
    checks = []
    for svc, pod in _placed_pods(snapshot, settings):
        target = f"{settings.namespace}/{_name(pod)}"
        allocation = _allocation(pod)
        if isinstance(allocation, str):
            checks.append(Check(SLICE, target, False, allocation))
            continue
        device = allocation[0]
        want = slices[svc.name]
        if device.memory_mib == want:
            checks.append(Check(SLICE, target, True, f"{device.memory_mib} MiB of {device.uuid} (plan: {want} MiB)"))
        else:
            checks.append(Check(
                SLICE, target, False,
                f"HAMi gave it {device.memory_mib} MiB of {device.uuid}; the plan's slice for {svc.name} is "
                f"{want} MiB ({svc.memory_request_label}): the live Deployment's GPU limits differ from the "
                f"stack's; run pulumi up"))
    return checks


def _gpu_locations(snapshot: Snapshot) -> dict[str, str]:
    """GPU UUID -> "GPU <index> of <node>", from the nodes' registrations."""
    where = {}
    for node in snapshot.nodes:
        registration = _registration(node)
        if isinstance(registration, NodeRegistration):
            for gpu in registration.gpus:
                where[gpu.uuid] = f"GPU {gpu.index} of {_name(node)}"
    return where


def _fits(live: Counter[str], planned: Counter[str]) -> bool:
    """Live pods on one GPU could be (part of) this planned GPU's pods."""
    return all(planned[service] >= count for service, count in live.items())


def _match_groups(live: list[Counter[str]], planned: list[Counter[str]]) -> dict[int, int]:
    """Assign each live GPU to a different planned GPU whose pods it could be (bipartite matching,
    augmenting paths): live index -> planned index, for as many live GPUs as possible."""
    owner: dict[int, int] = {}  # planned -> live

    def assign(i: int, seen: set[int]) -> bool:
        for j, group in enumerate(planned):
            if j in seen or not _fits(live[i], group):
                continue
            seen.add(j)
            if j not in owner or assign(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in sorted(range(len(live)), key=lambda k: -sum(live[k].values())):
        assign(i, set())
    return {i: j for j, i in owner.items()}


def check_sharing(snapshot: Snapshot, settings: Settings, plan: Plan) -> list[Check]:
    """The plan's grouping holds: replicas it puts on one GPU share one GPU UUID, with no other
    pod on that GPU, and replicas it puts on different GPUs do not share one.

    HAMi's choices among equal GPUs and nodes are random, so live GPUs are matched to planned
    GPUs by the services of their pods, never by index or node name. Pods not placed yet are
    left to replicas-ready and gpu-slice: the grouping is judged on the pods HAMi has placed.
    """
    service_of = {p.pod: p.service for p in plan.placements}
    live: dict[str, list[tuple[str, str]]] = {}  # uuid -> [(service, pod)]
    for svc, pod in _placed_pods(snapshot, settings):
        allocation = _allocation(pod)
        if not isinstance(allocation, str) and svc.name in plan.services:
            live.setdefault(allocation[0].uuid, []).append((svc.name, _name(pod)))
    planned_gpus = [gpu for gpu in plan.gpus if gpu.pods]
    planned = [Counter(service_of[pod] for pod in gpu.pods) for gpu in planned_gpus]
    uuids = list(live)
    matched = _match_groups([Counter(s for s, _ in live[u]) for u in uuids], planned)
    unmatched = [u for i, u in enumerate(uuids) if i not in matched]
    gpu_of_planned = {j: uuids[i] for i, j in matched.items()}
    where = _gpu_locations(snapshot)

    def located(uuid: str) -> str:
        return f"{uuid} ({where.get(uuid, 'unregistered GPU')})"

    checks = []
    for j, gpu in enumerate(planned_gpus):
        target = " + ".join(gpu.pods)
        wanted = planned[j]
        strays = [u for u in unmatched if any(service in wanted for service, _ in live[u])]
        if strays:
            actual = [f"{pod} on {located(uuid)}" for uuid, pods in live.items() for service, pod in pods
                      if service in wanted]
            planned_text = (f"{' and '.join(gpu.pods)} together on one GPU" if len(gpu.pods) > 1
                            else f"{gpu.pods[0]} on a GPU of its own")
            checks.append(Check(
                SHARING, target, False,
                f"the plan puts {planned_text}; in the cluster: {'; '.join(actual)}. "
                f"HAMi places by live usage and each pod's hami.io/gpu-scheduler-policy: compare "
                f"`python -m hamieks plan` with the pods' {hami.ANNOTATION_DEVICES_ALLOCATED}"))
        elif j in gpu_of_planned:
            uuid = gpu_of_planned[j]
            pods = [p for _, p in live[uuid]]
            placed = len(pods)
            partly = f" ({placed} of {sum(wanted.values())} placed so far)" if placed < sum(wanted.values()) else ""
            verb = "share" if placed > 1 else "has"
            checks.append(Check(SHARING, target, True, f"{', '.join(pods)} {verb} {located(uuid)}{partly}"))
        else:
            checks.append(Check(SHARING, target, True,
                                "no pod of this GPU placed yet (replicas-ready and gpu-slice say why)"))
    return checks


def object_checks(snapshot: Snapshot, settings: Settings, plan: Plan) -> list[Check]:
    """Every check that needs only API objects, in report order."""
    return [
        *check_scheduler(snapshot),
        *check_device_plugins(snapshot, settings),
        *check_other_device_plugins(snapshot, settings),
        *check_registrations(snapshot, settings),
        *check_replicas(snapshot, settings),
        *check_scheduled_by_hami(snapshot, settings),
        *check_slices(snapshot, settings, plan),
        *check_sharing(snapshot, settings, plan),
    ]


# ---- inside the pods: nvidia-smi through exec -------------------------------------------------

@dataclass(frozen=True)
class ExecTarget:
    pod: str
    container: str
    device: AllocatedDevice


def exec_targets(snapshot: Snapshot, settings: Settings) -> list[ExecTarget]:
    """Running pods placed by HAMi with a readable allocation: the others cannot be asked, and
    their failures are already reported by the object checks."""
    targets = []
    for _, pod in _placed_pods(snapshot, settings):
        allocation = _allocation(pod)
        container = _gpu_container(pod)
        if _status(pod).get("phase") == "Running" and not isinstance(allocation, str) and container is not None:
            targets.append(ExecTarget(_name(pod), str(container.get("name")), allocation[0]))
    return targets


_MIB = re.compile(r"^\s*(\d+)\s*MiB\s*$")


def _mib(text: str) -> int | None:
    match = _MIB.match(text)
    return int(match.group(1)) if match else None


def check_memory_cap(namespace: str, target: ExecTarget, result: ExecResult) -> Check:
    """nvidia-smi inside the pod: memory.total is HAMi's slice, memory.used stays below it."""
    name = f"{namespace}/{target.pod}"
    command = " ".join(NVIDIA_SMI_QUERY)
    if result.returncode != 0:
        why = result.error or f"exit code {result.returncode}"
        output = result.stderr.strip() or result.stdout.strip()
        return Check(MEMORY_CAP, name, False, f"`{command}` failed ({why}): {output}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if len(lines) != 1:
        return Check(MEMORY_CAP, name, False,
                     f"nvidia-smi shows {len(lines)} GPUs, HAMi allocated 1: {result.stdout.strip()!r}")
    fields = [field.strip() for field in lines[0].split(",")]
    total = _mib(fields[1]) if len(fields) == 3 else None
    used = _mib(fields[2]) if len(fields) == 3 else None
    if total is None or used is None:
        return Check(MEMORY_CAP, name, False, f"unexpected nvidia-smi output {lines[0]!r}")
    slice_mib = target.device.memory_mib
    problems = []
    if fields[0] != target.device.uuid:
        problems.append(f"it sees {fields[0]}, HAMi allocated {target.device.uuid}")
    if total != slice_mib:
        problems.append(f"memory.total is {total} MiB, not the {slice_mib} MiB slice HAMi allocated: HAMi-core is not "
                        f"capping this container (another device plugin allocated it, or NVIDIA_VISIBLE_DEVICES is "
                        f"set in the pod); delete the pod once only HAMi's plugin serves {hami.RESOURCE_GPU}")
    elif used >= total:
        problems.append(f"memory.used {used} MiB has reached the {total} MiB cap: lower the server's "
                        f"--gpu-memory-utilization or raise its slice")
    if problems:
        return Check(MEMORY_CAP, name, False, "; ".join(problems))
    return Check(MEMORY_CAP, name, True, f"{fields[0]}: memory.total {total} MiB = slice, memory.used {used} MiB")


# ---- inference: through the service proxy, else from inside a pod ----------------------------

CHAT_PATH = "v1/chat/completions"


def chat_request(model: str) -> dict[str, Any]:
    return {"model": model, "temperature": 0, "max_tokens": 16,
            "messages": [{"role": "user", "content": "Reply with one word: ready?"}]}


def _reply(body: str) -> str | None:
    try:
        document = json.loads(body)
        content = document["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _completion(response: ProxyResponse) -> str | None:
    """The reply of a 200 that carries a non-empty completion, else None."""
    reply = _reply(response.body) if response.status == 200 else None
    return reply if reply is not None and reply.strip() else None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _api_status(body: str) -> Mapping[str, Any] | None:
    """The body as a Kubernetes Status object (an answer of the API server itself), else None."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) and document.get("kind") == "Status" else None


# The API server's own 503 when the Service has no Ready endpoint (pkg/registry/core/service
# ResourceLocation): no pod to reach, so no pod to ask from inside either.
_NO_ENDPOINTS = "no endpoints available"


def proxy_blocked(response: ProxyResponse) -> bool:
    """The service proxy failed the way a NetworkPolicy that drops the control plane's traffic
    makes it fail, so asking from inside a pod can tell a blocked path from a broken server.

    Exactly these:
    - 503 with a Kubernetes Status body other than "no endpoints available": the API server
      could not dial the pod (k8s.io/apimachinery pkg/util/proxy/transport.go Transport.RoundTrip
      answers NewServiceUnavailable("error trying to reach service: dial tcp ...: i/o timeout"));
    - 504 with a Kubernetes Status body: the API server gave up waiting (reason Timeout);
    - no HTTP answer at all because our own read timed out.
    Any answer that came from vLLM (a 4xx, a 5xx with its JSON error, a 200 without content) is
    the server's own verdict and is reported as it is: a pod would answer the same.
    """
    if response.status == 0:
        return response.timed_out
    if response.status not in (503, 504):
        return False
    status = _api_status(response.body)
    return status is not None and _NO_ENDPOINTS not in str(status.get("message", ""))


@dataclass(frozen=True)
class InPod:
    """Where the in-pod request runs: a Ready pod of the service and its server container."""

    pod: str
    container: str


def inference_pod(snapshot: Snapshot, settings: Settings, svc: ServiceSettings) -> InPod | None:
    """The first Ready pod of the service (the Service would route to it), or None."""
    for pod in service_pods(snapshot, settings, svc):
        container = _gpu_container(pod) or next(iter(_spec(pod).get("containers") or []), None)
        if pod_ready(pod) and container is not None:
            return InPod(_name(pod), str(container.get("name")))
    return None


# Run by the vLLM image's own python3 (the image may have no curl): one POST to the server on
# the pod's loopback, which no NetworkPolicy filters; proxies from the environment are ignored.
# It always exits 0 once it ran, and prints one JSON line: status (0 when nothing answered),
# seconds and the body (cut to 4000 characters).
_IN_POD_SCRIPT = """\
import json, sys, time, urllib.error, urllib.request
url, timeout, body = sys.argv[1], float(sys.argv[2]), sys.argv[3].encode()
request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
started = time.monotonic()
try:
    with opener.open(request, timeout=timeout) as response:
        status, text = response.status, response.read()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read()
except OSError as error:
    status, text = 0, repr(error).encode()
print(json.dumps({"status": status, "seconds": round(time.monotonic() - started, 3),
                  "body": text.decode("utf-8", "replace")[:4000]}, separators=(",", ":")))
"""
IN_POD_PYTHON = "python3"
LOOPBACK_URL = f"http://127.0.0.1:{workloads.VLLM_PORT}/{CHAT_PATH}"


def in_pod_command(model: str, timeout: float) -> list[str]:
    """The command that sends `chat_request(model)` from inside a pod, waiting at most `timeout`."""
    body = json.dumps(chat_request(model), separators=(",", ":"))
    return [IN_POD_PYTHON, "-c", _IN_POD_SCRIPT, LOOPBACK_URL, f"{timeout:g}", body]


def in_pod_response(result: ExecResult) -> ProxyResponse | str:
    """What the server answered inside the pod, or why the command could not tell."""
    if result.returncode != 0:
        why = result.error or f"exit code {result.returncode}"
        output = _short(result.stderr.strip() or result.stdout.strip())
        return f"`{IN_POD_PYTHON} -c ...` failed ({why}){': ' + output if output else ''}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        document = json.loads(lines[-1])
        return ProxyResponse(int(document["status"]), str(document["body"]), float(document["seconds"]))
    except (IndexError, ValueError, KeyError, TypeError):
        return f"`{IN_POD_PYTHON} -c ...` printed no result: {_short(result.stdout.strip() or result.stderr.strip())!r}"


@dataclass(frozen=True)
class InPodAnswer:
    pod: str
    result: ExecResult


def _proxy_outcome(response: ProxyResponse) -> str:
    if response.timed_out:
        return f"no answer within {response.seconds:.1f} s"
    if response.status == 0:
        return f"no answer ({_short(response.body, 100)})"
    status = _api_status(response.body)
    message = f" ({_short(str(status.get('message', '')), 100)})" if status is not None else ""
    return f"{response.status} in {response.seconds:.2f} s{message}"


def _server_hint(response: ProxyResponse, model: str) -> str:
    """What a failing answer of the vLLM server means."""
    if response.status == 404 and "does not exist" in response.body:
        return (f"; the server does not serve {model!r}: the live Deployment's args differ from the stack "
                f"(run pulumi up)")
    if response.status == 200:
        return "; the reply has no choices[0].message.content"
    return ""


def check_inference(settings: Settings, svc: ServiceSettings, response: ProxyResponse,
                    inside: InPodAnswer | None = None) -> Check:
    """One chat completion with the service's model: through the service proxy, and when that path
    is blocked (`proxy_blocked`), from inside a Ready pod (`inside`)."""
    target = f"{settings.namespace}/{svc.name}"
    model = svc.model
    reply = _completion(response)
    if reply is not None:
        return Check(INFERENCE, target, True,
                     f"{response.status} in {response.seconds:.2f} s via the service proxy, model {model}: "
                     f"{_short(reply, 60)!r}")
    proxy_text = f"POST /{CHAT_PATH} via the service proxy: {_proxy_outcome(response)}"
    if inside is not None:
        return _check_in_pod(target, model, response, inside)
    if proxy_blocked(response):
        hint = f"; no Ready pod to send it from inside instead (see {REPLICAS})"
    elif response.status == 503 and _NO_ENDPOINTS in response.body:
        hint = f"; no Ready replica behind the Service yet (see {REPLICAS})"
    elif response.status == 0:
        hint = "; the API server did not answer the proxy request"
    else:
        hint = _server_hint(response, model)
    body = "" if response.status == 0 or _api_status(response.body) else f": {_short(response.body)}"
    return Check(INFERENCE, target, False, f"{proxy_text}{body}{hint}")


def _check_in_pod(target: str, model: str, proxy: ProxyResponse, inside: InPodAnswer) -> Check:
    blocked = (f"the service proxy got {_proxy_outcome(proxy)}: the {workloads.NETWORK_POLICY_NAME} NetworkPolicy "
               f"does not admit the EKS control plane (aws/aws-network-policy-agent#281); clients labelled "
               f"{workloads.CLIENT_POD_LABEL[0]}={workloads.CLIENT_POD_LABEL[1]} are not affected")
    answer = in_pod_response(inside.result)
    where = f"inside pod {inside.pod}"
    if isinstance(answer, str):
        return Check(INFERENCE, target, False,
                     f"the service proxy got {_proxy_outcome(proxy)}, and the chat completion sent {where} could "
                     f"not run: {answer}")
    reply = _completion(answer)
    if reply is not None:
        return Check(INFERENCE, target, True,
                     f"answered in {answer.seconds:.2f} s {where}, model {model}: {_short(reply, 60)!r}; {blocked}")
    if answer.status == 0:
        outcome = (f"the server did not answer on {LOOPBACK_URL} either ({_short(answer.body, 100)}): it is not "
                   f"serving (kubectl -n {target.split('/')[0]} logs {inside.pod})")
    else:
        outcome = (f"the server answered {answer.status} in {answer.seconds:.2f} s: {_short(answer.body)}"
                   f"{_server_hint(answer, model)}")
    return Check(INFERENCE, target, False,
                 f"the service proxy got {_proxy_outcome(proxy)}; sent {where} instead, {outcome}")
