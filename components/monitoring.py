"""kube-prometheus-stack, the hami-eks alerts and dashboards, and the model servers' scrape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from hamieks import versions
from hamieks.config.settings import Settings
from hamieks.kube import monitoring, monitoring_dashboards
from hamieks.kube import monitoring_metrics as names


@dataclass(frozen=True)
class MonitoringArgs:
    settings: Settings
    plan: monitoring_dashboards.PlanFigures


def _custom(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    meta = obj["metadata"]
    return k8s.apiextensions.CustomResource(
        f"{obj['kind'].lower()}-{meta['namespace']}-{meta['name']}", api_version=obj["apiVersion"], kind=obj["kind"],
        metadata=meta, spec=obj["spec"], opts=opts)


class Monitoring(pulumi.ComponentResource):
    """Creates: the `monitoring` namespace, a `k8s.helm.v3.Release` of the pinned
    kube-prometheus-stack chart (its CRDs first, so HAMi's chart, which depends on this
    component, renders its ServiceMonitors), the hami-eks PrometheusRule and the dashboard
    ConfigMaps the Grafana sidecar loads."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:monitoring:Monitoring", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": names.MONITORING_NAMESPACE,
                                           "labels": {"app.kubernetes.io/part-of": "hami-eks"}},
            opts=pulumi.ResourceOptions(parent=self))
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name=names.RELEASE_NAME,
                chart=versions.KUBE_PROMETHEUS_STACK_CHART_NAME,
                version=versions.KUBE_PROMETHEUS_STACK_CHART_VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=versions.KUBE_PROMETHEUS_STACK_CHART_REPO),
                namespace=names.MONITORING_NAMESPACE,
                values=monitoring.release_values(args.settings),
                skip_await=False,
                atomic=True,
                cleanup_on_fail=True,
                timeout=900,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]))
        after_release = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
        _custom(monitoring.prometheus_rule(args.settings), after_release)
        for config_map in monitoring_dashboards.config_maps(args.settings, args.plan):
            k8s.core.v1.ConfigMap(f"configmap-{names.MONITORING_NAMESPACE}-{config_map['metadata']['name']}",
                                  metadata=config_map["metadata"], data=config_map["data"], opts=after_release)
        self.register_outputs({})


class ServingScrape(pulumi.ComponentResource):
    """Creates: the ServiceMonitor that scrapes every model server's /metrics (port 8000), once
    the CRDs (depends on Monitoring) and the serving namespace exist."""

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:monitoring:ServingScrape", name, None, opts)
        _custom(monitoring.vllm_service_monitor(settings), pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
