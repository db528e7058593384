"""Kubernetes objects for the model servers, as plain dicts.

One builder serves three consumers: the Pulumi components create exactly these objects, the
`render` command writes them to manifests/ for kubectl users, and the placement planner reads
the pod template's requests, annotations, nodeSelector and tolerations from them.
"""

from __future__ import annotations

import math
from typing import Any

from hamieks import hami
from hamieks.config.conventions import ACCELERATOR_LABEL_KEY, GPU_TAINT, GPUS_PER_POD
from hamieks.config.services import ServiceSettings
from hamieks.config.settings import Settings
from hamieks.kube.monitoring_metrics import MONITORING_NAMESPACE

# Only clients may call the model servers: pods carrying this label, in the servers' namespace, or
# any pod of a namespace carrying it (`kubectl label ns <ns> hami-eks.io/llm-client=allowed`).
CLIENT_NAMESPACE_LABEL = ("hami-eks.io/llm-client", "allowed")
CLIENT_POD_LABEL = CLIENT_NAMESPACE_LABEL
NETWORK_POLICY_NAME = "vllm-ingress"
# Every namespace carries its own name in this label (set by the API server since Kubernetes 1.22).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# The servers' own service account, which mounts no API token (vLLM never calls the API server).
SERVICE_ACCOUNT_NAME = "vllm"
# Pod Security Admission levels of the serving namespace (see namespace()): enforced, and the
# stricter one every pod is warned and audited against.
POD_SECURITY_LEVEL = "baseline"
POD_SECURITY_AUDIT_LEVEL = "restricted"
EGRESS_POLICY_NAME = "vllm-egress"
# Link-local: the EC2 instance metadata service (IMDS, 169.254.169.254) and the ECS/EKS Pod
# Identity agent (169.254.170.23). A server needs neither: it holds no AWS credentials.
LINK_LOCAL = "169.254.0.0/16"
# Writable places under a read-only root: vLLM's JIT caches (Triton, torch.compile/inductor,
# FlashInfer, outlines) under $HOME/.cache and $HOME/.config, and /tmp, where HAMi-core keeps the
# shared-memory file its processes account GPU memory through (libvgpu.so, /tmp/cudevshr.cache).
WRITABLE_DIRS = {"cache": "/root/.cache", "config": "/root/.config", "tmp": "/tmp"}
WRITABLE_DIR_LIMIT = "4Gi"

HF_TOKEN_SECRET = "hf-token"
HF_TOKEN_SECRET_KEY = "token"
# vLLM reads VLLM_API_KEY like --api-key (vllm/envs.py) and then requires `Authorization: Bearer`
# on the API routes, while /health and /metrics stay open (its AuthenticationMiddleware's
# PUBLIC_ENDPOINTS): the probes and a metrics scraper need no key.
API_KEY_SECRET = "vllm-api-key"
API_KEY_SECRET_KEY = "key"
API_KEY_ENV = "VLLM_API_KEY"
MODEL_CACHE_MOUNT = "/models/hf-cache"
HEALTH_PATH = "/health"
STARTUP_PROBE_PERIOD_SECONDS = 10
# First start on a fresh node pulls the vLLM image (several GB) before the startup probe
# even begins; the rollout deadline must cover that too.
IMAGE_PULL_BUDGET_SECONDS = 900
PRESTOP_SLEEP_SECONDS = 10
TERMINATION_GRACE_SECONDS = 60
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
                hami.WEBHOOK_SCOPE_LABEL[0]: hami.WEBHOOK_SCOPE_LABEL[1],
                # "baseline" is the strictest level vLLM runs under: no hostPath (the model
                # cache is an emptyDir), no host namespaces, no privilege, no added capabilities.
                # "restricted" would also demand runAsNonRoot, and the vLLM image is built to run
                # as root (HOME=/root, JIT caches) beside HAMi-core's root-owned host mounts
                # (/usr/local/vgpu, the vgpulock directory the device plugin adds), which a
                # non-root process cannot use: an untested combination on a GPU that costs
                # dollars an hour. Enforced, so a hostPath or privileged pod is refused here.
                "pod-security.kubernetes.io/enforce": POD_SECURITY_LEVEL,
                # ...and every pod is measured against "restricted": `kubectl apply` prints the
                # gaps and the audit log records them, without refusing the servers.
                "pod-security.kubernetes.io/warn": POD_SECURITY_AUDIT_LEVEL,
                "pod-security.kubernetes.io/audit": POD_SECURITY_AUDIT_LEVEL,
            },
        },
    }


def network_policy(settings: Settings) -> dict[str, Any]:
    """Ingress to the model servers: port 8000 only, and only from clients: pods labelled
    hami-eks.io/llm-client=allowed in the servers' namespace, or any pod of a namespace with
    that label. Servers never call each other, so the rest of the namespace is not let in either.

    `kubectl port-forward` tunnels through the kubelet into the pod and is not subject to
    NetworkPolicy, and kubelet probes come from the node, which NetworkPolicy always allows; so
    neither needs a rule. Egress is egress_network_policy's. On EKS the policy is enforced only
    when the VPC CNI runs with enableNetworkPolicy=true.
    """
    sources: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {CLIENT_POD_LABEL[0]: CLIENT_POD_LABEL[1]}}},
        {"namespaceSelector": {"matchLabels": {CLIENT_NAMESPACE_LABEL[0]: CLIENT_NAMESPACE_LABEL[1]}}},
    ]
    if settings.monitoring:
        # Prometheus scrapes /metrics on the same port (hamieks/kube/monitoring.py ServiceMonitor).
        sources.append({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: MONITORING_NAMESPACE}}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NETWORK_POLICY_NAME, "namespace": settings.namespace, "labels": dict(PART_OF)},
        "spec": {
            # Every model server pod carries the part-of label (an empty selector would also
            # work in Kubernetes, but checkov cannot connect `{}` to pods).
            "podSelector": {"matchLabels": dict(PART_OF)},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": sources,
                "ports": [{"protocol": "TCP", "port": VLLM_PORT}],
            }],
        },
    }


def egress_network_policy(settings: Settings) -> dict[str, Any]:
    """What the model servers may reach: the cluster DNS, and HTTPS to the internet (Hugging Face
    and its CDN, whose addresses no policy can list), but neither the instance metadata service
    nor anything inside the VPC (nodes, the control plane's ENIs, other pods): a compromised
    server cannot borrow the node's role or probe the cluster."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": EGRESS_POLICY_NAME, "namespace": settings.namespace, "labels": dict(PART_OF)},
        "spec": {
            "podSelector": {"matchLabels": dict(PART_OF)},
            "policyTypes": ["Egress"],
            "egress": [
                {   # coredns, by its labels in kube-system (the EKS add-on's k8s-app=kube-dns). Pods
                    # resolve through the kube-dns Service IP, which the VPC CNI's eBPF probe sees
                    # before DNAT; EKS's policy controller adds the ClusterIP of every Service whose
                    # spec.selector this podSelector matches (amazon-network-policy-controller-k8s,
                    # pkg/resolvers/endpoints.go getMatchingServiceClusterIPs), so the selector must
                    # be exactly the Service's: k8s-app=kube-dns.
                    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [settings.vpc_cidr, LINK_LOCAL]}}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                },
            ],
        },
    }


def service_account(settings: Settings) -> dict[str, Any]:
    """The servers' service account: no API token is mounted into its pods unless a pod asks."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT_NAME, "namespace": settings.namespace, "labels": dict(PART_OF)},
        "automountServiceAccountToken": False,
    }


def _secret(settings: Settings, name: str, key: str, value: Any) -> dict[str, Any]:
    """A Secret the servers read one variable from; `value` may be a Pulumi secret Output.

    stringData, not data: the value needs no base64 step, so an Output passes through untouched
    and stays secret. Never rendered to manifests/ (see hamieks/kube/rendering.py).
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": dict(PART_OF)},
        "type": "Opaque",
        "stringData": {key: value},
    }


def hf_token_secret(settings: Settings, token: Any) -> dict[str, Any]:
    """The Secret the servers read HF_TOKEN from."""
    return _secret(settings, HF_TOKEN_SECRET, HF_TOKEN_SECRET_KEY, token)


def api_key_secret(settings: Settings, key: Any) -> dict[str, Any]:
    """The Secret the servers read VLLM_API_KEY from."""
    return _secret(settings, API_KEY_SECRET, API_KEY_SECRET_KEY, key)


def pod_annotations(service: ServiceSettings) -> dict[str, str]:
    annotations = {hami.ANNOTATION_USE_GPUTYPE: service.gpu_type}
    if service.node_scheduler_policy:
        annotations[hami.ANNOTATION_NODE_POLICY] = service.node_scheduler_policy
    if service.gpu_scheduler_policy:
        annotations[hami.ANNOTATION_GPU_POLICY] = service.gpu_scheduler_policy
    return annotations


def gpu_limits(service: ServiceSettings) -> dict[str, Any]:
    """One vGPU plus exactly one memory key; HAMi reads quantities, the reference quotes them."""
    limits: dict[str, Any] = {hami.RESOURCE_GPU: GPUS_PER_POD}
    if service.gpumem is not None:
        limits[hami.RESOURCE_GPUMEM] = str(service.gpumem)
    else:
        limits[hami.RESOURCE_GPUMEM_PERCENTAGE] = str(service.gpumem_percentage)
    if service.gpucores is not None:
        limits[hami.RESOURCE_GPUCORES] = str(service.gpucores)
    return limits


def _probe(period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _env(settings: Settings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": MODEL_CACHE_MOUNT},
        # Triton's cache defaults to ~/.triton, outside the writable $HOME/.cache; numba's to the
        # __pycache__ beside the package's own files, which a read-only root refuses.
        {"name": "TRITON_CACHE_DIR", "value": f"{WRITABLE_DIRS['cache']}/triton"},
        {"name": "NUMBA_CACHE_DIR", "value": f"{WRITABLE_DIRS['cache']}/numba"},
        # vLLM's usage telemetry phones home from every pod start; off in a private cluster.
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if settings.hf_token_configured:
        env.append({
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": HF_TOKEN_SECRET_KEY}},
        })
    if settings.vllm_api_key_configured:
        env.append({
            "name": API_KEY_ENV,
            "valueFrom": {"secretKeyRef": {"name": API_KEY_SECRET, "key": API_KEY_SECRET_KEY}},
        })
    return env


def rollout_timeout_seconds(service: ServiceSettings) -> int:
    """How long one replica may take to become ready: image pull plus the startup budget.

    It is the Deployment's progressDeadlineSeconds, and the least a deploy tool should wait
    for a rollout (Pulumi's default 10 minutes is shorter than a first model download).
    """
    return IMAGE_PULL_BUDGET_SECONDS + service.startup_timeout_seconds


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
            # starving its GPU neighbours' host memory (the /dev/shm tmpfs counts against it
            # too). No CPU limit: throttling only slows tokenization and the scheduler loop.
            "limits": {"memory": service.memory, **gpu_limits(service)},
        },
        # The startup probe holds off liveness until the model is downloaded and loaded; after
        # that a wedged engine is restarted within a minute.
        "startupProbe": _probe(STARTUP_PROBE_PERIOD_SECONDS, startup_failures),
        "readinessProbe": _probe(10, 3),
        "livenessProbe": _probe(15, 4, timeout=10),
        # Give the Service time to drop the endpoint before vLLM stops taking requests. The
        # sleep action (GA in Kubernetes 1.34) needs no `sleep` binary in the image.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "securityContext": {
            # Root, as the vLLM image is built: it writes JIT and compile caches (Triton,
            # torch.compile, FlashInfer) under $HOME=/root and /tmp, and HAMi-core's host mounts
            # are root-owned. Root without capabilities or escalation gains nothing more, and
            # the image itself cannot be changed: those caches go to emptyDirs (WRITABLE_DIRS).
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT},
            *({"name": name, "mountPath": path} for name, path in WRITABLE_DIRS.items()),
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
            # so the rollout would hang Pending. Replace one replica at a time instead (a
            # single-replica service is down while its replacement loads the model).
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            # The default 600 s marks a rollout failed while a replica is still downloading.
            "progressDeadlineSeconds": rollout_timeout_seconds(service),
            "template": {
                "metadata": {"labels": {**labels, **PART_OF}, "annotations": pod_annotations(service)},
                "spec": {
                    "nodeSelector": {ACCELERATOR_LABEL_KEY: service.node_group},
                    "tolerations": [GPU_TAINT.toleration()],
                    # vLLM never calls the Kubernetes API: its own account, and no token.
                    "serviceAccountName": SERVICE_ACCOUNT_NAME,
                    "automountServiceAccountToken": False,
                    # Service links inject <SERVICE>_PORT variables; vLLM reads VLLM_* variables,
                    # and a Service named "vllm" would set VLLM_PORT=tcp://... and break it.
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        # NCCL and the tokenizer workers use shared memory; the runtime's
                        # default 64 MiB /dev/shm crashes them. Memory-backed, so capped.
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": service.shm_size}},
                        # On the node's root disk, for the pod's lifetime: a container restart
                        # (crash, liveness, OOM) finds the weights already there; a new pod
                        # downloads them again (1.5B fp16 ~3 GB, 7B AWQ ~4.5 GB: a minute or two
                        # through the NAT). A hostPath shared by all pods on the node would save
                        # that, but hostPath is a path onto the host that Pod Security "baseline"
                        # forbids; a PVC is zonal and ReadWriteOnce, EFS needs another driver.
                        {"name": "model-cache", "emptyDir": {}},
                        # Capped: a runaway cache is evicted with its pod, not a full node disk.
                        *({"name": name, "emptyDir": {"sizeLimit": WRITABLE_DIR_LIMIT}} for name in WRITABLE_DIRS),
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


FIRST_LOCAL_PORT = 8001  # the blog forwards its services to 8001, 8002, 8003


def local_port(settings: Settings, svc: ServiceSettings) -> int:
    """The local port a user forwards this service to: one per service, in stack order."""
    return FIRST_LOCAL_PORT + [s.name for s in settings.services].index(svc.name)


def port_forward_command(settings: Settings, svc: ServiceSettings) -> str:
    return f"kubectl -n {settings.namespace} port-forward svc/{svc.name} {local_port(settings, svc)}:{VLLM_PORT}"


def service_objects(settings: Settings, svc: ServiceSettings) -> list[dict[str, Any]]:
    """One model server: its Deployment and its Service (namespace-wide objects are separate)."""
    return [deployment(settings, svc), service(settings, svc)]


def namespace_objects(settings: Settings, hf_token: Any = None, api_key: Any = None) -> list[dict[str, Any]]:
    """What every server in the namespace relies on, in apply order.

    The HF token and API key Secrets are included only when a value is passed (the Pulumi program
    passes the secret Outputs of `hfToken` and `vllmApiKey`); renderings pass none, so no value
    ever reaches a file.
    """
    if hf_token is not None and not settings.hf_token_configured:
        raise ValueError("an HF token was passed but the stack does not set hfToken, so no "
                         "Deployment would read it")
    if api_key is not None and not settings.vllm_api_key_configured:
        raise ValueError("an API key was passed but the stack does not set vllmApiKey, so no "
                         "Deployment would read it")
    objects = [namespace(settings)]
    if hf_token is not None:
        objects.append(hf_token_secret(settings, hf_token))
    if api_key is not None:
        objects.append(api_key_secret(settings, api_key))
    objects.append(network_policy(settings))
    objects.append(egress_network_policy(settings))
    objects.append(service_account(settings))
    return objects


def stack_objects(settings: Settings, hf_token: Any = None, api_key: Any = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the stack creates for its model servers, in apply order:
    namespace-wide objects first (the Namespace before anything in it, the Secret and the
    NetworkPolicy before any pod), then each service's Deployment and Service."""
    objects = namespace_objects(settings, hf_token, api_key)
    for svc in settings.services:
        objects.extend(service_objects(settings, svc))
    return objects
