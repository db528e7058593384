"""Kubernetes objects for the model servers, as plain dicts.

One builder serves three consumers: the Pulumi components create exactly these objects, the
`render` command writes them to manifests/ for kubectl users, and the placement planner reads
the pod template's requests, annotations, nodeSelector and tolerations from them.
"""

from __future__ import annotations

import math
from typing import Any

from hamieks.settings import ACCELERATOR_LABEL, GPU_TAINT, ServiceSettings, Settings

# HAMi's extended resources and pod annotations (chart values resourceName/resourceMem/...).
RESOURCE_GPU = "nvidia.com/gpu"
RESOURCE_GPUMEM = "nvidia.com/gpumem"
RESOURCE_GPUMEM_PERCENTAGE = "nvidia.com/gpumem-percentage"
RESOURCE_GPUCORES = "nvidia.com/gpucores"
ANNOTATION_USE_GPUTYPE = "nvidia.com/use-gputype"
ANNOTATION_NOUSE_GPUTYPE = "nvidia.com/nouse-gputype"
ANNOTATION_NODE_POLICY = "hami.io/node-scheduler-policy"
ANNOTATION_GPU_POLICY = "hami.io/gpu-scheduler-policy"

# Namespaces carrying this label are the only ones HAMi's mutating webhook acts on (see
# manifests/hami-values.yaml): it fails closed there, and cannot block system pods elsewhere.
WEBHOOK_SCOPE_LABEL = ("hami-eks.io/gpu-sharing", "enabled")

HF_TOKEN_SECRET = "hf-token"
HF_TOKEN_SECRET_KEY = "token"
# Weights live on the node's data disk, so a restarted pod, and every replica on that node,
# finds them already downloaded (huggingface_hub locks files, so concurrent replicas are safe).
MODEL_CACHE_HOST_PATH = "/var/lib/hami-eks/hf-cache"
MODEL_CACHE_MOUNT = "/models/hf-cache"
HEALTH_PATH = "/health"
STARTUP_PROBE_PERIOD_SECONDS = 10
PART_OF = {"app.kubernetes.io/part-of": "hami-eks"}
VLLM_PORT = 8000  # vllm serve's default, so the args stay exactly the reference's


def namespace(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": settings.namespace,
            "labels": {
                **PART_OF,
                WEBHOOK_SCOPE_LABEL[0]: WEBHOOK_SCOPE_LABEL[1],
                # The model cache is a hostPath volume, which "baseline" forbids; warn on
                # anything beyond baseline so other drift is still visible.
                "pod-security.kubernetes.io/warn": "baseline",
            },
        },
    }


def pod_annotations(service: ServiceSettings) -> dict[str, str]:
    annotations = {ANNOTATION_USE_GPUTYPE: service.gpu_type}
    if service.node_scheduler_policy:
        annotations[ANNOTATION_NODE_POLICY] = service.node_scheduler_policy
    if service.gpu_scheduler_policy:
        annotations[ANNOTATION_GPU_POLICY] = service.gpu_scheduler_policy
    return annotations


def gpu_limits(service: ServiceSettings) -> dict[str, Any]:
    """One vGPU plus exactly one memory key; HAMi reads quantities, the reference quotes them."""
    limits: dict[str, Any] = {RESOURCE_GPU: 1}
    if service.gpumem is not None:
        limits[RESOURCE_GPUMEM] = str(service.gpumem)
    else:
        limits[RESOURCE_GPUMEM_PERCENTAGE] = str(service.gpumem_percentage)
    if service.gpucores is not None:
        limits[RESOURCE_GPUCORES] = str(service.gpucores)
    return limits


def _probe(service: ServiceSettings, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _env(settings: Settings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": MODEL_CACHE_MOUNT},
        # vLLM's usage telemetry phones home from every pod start; off in a private cluster.
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if settings.hf_token_configured:
        env.append({
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": HF_TOKEN_SECRET_KEY}},
        })
    return env


def deployment(settings: Settings, service: ServiceSettings) -> dict[str, Any]:
    labels = {"app": service.name}
    startup_failures = math.ceil(service.startup_timeout_seconds / STARTUP_PROBE_PERIOD_SECONDS)
    container = {
        "name": "vllm",
        "image": service.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm"],
        "args": ["serve", service.model, *service.args],
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "env": _env(settings),
        "resources": {
            "requests": {"cpu": service.cpu, "memory": service.memory},
            # Memory limit = request: a loader that balloons is OOM-killed alone instead of
            # starving its GPU neighbours' host memory. No CPU limit: throttling only slows
            # tokenization and the scheduler loop.
            "limits": {"memory": service.memory, **gpu_limits(service)},
        },
        # The startup probe holds off liveness until the model is downloaded and loaded; after
        # that a wedged engine is restarted within a minute.
        "startupProbe": _probe(service, STARTUP_PROBE_PERIOD_SECONDS, startup_failures),
        "readinessProbe": _probe(service, 10, 3),
        "livenessProbe": _probe(service, 15, 4, timeout=10),
        # Give the Service time to drop the endpoint before vLLM stops taking requests.
        "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
        "securityContext": {
            # The vLLM image runs as root and writes compile caches under $HOME, so it is not
            # forced to another user; it gains nothing beyond that.
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": service.name, "namespace": settings.namespace, "labels": {**labels, **PART_OF}},
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": labels},
            # Never surge: a surge pod needs a second GPU slice that a packed GPU does not have,
            # so the rollout would hang Pending. Replace one replica at a time instead.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {**labels, **PART_OF}, "annotations": pod_annotations(service)},
                "spec": {
                    "nodeSelector": {ACCELERATOR_LABEL: service.node_group},
                    "tolerations": [{
                        "key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"],
                    }],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        # NCCL and the tokenizer workers use shared memory; the runtime's
                        # default 64 MiB /dev/shm crashes them. Memory-backed, so capped.
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": service.shm_size}},
                        {"name": "model-cache", "hostPath": {"path": MODEL_CACHE_HOST_PATH, "type": "DirectoryOrCreate"}},
                    ],
                },
            },
        },
    }


def service(settings: Settings, svc: ServiceSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": settings.namespace, "labels": {"app": svc.name, **PART_OF}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": svc.name},
            "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": VLLM_PORT, "protocol": "TCP"}],
        },
    }


def service_url(settings: Settings, svc: ServiceSettings) -> str:
    return f"http://{svc.name}.{settings.namespace}.svc.cluster.local:{VLLM_PORT}"


def port_forward_command(settings: Settings, svc: ServiceSettings, local_port: int) -> str:
    return f"kubectl -n {settings.namespace} port-forward svc/{svc.name} {local_port}:{VLLM_PORT}"


def service_objects(settings: Settings, svc: ServiceSettings) -> list[dict[str, Any]]:
    return [deployment(settings, svc), service(settings, svc)]
