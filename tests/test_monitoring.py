"""hami-eks:monitoring: what the program registers (under mocks), the HAMi and NetworkPolicy
changes it brings, and the system-node sizing that counts the monitoring pods."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
import yaml
from fake_kube import FakeKube, blog_cluster, up_series
from helpers import REPO, selector_matches, stack_settings
from pulumi_harness import run_program

from hamieks import cli, cost, versions
from hamieks.config.conventions import SYSTEM_NODE_LABEL
from hamieks.kube import hami_values, monitoring, workloads
from hamieks.kube import monitoring_metrics as names
from hamieks.modelfit import report as modelfit_report
from hamieks.scheduling import allocatable, placement
from hamieks.sizing import system_nodes
from hamieks.sizing.system_nodes import SystemPod
from hamieks.verify import checks

RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
DASHBOARD_NAMES = {"hami-eks-slices", "hami-eks-gpu-nodes", "hami-eks-vllm", "hami-eks-plan-vs-reality"}


@pytest.fixture(scope="module")
def demo_run():
    return run_program("demo")


def _release(run, chart: str):
    return next(r for r in run.of_type(RELEASE) if r.inputs["chart"] == chart)


def test_demo_registers_the_monitoring_stack_before_hami(demo_run):
    kps = _release(demo_run, "kube-prometheus-stack")
    assert kps.inputs["version"] == versions.KUBE_PROMETHEUS_STACK_CHART_VERSION
    assert kps.inputs["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
    assert kps.inputs["namespace"] == "monitoring"
    assert kps.inputs["values"]["crds"] == {"enabled": True}
    # HAMi's chart renders its ServiceMonitors only when the CRDs exist: HAMi waits for them,
    # and its values switch them on.
    hami = _release(demo_run, "hami")
    assert demo_run.depends_on(hami, kps)
    assert hami.inputs["values"]["prometheus"] == {"enabled": True}
    assert {r.type for r in demo_run.resources} >= {"hami-eks:monitoring:Monitoring", SERVICE_MONITOR, PROMETHEUS_RULE}


def test_the_server_scrape_waits_for_the_crds_and_the_servers(demo_run):
    monitor = demo_run.of_type(SERVICE_MONITOR)[0]
    kps = _release(demo_run, "kube-prometheus-stack")
    namespace = next(r for r in demo_run.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "llm")
    assert demo_run.depends_on(monitor, kps) and demo_run.depends_on(monitor, namespace)
    spec = monitor.inputs["spec"]
    assert monitor.inputs["metadata"]["namespace"] == "llm"
    assert spec["endpoints"] == [{"port": "http", "path": "/metrics", "interval": monitoring.SCRAPE_INTERVAL}]
    # It selects every model server Service, whose "http" port is vLLM's 8000.
    services = demo_run.of_type("kubernetes:core/v1:Service")
    assert services
    for service in services:
        assert selector_matches(spec["selector"], service.inputs["metadata"]["labels"])
        assert {"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"} in service.inputs["spec"]["ports"]


def test_dashboards_are_sidecar_config_maps_carrying_the_plan(demo_run):
    maps = {r.inputs["metadata"]["name"]: r for r in demo_run.of_type(CONFIG_MAP)}
    assert set(maps) == DASHBOARD_NAMES
    kps = _release(demo_run, "kube-prometheus-stack")
    for name, config_map in maps.items():
        meta = config_map.inputs["metadata"]
        assert meta["namespace"] == "monitoring" and meta["labels"]["grafana_dashboard"] == "1"
        assert demo_run.depends_on(config_map, kps)
        model = json.loads(config_map.inputs["data"][f"{name}.json"])
        assert model["uid"] == name and model["panels"]
    # The plan-vs-reality dashboard states what `hami-eks plan` computed for this stack.
    settings = stack_settings("demo", prices="recorded")
    plan = placement.plan(settings, prices=cost.recorded_price)
    fits = modelfit_report.model_fits(settings)
    text = maps["hami-eks-plan-vs-reality"].inputs["data"]["hami-eks-plan-vs-reality.json"]
    assert f"vector({plan.estimated_hourly_cost_usd})" in text
    for svc in settings.services:
        slice_mib = {p.memory_mib for p in plan.placements if p.service == svc.name}
        assert len(slice_mib) == 1 and f"vector({slice_mib.pop() * 1024 * 1024})" in text, svc.name
        tokens = next(f.kv_cache_tokens for f in fits if f.service == svc.name)
        assert tokens and f"vector({tokens})" in text, svc.name


def test_rules_and_dashboards_reach_grafana_and_prometheus(demo_run):
    values = _release(demo_run, "kube-prometheus-stack").inputs["values"]
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")
    assert sidecar["searchNamespace"] == "monitoring"
    # Every panel queries the datasource the release provisions.
    uid = values["grafana"]["sidecar"]["datasources"]["uid"]
    for config_map in demo_run.of_type(CONFIG_MAP):
        for text in config_map.inputs["data"].values():
            assert {p["datasource"]["uid"] for p in json.loads(text)["panels"]} == {uid}
    spec = values["prometheus"]["prometheusSpec"]
    # Prometheus must select HAMi's and our monitors and rules, which carry no release label.
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    rule = demo_run.of_type(PROMETHEUS_RULE)[0]
    assert rule.inputs["metadata"]["namespace"] == "monitoring"
    assert {r["alert"] for g in rule.inputs["spec"]["groups"] for r in g["rules"]} == {
        "HamiSliceMemoryNearLimit", "VllmKvCacheSaturated", "HamiPodPending", "HamiSchedulerDown",
        "HamiDevicePluginDown", "ModelServerDown"}


def test_monitoring_pods_run_on_the_system_nodes_with_requests_and_limits():
    values = monitoring.release_values(stack_settings("demo"))
    pods = {
        "operator": values["prometheusOperator"],
        "prometheus": values["prometheus"]["prometheusSpec"],
        "grafana": values["grafana"],
        "kube-state-metrics": values["kube-state-metrics"],
        "node-exporter": values["prometheus-node-exporter"],
    }
    for name, pod in pods.items():
        assert pod["nodeSelector"] == SYSTEM_NODE_LABEL.as_dict(), name
        assert set(pod["resources"]["requests"]) == {"cpu", "memory"} and "memory" in pod["resources"]["limits"], name
    # No well-known Grafana password: the chart generates one into its Secret.
    assert values["grafana"]["adminPassword"] == ""
    assert values["alertmanager"] == {"enabled": False}


def _mebi(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


def test_system_node_sizing_counts_what_the_monitoring_values_request():
    values = monitoring.release_values(stack_settings("demo"))
    requested = [values["prometheusOperator"]["resources"], values["prometheus"]["prometheusSpec"]["resources"],
                 values["prometheusOperator"]["prometheusConfigReloader"]["resources"], values["grafana"]["resources"],
                 values["grafana"]["sidecar"]["resources"], values["kube-state-metrics"]["resources"],
                 values["prometheus-node-exporter"]["resources"]]
    cpu = sum(int(r["requests"]["cpu"].rstrip("m")) for r in requested)
    memory = sum(_mebi(r["requests"]["memory"]) for r in requested)
    on = system_nodes.system_pods(stack_settings("demo"))
    off = system_nodes.system_pods(stack_settings("demo", monitoring=False))
    assert sum(p.cpu_millis for p in on) - sum(p.cpu_millis for p in off) == cpu
    assert sum(p.memory_mib for p in on) - sum(p.memory_mib for p in off) == memory


def test_the_cheapest_system_type_must_also_hold_the_monitoring_pods(monkeypatch):
    # A base load that leaves a t3.large less room than the monitoring pods need.
    t3_large = system_nodes.catalog.instance_type("t3.large")
    monitoring_cpu = sum(p.cpu_millis for p in system_nodes.MONITORING_PODS)
    base = allocatable.cpu_millis(t3_large) - monitoring_cpu + 1
    monkeypatch.setattr(system_nodes, "SYSTEM_PODS", (SystemPod("base", base, 256, "test"),))
    off, _ = system_nodes.cheapest_system_type(stack_settings("demo", monitoring=False), cost.recorded_price)
    on, _ = system_nodes.cheapest_system_type(stack_settings("demo"), cost.recorded_price)
    assert off.name == "t3.large"
    assert allocatable.cpu_millis(on) >= base + monitoring_cpu and on.name != "t3.large"


def test_the_serving_network_policy_admits_the_monitoring_namespace_only_when_on():
    def sources(settings):
        ingress = workloads.network_policy(settings)["spec"]["ingress"]
        assert [rule["ports"] for rule in ingress] == [[{"protocol": "TCP", "port": 8000}]]
        return ingress[0]["from"]

    monitoring_ns = {"kubernetes.io/metadata.name": "monitoring"}
    on = [s for s in sources(stack_settings("demo")) if "namespaceSelector" in s
          and selector_matches(s["namespaceSelector"], monitoring_ns)]
    assert on == [{"namespaceSelector": {"matchLabels": monitoring_ns}}]
    assert not [s for s in sources(stack_settings("demo", monitoring=False)) if "namespaceSelector" in s
                and selector_matches(s["namespaceSelector"], monitoring_ns)]


def test_monitoring_off_registers_none_of_it():
    run = run_program("demo", overrides={"hami-eks:monitoring": False})
    assert [r.inputs["chart"] for r in run.of_type(RELEASE)] == ["hami"]
    assert not run.of_type(SERVICE_MONITOR) and not run.of_type(PROMETHEUS_RULE) and not run.of_type(CONFIG_MAP)
    assert "prometheus" not in _release(run, "hami").inputs["values"]
    assert hami_values.release_values(stack_settings("demo", monitoring=False)).get("prometheus") is None


def test_a_non_boolean_monitoring_value_is_a_config_error():
    run = run_program("demo", overrides={"hami-eks:monitoring": "sometimes"}, expect_error=True)
    assert "hami-eks:monitoring" in str(run.error)
    assert not run.resources or all(not r.custom for r in run.resources)


def test_metric_names_are_hamis_and_vllms_current_ones():
    # HAMi v2.10.0's names (cmd/vGPUmonitor/metrics.go), not the legacy ones behind legacyMetrics.
    assert (names.VGPU_MEMORY_USED, names.VGPU_MEMORY_LIMIT) == ("hami_vgpu_memory_used_bytes",
                                                                 "hami_vgpu_memory_limit_bytes")
    # vLLM v1 names; vllm:gpu_cache_usage_perc is gone.
    assert names.KV_CACHE_USAGE == "vllm:kv_cache_usage_perc"


# ---- verify: Prometheus scrapes HAMi and every server (fake API server, real CLI) ----------------

def _verify(state, tmp_path, monkeypatch, capsys, *extra: str) -> tuple[int, dict]:
    monkeypatch.setitem(cli.COMMANDS, "verify", cli.COMMANDS.get("verify", ("hamieks.commands.verify", "verify")))
    with FakeKube(state) as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig.json")
        code = cli.main(["verify", "--stack", "demo", "--kubeconfig", str(kubeconfig), "--json", "--no-inference",
                         *extra])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def _scrape_checks(doc: dict) -> dict[str, dict]:
    return {c["target"]: c for c in doc["checks"] if c["name"] == checks.SCRAPES}


def test_verify_passes_when_prometheus_scrapes_hami_and_every_replica(tmp_path, monkeypatch, capsys):
    code, doc = _verify(blog_cluster("json"), tmp_path, monkeypatch, capsys)
    assert code == 0, [c for c in doc["checks"] if not c["ok"]]
    found = _scrape_checks(doc)
    expected = {"job/hami-scheduler", "job/hami-device-plugin-monitor",
                *(f"job/{svc.name}" for svc in stack_settings("demo").services)}
    assert set(found) == expected and all(c["ok"] for c in found.values())
    assert found["job/vllm-t4-qwen25-1-5b"]["detail"] == "2/2 targets up, 2 replicas expected"


@pytest.mark.parametrize("breakage, target, words", [
    ("server-down", "job/vllm-a10g-mistral7b-awq", "0/1 targets up"),
    ("replica-missing", "job/vllm-t4-qwen25-1-5b", "1/1 targets up, 2 replicas expected"),
    ("hami-not-scraped", "job/hami-device-plugin-monitor", "not scraped"),
    ("no-prometheus", "svc/kps-prometheus -n monitoring", "is kube-prometheus-stack running?"),
])
def test_verify_fails_on_each_missing_scrape(breakage, target, words, tmp_path, monkeypatch, capsys):
    state = blog_cluster("json")
    ups = state.prometheus_up or []
    if breakage == "server-down":
        state.prometheus_up = [up_series(s["metric"]["job"], s["metric"]["namespace"], s["metric"]["pod"],
                                         0 if s["metric"]["job"] == "vllm-a10g-mistral7b-awq" else 1) for s in ups]
    elif breakage == "replica-missing":
        state.prometheus_up = [s for s in ups if s["metric"]["pod"] != "vllm-t4-qwen25-1-5b-55f98dbcf4-rn5m4"]
    elif breakage == "hami-not-scraped":
        state.prometheus_up = [s for s in ups if s["metric"]["job"] != names.HAMI_DEVICE_PLUGIN_JOB]
    else:
        state.prometheus_up = None
    code, doc = _verify(state, tmp_path, monkeypatch, capsys)
    assert code == 1
    failed = {c["target"]: c["detail"] for c in doc["checks"] if not c["ok"]}
    assert list(failed) == [target] and words in failed[target]


def test_verify_skips_the_scrape_check_with_monitoring_off(tmp_path, monkeypatch, capsys):
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project_dir / "Pulumi.yaml")
    demo = yaml.safe_load((REPO / "Pulumi.demo.yaml").read_text())
    demo["config"]["hami-eks:monitoring"] = False
    (project_dir / "Pulumi.demo.yaml").write_text(yaml.safe_dump(demo))
    state = blog_cluster("json")
    state.prometheus_up = None  # no Prometheus: with monitoring off nobody asks it
    code, doc = _verify(state, tmp_path, monkeypatch, capsys, "--project-dir", str(project_dir))
    assert code == 0, [c for c in doc["checks"] if not c["ok"]]
    assert not _scrape_checks(doc)


# ---- HAMi 2.10.0's chart: what our values switch on, and the job names Prometheus gives it -------

CHART = "reference/charts/hami-2.10.0.tgz"


def test_hamis_service_monitors_follow_our_values_and_name_the_jobs_we_query(shared_dir, tmp_path):
    helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk (requirements-dev.txt) renders the chart offline")
    with tarfile.open(shared_dir / CHART) as archive:
        archive.extractall(tmp_path, filter="data")
    chart_dir = tmp_path / "hami"
    templates = {name: (chart_dir / "templates" / name / "servicemonitor.yaml").read_text()
                 for name in ("scheduler", "device-plugin")}
    # Each is gated on the value we set and on the operator's CRD being served.
    for text in templates.values():
        first = text.splitlines()[0]
        assert ".Values.prometheus.enabled" in first and '"monitoring.coreos.com/v1/ServiceMonitor"' in first
    # Offline rendering has no such API, so the monitors stay out; the Services they select
    # (component label, the monitor's port name) are rendered, and a ServiceMonitor's job is the
    # name of the Service it scrapes: those are the job names the alerts and verify use.
    docs = [doc for path, text in helm_python.Chart.load(chart_dir).render(
        hami_values.release_values(stack_settings("demo")), name="hami", namespace="kube-system",
        is_install=True).items() if path.endswith(".yaml") for doc in yaml.safe_load_all(text) if doc]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    services = [d for d in docs if d["kind"] == "Service"]
    for component, port, job in (("hami-scheduler", "monitor", names.HAMI_SCHEDULER_JOB),
                                 ("hami-device-plugin", "monitorport", names.HAMI_DEVICE_PLUGIN_JOB)):
        assert f"port: {port}" in templates["scheduler" if component == "hami-scheduler" else "device-plugin"]
        (service,) = [s for s in services if s["metadata"]["labels"].get("app.kubernetes.io/component") == component
                      and port in {p["name"] for p in s["spec"]["ports"]}]
        assert service["metadata"]["name"] == job
