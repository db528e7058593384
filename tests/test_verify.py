"""`verify` against a fake Kubernetes API (tests/fake_kube.py) built from the reference blog's
cluster: the real `kubernetes` client, real HTTP, the real exec websocket, the real CLI.

The passing cluster is the blog's (its node annotations verbatim, its GPU UUIDs, pod names and
nvidia-smi output). Each broken variant changes one thing a real cluster gets wrong, and the
test asserts the exit code, which checks fail, and the message a user would act on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fake_kube import (
    A10G_NODE,
    A10G_UUIDS,
    BLOCKED_DIAL,
    BLOCKED_HANG,
    BLOCKED_TIMEOUT,
    BLOG_A10G_REGISTER,
    BLOG_T4_REGISTER,
    NAMESPACE,
    NVIDIA_SMI,
    SERVICES,
    SHARED_A10G,
    SHARED_T4,
    T4_NODE,
    T4_UUIDS,
    ClusterState,
    Exec,
    FakeKube,
    blog_cluster,
    daemonset,
    go_json_register,
    write_kubeconfig,
)

from hamieks import cli
from hamieks.check import Check
from hamieks.verify import annotations, checks, in_pod, runner
from hamieks.verify.cluster import ProxyResponse

ROOT = Path(__file__).resolve().parent.parent
VERIFY_MODULE = ("hamieks.commands.verify", "check a deployed stack against its live cluster")
# `python -m hamieks verify ...`, also before the command is listed in hamieks/cli.py COMMANDS.
CLI = (f"import sys; from hamieks import cli; cli.COMMANDS.setdefault('verify', {VERIFY_MODULE!r}); "
       "sys.exit(cli.main(sys.argv[1:]))")

T4_PODS = ("vllm-t4-qwen25-1-5b-55f98dbcf4-mgw8d", "vllm-t4-qwen25-1-5b-55f98dbcf4-rn5m4")
MISTRAL_POD = "vllm-a10g-mistral7b-awq-5f78b4c6b4-q84k7"
QWEN7B_POD = "vllm-a10g-qwen25-7b-awq-6d5b5d94b-nxrbj"


# ---- running verify ---------------------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[[ClusterState], Path]]:
    """serve(state) -> kubeconfig path of a fake API server serving that state."""
    with ExitStack() as stack:
        def serve(state: ClusterState) -> Path:
            kube = stack.enter_context(FakeKube(state))
            serve.kube = kube  # type: ignore[attr-defined]
            return kube.write_kubeconfig(tmp_path / f"kubeconfig-{id(kube)}.json")
        yield serve


def verify_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, "verify", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def verify(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """The CLI in-process (cli.main), for the many variants; returns (code, stdout, stderr)."""
    monkeypatch.setitem(cli.COMMANDS, "verify", cli.COMMANDS.get("verify", VERIFY_MODULE))

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["verify", *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def report(kubeconfig: Path, verify, *extra: str) -> tuple[int, dict]:
    code, out, err = verify("--stack", "demo", "--kubeconfig", str(kubeconfig), "--json", "--exec", *extra)
    assert err == "" or code != 2, err
    return code, json.loads(out)


def failures(doc: dict) -> dict[str, list[dict]]:
    failed: dict[str, list[dict]] = {}
    for check in doc["checks"]:
        if not check["ok"]:
            failed.setdefault(check["name"], []).append(check)
    return failed


def test_verify_is_a_cli_command():
    """The lead registers it in hamieks/cli.py; until then the tests reach it through COMMANDS."""
    assert cli.COMMANDS.get("verify", (None,))[0] == VERIFY_MODULE[0]


# ---- the passing cluster --------------------------------------------------------------------

def test_blog_cluster_passes_through_the_real_cli(cluster):
    kubeconfig = cluster(blog_cluster("records"))
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(kubeconfig), "--exec")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "FAIL" not in out and "checks pass (all pass)" in out
    # The blog's evidence, now checked by the tool: both T4 replicas on one T4, both A10G
    # servers on one A10G, nvidia-smi inside showing 7500 and 10362 MiB.
    assert f"{T4_PODS[0]}, {T4_PODS[1]} share {SHARED_T4}" in out
    assert f"{MISTRAL_POD}, {QWEN7B_POD} share {SHARED_A10G}" in out
    assert "memory.total 7500 MiB = slice, memory.used 5111 MiB" in out
    assert "memory.total 10362 MiB = slice, memory.used 7355 MiB" in out
    assert "4 x NVIDIA-NVIDIA A10G, 23028 MiB" in out  # the blog's pre-2.8 registration, accepted
    requests = serve_log(cluster)
    assert any("/exec?" in path for _, path in requests)
    assert sum(method == "POST" and path.endswith(":8000/proxy/v1/chat/completions") for method, path in requests) == 3


def serve_log(cluster) -> list[tuple[str, str]]:
    return cluster.kube.requests


def test_json_output_is_exactly_the_documented_schema(cluster):
    kubeconfig = cluster(blog_cluster("json"))  # node annotations as HAMi 2.10 writes them
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(kubeconfig), "--json", "--exec")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"ok", "checks"} and doc["ok"] is True
    for check in doc["checks"]:
        assert {k: type(v) for k, v in check.items()} == {"name": str, "target": str, "ok": bool, "detail": str}
    assert {c["name"] for c in doc["checks"]} == set(checks.CHECK_NAMES)
    # Each planned GPU's pods, found together on one live GPU: the T4 pair on the blog's T4,
    # both A10G servers on the blog's A10G.
    sharing = {c["target"]: c["detail"] for c in doc["checks"] if c["name"] == checks.SHARING}
    assert set(sharing) == {"vllm-t4-qwen25-1-5b-1 + vllm-t4-qwen25-1-5b-2",
                            "vllm-a10g-mistral7b-awq-1 + vllm-a10g-qwen25-7b-awq-1"}
    assert sharing["vllm-t4-qwen25-1-5b-1 + vllm-t4-qwen25-1-5b-2"] == (
        f"{T4_PODS[0]}, {T4_PODS[1]} share {SHARED_T4} (GPU 0 of {T4_NODE})")
    assert sharing["vllm-a10g-mistral7b-awq-1 + vllm-a10g-qwen25-7b-awq-1"] == (
        f"{MISTRAL_POD}, {QWEN7B_POD} share {SHARED_A10G} (GPU 3 of {A10G_NODE})")
    registered = {c["target"]: c["detail"] for c in doc["checks"] if c["name"] == checks.REGISTERED}
    assert "4 x NVIDIA A10G, 23028 MiB" in registered[A10G_NODE] and "(json format)" in registered[A10G_NODE]
    # One record per planned GPU in use, per pod, per service.
    assert sum(c["name"] == checks.SHARING for c in doc["checks"]) == 2
    assert sum(c["name"] == checks.MEMORY_CAP for c in doc["checks"]) == 4
    assert sum(c["name"] == checks.INFERENCE for c in doc["checks"]) == 3


def test_exec_and_inference_are_opt_in_and_opt_out(cluster, verify):
    kubeconfig = cluster(blog_cluster())
    code, out, _ = verify("--stack", "demo", "--kubeconfig", str(kubeconfig), "--json", "--no-inference")
    doc = json.loads(out)
    assert code == 0
    names = {c["name"] for c in doc["checks"]}
    assert checks.MEMORY_CAP not in names and checks.INFERENCE not in names
    assert not any(method == "POST" or "/exec" in path for method, path in serve_log(cluster))


# ---- one broken thing at a time ----------------------------------------------------------------

def _pod(state: ClusterState, name: str) -> dict:
    return state.find("pods", name, NAMESPACE)


def place(state: ClusterState, pod: str, uuid: str, mib: int, used: int) -> None:
    """HAMi gave `pod` `mib` MiB of GPU `uuid`, and nvidia-smi inside it agrees."""
    _pod(state, pod)["metadata"]["annotations"]["hami.io/vgpu-devices-allocated"] = f"{uuid},NVIDIA,{mib},0:;"
    state.execs[(NAMESPACE, pod, NVIDIA_SMI)] = Exec(f"{uuid}, {mib} MiB, {used} MiB\n")


def scheduler_unavailable(state: ClusterState) -> None:
    status = state.find("deployments", "hami-scheduler", "kube-system")["status"]
    status.update(availableReplicas=0, readyReplicas=0)
    status["conditions"] = [{"type": "Available", "status": "False",
                             "message": "Deployment does not have minimum availability."}]


def scheduler_missing(state: ClusterState) -> None:
    state.deployments.remove(state.find("deployments", "hami-scheduler", "kube-system"))


def device_plugin_crashing(state: ClusterState) -> None:
    plugin = state.find("pods", "hami-device-plugin-sg5wl", "kube-system")
    plugin["status"]["conditions"][1]["status"] = "False"
    plugin["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}


def nvidia_daemonset(state: ClusterState) -> None:
    # What `helm install nvdp nvdp/nvidia-device-plugin` (or the GPU operator) adds.
    state.daemonsets.append(daemonset("nvidia-device-plugin-daemonset", "kube-system",
                                      "nvcr.io/nvidia/k8s-device-plugin:v0.17.4", 2))


def host_device_plugin(state: ClusterState) -> None:
    # A plugin outside Kubernetes (Bottlerocket's, EKS Auto Mode's) took over nvidia.com/gpu:
    # one device per physical GPU instead of HAMi's 10.
    state.find("nodes", T4_NODE)["status"]["allocatable"]["nvidia.com/gpu"] = "4"


def registration_missing(state: ClusterState) -> None:
    del state.find("nodes", A10G_NODE)["metadata"]["annotations"]["hami.io/node-nvidia-register"]


def registration_memory(state: ClusterState) -> None:
    node = state.find("nodes", T4_NODE)
    node["metadata"]["annotations"]["hami.io/node-nvidia-register"] = BLOG_T4_REGISTER.replace(",15360,", ",15109,")


def registration_three_gpus(state: ClusterState) -> None:
    node = state.find("nodes", T4_NODE)
    records = BLOG_T4_REGISTER.split(":")
    node["metadata"]["annotations"]["hami.io/node-nvidia-register"] = ":".join(records[:3]) + ":"


def registration_unhealthy_json(state: ClusterState) -> None:
    # HAMi 2.10 JSON: Go's omitempty drops "health": false, so an unhealthy GPU simply lacks it.
    text = go_json_register(A10G_UUIDS, 23028, "NVIDIA A10G")
    devices = json.loads(text)
    del devices[2]["health"]
    state.find("nodes", A10G_NODE)["metadata"]["annotations"]["hami.io/node-nvidia-register"] = (
        json.dumps(devices, separators=(",", ":")))


def replica_not_ready(state: ClusterState) -> None:
    _pod(state, T4_PODS[1])["status"]["conditions"][1]["status"] = "False"


def bypassed_scheduler(state: ClusterState) -> None:
    # Created before HAMi's webhook existed: default-scheduler, no HAMi annotations, Pending
    # because no node advertises nvidia.com/gpumem.
    pod = _pod(state, T4_PODS[1])
    pod["spec"]["schedulerName"] = "default-scheduler"
    del pod["spec"]["nodeName"]
    pod["metadata"]["annotations"] = {"nvidia.com/use-gputype": "T4", "hami.io/gpu-scheduler-policy": "binpack"}
    pod["status"] = {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpumem."}]}


def slice_differs(state: ClusterState) -> None:
    # Someone edited the live Deployment to gpumem 7000: HAMi (and nvidia-smi) agree on 7000.
    place(state, T4_PODS[0], SHARED_T4, 7000, 5111)


def grouping_differs(state: ClusterState) -> None:
    place(state, QWEN7B_POD, A10G_UUIDS[2], 10362, 7355)


def cap_not_enforced(state: ClusterState) -> None:
    state.execs[(NAMESPACE, T4_PODS[0], NVIDIA_SMI)] = Exec(f"{SHARED_T4}, 15360 MiB, 5111 MiB\n")


def nvidia_smi_missing(state: ClusterState) -> None:
    state.execs[(NAMESPACE, MISTRAL_POD, NVIDIA_SMI)] = Exec(
        "", 'exec: "nvidia-smi": executable file not found in $PATH', 127)


def wrong_model_served(state: ClusterState) -> None:
    state.served_models[(NAMESPACE, "vllm-a10g-qwen25-7b-awq")] = "qwen7b"


@pytest.mark.parametrize("breakage, failing, target, message", [
    (scheduler_unavailable, {checks.SCHEDULER}, "kube-system/hami-scheduler",
     "0 of 1 replicas available (Deployment does not have minimum availability.): GPU pods cannot be scheduled"),
    (scheduler_missing, {checks.SCHEDULER}, "kube-system/hami-scheduler",
     "no Deployment labelled app.kubernetes.io/component=hami-scheduler: the HAMi release is not installed"),
    (device_plugin_crashing, {checks.DEVICE_PLUGIN}, A10G_NODE,
     "kube-system/hami-device-plugin-sg5wl is not Ready: Running, container device-plugin CrashLoopBackOff"),
    (nvidia_daemonset, {checks.OTHER_DEVICE_PLUGIN}, "kube-system/nvidia-device-plugin-daemonset",
     "DaemonSet runs NVIDIA's device plugin (image nvcr.io/nvidia/k8s-device-plugin:v0.17.4) on 2 node(s): it "
     "advertises nvidia.com/gpu beside HAMi's, so GPU pods can get whole GPUs without HAMi's memory cap; remove it "
     "(kubectl -n kube-system delete daemonset nvidia-device-plugin-daemonset"),
    (host_device_plugin, {checks.OTHER_DEVICE_PLUGIN}, T4_NODE,
     "allocatable nvidia.com/gpu is 4, but HAMi's device plugin advertises 10 per GPU (deviceSplitCount), so a "
     "multiple of 10, 40 on this g4dn.12xlarge with all 4 GPUs healthy: another device plugin registered"),
    (registration_missing, {checks.REGISTERED}, A10G_NODE,
     "no hami.io/node-nvidia-register annotation: HAMi's device plugin has not registered this node's GPUs"),
    (registration_memory, {checks.REGISTERED}, T4_NODE,
     f"GPU 0 ({T4_UUIDS[0]}) registered 15109 MiB, the catalog says 15360 (nvidia-smi memory.total of a Tesla T4)"),
    (registration_three_gpus, {checks.REGISTERED}, T4_NODE, "3 GPUs registered, a g4dn.12xlarge has 4"),
    (registration_unhealthy_json, {checks.REGISTERED}, A10G_NODE, f"GPU 2 ({A10G_UUIDS[2]}) is unhealthy"),
    (replica_not_ready, {checks.REPLICAS}, f"{NAMESPACE}/vllm-t4-qwen25-1-5b",
     f"1 of 2 replicas Running and Ready; {T4_PODS[1]}: Running, not Ready"),
    (bypassed_scheduler, {checks.SCHEDULED_BY_HAMI, checks.REPLICAS}, f"{NAMESPACE}/{T4_PODS[1]}",
     "GPU pod has schedulerName default-scheduler, not hami-scheduler: HAMi's webhook bypassed it, so HAMi neither "
     "places it nor caps its GPU memory; the pod was created before HAMi's webhook was up; now that it is, delete "
     f"the pod so its ReplicaSet recreates it through the webhook: `kubectl -n llm delete pod {T4_PODS[1]}`"),
    (slice_differs, {checks.SLICE}, f"{NAMESPACE}/{T4_PODS[0]}",
     f"HAMi gave it 7000 MiB of {SHARED_T4}; the plan's slice for vllm-t4-qwen25-1-5b is 7500 MiB (7500 MiB)"),
    (grouping_differs, {checks.SHARING}, "vllm-a10g-mistral7b-awq-1 + vllm-a10g-qwen25-7b-awq-1",
     f"the plan puts vllm-a10g-mistral7b-awq-1 and vllm-a10g-qwen25-7b-awq-1 together on one GPU; in the cluster: "
     f"{MISTRAL_POD} on {SHARED_A10G} (GPU 3 of {A10G_NODE}); {QWEN7B_POD} on {A10G_UUIDS[2]} (GPU 2 of {A10G_NODE})"),
    (cap_not_enforced, {checks.MEMORY_CAP}, f"{NAMESPACE}/{T4_PODS[0]}",
     "memory.total is 15360 MiB, not the 7500 MiB slice HAMi allocated: HAMi-core is not capping this container"),
    (nvidia_smi_missing, {checks.MEMORY_CAP}, f"{NAMESPACE}/{MISTRAL_POD}",
     'failed (exit code 127): exec: "nvidia-smi": executable file not found in $PATH'),
    (wrong_model_served, {checks.INFERENCE}, f"{NAMESPACE}/vllm-a10g-qwen25-7b-awq",
     "POST /v1/chat/completions via the service proxy: 404 in"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_each_broken_cluster_fails_exactly_its_check(cluster, verify, breakage, failing, target, message):
    state = blog_cluster()
    breakage(state)
    code, doc = report(cluster(state), verify)
    assert code == 1 and doc["ok"] is False
    failed = failures(doc)
    assert set(failed) == failing, json.dumps(failed, indent=1)
    # The bypass also leaves its pod Pending (replicas-ready); its message is the cause.
    primary = checks.SCHEDULED_BY_HAMI if checks.SCHEDULED_BY_HAMI in failing else next(iter(failing))
    records = [c for c in failed[primary] if c["target"] == target]
    assert records, failed[primary]
    assert message in records[0]["detail"], records[0]["detail"]


def test_bypassed_pod_is_reported_once_with_its_cause(cluster, verify):
    """The Pending pod shows under replicas-ready with the scheduler's words, and nowhere else."""
    state = blog_cluster()
    bypassed_scheduler(state)
    _, doc = report(cluster(state), verify)
    mentions = [c["name"] for c in doc["checks"] if not c["ok"] and T4_PODS[1] in c["detail"] + c["target"]]
    assert sorted(mentions) == sorted([checks.SCHEDULED_BY_HAMI, checks.REPLICAS])
    replicas = next(c for c in doc["checks"] if c["name"] == checks.REPLICAS and not c["ok"])
    assert "Pending (Unschedulable: 0/4 nodes are available: 4 Insufficient nvidia.com/gpumem.)" in replicas["detail"]


def test_bypass_through_an_unlabelled_namespace_says_to_label_it(cluster, verify):
    state = blog_cluster()
    bypassed_scheduler(state)
    del state.find("namespaces", NAMESPACE)["metadata"]["labels"]["hami-eks.io/gpu-sharing"]
    _, doc = report(cluster(state), verify)
    detail = failures(doc)[checks.SCHEDULED_BY_HAMI][0]["detail"]
    assert "namespace llm lacks the label hami-eks.io/gpu-sharing=enabled that the webhook selects" in detail
    assert "kubectl label namespace llm hami-eks.io/gpu-sharing=enabled" in detail


def test_second_device_plugin_through_the_real_cli(cluster):
    state = blog_cluster()
    nvidia_daemonset(state)
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(cluster(state)))
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "nvidia-device-plugin-daemonset" in line)
    assert line.split()[:3] == [checks.OTHER_DEVICE_PLUGIN, "kube-system/nvidia-device-plugin-daemonset", "FAIL"]
    assert "1 FAIL" in result.stdout


def test_bypassed_scheduler_through_the_real_cli(cluster):
    state = blog_cluster()
    bypassed_scheduler(state)
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(cluster(state)), "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    bypass = failures(doc)[checks.SCHEDULED_BY_HAMI]
    assert [c["target"] for c in bypass] == [f"{NAMESPACE}/{T4_PODS[1]}"]
    assert f"kubectl -n llm delete pod {T4_PODS[1]}" in bypass[0]["detail"]


def test_grouping_not_indexes_is_compared(cluster, verify):
    """HAMi's ties are random: the same pairs on other GPUs of the node (the plan names GPU 3
    for the T4 pair; the blog got GPU 0) still pass."""
    state = blog_cluster()
    for name in T4_PODS:
        place(state, name, T4_UUIDS[3], 7500, 5000)
    code, doc = report(cluster(state), verify)
    assert code == 0, failures(doc)


def test_t4_replicas_split_over_two_gpus_fail_the_grouping(cluster, verify):
    state = blog_cluster()
    place(state, T4_PODS[1], T4_UUIDS[1], 7500, 5045)
    code, doc = report(cluster(state), verify)
    assert code == 1 and set(failures(doc)) == {checks.SHARING}
    detail = failures(doc)[checks.SHARING][0]["detail"]
    assert "the plan puts vllm-t4-qwen25-1-5b-1 and vllm-t4-qwen25-1-5b-2 together on one GPU" in detail
    assert f"{T4_PODS[1]} on {T4_UUIDS[1]} (GPU 1 of {T4_NODE})" in detail
    a10g = next(c for c in doc["checks"] if c["name"] == checks.SHARING and c["ok"])
    assert a10g["target"] == "vllm-a10g-mistral7b-awq-1 + vllm-a10g-qwen25-7b-awq-1"
    assert a10g["detail"].startswith(f"{MISTRAL_POD}, {QWEN7B_POD} share {SHARED_A10G}")


# ---- inference: the service proxy first, a Ready pod's loopback when a NetworkPolicy blocks it ---

def _inference(doc: dict) -> dict[str, dict]:
    return {c["target"]: c for c in doc["checks"] if c["name"] == checks.INFERENCE}


def _python_execs(cluster) -> list[str]:
    """The pods that were asked to run python3 (the in-pod chat completion)."""
    return [path.split("/pods/")[1].split("/")[0] for method, path in serve_log(cluster)
            if method == "GET" and "/exec?" in path and "command=python3" in path]


def test_inference_through_the_service_proxy_needs_no_fallback(cluster):
    kubeconfig = cluster(blog_cluster())
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(kubeconfig), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    inference = _inference(json.loads(result.stdout))
    assert set(inference) == {f"{NAMESPACE}/{name}" for name in SERVICES}
    for service, (model, *_rest) in SERVICES.items():
        detail = inference[f"{NAMESPACE}/{service}"]["detail"]
        assert detail.startswith("200 in ") and f" s via the service proxy, model {model}: " in detail, detail
        assert "inside pod" not in detail
    assert _python_execs(cluster) == []


@pytest.mark.parametrize("blocked, proxy_says", [
    (BLOCKED_TIMEOUT, "the service proxy got 504 in "),
    (BLOCKED_DIAL, "error trying to reach service: dial tcp 10.0.38.17:8000: i/o timeout"),
])
def test_blocked_proxy_falls_back_to_a_ready_pod(cluster, blocked, proxy_says):
    """EKS with network policy enforcement: the control plane is no selector's pod, so the
    vllm-ingress policy drops the service proxy; the servers still answer, from a Ready pod."""
    state = blog_cluster()
    state.control_plane_blocked = blocked
    # The T4 service's first pod is still loading: its second, Ready, pod is the one to ask.
    _pod(state, T4_PODS[0])["status"]["conditions"][1]["status"] = "False"
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(cluster(state)), "--json")
    doc = json.loads(result.stdout)
    assert result.returncode == 1 and set(failures(doc)) == {checks.REPLICAS}  # only the unready replica
    inference = _inference(doc)
    t4 = inference[f"{NAMESPACE}/vllm-t4-qwen25-1-5b"]
    assert t4["ok"] is True
    assert t4["detail"].startswith("answered in ")
    assert f" s inside pod {T4_PODS[1]}, model Qwen/Qwen2.5-1.5B-Instruct: 'Summary:" in t4["detail"]
    assert proxy_says in t4["detail"]
    assert t4["detail"].endswith(
        ": the vllm-ingress NetworkPolicy does not admit the EKS control plane (aws/aws-network-policy-agent#281); "
        "clients labelled hami-eks.io/llm-client=allowed are not affected")
    assert all(c["ok"] and "inside pod" in c["detail"] for c in inference.values())
    # One python3 per service, in a Ready pod, whose request reached that pod's own server.
    assert sorted(_python_execs(cluster)) == sorted([T4_PODS[1], MISTRAL_POD, QWEN7B_POD])
    loopback = [path for method, path in serve_log(cluster) if method == "POST" and path.startswith("/_loopback/")]
    assert sorted(loopback) == sorted(f"/_loopback/{NAMESPACE}/{pod}/v1/chat/completions"
                                      for pod in (T4_PODS[1], MISTRAL_POD, QWEN7B_POD))


def test_proxy_that_never_answers_falls_back_after_the_timeout(cluster, verify):
    state = blog_cluster()
    state.control_plane_blocked = BLOCKED_HANG
    code, doc = report(cluster(state), verify, "--inference-timeout", "0.5")
    assert code == 0, failures(doc)
    detail = _inference(doc)[f"{NAMESPACE}/vllm-a10g-mistral7b-awq"]["detail"]
    assert f" s inside pod {MISTRAL_POD}, model solidrust/Mistral-7B-Instruct-v0.3-AWQ: " in detail
    assert re.search(r"; the service proxy got no answer within 0\.\d s: the vllm-ingress NetworkPolicy", detail), detail


def _no_python(state: ClusterState) -> None:
    state.python_in_pods = False


_SECONDS = "<seconds>"  # stands for a measured latency in the messages below


@pytest.mark.parametrize("breakage, message", [
    (_no_python, f"the service proxy got 504 in {_SECONDS} s (Timeout: request did not complete within requested "
                 f"timeout - context deadline exceeded), and the chat completion sent inside pod {QWEN7B_POD} could "
                 f'not run: `python3 -c ...` failed (exit code 127): exec: "python3": executable file not found in $PATH'),
    (wrong_model_served, f"the service proxy got 504 in {_SECONDS} s (Timeout: request did not complete within requested "
                         f"timeout - context deadline exceeded); sent inside pod {QWEN7B_POD} instead, the server "
                         f"answered 404 in {_SECONDS} s: "
                         '{"object": "error", "message": "The model `Qwen/Qwen2.5-7B-Instruct-AWQ` does not exist."'),
], ids=["no-python3", "wrong-model"])
def test_blocked_proxy_and_failing_pod_fail_precisely(cluster, verify, breakage, message):
    state = blog_cluster()
    state.control_plane_blocked = BLOCKED_TIMEOUT
    breakage(state)
    code, doc = report(cluster(state), verify)
    assert code == 1 and set(failures(doc)) == {checks.INFERENCE}
    failed = {c["target"]: c["detail"] for c in failures(doc)[checks.INFERENCE]}
    detail = failed[f"{NAMESPACE}/vllm-a10g-qwen25-7b-awq"]
    pattern = r"\d+\.\d\d?".join(re.escape(piece) for piece in message.split(_SECONDS))
    assert re.match(pattern, detail), detail
    assert "not affected" not in detail  # a failure is not explained away by the policy


@pytest.mark.parametrize("status, error", [
    (400, {"object": "error", "message": "This model's maximum context length is 32 tokens. However, you requested "
                                         "45 tokens (29 in the messages, 16 in the completion).",
           "type": "BadRequestError", "param": None, "code": 400}),
    (503, {"object": "error", "message": "The engine is sleeping; wake it up first.",
           "type": "ServiceUnavailableError", "param": None, "code": 503}),
])
def test_the_servers_own_error_is_a_failure_without_fallback(cluster, verify, status, error):
    """vLLM answered: the request reached it, and a pod would answer the same."""
    state = blog_cluster()
    state.vllm_errors[(NAMESPACE, "vllm-a10g-mistral7b-awq")] = (status, error)
    code, doc = report(cluster(state), verify)
    assert code == 1 and set(failures(doc)) == {checks.INFERENCE}
    [check] = failures(doc)[checks.INFERENCE]
    assert check["target"] == f"{NAMESPACE}/vllm-a10g-mistral7b-awq"
    assert check["detail"].startswith(f"POST /v1/chat/completions via the service proxy: {status} in ")
    assert error["message"][:60] in check["detail"]
    assert _python_execs(cluster) == []


def test_no_inference_skips_the_proxy_and_the_fallback(cluster, verify):
    state = blog_cluster()
    state.control_plane_blocked = BLOCKED_TIMEOUT
    code, doc = report(cluster(state), verify, "--no-inference")
    assert code == 0 and checks.INFERENCE not in {c["name"] for c in doc["checks"]}
    assert not any(method == "POST" for method, _ in serve_log(cluster))
    assert _python_execs(cluster) == []


@pytest.mark.parametrize("response, blocked", [
    (ProxyResponse(503, json.dumps({"kind": "Status", "code": 503, "message":
                                    "error trying to reach service: dial tcp 10.0.1.5:8000: i/o timeout"}), 30.0), True),
    (ProxyResponse(504, json.dumps({"kind": "Status", "code": 504, "reason": "Timeout"}), 60.0), True),
    (ProxyResponse(0, "no response: Read timed out", 120.0, timed_out=True), True),
    # not a NetworkPolicy: no Ready pod, no connection to the API server, or vLLM's own answer
    (ProxyResponse(503, json.dumps({"kind": "Status", "message": 'no endpoints available for service "x"'}), 0.1), False),
    (ProxyResponse(0, "no response: Connection refused", 0.1), False),
    (ProxyResponse(503, json.dumps({"object": "error", "message": "busy", "code": 503}), 0.1), False),
    (ProxyResponse(504, "<html>Gateway Timeout</html>", 0.1), False),
    (ProxyResponse(502, json.dumps({"kind": "Status", "code": 502}), 0.1), False),
    (ProxyResponse(400, json.dumps({"object": "error", "message": "too long", "code": 400}), 0.1), False),
])
def test_which_proxy_failures_are_a_blocked_path(response, blocked):
    assert in_pod.proxy_blocked(response) is blocked


# ---- cannot check at all: exit 2 ---------------------------------------------------------------

def test_unreachable_cluster_exits_2(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig.json", f"http://127.0.0.1:{port}")
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(kubeconfig), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"verify: --kubeconfig {kubeconfig}: cannot reach the cluster's API server")
    assert "Traceback" not in result.stderr


def test_refused_credentials_exit_2(cluster, verify, tmp_path):
    cluster(blog_cluster())
    kubeconfig = write_kubeconfig(tmp_path / "stale.json", cluster.kube.url, token="expired")
    code, out, err = verify("--stack", "demo", "--kubeconfig", str(kubeconfig))
    assert (code, out) == (2, "")
    assert "the API server refused the credentials (401 Unauthorized)" in err
    assert "clusterAdmins" in err


def test_missing_kubeconfig_exits_2(verify, tmp_path):
    code, _, err = verify("--stack", "demo", "--kubeconfig", str(tmp_path / "nope.json"))
    assert code == 2
    assert "no such file; write it with `pulumi stack output kubeconfig --show-secrets >" in err


@pytest.mark.parametrize("text", ["garbage: [", "- just\n- a list\n", ""])
def test_an_unreadable_kubeconfig_exits_2_without_a_traceback(verify, tmp_path, text):
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(text)
    code, out, err = verify("--stack", "demo", "--kubeconfig", str(kubeconfig))
    assert (code, out) == (2, "")
    assert f"--kubeconfig {kubeconfig}" in err and "Traceback" not in err


def test_unknown_stack_exits_2(cluster):
    kubeconfig = cluster(blog_cluster())
    result = verify_subprocess("--stack", "nope", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2
    assert "verify: no stack file Pulumi.nope.yaml" in result.stderr
    assert serve_log(cluster) == []  # the stack is read before the cluster is touched


# ---- --wait ------------------------------------------------------------------------------------

def test_wait_polls_with_progress_until_the_cluster_is_ready(cluster):
    state = blog_cluster()
    replica_not_ready(state)
    kubeconfig = cluster(state)

    done = threading.Event()

    def model_loads_after_the_first_round() -> None:
        # A round ends with the three chat completions; then the replica becomes Ready.
        while not done.is_set() and sum(m == "POST" for m, _ in serve_log(cluster)) < 3:
            done.wait(0.05)
        _pod(state, T4_PODS[1])["status"]["conditions"][1]["status"] = "True"
    loader = threading.Thread(target=model_loads_after_the_first_round, daemon=True)
    loader.start()
    try:
        result = verify_subprocess("--stack", "demo", "--kubeconfig", str(kubeconfig), "--json",
                                   "--wait", "60", "--interval", "0.3")
    finally:
        done.set()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    progress = [line for line in result.stderr.splitlines() if line.startswith("verify: ")]
    assert progress, result.stderr
    assert "checks pass after" in progress[0]
    assert f"waiting for {checks.REPLICAS} llm/vllm-t4-qwen25-1-5b" in progress[0]


def test_wait_gives_up_when_time_runs_out(cluster, verify):
    state = blog_cluster()
    scheduler_unavailable(state)
    code, out, err = verify("--stack", "demo", "--kubeconfig", str(cluster(state)), "--wait", "1", "--interval", "0.2")
    assert code == 1
    assert "FAIL" in out
    assert "waiting for hami-scheduler kube-system/hami-scheduler" in err.splitlines()[0]
    assert err.splitlines()[-1] == "verify: gave up after --wait 1 s with 1 check(s) failing"


def test_poll_runs_once_without_a_budget_and_stops_at_the_deadline():
    now = [0.0]
    rounds: list[float] = []

    def round_() -> list[Check]:
        rounds.append(now[0])
        return [Check("x", "y", False, "not yet")]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    shown: list[float] = []
    runner.poll(round_, 0, 10, lambda elapsed, budget, results: shown.append(elapsed), lambda: now[0], sleep)
    assert rounds == [0.0] and shown == []
    rounds.clear()
    runner.poll(round_, 35, 10, lambda elapsed, budget, results: shown.append(elapsed), lambda: now[0], sleep)
    assert rounds == [0.0, 10.0, 20.0, 30.0]


# ---- the fixtures are the blog's -------------------------------------------------------------

def test_fixtures_are_the_reference_blogs_own_data(shared_dir):
    blog = (shared_dir / "reference/seed-blog-en.md").read_text()
    assert BLOG_T4_REGISTER in blog and BLOG_A10G_REGISTER in blog
    for pod in (*T4_PODS, MISTRAL_POD, QWEN7B_POD):
        assert pod in blog
    assert f"{SHARED_T4}\nTesla T4, 7500 MiB, 5111 MiB" in blog
    assert f"{SHARED_A10G}\nNVIDIA A10G, 10362 MiB, 7241 MiB" in blog
    assert "hami-device-plugin-mtkmg" in blog and "hami-device-plugin-sg5wl" in blog


# ---- the annotation parsers ------------------------------------------------------------------

def test_blog_records_parse_field_by_field():
    registration = annotations.parse_node_register(BLOG_T4_REGISTER)
    assert registration.format == "records"
    assert [g.uuid for g in registration.gpus] == T4_UUIDS
    assert [g.index for g in registration.gpus] == [0, 1, 2, 3]
    first = registration.gpus[0]
    assert (first.count, first.memory_mib, first.cores, first.type, first.numa, first.health, first.mode) == (
        10, 15360, 100, "NVIDIA-Tesla T4", 0, True, "hami-core")


def test_seven_field_records_default_index_and_mode():
    # HAMi's own docs (pre-2.5 device plugins): UUID,count,mem,core,type,numa,health:
    text = ("GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:"
            "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,false:")
    gpus = annotations.parse_node_register(text).gpus
    assert [(g.index, g.mode, g.health) for g in gpus] == [(0, "hami-core", True), (0, "hami-core", False)]


def test_json_registration_reads_go_omitempty_zero_values():
    # As HAMi 2.10's MarshalNodeDevices writes it: index 0 and numa 0 absent, health absent = false.
    text = ('[{"id":"GPU-a","count":10,"devmem":23028,"devcore":100,"type":"NVIDIA A10G","mode":"hami-core",'
            '"health":true},{"id":"GPU-b","index":1,"count":10,"devmem":23028,"devcore":100,"type":"NVIDIA A10G",'
            '"numa":1,"mode":"hami-core"}]')
    registration = annotations.parse_node_register(text)
    assert registration.format == "json"
    a, b = registration.gpus
    assert (a.uuid, a.index, a.numa, a.health) == ("GPU-a", 0, 0, True)
    assert (b.uuid, b.index, b.numa, b.health) == ("GPU-b", 1, 1, False)
    assert a.memory_mib == 23028 and a.type == "NVIDIA A10G" and a.count == 10 and a.cores == 100


@pytest.mark.parametrize("text, message", [
    ("GPU-a,10,15360,100,NVIDIA-Tesla T4,0:", "has 6 fields; HAMi writes 7 or 9"),
    ("GPU-a,10,lots,100,NVIDIA-Tesla T4,0,true,0,hami-core:", "mem 'lots' is not an integer"),
    ("GPU-a,10,15360,100,NVIDIA-Tesla T4,0,yes,0,hami-core:", "health 'yes' is not a boolean"),
    ("GPU-a,10,15360,100", "neither a JSON list nor `:`-terminated records"),
    ('[{"id":"GPU-a","devmem":"15360"}]', "devmem '15360' is not an integer"),
    ('[{"id":"GPU-a",}]', "not valid JSON"),
])
def test_unreadable_registrations_say_why(text, message):
    with pytest.raises(annotations.AnnotationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        annotations.parse_node_register(text)


def test_devices_allocated_per_container():
    # Two GPUs for the first container, none for the second, one for the third.
    text = "GPU-a,NVIDIA,7500,0:GPU-b,NVIDIA,7500,30:;;GPU-c,NVIDIA,10362,0:;"
    containers = annotations.parse_devices_allocated(text)
    assert [[d.uuid for d in c] for c in containers] == [["GPU-a", "GPU-b"], [], ["GPU-c"]]
    assert containers[0][1] == annotations.AllocatedDevice("GPU-b", "NVIDIA", 7500, 30)
    assert [d.memory_mib for d in annotations.allocated_devices(text)] == [7500, 7500, 10362]


def test_devices_allocated_rejects_short_records():
    with pytest.raises(annotations.AnnotationError, match="HAMi writes UUID,vendor,MiB,cores"):
        annotations.parse_devices_allocated("GPU-a,NVIDIA,7500:;")


# ---- a server that requires hami-eks:vllmApiKey --------------------------------------------------------

def _keyed_project(tmp_path: Path) -> Path:
    project = tmp_path / "keyed"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (project / "Pulumi.demo.yaml").write_text((ROOT / "Pulumi.demo.yaml").read_text()
                                              + "  hami-eks:vllmApiKey:\n    secure: v1:KEYCIPHER\n")
    return project


def test_with_an_api_key_inference_is_asked_from_inside_a_pod_with_the_key(cluster, tmp_path):
    """The service proxy cannot carry the key (401); the pod's environment has it."""
    state = blog_cluster()
    state.api_key = "sk-test-key"
    kubeconfig = cluster(state)
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(kubeconfig), "--json",
                               "--project-dir", str(_keyed_project(tmp_path)))
    doc = json.loads(result.stdout)
    inference = _inference(doc)
    assert all(c["ok"] for c in inference.values()), inference
    for check in inference.values():
        assert "inside pod" in check["detail"] and "requires hami-eks:vllmApiKey" in check["detail"]
        assert "401" in check["detail"] and "sk-test-key" not in check["detail"]
    assert len(_python_execs(cluster)) == len(SERVICES)


def test_a_pod_without_the_key_fails_inference_with_the_servers_401(cluster, tmp_path):
    state = blog_cluster()
    state.api_key = "sk-test-key"
    # The stack (and so the pods) has no key, but the live servers require one: a drifted cluster.
    result = verify_subprocess("--stack", "demo", "--kubeconfig", str(cluster(state)), "--json")
    inference = _inference(json.loads(result.stdout))
    assert result.returncode == 1
    assert all(not c["ok"] and c["detail"].startswith("POST /v1/chat/completions via the service proxy: 401")
               for c in inference.values()), inference
    assert _python_execs(cluster) == []
