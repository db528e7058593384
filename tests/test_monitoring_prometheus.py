"""The alerts and dashboards against a real Prometheus (Debian package `prometheus`, with promtool).

- `promtool check rules` on the rule file the program registers (PrometheusRule spec), per stack;
- `promtool test rules`: each alert fires on the series that should fire it and not otherwise;
- a local Prometheus (127.0.0.1, random port, temp dir, 1 s scrapes) scraping a tiny HTTP server
  that serves exposition text with HAMi v2.10.0's and vLLM's metric names, with the scrape target
  labels the Prometheus operator adds (namespace, pod, job = Service), so Prometheus itself
  renames HAMi's conflicting labels to exported_*, as on the cluster. Every dashboard query the
  program provisions must return data there, and `verify`'s scrape check reads it through the
  fake API server's service proxy.

Outside CI the tests skip when promtool is absent (`apt-get install prometheus`); in CI
(CI=true) they fail instead: .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from fake_kube import FakeKube, blog_cluster
from helpers import stack_settings
from pulumi_harness import run_program

from hamieks.config import stackfiles
from hamieks.kube import monitoring_dashboards
from hamieks.kube import monitoring_metrics as names
from hamieks.verify import scrapes

REPO = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
STARTUP_SECONDS = 20.0
HOST = "127.0.0.1"


def _need_prometheus() -> None:
    if PROMTOOL and PROMETHEUS:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("promtool/prometheus missing in CI: .ci/run installs the Debian package `prometheus`")
    pytest.skip("promtool/prometheus not installed (apt-get install prometheus); CI installs them")


def _rule_groups(run) -> list[dict]:
    rule = run.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")[0]
    groups: list[dict] = rule.inputs["spec"]["groups"]
    return groups


@pytest.fixture(scope="module")
def demo_run():
    return run_program("demo")


# ---- promtool --------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", stackfiles.available_stacks(REPO))
def test_promtool_checks_every_rule_file(stack: str, tmp_path: Path) -> None:
    _need_prometheus()
    if not stack_settings(stack).monitoring:
        pytest.skip(f"{stack} has hami-eks:monitoring off")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": _rule_groups(run_program(stack))}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def _summary(groups: list[dict], alert: str, **labels: str) -> str:
    template: str = next(r for g in groups for r in g["rules"] if r["alert"] == alert)["annotations"]["summary"]
    for key, value in labels.items():
        template = template.replace(f"{{{{ $labels.{key} }}}}", value)
    return template


def test_promtool_unit_tests_fire_each_alert_only_when_it_should(demo_run, tmp_path: Path) -> None:
    _need_prometheus()
    groups = _rule_groups(demo_run)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    pod, server = "vllm-t4-qwen25-1-5b-55f98dbcf4-mgw8d", "vllm-t4-qwen25-1-5b"
    plugin = {"job": names.HAMI_DEVICE_PLUGIN_JOB, "namespace": "kube-system", "pod": "hami-device-plugin-mtkmg"}
    slice_labels = {**plugin, "exported_namespace": "llm", "exported_pod": pod, "exported_container": "vllm",
                    "vdevice_index": "0", "device_uuid": "GPU-f8e75627"}
    other = {**slice_labels, "exported_pod": "vllm-a10g-mistral7b-awq-5f78b4c6b4-q84k7"}
    server_labels = {"job": server, "namespace": "llm", "pod": pod}

    def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
        body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        return {"series": f"{name}{{{body}}}", "values": values}

    limit = 7500 * 1024 * 1024
    tests = [{
        "interval": "1m",
        "input_series": [
            # One slice at 97% of its limit, another at 50%.
            series(names.VGPU_MEMORY_USED, slice_labels, f"{int(limit * 0.97)}x15"),
            series(names.VGPU_MEMORY_LIMIT, slice_labels, f"{limit}x15"),
            series(names.VGPU_MEMORY_USED, other, f"{limit // 2}x15"),
            series(names.VGPU_MEMORY_LIMIT, other, f"{limit}x15"),
            series(names.KV_CACHE_USAGE, {**server_labels, "model_name": "Qwen/Qwen2.5-1.5B-Instruct", "engine": "0"},
                   "0.5 0.5 0.99x13"),
            series(names.POD_STATUS_PHASE, {"job": "kube-state-metrics", "namespace": "llm", "pod": pod,
                                            "uid": "u1", "phase": "Pending"}, "1x15"),
            series(names.POD_STATUS_PHASE, {"job": "kube-state-metrics", "namespace": "llm", "pod": "running-pod",
                                            "uid": "u2", "phase": "Pending"}, "0x15"),
            series("up", {**plugin, "instance": "10.0.38.9:9394"}, "1 1 1 0x12"),
            series("up", {**server_labels, "instance": "10.0.38.17:8000"}, "1x3 0x12"),
            # hami-scheduler: no series at all (not scraped).
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "HamiSliceMemoryNearLimit", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "HamiSliceMemoryNearLimit", "exp_alerts": [{
                "exp_labels": {**slice_labels, "severity": "warning"},
                "exp_annotations": {"summary": _summary(groups, "HamiSliceMemoryNearLimit", exported_pod=pod)}}]},
            {"eval_time": "4m", "alertname": "VllmKvCacheSaturated", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "VllmKvCacheSaturated", "exp_alerts": [{
                "exp_labels": {**server_labels, "model_name": "Qwen/Qwen2.5-1.5B-Instruct", "engine": "0",
                               "severity": "warning"},
                "exp_annotations": {"summary": _summary(groups, "VllmKvCacheSaturated", pod=pod)}}]},
            {"eval_time": "5m", "alertname": "HamiPodPending", "exp_alerts": []},
            {"eval_time": "12m", "alertname": "HamiPodPending", "exp_alerts": [{
                "exp_labels": {"namespace": "llm", "pod": pod, "severity": "warning"},
                "exp_annotations": {"summary": _summary(groups, "HamiPodPending", pod=pod)}}]},
            {"eval_time": "3m", "alertname": "HamiDevicePluginDown", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "HamiDevicePluginDown", "exp_alerts": [{
                "exp_labels": {**plugin, "instance": "10.0.38.9:9394", "severity": "critical"},
                "exp_annotations": {"summary": _summary(groups, "HamiDevicePluginDown")}}]},
            {"eval_time": "10m", "alertname": "HamiSchedulerDown", "exp_alerts": [{
                "exp_labels": {"job": names.HAMI_SCHEDULER_JOB, "severity": "critical"},
                "exp_annotations": {"summary": _summary(groups, "HamiSchedulerDown")}}]},
            {"eval_time": "4m", "alertname": "ModelServerDown", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "ModelServerDown", "exp_alerts": [{
                "exp_labels": {**server_labels, "instance": "10.0.38.17:8000", "severity": "critical"},
                "exp_annotations": {"summary": _summary(groups, "ModelServerDown", pod=pod)}}]},
        ],
    }]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                        "tests": tests}))
    result = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- a local Prometheus scraping recorded exposition text ---------------------------------------

PLUGIN_POD, SCHEDULER_POD = "hami-device-plugin-mtkmg", "hami-scheduler-574cb577b9-p4xd9"
T4_NODE = "ip-10-0-38-240.us-west-2.compute.internal"
T4_UUID = "GPU-f8e75627-86ed-f202-cf2b-6363fb18d516"
# pod -> (service, model): the demo's servers as their Deployments name their pods.
SERVER_PODS = {
    "vllm-t4-qwen25-1-5b-55f98dbcf4-mgw8d": ("vllm-t4-qwen25-1-5b", "Qwen/Qwen2.5-1.5B-Instruct"),
    "vllm-t4-qwen25-1-5b-55f98dbcf4-rn5m4": ("vllm-t4-qwen25-1-5b", "Qwen/Qwen2.5-1.5B-Instruct"),
    "vllm-a10g-mistral7b-awq-5f78b4c6b4-q84k7": ("vllm-a10g-mistral7b-awq", "solidrust/Mistral-7B-Instruct-v0.3-AWQ"),
    "vllm-a10g-qwen25-7b-awq-6d5b5d94b-nxrbj": ("vllm-a10g-qwen25-7b-awq", "Qwen/Qwen2.5-7B-Instruct-AWQ"),
}
MIB = 1024 * 1024


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def device_plugin_text() -> str:
    """HAMi's vGPU monitor (cmd/vGPUmonitor/metrics.go): per container and per host GPU."""
    lines = [f"# HELP {names.VGPU_MEMORY_USED} vGPU device memory usage in bytes", f"# TYPE {names.VGPU_MEMORY_USED} gauge"]
    for pod in SERVER_PODS:
        lines.append(f"{names.VGPU_MEMORY_USED}{_labels(namespace='llm', pod=pod, container='vllm', vdevice_index='0', device_uuid=T4_UUID)} {5111 * MIB}")
    lines += [f"# HELP {names.VGPU_MEMORY_LIMIT} vGPU device memory limit in bytes", f"# TYPE {names.VGPU_MEMORY_LIMIT} gauge"]
    for pod in SERVER_PODS:
        lines.append(f"{names.VGPU_MEMORY_LIMIT}{_labels(namespace='llm', pod=pod, container='vllm', vdevice_index='0', device_uuid=T4_UUID)} {7500 * MIB}")
    gpu = _labels(node=T4_NODE, device_index="0", device_uuid=T4_UUID, device_type="NVIDIA-Tesla T4")
    lines += [f"# TYPE {names.HOST_GPU_MEMORY_USED} gauge", f"{names.HOST_GPU_MEMORY_USED}{gpu} {10222 * MIB}",
              f"# TYPE {names.HOST_GPU_UTILIZATION} gauge", f"{names.HOST_GPU_UTILIZATION}{gpu} 37"]
    return "\n".join(lines) + "\n"


def scheduler_text() -> str:
    """hami-scheduler (cmd/scheduler/metrics.go collectNodeMetrics / collectContainerMetrics)."""
    gpu = _labels(node=T4_NODE, device_uuid=T4_UUID, device_index="0", device_type="NVIDIA-Tesla T4")
    allocated = _labels(node=T4_NODE, device_uuid=T4_UUID, device_index="0", device_cores="0", device_type="NVIDIA-Tesla T4")
    lines = [f"# TYPE {names.GPU_MEMORY_LIMIT} gauge", f"{names.GPU_MEMORY_LIMIT}{gpu} {15360 * MIB}",
             f"# TYPE {names.GPU_MEMORY_ALLOCATED} gauge", f"{names.GPU_MEMORY_ALLOCATED}{allocated} {15000 * MIB}",
             f"# TYPE {names.GPU_SHARED_COUNT} gauge", f"{names.GPU_SHARED_COUNT}{gpu} 2",
             f"# TYPE {names.VGPU_MEMORY_ALLOCATED} gauge"]
    for pod in SERVER_PODS:
        lines.append(f"{names.VGPU_MEMORY_ALLOCATED}{_labels(namespace='llm', node=T4_NODE, pod=pod, container_index='0', device_uuid=T4_UUID)} {7500 * MIB}")
    return "\n".join(lines) + "\n"


def vllm_text(pod: str, scrapes: int) -> str:
    """One vLLM server's /metrics (vllm/v1/metrics/loggers.py PrometheusStatLogger); the counters
    and the histogram grow with every scrape so rate() has something to show."""
    labels = {"model_name": SERVER_PODS[pod][1], "engine": "0"}
    base = _labels(**labels)
    lines = [f"# TYPE {names.KV_CACHE_USAGE} gauge", f"{names.KV_CACHE_USAGE}{base} 0.42",
             f"# TYPE {names.REQUESTS_WAITING} gauge", f"{names.REQUESTS_WAITING}{base} 1",
             f"# TYPE {names.REQUESTS_RUNNING} gauge", f"{names.REQUESTS_RUNNING}{base} 3",
             f"# TYPE {names.GENERATION_TOKENS} counter", f"{names.GENERATION_TOKENS}{base} {1000 + 250 * scrapes}",
             f"# TYPE {names.PROMPT_TOKENS} counter", f"{names.PROMPT_TOKENS}{base} {4000 + 900 * scrapes}"]
    ttft = names.TIME_TO_FIRST_TOKEN
    lines.append(f"# TYPE {ttft} histogram")
    for le, share in (("0.1", 0.2), ("0.5", 0.7), ("1.0", 0.95), ("+Inf", 1.0)):
        lines.append(f"{ttft}_bucket{_labels(**labels, le=le)} {int((10 + 5 * scrapes) * share)}")
    lines += [f"{ttft}_sum{base} {0.3 * (10 + 5 * scrapes)}", f"{ttft}_count{base} {10 + 5 * scrapes}"]
    return "\n".join(lines) + "\n"


def kube_state_metrics_text() -> str:
    lines = [f"# TYPE {names.POD_STATUS_PHASE} gauge"]
    for i, pod in enumerate(SERVER_PODS):
        for phase in ("Pending", "Running"):
            value = 1 if phase == "Running" else 0
            lines.append(f"{names.POD_STATUS_PHASE}{_labels(namespace='llm', pod=pod, uid=f'u{i}', phase=phase)} {value}")
    return "\n".join(lines) + "\n"


class _Exporter(BaseHTTPRequestHandler):
    scrapes: ClassVar[dict[str, int]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.strip("/")
        count = self.scrapes[path] = self.scrapes.get(path, 0) + 1
        if path == "device-plugin":
            text = device_plugin_text()
        elif path == "scheduler":
            text = scheduler_text()
        elif path == "kube-state-metrics":
            text = kube_state_metrics_text()
        elif path.startswith("vllm/") and path[5:] in SERVER_PODS:
            text = vllm_text(path[5:], count)
        else:
            self.send_response(404)
            self.end_headers()
            return
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalPrometheus:
    url: str

    def query(self, expr: str) -> list[dict]:
        query = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as answer:
            document = json.load(answer)
        assert document["status"] == "success", document
        result: list[dict] = document["data"]["result"]
        return result


def _scrape_configs(exporter: str) -> list[dict]:
    """As the operator generates them from the ServiceMonitors: job = the Service's name, the
    target's namespace and pod as labels, honor_labels off (kube-state-metrics: on, as the chart
    sets it)."""
    def job(name: str, path: str, namespace: str, pod: str, honor: bool = False) -> dict:
        return {"job_name": f"{name}/{pod}", "metrics_path": f"/{path}", "honor_labels": honor,
                "static_configs": [{"targets": [exporter], "labels": {"namespace": namespace, "pod": pod}}],
                "relabel_configs": [{"target_label": "job", "replacement": name}]}

    configs = [job(names.HAMI_DEVICE_PLUGIN_JOB, "device-plugin", "kube-system", PLUGIN_POD),
               job(names.HAMI_SCHEDULER_JOB, "scheduler", "kube-system", SCHEDULER_POD),
               job("kube-state-metrics", "kube-state-metrics", "monitoring", "kube-state-metrics-0", honor=True)]
    configs += [job(service, f"vllm/{pod}", "llm", pod) for pod, (service, _) in SERVER_PODS.items()]
    return configs


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    _need_prometheus()
    assert PROMETHEUS
    exporter = ThreadingHTTPServer((HOST, 0), _Exporter)
    thread = threading.Thread(target=exporter.serve_forever, daemon=True)
    thread.start()
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
              "scrape_configs": _scrape_configs(f"{HOST}:{exporter.server_address[1]}")}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen([PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
                                f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address={HOST}:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    local = LocalPrometheus(f"http://{HOST}:{port}")
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        targets = len(config["scrape_configs"])
        while True:
            assert process.poll() is None, (workdir / "prometheus.log").read_text()[-2000:]
            try:
                # Every target scraped at least three times: rate() over the window has points.
                if len(local.query("count_over_time(up[1m]) >= 3")) == targets:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (workdir / "prometheus.log").read_text()[-2000:]
            time.sleep(0.5)
        yield local
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
        exporter.shutdown()
        exporter.server_close()


def test_every_dashboard_query_returns_data(demo_run, prometheus: LocalPrometheus) -> None:
    maps = demo_run.of_type("kubernetes:core/v1:ConfigMap")
    assert len(maps) == 4
    checked = 0
    for config_map in maps:
        for text in config_map.inputs["data"].values():
            for expr in monitoring_dashboards.expressions(json.loads(text)):
                assert prometheus.query(expr), f"{config_map.inputs['metadata']['name']}: no data for {expr}"
                checked += 1
    assert checked >= 20


def test_hami_per_pod_labels_are_the_exported_ones_prometheus_keeps(prometheus: LocalPrometheus) -> None:
    # What the dashboards and alerts rely on: HAMi's own namespace/pod labels clash with the
    # target's and come out as exported_*; the target's stay HAMi's pod in kube-system.
    series = prometheus.query(names.VGPU_MEMORY_USED)
    assert {s["metric"]["exported_pod"] for s in series} == set(SERVER_PODS)
    assert {(s["metric"]["namespace"], s["metric"]["pod"]) for s in series} == {("kube-system", PLUGIN_POD)}


def test_every_alert_expression_evaluates(demo_run, prometheus: LocalPrometheus) -> None:
    # Nothing fires on a healthy cluster; the selectors inside each alert find their series.
    for group in _rule_groups(demo_run):
        for rule in group["rules"]:
            assert prometheus.query(rule["expr"]) == [], rule["alert"]
    assert prometheus.query(f'{names.KV_CACHE_USAGE}{{namespace="llm"}}')
    assert prometheus.query(f'{names.POD_STATUS_PHASE}{{namespace="llm", phase="Pending"}}')


def test_verify_reads_the_scrapes_through_the_service_proxy(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    from hamieks.verify.cluster import Cluster

    state = blog_cluster("json")
    state.proxied[(names.MONITORING_NAMESPACE, names.PROMETHEUS_SERVICE)] = prometheus.url
    settings = stack_settings("demo")
    with FakeKube(state) as kube:
        cluster = Cluster(kube.write_kubeconfig(tmp_path / "kubeconfig"))
        answer = cluster.get_service(names.MONITORING_NAMESPACE, names.PROMETHEUS_SERVICE, names.PROMETHEUS_PORT,
                                     scrapes.QUERY_PATH, [("query", scrapes.up_query(settings))])
    checks = scrapes.check_scrapes(settings, answer.status, answer.body)
    assert {c.target for c in checks} == {f"job/{j}" for j in scrapes.expected_jobs(settings)}
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
