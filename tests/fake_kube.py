"""A small fake Kubernetes API server on 127.0.0.1 that the real `kubernetes` client talks to.

It serves, from a mutable `ClusterState`, exactly the requests `hamieks verify` makes:
- GET lists and objects: nodes, namespaces, pods (namespaced and cluster-wide, with equality
  label selectors), Deployments, DaemonSets, as the API serves them (List kinds, Status errors);
- the exec websocket (`.../pods/<pod>/exec`), speaking the `v4.channel.k8s.io` subprotocol the
  client offers: one binary frame per channel (1 stdout, 2 stderr), then the exit status on
  channel 3 as a Status object, then a close frame — the same exchange as a real API server;
- POST through the service proxy (`.../services/<name>:<port>/proxy/<path>`): the API server
  picks a Ready pod behind the Service's selector (503 "no endpoints available" when none),
  and the "pod" answers like vLLM's OpenAI server (404 for a model it does not serve).
  `ClusterState.control_plane_blocked` makes the proxy fail as it does on EKS when the VPC CNI
  enforces the vllm-ingress NetworkPolicy, which admits no traffic from the control plane
  (aws/aws-network-policy-agent#281): the API server's 503 "error trying to reach service: dial
  tcp ...: i/o timeout", its 504 Timeout, or no answer before the client gives up;
- exec of `python3 ...` in a pod (no canned `execs` entry): the fake runs the command for real
  with this interpreter, its `http://127.0.0.1:8000` arguments pointed at that pod's server
  (the same fake vLLM, reached as from the pod's loopback, which no NetworkPolicy filters).
Requests without the kubeconfig's bearer token get 401, as on a real cluster.

`blog_cluster()` builds the reference blog's cluster: its node names, the
`hami.io/node-nvidia-register` strings it prints (verbatim), its GPU UUIDs, pod names and
nvidia-smi output (7500 and 10362 MiB).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TOKEN = "fake-token"
HOST = "127.0.0.1"
BLOCKED_DIAL = "503"
BLOCKED_TIMEOUT = "504"
BLOCKED_HANG = "hang"
HANG_SECONDS = 10.0  # how long a hanging proxy keeps a request (the client gives up first)
LOOPBACK = "http://127.0.0.1:8000"  # vLLM's address inside its pod
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
V4_PROTOCOL = "v4.channel.k8s.io"

Json = dict[str, Any]


@dataclass
class Exec:
    """What a command prints in a pod: stdout, stderr and its exit code."""

    stdout: str
    stderr: str = ""
    code: int = 0


@dataclass
class ClusterState:
    nodes: list[Json] = field(default_factory=list)
    namespaces: list[Json] = field(default_factory=list)
    pods: list[Json] = field(default_factory=list)
    deployments: list[Json] = field(default_factory=list)
    daemonsets: list[Json] = field(default_factory=list)
    services: list[Json] = field(default_factory=list)
    # (namespace, pod, command line) -> what it prints
    execs: dict[tuple[str, str, str], Exec] = field(default_factory=dict)
    # (namespace, service) -> the model name its pods serve
    served_models: dict[tuple[str, str], str] = field(default_factory=dict)
    replies: dict[tuple[str, str], str] = field(default_factory=dict)
    # (namespace, service) -> (status, body) its vLLM answers every chat completion with
    vllm_errors: dict[tuple[str, str], tuple[int, Json]] = field(default_factory=dict)
    # How the service proxy fails when a NetworkPolicy drops the control plane's traffic:
    # BLOCKED_DIAL (503), BLOCKED_TIMEOUT (504), BLOCKED_HANG (no answer); None: not blocked.
    control_plane_blocked: str | None = None
    python_in_pods: bool = True  # the image has python3 (vLLM's does)
    # The `up` series the monitoring namespace's Prometheus answers any instant query with
    # (hami-eks:monitoring); None: no Prometheus Service.
    prometheus_up: list[Json] | None = None
    # The servers' API key (hami-eks:vllmApiKey): vLLM then answers 401 without it, and the pods'
    # environment has it as VLLM_API_KEY. None: no key.
    api_key: str | None = None
    # (namespace, service) -> a real HTTP server GETs through the service proxy are forwarded to.
    proxied: dict[tuple[str, str], str] = field(default_factory=dict)

    def copy(self) -> ClusterState:
        return copy.deepcopy(self)

    # ---- lookups for tests that build variants -------------------------------------------
    def find(self, kind: str, name: str, namespace: str | None = None) -> Json:
        for obj in getattr(self, kind):
            meta = obj["metadata"]
            if meta["name"] == name and (namespace is None or meta.get("namespace") == namespace):
                found: Json = obj
                return found
        raise KeyError(f"{kind} {namespace}/{name}")


# ---- the reference blog's cluster ------------------------------------------------------------

T4_NODE = "ip-10-0-38-240.us-west-2.compute.internal"
A10G_NODE = "ip-10-0-53-156.us-west-2.compute.internal"
SYSTEM_NODES = ("ip-10-0-12-34.us-west-2.compute.internal", "ip-10-0-27-181.us-west-2.compute.internal")

# Verbatim from the blog's `kubectl get nodes -o jsonpath=...node-nvidia-register` output
# (HAMi < 2.8 records; the A10G shows the old "NVIDIA-NVIDIA A10G" type).
BLOG_T4_REGISTER = (
    "GPU-f8e75627-86ed-f202-cf2b-6363fb18d516,10,15360,100,NVIDIA-Tesla T4,0,true,0,hami-core:"
    "GPU-7f2003cf-a542-71cf-121f-0e489699bbcf,10,15360,100,NVIDIA-Tesla T4,0,true,1,hami-core:"
    "GPU-90e2e938-7ac3-3b5e-e9d2-94b0bd279cf2,10,15360,100,NVIDIA-Tesla T4,0,true,2,hami-core:"
    "GPU-2facdfa8-853c-e117-ed59-f0f55a4d536f,10,15360,100,NVIDIA-Tesla T4,0,true,3,hami-core:"
)
BLOG_A10G_REGISTER = (
    "GPU-bd5e2639-a535-7cba-f018-d41309048f4e,10,23028,100,NVIDIA-NVIDIA A10G,0,true,0,hami-core:"
    "GPU-06f444bc-af98-189a-09b1-d283556db9ef,10,23028,100,NVIDIA-NVIDIA A10G,0,true,1,hami-core:"
    "GPU-6385a85d-0ce2-34ea-040d-23c94299db3c,10,23028,100,NVIDIA-NVIDIA A10G,0,true,2,hami-core:"
    "GPU-d4acf062-3ba9-8454-2660-aae402f7a679,10,23028,100,NVIDIA-NVIDIA A10G,0,true,3,hami-core:"
)
T4_UUIDS = re.findall(r"GPU-[0-9a-f-]+", BLOG_T4_REGISTER)
A10G_UUIDS = re.findall(r"GPU-[0-9a-f-]+", BLOG_A10G_REGISTER)
SHARED_T4 = "GPU-f8e75627-86ed-f202-cf2b-6363fb18d516"  # both T4 replicas print it
SHARED_A10G = "GPU-d4acf062-3ba9-8454-2660-aae402f7a679"  # both A10G pods print it


def go_json_register(uuids: list[str], memory_mib: int, gpu_type: str) -> str:
    """The same GPUs as HAMi 2.10's device plugin writes them (devices.go MarshalNodeDevices):
    Go's encoding/json in struct field order, `omitempty` dropping index 0 and numa 0."""
    devices = []
    for index, uuid in enumerate(uuids):
        device: Json = {"id": uuid}
        if index:
            device["index"] = index
        device.update({"count": 10, "devmem": memory_mib, "devcore": 100, "type": gpu_type,
                       "mode": "hami-core", "health": True})
        devices.append(device)
    return json.dumps(devices, separators=(",", ":"))


SERVICES = {  # service -> (model, node, pods: [(name, nvidia-smi memory.used MiB)], slice MiB, uuid)
    "vllm-t4-qwen25-1-5b": ("Qwen/Qwen2.5-1.5B-Instruct", T4_NODE,
                            [("vllm-t4-qwen25-1-5b-55f98dbcf4-mgw8d", 5111),
                             ("vllm-t4-qwen25-1-5b-55f98dbcf4-rn5m4", 5045)], 7500, SHARED_T4),
    "vllm-a10g-mistral7b-awq": ("solidrust/Mistral-7B-Instruct-v0.3-AWQ", A10G_NODE,
                                [("vllm-a10g-mistral7b-awq-5f78b4c6b4-q84k7", 7241)], 10362, SHARED_A10G),
    "vllm-a10g-qwen25-7b-awq": ("Qwen/Qwen2.5-7B-Instruct-AWQ", A10G_NODE,
                                [("vllm-a10g-qwen25-7b-awq-6d5b5d94b-nxrbj", 7355)], 10362, SHARED_A10G),
}
NAMESPACE = "llm"
NVIDIA_SMI = "nvidia-smi --query-gpu=uuid,memory.total,memory.used --format=csv,noheader"
BLOG_REPLY = ("Summary:\n- Request for renewal quote with preference for monthly billing.\n"
              "- Need Single Sign-On (SSO) by the end of the month.")


def _meta(name: str, namespace: str | None = None, labels: Json | None = None,
          annotations: Json | None = None) -> Json:
    meta: Json = {"name": name, "uid": hashlib.md5(name.encode()).hexdigest(), "resourceVersion": "1",
                  "creationTimestamp": "2025-10-01T10:00:00Z"}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return meta


def _ready(ready: bool = True) -> list[Json]:
    return [{"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True" if ready else "False"}]


def gpu_node(name: str, instance_type: str, group: str, register: str | None, gpus: int) -> Json:
    annotations = {"hami.io/node-nvidia-register": register} if register is not None else {}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": _meta(name, labels={
            "kubernetes.io/hostname": name, "node.kubernetes.io/instance-type": instance_type,
            "eks.amazonaws.com/nodegroup": f"hami-demo-aws-{group}", "gpu": "on", "accelerator": group,
        }, annotations=annotations),
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "47810m", "memory": "189012Mi", "pods": "234", "nvidia.com/gpu": str(gpus * 10)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _system_node(name: str) -> Json:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": _meta(name, labels={"kubernetes.io/hostname": name, "role": "system",
                                        "node.kubernetes.io/instance-type": "m6i.large"}),
        "status": {"allocatable": {"cpu": "1930m", "memory": "7Gi", "pods": "29"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(name: str, namespace: str, node: str | None, labels: Json, containers: list[Json], *,
        annotations: Json | None = None, scheduler: str = "default-scheduler", ready: bool = True) -> Json:
    status: Json = {"phase": "Running", "conditions": _ready(ready), "containerStatuses": [
        {"name": c["name"], "ready": ready, "restartCount": 0, "image": c["image"],
         "state": {"running": {"startedAt": "2025-10-01T10:05:00Z"}}} for c in containers]}
    spec: Json = {"containers": containers, "schedulerName": scheduler}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, namespace, labels, annotations),
            "spec": spec, "status": status}


def _vllm_pod(service: str, name: str, model: str, node: str, slice_mib: int, uuid: str) -> Json:
    memory_key = ({"nvidia.com/gpumem": "7500"} if slice_mib == 7500 else {"nvidia.com/gpumem-percentage": "45"})
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.33.0", "args": ["serve", model],
                 "resources": {"limits": {"nvidia.com/gpu": "1", **memory_key}}}
    return pod(name, NAMESPACE, node, {"app": service, "app.kubernetes.io/part-of": "hami-eks",
                                       "pod-template-hash": name.split("-")[-2]}, [container],
               scheduler="hami-scheduler", annotations={
                   "nvidia.com/use-gputype": "T4" if node == T4_NODE else "A10G",
                   "hami.io/gpu-scheduler-policy": "binpack",
                   "hami.io/vgpu-node": node,
                   "hami.io/vgpu-devices-allocated": f"{uuid},NVIDIA,{slice_mib},0:;",
                   "hami.io/bind-phase": "success",
               })


def deployment(name: str, namespace: str, replicas: int, labels: Json, selector: Json) -> Json:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace, labels),
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": selector}, "spec": {"containers": []}}},
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                       "conditions": [{"type": "Available", "status": "True"}]}}


def daemonset(name: str, namespace: str, image: str, scheduled: int, labels: Json | None = None) -> Json:
    labels = labels or {"k8s-app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(name, namespace, labels),
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": name, "image": image}]}}},
            "status": {"desiredNumberScheduled": scheduled, "currentNumberScheduled": scheduled,
                       "numberReady": scheduled, "numberMisscheduled": 0}}


EKS_REGISTRY = "602401143452.dkr.ecr.us-west-2.amazonaws.com"
HAMI_LABELS = {"app.kubernetes.io/name": "hami", "app.kubernetes.io/instance": "hami"}


def blog_cluster(register_format: str = "records") -> ClusterState:
    """The reference blog's cluster, with the node annotations as HAMi < 2.8 wrote them
    ("records", verbatim from the blog) or as HAMi 2.10 writes them ("json")."""
    if register_format == "records":
        t4_register, a10g_register = BLOG_T4_REGISTER, BLOG_A10G_REGISTER
    else:
        t4_register = go_json_register(T4_UUIDS, 15360, "NVIDIA-Tesla T4")
        a10g_register = go_json_register(A10G_UUIDS, 23028, "NVIDIA A10G")
    state = ClusterState()
    state.nodes = [gpu_node(T4_NODE, "g4dn.12xlarge", "t4", t4_register, 4),
                   gpu_node(A10G_NODE, "g5.12xlarge", "a10g", a10g_register, 4),
                   *(_system_node(n) for n in SYSTEM_NODES)]
    state.namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE, labels={
            "app.kubernetes.io/part-of": "hami-eks", "hami-eks.io/gpu-sharing": "enabled"})},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta("kube-system")},
    ]
    # HAMi 2.10 as the chart names and labels it (release "hami" in kube-system); the pod
    # names are the blog's `kubectl -n kube-system get pods` output.
    scheduler_labels = {"app.kubernetes.io/component": "hami-scheduler", **HAMI_LABELS}
    plugin_labels = {"app.kubernetes.io/component": "hami-device-plugin", **HAMI_LABELS}
    state.deployments = [deployment("hami-scheduler", "kube-system", 1, scheduler_labels, scheduler_labels),
                         deployment("coredns", "kube-system", 2, {"k8s-app": "kube-dns"}, {"k8s-app": "kube-dns"})]
    state.daemonsets = [
        daemonset("hami-device-plugin", "kube-system", "projecthami/hami:v2.10.0", 2, plugin_labels),
        daemonset("aws-node", "kube-system", f"{EKS_REGISTRY}/amazon-k8s-cni:v1.20.4", 4),
        daemonset("kube-proxy", "kube-system", f"{EKS_REGISTRY}/eks/kube-proxy:v1.35.0", 4),
    ]
    plugin_containers = [{"name": "device-plugin", "image": "projecthami/hami:v2.10.0"},
                         {"name": "vgpu-monitor", "image": "projecthami/hami:v2.10.0"}]
    state.pods = [
        pod("hami-device-plugin-mtkmg", "kube-system", T4_NODE, plugin_labels, plugin_containers),
        pod("hami-device-plugin-sg5wl", "kube-system", A10G_NODE, plugin_labels, plugin_containers),
        pod("hami-scheduler-574cb577b9-p4xd9", "kube-system", SYSTEM_NODES[0], scheduler_labels,
            [{"name": "kube-scheduler", "image": "registry.k8s.io/kube-scheduler:v1.35.0"},
             {"name": "vgpu-scheduler-extender", "image": "projecthami/hami:v2.10.0"}]),
    ]
    for service, (model, node, pods, slice_mib, uuid) in SERVICES.items():
        labels = {"app": service, "app.kubernetes.io/part-of": "hami-eks"}
        state.deployments.append(deployment(service, NAMESPACE, len(pods), labels, {"app": service}))
        state.services.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(service, NAMESPACE, labels),
                               "spec": {"type": "ClusterIP", "selector": {"app": service},
                                        "ports": [{"name": "http", "port": 8000, "targetPort": 8000}]}})
        state.served_models[(NAMESPACE, service)] = model
        state.replies[(NAMESPACE, service)] = BLOG_REPLY
        for name, used in pods:
            state.pods.append(_vllm_pod(service, name, model, node, slice_mib, uuid))
            state.execs[(NAMESPACE, name, NVIDIA_SMI)] = Exec(f"{uuid}, {slice_mib} MiB, {used} MiB\n")
    # kube-prometheus-stack scraping HAMi's two jobs and every server pod (hami-eks:monitoring).
    state.prometheus_up = [
        up_series("hami-scheduler", "kube-system", "hami-scheduler-574cb577b9-p4xd9"),
        up_series("hami-device-plugin-monitor", "kube-system", "hami-device-plugin-mtkmg"),
        up_series("hami-device-plugin-monitor", "kube-system", "hami-device-plugin-sg5wl"),
        *(up_series(service, NAMESPACE, name) for service, (_, _, pods, _, _) in SERVICES.items() for name, _ in pods),
    ]
    return state


def up_series(job: str, namespace: str, pod: str, value: int = 1) -> Json:
    """One `up` sample as Prometheus's query API returns it (instant vector)."""
    return {"metric": {"__name__": "up", "job": job, "namespace": namespace, "pod": pod,
                       "instance": "10.0.0.1:9090"}, "value": [1760000000.0, str(value)]}


# ---- the server ------------------------------------------------------------------------------

def _status(code: int, reason: str, message: str) -> Json:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _selected(obj: Json, selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server-to-client websocket frame (FIN set, unmasked)."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffer each response and send it in one write (flushed after every request): headers and
    # body in separate small writes meet the client's delayed ACK and cost 40 ms a request.
    wbufsize = 1 << 16
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    # ---- plumbing ------------------------------------------------------------------------
    def _send(self, code: int, document: Json | str, content_type: str = "application/json") -> None:
        body = (json.dumps(document) if isinstance(document, dict) else document).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.server.token}":
            return True
        self._send(401, _status(401, "Unauthorized", "Unauthorized"))
        return False

    def _list(self, kind: str, items: list[Json]) -> None:
        self._send(200, {"kind": kind, "apiVersion": "v1" if kind in ("NodeList", "PodList") else "apps/v1",
                         "metadata": {"resourceVersion": "1"}, "items": items})

    # ---- GET -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        if not self._authorized():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        selector = query.get("labelSelector", [None])[0]
        state = self.server.state
        path = url.path
        if path == "/version":
            self._send(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0-eks-fake"})
        elif path == "/api/v1/nodes":
            self._list("NodeList", [n for n in state.nodes if _selected(n, selector)])
        elif match := re.fullmatch(r"/api/v1/namespaces/([^/]+)", path):
            found = [n for n in state.namespaces if n["metadata"]["name"] == match[1]]
            if found:
                self._send(200, found[0])
            else:
                self._send(404, _status(404, "NotFound", f'namespaces "{match[1]}" not found'))
        elif path == "/api/v1/pods":
            self._list("PodList", [p for p in state.pods if _selected(p, selector)])
        elif match := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path):
            self._list("PodList", [p for p in state.pods
                                   if p["metadata"]["namespace"] == match[1] and _selected(p, selector)])
        elif match := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec", path):
            self._exec(match[1], match[2], query)
        elif path == "/apis/apps/v1/deployments":
            self._list("DeploymentList", [d for d in state.deployments if _selected(d, selector)])
        elif match := re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/deployments", path):
            self._list("DeploymentList", [d for d in state.deployments
                                          if d["metadata"]["namespace"] == match[1] and _selected(d, selector)])
        elif path == "/apis/apps/v1/daemonsets":
            self._list("DaemonSetList", [d for d in state.daemonsets if _selected(d, selector)])
        elif match := re.fullmatch(r"/api/v1/namespaces/([^/]+)/services/([^/:]+)(?::\d+)?/proxy/(.*)", path):
            self._get_proxy(match[1], unquote(match[2]), match[3], url.query)
        else:
            self._send(404, _status(404, "NotFound", f"the server could not find the requested resource ({path})"))

    def _get_proxy(self, namespace: str, service: str, path: str, query: str) -> None:
        """GET through the service proxy: forwarded to a real server, or the monitoring
        namespace's Prometheus answering with `prometheus_up`."""
        state = self.server.state
        if (namespace, service) in state.proxied:
            target = f"{state.proxied[(namespace, service)]}/{path}" + (f"?{query}" if query else "")
            try:
                with urllib.request.urlopen(target, timeout=5) as answer:
                    self._send(answer.status, answer.read().decode())
            except urllib.error.HTTPError as exc:
                self._send(exc.code, exc.read().decode())
            return
        if namespace == "monitoring" and state.prometheus_up is not None and path == "api/v1/query":
            self._send(200, {"status": "success", "data": {"resultType": "vector", "result": state.prometheus_up}})
            return
        self._send(404, _status(404, "NotFound", f'services "{service}" not found'))

    # ---- exec over a websocket -------------------------------------------------------------
    def _exec(self, namespace: str, name: str, query: dict[str, list[str]]) -> None:
        state = self.server.state
        pods = [p for p in state.pods if p["metadata"]["namespace"] == namespace and p["metadata"]["name"] == name]
        if not pods:
            self._send(404, _status(404, "NotFound", f'pods "{name}" not found'))
            return
        containers = [c["name"] for c in pods[0]["spec"]["containers"]]
        container = query.get("container", [containers[0]])[0]
        if pods[0]["status"].get("phase") != "Running" or container not in containers:
            self._send(400, _status(400, "BadRequest", f"container {container} is not valid or not running"))
            return
        protocols = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if self.headers.get("Upgrade", "").lower() != "websocket" or V4_PROTOCOL not in protocols:
            self._send(400, _status(400, "BadRequest", "exec needs a websocket with the v4.channel.k8s.io protocol"))
            return
        argv = query.get("command", [""])
        result = state.execs.get((namespace, name, " ".join(argv)))
        if result is None and argv[0] == "python3" and state.python_in_pods:
            result = self._run_python(namespace, name, argv)
        if result is None:
            result = Exec("", f'exec: "{argv[0]}": executable file not found in $PATH', 127)
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WEBSOCKET_GUID).encode())
                                  .digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", V4_PROTOCOL)
        self.end_headers()
        if result.stdout:
            self.wfile.write(_frame(0x2, b"\x01" + result.stdout.encode()))
        if result.stderr:
            self.wfile.write(_frame(0x2, b"\x02" + result.stderr.encode()))
        if result.code == 0:
            status: Json = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: exit status {result.code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(result.code)}]}}
        self.wfile.write(_frame(0x2, b"\x03" + json.dumps(status).encode()))
        self.wfile.write(_frame(0x8, struct.pack("!H", 1000)))
        self.wfile.flush()
        # Wait for the client's close frame before hanging up, as a websocket peer does.
        self.connection.settimeout(2)
        with contextlib.suppress(OSError):  # a timeout is an OSError too
            self.connection.recv(1024)
        self.close_connection = True

    def _run_python(self, namespace: str, pod: str, argv: list[str]) -> Exec:
        """The command, run for real; the pod's loopback server is this fake's vLLM for that pod."""
        loopback = f"{self.server.url}/_loopback/{namespace}/{pod}"
        args = [arg.replace(LOOPBACK, loopback) for arg in argv[1:]]
        env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
        if self.server.state.api_key is not None:  # the container's env, from the Secret
            env["VLLM_API_KEY"] = self.server.state.api_key
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, env=env)
        return Exec(done.stdout, done.stderr, done.returncode)

    # ---- POST through the service proxy ----------------------------------------------------
    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if loopback := re.fullmatch(r"/_loopback/([^/]+)/([^/]+)/(.*)", urlsplit(self.path).path):
            self._loopback(loopback[1], loopback[2], loopback[3], body)  # inside the pod: no API server
            return
        if not self._authorized():
            return
        match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy/(.*)", urlsplit(self.path).path)
        if not match:
            self._send(405, _status(405, "MethodNotAllowed", "the server does not allow this method"))
            return
        namespace, target, path = match[1], unquote(match[2]), match[3]
        name = target.split(":")[0]
        state = self.server.state
        services = [s for s in state.services if s["metadata"]["namespace"] == namespace
                    and s["metadata"]["name"] == name]
        if not services:
            self._send(404, _status(404, "NotFound", f'services "{name}" not found'))
            return
        selector = services[0]["spec"]["selector"]
        endpoints = [p for p in state.pods if p["metadata"]["namespace"] == namespace
                     and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                     and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        if not endpoints:
            self._send(503, _status(503, "ServiceUnavailable", f'no endpoints available for service "{name}"'))
            return
        if state.control_plane_blocked is not None:
            self._blocked(state.control_plane_blocked, endpoints[0])
            return
        # The API server authenticated the caller and dropped its Authorization header
        # (k8s.io/apiserver filters/authentication.go): the server sees none.
        self._vllm(namespace, name, path, body, authorization=None)

    def _blocked(self, how: str, endpoint: Json) -> None:
        """The API server's answers when the pod drops its connection attempts (EKS control plane
        traffic under an enforced NetworkPolicy that does not admit it)."""
        if how == BLOCKED_HANG:
            self.server.stopping.wait(HANG_SECONDS)
            self.close_connection = True
            return
        if how == BLOCKED_DIAL:
            # k8s.io/apimachinery pkg/util/proxy/transport.go Transport.RoundTrip on a dial error.
            ip = endpoint["status"].get("podIP", "10.0.38.17")
            self._send(503, _status(503, "ServiceUnavailable",
                                    f"error trying to reach service: dial tcp {ip}:8000: i/o timeout"))
            return
        # k8s.io/apiserver pkg/server/filters/timeout.go: the request outlived its deadline.
        self._send(504, _status(504, "Timeout", "Timeout: request did not complete within requested timeout - "
                                                "context deadline exceeded"))

    def _loopback(self, namespace: str, pod: str, path: str, body: bytes) -> None:
        """A request to http://127.0.0.1:8000 inside `pod`: its own server answers."""
        state = self.server.state
        for service in state.services:
            selector = service["spec"]["selector"]
            for candidate in state.pods:
                meta = candidate["metadata"]
                if (meta["namespace"] == namespace and meta["name"] == pod
                        and all((meta.get("labels") or {}).get(k) == v for k, v in selector.items())):
                    self._vllm(namespace, service["metadata"]["name"], path, body,
                               authorization=self.headers.get("Authorization"))
                    return
        self._send(404, {"detail": "Not Found"})

    def _vllm(self, namespace: str, service: str, path: str, body: bytes, authorization: str | None) -> None:
        """What vLLM's OpenAI server answers (vllm/entrypoints/openai: 404 for an unknown model;
        with an API key, 401 {"error": "Unauthorized"} on /v1 without `Authorization: Bearer <key>`)."""
        key = self.server.state.api_key
        if key is not None and path.startswith("v1/") and authorization != f"Bearer {key}":
            self._send(401, {"error": "Unauthorized"})
            return
        if path != "v1/chat/completions":
            self._send(404, {"detail": "Not Found"})
            return
        request = json.loads(body or b"{}")
        error = self.server.state.vllm_errors.get((namespace, service))
        if error is not None:
            self._send(*error)
            return
        served = self.server.state.served_models.get((namespace, service))
        if request.get("model") != served:
            self._send(404, {"object": "error", "message": f"The model `{request.get('model')}` does not exist.",
                             "type": "NotFoundError", "param": None, "code": 404})
            return
        reply = self.server.state.replies.get((namespace, service), "ready")
        self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1760000000, "model": served,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ClusterState, token: str):
        super().__init__((HOST, 0), _Handler)
        self.state = state
        self.token = token
        self.requests: list[tuple[str, str]] = []
        self.stopping = threading.Event()  # set on shutdown: hanging requests end

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"


class FakeKube:
    """`with FakeKube(state) as kube:` serves `state` (mutable while running) at kube.url."""

    def __init__(self, state: ClusterState, token: str = TOKEN):
        self._server = _Server(state, token)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def state(self) -> ClusterState:
        return self._server.state

    @state.setter
    def state(self, value: ClusterState) -> None:
        self._server.state = value

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self._server.requests

    def __enter__(self) -> FakeKube:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path, token: str = TOKEN) -> Path:
        """A kubeconfig for this server, as `pulumi stack output kubeconfig` writes one (JSON)."""
        return write_kubeconfig(path, self.url, token)


def write_kubeconfig(path: Path, server: str, token: str = TOKEN) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "fake", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }
    path.write_text(json.dumps(config) if path.suffix == ".json" else yaml.safe_dump(config))
    return path
