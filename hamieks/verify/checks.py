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

from collections import Counter
from collections.abc import Mapping
from typing import Any

from hamieks import catalog, hami
from hamieks.check import Check
from hamieks.config.conventions import ACCELERATOR_LABEL_KEY, GPU_NODE_LABEL
from hamieks.config.services import ServiceSettings
from hamieks.config.settings import Settings
from hamieks.scheduling.placement import Plan
from hamieks.scheduling.placement_inputs import INSTANCE_TYPE_LABEL
from hamieks.verify import annotations as hami_annotations
from hamieks.verify import objects as k8s
from hamieks.verify.annotations import NodeRegistration
from hamieks.verify.cluster import JsonObject, Snapshot

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
SCRAPES = "prometheus-scrapes"  # hamieks.verify.scrapes, with hami-eks:monitoring on
CHECK_NAMES = (SCHEDULER, DEVICE_PLUGIN, OTHER_DEVICE_PLUGIN, REGISTERED, REPLICAS, SCHEDULED_BY_HAMI,
               SLICE, SHARING, MEMORY_CAP, INFERENCE, SCRAPES)

# NVIDIA's k8s-device-plugin: its image (nvcr.io/nvidia/k8s-device-plugin) and the DaemonSet
# names its Helm chart and the GPU operator give it (nvidia-device-plugin-daemonset,
# <release>-nvidia-device-plugin).
_NVIDIA_PLUGIN_IMAGE = "k8s-device-plugin"
_NVIDIA_PLUGIN_NAME = "nvidia-device-plugin"

NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=uuid,memory.total,memory.used", "--format=csv,noheader"]


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
        wanted = int(k8s.spec(deployment).get("replicas", 1))
        available = int(k8s.status(deployment).get("availableReplicas") or 0)
        if wanted > 0 and available >= wanted:
            checks.append(Check(SCHEDULER, k8s.qualified(deployment), True, f"{available}/{wanted} replicas available"))
            continue
        condition = k8s.condition(deployment, "Available") or {}
        why = f" ({condition.get('message')})" if condition.get("message") else ""
        checks.append(Check(
            SCHEDULER, k8s.qualified(deployment), False,
            f"{available} of {wanted} replicas available{why}: GPU pods cannot be scheduled or admitted "
            f"until it is; see kubectl -n {k8s.meta(deployment).get('namespace')} describe deployment "
            f"{k8s.name(deployment)}"))
    return checks


def check_device_plugins(snapshot: Snapshot, settings: Settings) -> list[Check]:
    checks = []
    nodes = k8s.gpu_nodes(snapshot, settings)
    for group in settings.node_groups:
        if not any(k8s.labels(n).get(ACCELERATOR_LABEL_KEY) == group.name for n in nodes):
            checks.append(Check(DEVICE_PLUGIN, f"node group {group.name}", False,
                                f"no node labelled {ACCELERATOR_LABEL_KEY}={group.name} is in the cluster "
                                f"(desiredSize {group.desired_size}): the node group has not joined; check its "
                                f"health in the EKS console or `aws eks describe-nodegroup`"))
    for node in nodes:
        plugins = [p for p in snapshot.device_plugin_pods
                   if k8s.spec(p).get("nodeName") == k8s.name(node) and not k8s.terminating(p)]
        ready = [p for p in plugins if k8s.pod_ready(p)]
        if ready:
            checks.append(Check(DEVICE_PLUGIN, k8s.name(node), True, f"{k8s.qualified(ready[0])} Ready"))
        elif plugins:
            pod = plugins[0]
            checks.append(Check(DEVICE_PLUGIN, k8s.name(node), False,
                                f"{k8s.qualified(pod)} is not Ready: {k8s.pod_state(pod)}; GPUs on this node cannot be "
                                f"registered or allocated (kubectl -n {k8s.meta(pod).get('namespace')} logs "
                                f"{k8s.name(pod)} -c device-plugin)"))
        else:
            checks.append(Check(DEVICE_PLUGIN, k8s.name(node), False,
                                f"no HAMi device-plugin pod on this GPU node: the DaemonSet runs only on nodes "
                                f"labelled {GPU_NODE_LABEL.key}={GPU_NODE_LABEL.value} and tolerating their taints; "
                                f"label the node group {GPU_NODE_LABEL.key}={GPU_NODE_LABEL.value}"))
    return checks


def _looks_like_nvidia_plugin(daemonset: Mapping[str, Any]) -> str | None:
    """The evidence that a DaemonSet runs NVIDIA's device plugin, or None."""
    template = k8s.spec(k8s.spec(daemonset).get("template") or {})
    for container in [*(template.get("initContainers") or []), *(template.get("containers") or [])]:
        image = str(container.get("image", ""))
        if _NVIDIA_PLUGIN_IMAGE in image:
            return f"image {image}"
    if _NVIDIA_PLUGIN_NAME in k8s.name(daemonset):
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
        if k8s.labels(daemonset).get(hami.COMPONENT_LABEL) == hami.DEVICE_PLUGIN_COMPONENT:
            continue
        evidence = _looks_like_nvidia_plugin(daemonset)
        if evidence is None:
            continue
        namespace = k8s.meta(daemonset).get("namespace")
        scheduled = int(k8s.status(daemonset).get("desiredNumberScheduled") or 0)
        checks.append(Check(
            OTHER_DEVICE_PLUGIN, k8s.qualified(daemonset), False,
            f"DaemonSet runs NVIDIA's device plugin ({evidence}) on {scheduled} node(s): it advertises "
            f"{hami.RESOURCE_GPU} beside HAMi's, so GPU pods can get whole GPUs without HAMi's memory cap; "
            f"remove it (kubectl -n {namespace} delete daemonset {k8s.name(daemonset)}, or disable the GPU "
            f"operator's devicePlugin), then delete the GPU pods it served"))
    if not checks:
        checks.append(Check(OTHER_DEVICE_PLUGIN, "daemonsets", True,
                            f"none of {len(snapshot.daemonsets)} DaemonSets runs NVIDIA's device plugin"))
    split = hami.DEVICE_SPLIT_COUNT
    for node in k8s.gpu_nodes(snapshot, settings):
        raw = (k8s.status(node).get("allocatable") or {}).get(hami.RESOURCE_GPU)
        if raw is None:
            continue  # nothing advertises the resource yet: the device-plugin check says why
        advertised = int(raw)
        instance = k8s.instance(node)
        most = split * instance.gpu_count if instance is not None else None
        if advertised % split == 0 and (most is None or advertised <= most):
            checks.append(Check(OTHER_DEVICE_PLUGIN, k8s.name(node), True,
                                f"allocatable {hami.RESOURCE_GPU} {advertised} = {advertised // split} GPUs x {split} "
                                f"(HAMi's deviceSplitCount)"))
            continue
        expected = (f"a multiple of {split}, {most} on this {instance.name} with all {instance.gpu_count} GPUs healthy"
                    if instance is not None else f"a multiple of {split}")
        checks.append(Check(
            OTHER_DEVICE_PLUGIN, k8s.name(node), False,
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
    for node in k8s.gpu_nodes(snapshot, settings):
        registration = k8s.registration(node)
        if isinstance(registration, str):
            checks.append(Check(REGISTERED, k8s.name(node), False, registration))
            continue
        instance = k8s.instance(node)
        type_label = k8s.labels(node).get(INSTANCE_TYPE_LABEL, "(no label)")
        if instance is None or instance.gpu is None:
            checks.append(Check(REGISTERED, k8s.name(node), False,
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
            checks.append(Check(REGISTERED, k8s.name(node), False, "; ".join(problems)))
        else:
            checks.append(Check(REGISTERED, k8s.name(node), True,
                                f"{len(registration.gpus)} x {kind}, {memory} MiB, {hami.DEVICE_SPLIT_COUNT} slots "
                                f"each ({registration.format} format) = catalog for {instance.name}"))
    return checks


# ---- the model servers -------------------------------------------------------------------------

def check_replicas(snapshot: Snapshot, settings: Settings) -> list[Check]:
    checks = []
    deployments = {k8s.name(d) for d in snapshot.deployments}
    for svc in settings.services:
        target = f"{settings.namespace}/{svc.name}"
        if svc.name not in deployments:
            checks.append(Check(REPLICAS, target, False,
                                f"Deployment {target} not found: run pulumi up (or kubectl apply -f manifests/)"))
            continue
        pods = k8s.service_pods(snapshot, settings, svc)
        ready = [p for p in pods if k8s.pod_ready(p)]
        if len(ready) >= svc.replicas:
            checks.append(Check(REPLICAS, target, True, f"{len(ready)}/{svc.replicas} Running and Ready"))
            continue
        parts = [f"{len(ready)} of {svc.replicas} replicas Running and Ready"]
        parts.extend(f"{k8s.name(p)}: {k8s.pod_state(p)}" for p in pods if not k8s.pod_ready(p))
        if len(pods) < svc.replicas:
            parts.append(f"only {len(pods)} pod(s) exist "
                         f"(kubectl -n {settings.namespace} describe deployment {svc.name})")
        checks.append(Check(REPLICAS, target, False, "; ".join(parts)))
    return checks


def _webhook_label_missing(snapshot: Snapshot) -> bool:
    key, value = hami.WEBHOOK_SCOPE_LABEL
    return snapshot.namespace is None or k8s.labels(snapshot.namespace).get(key) != value


def check_scheduled_by_hami(snapshot: Snapshot, settings: Settings) -> list[Check]:
    checks = []
    for svc in settings.services:
        for pod in k8s.service_pods(snapshot, settings, svc):
            target = f"{settings.namespace}/{k8s.name(pod)}"
            if not k8s.bypassed(pod):
                checks.append(Check(SCHEDULED_BY_HAMI, target, True, f"schedulerName {hami.SCHEDULER_NAME}"))
                continue
            scheduler = k8s.spec(pod).get("schedulerName") or "default-scheduler"
            fix = f"kubectl -n {settings.namespace} delete pod {k8s.name(pod)}"
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


def placed_pods(snapshot: Snapshot, settings: Settings) -> list[tuple[ServiceSettings, JsonObject]]:
    """Every live pod of every service that went through hami-scheduler."""
    return [(svc, pod) for svc in settings.services for pod in k8s.service_pods(snapshot, settings, svc)
            if not k8s.bypassed(pod)]


def check_slices(snapshot: Snapshot, settings: Settings, plan: Plan) -> list[Check]:
    slices = planned_slices(plan, settings)
    checks = []
    for svc, pod in placed_pods(snapshot, settings):
        target = f"{settings.namespace}/{k8s.name(pod)}"
        allocation = k8s.allocation(pod)
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
        registration = k8s.registration(node)
        if isinstance(registration, NodeRegistration):
            for gpu in registration.gpus:
                where[gpu.uuid] = f"GPU {gpu.index} of {k8s.name(node)}"
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
    for svc, pod in placed_pods(snapshot, settings):
        allocation = k8s.allocation(pod)
        if not isinstance(allocation, str) and svc.name in plan.services:
            live.setdefault(allocation[0].uuid, []).append((svc.name, k8s.name(pod)))
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


