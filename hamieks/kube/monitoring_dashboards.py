"""The Grafana dashboards, built with grafana-foundation-sdk (not hand-written JSON) and
delivered as ConfigMaps the Grafana sidecar loads (label grafana_dashboard: "1").

Four dashboards: HAMi slices (per-pod GPU memory used against its HAMi limit), GPU nodes (per
physical GPU: memory used, allocated and utilisation), vLLM (KV cache, queue, time to first
token, throughput), and plan vs reality, which carries the numbers `hami-eks plan` computed for
this stack (each replica's slice, the predicted KV-cache tokens, $/hour) beside the live series.
The plan's figures come in as PlanFigures: this package may not import the planner, so the
program hands them over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from hamieks.config.settings import Settings
from hamieks.kube import monitoring_metrics as m
from hamieks.kube.workloads import PART_OF

MIB = 1024 * 1024
# The Prometheus datasource the release provisions (hamieks/kube/monitoring.py release_values).
DATASOURCE = DataSourceRef(type_val="prometheus", uid=m.GRAFANA_DATASOURCE_UID)


@dataclass(frozen=True)
class PlannedService:
    name: str
    slice_mib: tuple[int, ...]  # each placed replica's planned GPU memory (what it sees as memory.total)
    kv_cache_tokens: int | None  # predicted by the model-fit check; None when unknown


@dataclass(frozen=True)
class PlanFigures:
    services: tuple[PlannedService, ...]
    usd_per_hour: float | None  # None when a price the stack needs is unknown


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def _series(title: str, unit: str, *targets: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def _stat(title: str, unit: str, *targets: prometheus.Dataquery) -> stat.Panel:
    panel = stat.Panel().title(title).unit(unit).datasource(DATASOURCE)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def _dashboard(uid: str, title: str) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).tags(["hami-eks"]).refresh("30s")
            .time("now-3h", "now").timezone("browser"))


def _hami_pod(ns: str, extra: str = "") -> str:
    return f'{m.HAMI_NAMESPACE_LABEL}="{ns}"{extra}'


def hami_slices(settings: Settings) -> dashboard.Dashboard:
    sel = _hami_pod(settings.namespace)
    by_pod = f"{m.HAMI_POD_LABEL}, device_uuid"
    return (_dashboard("hami-eks-slices", "HAMi: GPU memory per pod vs its slice")
            .with_panel(_series("GPU memory used vs HAMi limit", "bytes",
                                _query(f"sum by ({by_pod}) ({m.VGPU_MEMORY_USED}{{{sel}}})",
                                       f"{{{{{m.HAMI_POD_LABEL}}}}} used", "A"),
                                _query(f"sum by ({by_pod}) ({m.VGPU_MEMORY_LIMIT}{{{sel}}})",
                                       f"{{{{{m.HAMI_POD_LABEL}}}}} limit", "B")))
            .with_panel(_series("Share of the slice in use", "percentunit",
                                _query(f"sum by ({by_pod}) ({m.VGPU_MEMORY_USED}{{{sel}}}) / "
                                       f"sum by ({by_pod}) ({m.VGPU_MEMORY_LIMIT}{{{sel}}})",
                                       f"{{{{{m.HAMI_POD_LABEL}}}}}", "A")))
            .with_panel(_series("Memory HAMi allocated per pod (scheduler)", "bytes",
                                _query(f"sum by ({m.HAMI_POD_LABEL}) ({m.VGPU_MEMORY_ALLOCATED}{{{sel}}})",
                                       f"{{{{{m.HAMI_POD_LABEL}}}}}", "A"))))


def gpu_nodes() -> dashboard.Dashboard:
    gpu = "node, device_index"
    return (_dashboard("hami-eks-gpu-nodes", "HAMi: GPU nodes")
            .with_panel(_series("Physical GPU memory used vs allocated to slices", "bytes",
                                _query(f"max by ({gpu}) ({m.HOST_GPU_MEMORY_USED})", "{{node}} GPU {{device_index}} used", "A"),
                                _query(f"max by ({gpu}) ({m.GPU_MEMORY_ALLOCATED})",
                                       "{{node}} GPU {{device_index}} allocated", "B"),
                                _query(f"max by ({gpu}) ({m.GPU_MEMORY_LIMIT})", "{{node}} GPU {{device_index}} total", "C")))
            .with_panel(_series("GPU utilisation", "percent",
                                _query(f"max by ({gpu}) ({m.HOST_GPU_UTILIZATION})", "{{node}} GPU {{device_index}}", "A")))
            .with_panel(_series("Pods sharing each GPU", "short",
                                _query(f"max by ({gpu}) ({m.GPU_SHARED_COUNT})", "{{node}} GPU {{device_index}}", "A"))))


def vllm(settings: Settings) -> dashboard.Dashboard:
    sel = f'namespace="{settings.namespace}"'
    return (_dashboard("hami-eks-vllm", "vLLM model servers")
            .with_panel(_series("KV cache usage", "percentunit",
                                _query(f"max by (pod) ({m.KV_CACHE_USAGE}{{{sel}}})", "{{pod}}", "A")))
            .with_panel(_series("Requests waiting / running", "short",
                                _query(f"sum by (pod) ({m.REQUESTS_WAITING}{{{sel}}})", "{{pod}} waiting", "A"),
                                _query(f"sum by (pod) ({m.REQUESTS_RUNNING}{{{sel}}})", "{{pod}} running", "B")))
            .with_panel(_series("Time to first token (p50 / p95)", "s",
                                _query(f"histogram_quantile(0.5, sum by (le, job) "
                                       f"(rate({m.TIME_TO_FIRST_TOKEN}_bucket{{{sel}}}[5m])))", "{{job}} p50", "A"),
                                _query(f"histogram_quantile(0.95, sum by (le, job) "
                                       f"(rate({m.TIME_TO_FIRST_TOKEN}_bucket{{{sel}}}[5m])))", "{{job}} p95", "B")))
            .with_panel(_series("Throughput (tokens/s)", "short",
                                _query(f"sum by (job) (rate({m.GENERATION_TOKENS}{{{sel}}}[5m]))", "{{job}} generated", "A"),
                                _query(f"sum by (job) (rate({m.PROMPT_TOKENS}{{{sel}}}[5m]))", "{{job}} prompt", "B"))))


def plan_vs_reality(settings: Settings, figures: PlanFigures) -> dashboard.Dashboard:
    """Per service: the planned slice beside each pod's live HAMi limit and use, and the predicted
    KV-cache tokens beside the live KV-cache usage; the plan's $/hour beside the live node count."""
    ns = settings.namespace
    board = _dashboard("hami-eks-plan-vs-reality", "hami-eks: plan vs reality")
    if figures.usd_per_hour is not None:
        board = board.with_panel(_stat("Planned cost ($/hour, hami-eks plan)", "currencyUSD",
                                       _query(f"vector({figures.usd_per_hour})", "planned", "A")))
    board = board.with_panel(_stat("GPUs reporting to HAMi (live)", "short",
                                   _query(f"count({m.GPU_MEMORY_LIMIT})", "GPUs", "A")))
    for svc in figures.services:
        pods = _hami_pod(ns, f', {m.HAMI_POD_LABEL}=~"{svc.name}-.+"')
        targets = [_query(f"vector({max(svc.slice_mib) * MIB})", "planned slice", "A")] if svc.slice_mib else []
        board = board.with_panel(_series(
            f"{svc.name}: planned slice vs HAMi limit and use", "bytes", *targets,
            _query(f"max by ({m.HAMI_POD_LABEL}) ({m.VGPU_MEMORY_LIMIT}{{{pods}}})",
                   f"{{{{{m.HAMI_POD_LABEL}}}}} limit", "B"),
            _query(f"max by ({m.HAMI_POD_LABEL}) ({m.VGPU_MEMORY_USED}{{{pods}}})",
                   f"{{{{{m.HAMI_POD_LABEL}}}}} used", "C")))
        kv = [_query(f"vector({svc.kv_cache_tokens})", "predicted KV tokens", "A")] if svc.kv_cache_tokens else []
        board = board.with_panel(_stat(f"{svc.name}: predicted KV-cache tokens (hami-eks plan)", "short", *kv,
                                       _query(f'count({m.KV_CACHE_USAGE}{{namespace="{ns}", job="{svc.name}"}})',
                                              "servers reporting", "B")))
        board = board.with_panel(_series(f"{svc.name}: KV cache usage (live)", "percentunit",
                                         _query(f'max by (pod) ({m.KV_CACHE_USAGE}{{namespace="{ns}", job="{svc.name}"}})',
                                                "{{pod}}", "A")))
    return board


def dashboards(settings: Settings, figures: PlanFigures) -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana JSON model, by ConfigMap name."""
    built = {
        "hami-eks-slices": hami_slices(settings),
        "hami-eks-gpu-nodes": gpu_nodes(),
        "hami-eks-vllm": vllm(settings),
        "hami-eks-plan-vs-reality": plan_vs_reality(settings, figures),
    }
    encoder = JSONEncoder(sort_keys=True)
    return {name: json.loads(encoder.encode(board.build())) for name, board in built.items()}


def expressions(model: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard model (what the tests run against Prometheus)."""
    return [target["expr"] for panel in model.get("panels", []) for target in panel.get("targets", [])]


def config_maps(settings: Settings, figures: PlanFigures) -> list[dict[str, Any]]:
    return [{
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": m.MONITORING_NAMESPACE,
                     "labels": {m.DASHBOARD_LABEL[0]: m.DASHBOARD_LABEL[1], **PART_OF}},
        "data": {f"{name}.json": json.dumps(model, sort_keys=True)},
    } for name, model in dashboards(settings, figures).items()]
