"""Reading the API objects `verify` fetched (plain dicts): names, labels, pod state, the stack's
pods and nodes, and HAMi's annotations on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamieks import catalog, hami
from hamieks.config.conventions import ACCELERATOR_LABEL_KEY, GPU_NODE_LABEL
from hamieks.config.services import ServiceSettings
from hamieks.config.settings import Settings
from hamieks.kube import workloads
from hamieks.scheduling.placement_inputs import INSTANCE_TYPE_LABEL
from hamieks.verify import annotations as hami_annotations
from hamieks.verify.annotations import AllocatedDevice, AnnotationError, NodeRegistration
from hamieks.verify.cluster import JsonObject, Snapshot

# ---- reading API objects -----------------------------------------------------------------------

def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def name(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def qualified(obj: Mapping[str, Any]) -> str:
    return f"{meta(obj).get('namespace', '')}/{name(obj)}"


def labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = meta(obj).get("labels") or {}
    return labels


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    notes: Mapping[str, str] = meta(obj).get("annotations") or {}
    return notes


def spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec: Mapping[str, Any] = obj.get("spec") or {}
    return spec


def status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status: Mapping[str, Any] = obj.get("status") or {}
    return status


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status(obj).get("conditions") or []:
        if condition.get("type") == kind:
            found: Mapping[str, Any] = condition
            return found
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    ready = condition(pod, "Ready")
    return status(pod).get("phase") == "Running" and ready is not None and ready.get("status") == "True"


def pod_state(pod: Mapping[str, Any]) -> str:
    """Why a pod is not Running and Ready, in kubectl's words."""
    pod_status = status(pod)
    phase = str(pod_status.get("phase", "Unknown"))
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        message = scheduled.get("message")
        return f"{phase} ({scheduled.get('reason', 'not scheduled')}{': ' + message if message else ''})"
    for container in pod_status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return f"{phase}, container {container.get('name')} {waiting.get('reason', 'waiting')}"
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return f"{phase}, container {container.get('name')} terminated ({terminated.get('reason', '')})"
    if phase == "Running":
        return "Running, not Ready (readiness probe failing: still loading the model?)"
    reason = pod_status.get("reason")
    return f"{phase} ({reason})" if reason else phase


def terminating(obj: Mapping[str, Any]) -> bool:
    return meta(obj).get("deletionTimestamp") is not None


def gpu_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in spec(pod).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        if hami.RESOURCE_GPU in limits:
            found: Mapping[str, Any] = container
            return found
    return None


def node_of(pod: Mapping[str, Any]) -> str:
    return str(spec(pod).get("nodeName") or annotations_of(pod).get(hami.ANNOTATION_ASSIGNED_NODE) or "-")


def instance(node: Mapping[str, Any]) -> catalog.InstanceType | None:
    return catalog.INSTANCE_TYPES.get(labels(node).get(INSTANCE_TYPE_LABEL, ""))


def gpu_nodes(snapshot: Snapshot, settings: Settings) -> list[JsonObject]:
    """Nodes of the stack's GPU node groups (accelerator=<group>) and any node carrying the
    device plugin's selector label gpu=on."""
    groups = {group.name for group in settings.node_groups}
    return [node for node in snapshot.nodes
            if labels(node).get(ACCELERATOR_LABEL_KEY) in groups
            or labels(node).get(GPU_NODE_LABEL.key) == GPU_NODE_LABEL.value]


def service_pods(snapshot: Snapshot, settings: Settings, svc: ServiceSettings) -> list[JsonObject]:
    """The live pods of a service: the selector of the Deployment the stack builds; not terminating."""
    selector: Mapping[str, str] = workloads.deployment(settings, svc)["spec"]["selector"]["matchLabels"]
    return [pod for pod in snapshot.pods
            if not terminating(pod) and all(labels(pod).get(k) == v for k, v in selector.items())]


def bypassed(pod: Mapping[str, Any]) -> bool:
    return gpu_container(pod) is not None and spec(pod).get("schedulerName") != hami.SCHEDULER_NAME


def allocation(pod: Mapping[str, Any]) -> tuple[AllocatedDevice, ...] | str:
    """The pod's HAMi devices, or why there are none."""
    text = annotations_of(pod).get(hami.ANNOTATION_DEVICES_ALLOCATED)
    if not text:
        return (f"no {hami.ANNOTATION_DEVICES_ALLOCATED} annotation: hami-scheduler has not placed it "
                f"({pod_state(pod)})")
    try:
        devices = hami_annotations.allocated_devices(text)
    except AnnotationError as exc:
        return f"{hami.ANNOTATION_DEVICES_ALLOCATED} is unreadable: {exc}"
    if len(devices) != 1:
        return f"{hami.ANNOTATION_DEVICES_ALLOCATED} lists {len(devices)} devices ({text!r}); each server asks for 1"
    return devices


def registration(node: Mapping[str, Any]) -> NodeRegistration | str:
    text = annotations_of(node).get(hami.ANNOTATION_NODE_REGISTER)
    if not text:
        return (f"no {hami.ANNOTATION_NODE_REGISTER} annotation: HAMi's device plugin has not registered "
                f"this node's GPUs (kubectl -n {hami.RELEASE_NAMESPACE} logs "
                f"ds/{hami.DEVICE_PLUGIN_DAEMONSET} -c device-plugin)")
    try:
        return hami_annotations.parse_node_register(text)
    except AnnotationError as exc:
        return f"{hami.ANNOTATION_NODE_REGISTER} is unreadable: {exc}"


