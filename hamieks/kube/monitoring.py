"""kube-prometheus-stack's release values, the ServiceMonitor for the model servers and the
PrometheusRule alerts, as plain dicts (components/monitoring.py creates them).

Everything runs on the system nodes (the GPU nodes keep their whole pod budget for model
servers: hamieks.scheduling.allocatable counts only the EKS and HAMi DaemonSets there), with
requests and limits from MONITORING_PODS, the same figures hamieks.sizing.system_nodes sizes the
system nodes with. Value keys follow the kube-prometheus-stack chart's values.yaml (version
pinned in hamieks.versions) and its grafana, kube-state-metrics and prometheus-node-exporter
subcharts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hamieks.config.conventions import SYSTEM_NODE_LABEL
from hamieks.config.settings import Settings
from hamieks.kube import monitoring_metrics as m
from hamieks.kube.workloads import PART_OF

# Prometheus keeps a short window on an emptyDir: this is for watching a deployment against its
# plan, not long-term storage. No gp3 volume: an EBS volume lives in one AZ and would pin
# Prometheus to the system node of that AZ, so losing that AZ would stop monitoring; and a
# PVC outlives `pulumi destroy` of the release unless deleted by hand. retentionSize caps the
# disk the emptyDir may take on the node.
RETENTION = "2d"
RETENTION_SIZE = "4GB"
SCRAPE_INTERVAL = "30s"


@dataclass(frozen=True)
class MonitoringPod:
    """One monitoring pod's requests (and its memory limit) as the values set them."""

    name: str
    cpu_millis: int
    memory_mib: int
    memory_limit_mib: int


# Requests per pod, all containers of the pod included (the operator's config-reloader sidecar
# in Prometheus, the dashboard sidecar in Grafana). Prometheus is sized for a few hundred
# thousand series at 30 s: a two-node system group plus a handful of GPU nodes and servers is
# far below that.
PROMETHEUS = MonitoringPod("prometheus", 200, 1024, 2048)
GRAFANA = MonitoringPod("grafana", 100, 256, 512)
GRAFANA_SIDECAR = MonitoringPod("grafana-sidecar", 20, 64, 128)
OPERATOR = MonitoringPod("prometheus-operator", 50, 128, 256)
KUBE_STATE_METRICS = MonitoringPod("kube-state-metrics", 50, 128, 256)
NODE_EXPORTER = MonitoringPod("node-exporter", 30, 48, 96)
CONFIG_RELOADER = MonitoringPod("config-reloader", 10, 32, 64)
# What one system node must hold in the worst case (everything on one node): each pod once.
MONITORING_PODS: tuple[MonitoringPod, ...] = (
    MonitoringPod("prometheus", PROMETHEUS.cpu_millis + CONFIG_RELOADER.cpu_millis,
                  PROMETHEUS.memory_mib + CONFIG_RELOADER.memory_mib,
                  PROMETHEUS.memory_limit_mib + CONFIG_RELOADER.memory_limit_mib),
    MonitoringPod("grafana", GRAFANA.cpu_millis + GRAFANA_SIDECAR.cpu_millis,
                  GRAFANA.memory_mib + GRAFANA_SIDECAR.memory_mib,
                  GRAFANA.memory_limit_mib + GRAFANA_SIDECAR.memory_limit_mib),
    OPERATOR, KUBE_STATE_METRICS, NODE_EXPORTER,
)


def _resources(pod: MonitoringPod) -> dict[str, Any]:
    # No CPU limit: throttling a scraper makes gaps in the very series it exists for.
    return {"requests": {"cpu": f"{pod.cpu_millis}m", "memory": f"{pod.memory_mib}Mi"},
            "limits": {"memory": f"{pod.memory_limit_mib}Mi"}}


def release_values(settings: Settings) -> dict[str, Any]:
    """The kube-prometheus-stack values: operator, Prometheus, Grafana, kube-state-metrics and
    node-exporter on the system nodes; Alertmanager off (nobody receives its notifications; the
    alerts show in Prometheus and Grafana); the chart's control-plane scrapes that EKS does not
    expose (etcd, scheduler, controller-manager, kube-proxy) off."""
    on_system = SYSTEM_NODE_LABEL.as_dict()
    return {
        "fullnameOverride": m.FULLNAME,
        # The chart installs the monitoring.coreos.com CRDs (its crds/ directory, before anything
        # else), which is what lets HAMi's chart render its ServiceMonitors.
        "crds": {"enabled": True},
        "alertmanager": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeProxy": {"enabled": False},
        # The chart's own rules and dashboards stay (node and pod health); ours come on top.
        "prometheusOperator": {
            "nodeSelector": on_system,
            "resources": _resources(OPERATOR),
            "prometheusConfigReloader": {"resources": _resources(CONFIG_RELOADER)},
            "admissionWebhooks": {"patch": {"nodeSelector": on_system}},
        },
        "prometheus": {
            "prometheusSpec": {
                "nodeSelector": on_system,
                "resources": _resources(PROMETHEUS),
                "retention": RETENTION,
                "retentionSize": RETENTION_SIZE,
                "scrapeInterval": SCRAPE_INTERVAL,
                # Select every ServiceMonitor/PodMonitor/PrometheusRule in the cluster, not only
                # those labelled with this release: HAMi's chart and ours carry other labels.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
            },
        },
        "grafana": {
            "fullnameOverride": m.GRAFANA_FULLNAME,
            "nodeSelector": on_system,
            "resources": _resources(GRAFANA),
            # Empty: the grafana subchart then generates a random admin password into its Secret
            # (kubectl -n monitoring get secret grafana -o jsonpath='{.data.admin-password}') and
            # keeps it across upgrades (grafana chart templates/_helpers.tpl "grafana.password":
            # lookup of the existing Secret, else randAlphaNum 40); kube-prometheus-stack's
            # default is the well-known "prom-operator". Nothing secret is generated in code.
            "adminPassword": "",
            "persistence": {"enabled": False},
            "sidecar": {
                "resources": _resources(GRAFANA_SIDECAR),
                "datasources": {"uid": m.GRAFANA_DATASOURCE_UID},
                "dashboards": {"enabled": True, "label": m.DASHBOARD_LABEL[0], "labelValue": m.DASHBOARD_LABEL[1],
                               "searchNamespace": m.MONITORING_NAMESPACE},
            },
        },
        "kube-state-metrics": {"nodeSelector": on_system, "resources": _resources(KUBE_STATE_METRICS)},
        # Node-exporter on the system nodes only: on a GPU node it would be a sixth DaemonSet pod
        # the placement planner does not count; GPU nodes are watched through HAMi's metrics.
        "prometheus-node-exporter": {"nodeSelector": on_system, "resources": _resources(NODE_EXPORTER)},
    }


def vllm_service_monitor(settings: Settings) -> dict[str, Any]:
    """Scrapes /metrics on port 8000 ("http") of every model server Service (hamieks.kube.workloads
    labels them all part-of hami-eks); the job is each Service's name, i.e. the service's name."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "vllm", "namespace": settings.namespace, "labels": dict(PART_OF)},
        "spec": {
            "selector": {"matchLabels": dict(PART_OF)},
            "endpoints": [{"port": "http", "path": m.VLLM_METRICS_PATH, "interval": SCRAPE_INTERVAL}],
        },
    }


# Alert thresholds: one home, used by the rules and named in README.
SLICE_MEMORY_NEAR_LIMIT = 0.95
KV_CACHE_SATURATED = 0.95
PENDING_FOR = "10m"


def alert_rules(settings: Settings) -> list[dict[str, Any]]:
    """The alert groups (Prometheus rule-file `groups`), shared by the PrometheusRule and the
    promtool tests."""
    ns = settings.namespace
    servers = "|".join(svc.name for svc in settings.services) or "none"
    used = f'{m.VGPU_MEMORY_USED}{{{m.HAMI_NAMESPACE_LABEL}="{ns}"}}'
    limit = f'{m.VGPU_MEMORY_LIMIT}{{{m.HAMI_NAMESPACE_LABEL}="{ns}"}}'
    rules = [
        {"alert": "HamiSliceMemoryNearLimit",
         "expr": f"{used} / {limit} > {SLICE_MEMORY_NEAR_LIMIT}",
         "for": "5m", "labels": {"severity": "warning"},
         "annotations": {"summary": f"{{{{ $labels.{m.HAMI_POD_LABEL} }}}} uses over {SLICE_MEMORY_NEAR_LIMIT:.0%} "
                                    "of its HAMi GPU memory slice; the next allocation fails with CUDA out of memory"}},
        {"alert": "VllmKvCacheSaturated",
         "expr": f'{m.KV_CACHE_USAGE}{{namespace="{ns}"}} > {KV_CACHE_SATURATED}',
         "for": "5m", "labels": {"severity": "warning"},
         "annotations": {"summary": "{{ $labels.pod }}: the KV cache is full, requests queue or get preempted"}},
        {"alert": "HamiPodPending",
         "expr": f'max by (namespace, pod) ({m.POD_STATUS_PHASE}{{namespace="{ns}", phase="Pending"}}) == 1',
         "for": PENDING_FOR, "labels": {"severity": "warning"},
         "annotations": {"summary": f"{{{{ $labels.pod }}}} has been Pending for {PENDING_FOR}: hami-scheduler "
                                    "found no GPU slice for it (see `hami-eks plan`)"}},
    ]
    for job in m.HAMI_JOBS:
        rules.append({"alert": _down_alert(job),
                      "expr": f'up{{job="{job}"}} == 0 or absent(up{{job="{job}"}})',
                      "for": "5m", "labels": {"severity": "critical"},
                      "annotations": {"summary": f"{job} is down or not scraped: no GPU pod can be scheduled "
                                                 "or no slice is measured"}})
    rules.append({"alert": "ModelServerDown",
                  "expr": f'up{{namespace="{ns}", job=~"{servers}"}} == 0',
                  "for": "5m", "labels": {"severity": "critical"},
                  "annotations": {"summary": "model server {{ $labels.pod }} does not answer /metrics"}})
    return [{"name": "hami-eks", "rules": rules}]


def _down_alert(job: str) -> str:
    return {m.HAMI_SCHEDULER_JOB: "HamiSchedulerDown", m.HAMI_DEVICE_PLUGIN_JOB: "HamiDevicePluginDown"}[job]


def prometheus_rule(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hami-eks", "namespace": m.MONITORING_NAMESPACE, "labels": dict(PART_OF)},
        "spec": {"groups": alert_rules(settings)},
    }

