"""The checks that run inside the model-server pods: nvidia-smi's memory cap through exec, and one
chat completion per service through the service proxy, else from inside a Ready pod."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hamieks import hami
from hamieks.check import Check
from hamieks.config.services import ServiceSettings
from hamieks.config.settings import Settings
from hamieks.kube import workloads
from hamieks.verify import objects as k8s
from hamieks.verify.annotations import AllocatedDevice
from hamieks.verify.checks import INFERENCE, MEMORY_CAP, NVIDIA_SMI_QUERY, REPLICAS, placed_pods
from hamieks.verify.cluster import ExecResult, ProxyResponse, Snapshot

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
    for _, pod in placed_pods(snapshot, settings):
        allocation = k8s.allocation(pod)
        container = k8s.gpu_container(pod)
        if k8s.status(pod).get("phase") == "Running" and not isinstance(allocation, str) and container is not None:
            targets.append(ExecTarget(k8s.name(pod), str(container.get("name")), allocation[0]))
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


def proxy_lacks_the_key(settings: Settings, response: ProxyResponse) -> bool:
    """With `vllmApiKey` set the server answers 401 through the service proxy: the API server
    drops the Authorization header once it has authenticated the caller (k8s.io/apiserver
    pkg/endpoints/filters/authentication.go withAuthentication: req.Header.Del("Authorization")),
    so no key can ride along. The pod's own environment has it: ask from inside instead."""
    return settings.vllm_api_key_configured and response.status == 401


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
    for pod in k8s.service_pods(snapshot, settings, svc):
        container = k8s.gpu_container(pod) or next(iter(k8s.spec(pod).get("containers") or []), None)
        if k8s.pod_ready(pod) and container is not None:
            return InPod(k8s.name(pod), str(container.get("name")))
    return None


# Run by the vLLM image's own python3 (the image may have no curl): one POST to the server on
# the pod's loopback, which no NetworkPolicy filters; proxies from the environment are ignored.
# It always exits 0 once it ran, and prints one JSON line: status (0 when nothing answered),
# seconds and the body (cut to 4000 characters).
_IN_POD_SCRIPT = """\
import json, os, sys, time, urllib.error, urllib.request
url, timeout, body = sys.argv[1], float(sys.argv[2]), sys.argv[3].encode()
headers = {"Content-Type": "application/json"}
if os.environ.get("VLLM_API_KEY"):  # the server's own key (hami-eks:vllmApiKey), from its Secret
    headers["Authorization"] = "Bearer " + os.environ["VLLM_API_KEY"]
request = urllib.request.Request(url, data=body, headers=headers)
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
    if proxy.status == 401:
        blocked = (f"the service proxy got {_proxy_outcome(proxy)}: the server requires hami-eks:vllmApiKey, which "
                   f"the API server's proxy cannot pass on; clients send it as Authorization: Bearer <key>")
    else:
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
