"""The one home of every metric name, scrape job and label the dashboards, alerts and `verify`
query: when HAMi or vLLM renames a series, this table is the only place to change.

HAMi v2.10.0 (github.com/Project-HAMi/HAMi at tag v2.10.0):
- cmd/vGPUmonitor/metrics.go, the device plugin's vGPU monitor (ClusterManagerCollector.Collect):
  hami_vgpu_memory_used_bytes / hami_vgpu_memory_limit_bytes (ctrvGPUdesc / ctrvGPUlimitdesc,
  labels namespace, pod, container, vdevice_index, device_uuid), hami_host_gpu_memory_used_bytes
  and hami_host_gpu_utilization_ratio (hostGPUdesc / hostGPUUtilizationdesc, labels node,
  device_index, device_uuid, device_type). The legacy names (vGPU_device_memory_usage_in_bytes,
  HostGPUMemoryUsage, ...) are emitted only with the chart's legacyMetrics: true (default false).
- cmd/scheduler/metrics.go, hami-scheduler (collectNodeMetrics / collectContainerMetrics):
  hami_gpu_memory_limit_bytes, hami_gpu_memory_allocated_bytes, hami_gpu_shared_count,
  hami_node_gpu_memory_allocated_ratio (labels node, device_uuid, device_index, device_type) and
  hami_vgpu_memory_allocated_bytes (labels namespace, node, pod, container_index, device_uuid).

The chart's ServiceMonitors (templates/scheduler/servicemonitor.yaml, templates/device-plugin/
servicemonitor.yaml) do not set honorLabels, so Prometheus keeps the scrape target's own
`namespace`/`pod` (HAMi's pods in kube-system) and renames HAMi's per-container labels to
`exported_namespace` / `exported_pod` (Prometheus scrape config honor_labels: false). The
per-pod queries therefore select on the exported_* labels.

vLLM (vllm/v1/metrics/loggers.py PrometheusStatLogger.__init__, labels model_name and engine; read
on the indexed snapshot of github.com/vllm-project/vllm, since the repository is too large to
fetch at the pinned tag of hamieks.versions.VLLM_IMAGE here, so re-check on a version bump):
vllm:kv_cache_usage_perc (gauge, 0-1), vllm:num_requests_running /
vllm:num_requests_waiting (gauges), vllm:time_to_first_token_seconds (histogram),
vllm:generation_tokens_total / vllm:prompt_tokens_total (counters). vllm:gpu_cache_usage_perc and
the time-per-output-token histogram were removed in favour of vllm:kv_cache_usage_perc and
vllm:inter_token_latency_seconds; nothing here uses the removed names. The server's pod and
namespace come from the scrape target (our ServiceMonitor), since vLLM sets neither.

kube-state-metrics (internal/store/pod.go): kube_pod_status_phase{namespace, pod, uid, phase}.
"""

from __future__ import annotations

MONITORING_NAMESPACE = "monitoring"
# The kube-prometheus-stack release and the fixed object names its values give (fullnameOverride),
# so the Prometheus Service verify reaches and the Grafana Secret README points to never move.
RELEASE_NAME = "kube-prometheus-stack"
FULLNAME = "kps"
PROMETHEUS_SERVICE = f"{FULLNAME}-prometheus"  # templates/prometheus/service.yaml
PROMETHEUS_PORT = 9090
GRAFANA_FULLNAME = "grafana"
GRAFANA_ADMIN_SECRET = GRAFANA_FULLNAME  # the grafana subchart's Secret, key admin-password
GRAFANA_PORT = 80  # the grafana subchart's Service port (service.port)
# The uid of the Prometheus datasource Grafana's sidecar provisions (kube-prometheus-stack values
# grafana.sidecar.datasources.uid; set explicitly so the dashboards' references cannot drift).
GRAFANA_DATASOURCE_UID = "prometheus"
# The Grafana sidecar loads every ConfigMap carrying this label as a dashboard.
DASHBOARD_LABEL = ("grafana_dashboard", "1")

# Scrape jobs: the operator names a ServiceMonitor's job after the Service it scrapes.
HAMI_SCHEDULER_JOB = "hami-scheduler"  # chart Service <fullname>-scheduler, port "monitor"
HAMI_DEVICE_PLUGIN_JOB = "hami-device-plugin-monitor"  # <fullname>-device-plugin-monitor
HAMI_JOBS = (HAMI_SCHEDULER_JOB, HAMI_DEVICE_PLUGIN_JOB)

# HAMi, device plugin (vGPU monitor).
VGPU_MEMORY_USED = "hami_vgpu_memory_used_bytes"
VGPU_MEMORY_LIMIT = "hami_vgpu_memory_limit_bytes"
HOST_GPU_MEMORY_USED = "hami_host_gpu_memory_used_bytes"
HOST_GPU_UTILIZATION = "hami_host_gpu_utilization_ratio"
# HAMi, scheduler.
GPU_MEMORY_LIMIT = "hami_gpu_memory_limit_bytes"
GPU_MEMORY_ALLOCATED = "hami_gpu_memory_allocated_bytes"
GPU_SHARED_COUNT = "hami_gpu_shared_count"
VGPU_MEMORY_ALLOCATED = "hami_vgpu_memory_allocated_bytes"
# HAMi's per-container labels as Prometheus stores them (see the module doc).
HAMI_NAMESPACE_LABEL = "exported_namespace"
HAMI_POD_LABEL = "exported_pod"

# vLLM.
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
REQUESTS_WAITING = "vllm:num_requests_waiting"
REQUESTS_RUNNING = "vllm:num_requests_running"
TIME_TO_FIRST_TOKEN = "vllm:time_to_first_token_seconds"
GENERATION_TOKENS = "vllm:generation_tokens_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
VLLM_METRICS_PATH = "/metrics"

# kube-state-metrics.
POD_STATUS_PHASE = "kube_pod_status_phase"
