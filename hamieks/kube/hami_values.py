"""The values the HAMi Helm release is installed with, built from hamieks.hami and the settings,
and the PodDisruptionBudget the chart does not ship.

Every key is documented in the chart's values.yaml (chart 2.10.0). The values that must agree
with the planner (default policies, deviceSplitCount, the webhook's namespaceSelector) come
from hamieks.hami, so flipping one there changes the release and the plan together.
"""

from __future__ import annotations

import copy
from typing import Any

from hamieks import hami, versions
from hamieks.config.conventions import GPU_NODE_LABEL, GPU_TAINT, SYSTEM_NODE_LABEL
from hamieks.config.settings import Settings
from hamieks.kube import registry_mirror

# The webhook fails closed for the serving namespace, so while no scheduler pod is ready no GPU
# pod can be created. Two leader-elected replicas: the kube-scheduler containers share one Lease
# (templates/scheduler/configmap.yaml leaderElection.resourceName), only the leader schedules, and
# its extender recognises itself as leader by that Lease (pkg/util/leaderelection isHolderOf).
# Only the leader serves the webhook too: chart 2.10.0's Service selects
# `hami.io/scheduler-role: leader` (templates/scheduler/service.yaml), a label the extender puts
# on its own pod once it leads and turns to `follower` on the others (pkg/scheduler/scheduler.go
# updateSchedulerLabel). So the Service has no endpoint until a leader has labelled itself - after
# the Deployment is Ready, which is all Helm's wait checks - and none for the seconds of a leader
# change. The standby replica shortens that gap (it takes the Lease instead of a new pod starting);
# webhook_ready_job below makes serving wait for the first endpoint.
SCHEDULER_REPLICAS = 2
# The chart's scheduler pod selector labels (templates/_helpers.tpl hami-vgpu.selectorLabels plus
# the component label of templates/scheduler/deployment.yaml).
SCHEDULER_SELECTOR = {
    hami.COMPONENT_LABEL: hami.SCHEDULER_COMPONENT,
    "app.kubernetes.io/name": versions.HAMI_CHART_NAME,
    "app.kubernetes.io/instance": hami.RELEASE_NAME,
}
PDB_NAME = "hami-scheduler"

# Chart 2.10.0's image roots (values.yaml) and the registry each pulls from by default; an
# ECR pull-through cache must rewrite every one of them. kube-scheduler's is ours (registry.k8s.io).
CHART_IMAGES: dict[tuple[str, ...], tuple[str, str]] = {
    ("scheduler", "kubeScheduler", "image"): ("registry.k8s.io", "kube-scheduler"),
    ("scheduler", "extender", "image"): ("docker.io", "projecthami/hami"),
    ("scheduler", "patch", "image"): (versions.CERTGEN_REGISTRY, versions.CERTGEN_REPOSITORY),
    ("scheduler", "patch", "imageNew"): (versions.CERTGEN_REGISTRY, versions.CERTGEN_REPOSITORY),
    ("devicePlugin", "image"): ("docker.io", "projecthami/hami"),
    ("devicePlugin", "monitor", "image"): ("docker.io", "projecthami/hami"),
}


def kube_scheduler_tag(kubernetes_version: str) -> str:
    """The kube-scheduler tag for the cluster's minor version (see versions.KUBE_SCHEDULER_TAGS)."""
    return versions.KUBE_SCHEDULER_TAGS[kubernetes_version]


def release_values(settings: Settings, image_registry: str | None = None) -> dict[str, Any]:
    """The release values; with `image_registry` (an ECR pull-through cache host) every image the
    chart runs is pulled through that cache instead of from Docker Hub and registry.k8s.io."""
    values: dict[str, Any] = {
        "scheduler": {
            "kubeScheduler": {
                "image": {
                    # The chart defaults to an Aliyun mirror; EKS nodes pull from registry.k8s.io
                    # reliably. The tag follows kubernetesVersion: left empty, the chart would
                    # derive it once, when the release is rendered, and keep it across upgrades.
                    "registry": "registry.k8s.io",
                    "repository": "kube-scheduler",
                    "tag": kube_scheduler_tag(settings.kubernetes_version),
                },
            },
            "leaderElect": True,
            "replicas": SCHEDULER_REPLICAS,
            # On the system node group: the chart already prefers one scheduler pod per node
            # (preferred podAntiAffinity on kubernetes.io/hostname when leaderElect), so two
            # replicas land on the two system nodes. Preferred, not required: a rolling update
            # surges a third pod, which required anti-affinity could not place on two nodes.
            "nodeSelector": SYSTEM_NODE_LABEL.as_dict(),
            # HAMi's defaults, stated so the planner and the cluster agree on them.
            "defaultSchedulerPolicy": {
                "nodeSchedulerPolicy": hami.DEFAULT_NODE_POLICY,
                "gpuSchedulerPolicy": hami.DEFAULT_GPU_POLICY,
            },
            "admissionWebhook": {
                # Fail closed: a GPU pod admitted while the webhook is down bypasses hami-scheduler
                # and sits Pending forever, or worse, lands on a GPU without HAMi's memory limit.
                # Scoped by namespace label so an outage can never block system pods
                # (hami-scheduler itself runs in kube-system); hami-eks labels its workload
                # namespace. Failing closed is safe only with the two replicas and the PDB above.
                "failurePolicy": hami.WEBHOOK_FAILURE_POLICY,
                "namespaceSelector": {"matchLabels": {hami.WEBHOOK_SCOPE_LABEL[0]: hami.WEBHOOK_SCOPE_LABEL[1]}},
            },
            # The certificate job runs once per install/upgrade; keep it off the GPU nodes too.
            # Both image roots (the chart picks `imageNew` on Kubernetes >= 1.22) are the upstream
            # certgen, pinned by digest (versions.CERTGEN_TAG), not the chart's personal-account ones.
            "patch": {
                "nodeSelector": SYSTEM_NODE_LABEL.as_dict(),
                **{root: {"registry": versions.CERTGEN_REGISTRY, "repository": versions.CERTGEN_REPOSITORY,
                          "tag": versions.CERTGEN_TAG} for root in ("image", "imageNew")},
            },
            # The chart's default NodePort opens the webhook (31998) and metrics (31993) on every
            # node. The API server reaches the webhook through the Service and kube-scheduler calls
            # the extender on localhost, so ClusterIP is all HAMi needs.
            "service": {"type": "ClusterIP"},
        },
        "devicePlugin": {
            "deviceSplitCount": hami.DEVICE_SPLIT_COUNT,
            # No over-subscription: a 45% slice is 45% of the memory nvidia-smi reports.
            "deviceMemoryScaling": hami.DEVICE_MEMORY_SCALING,
            # Device-plugin metrics (default NodePort 31992) stay inside the cluster.
            "service": {"type": "ClusterIP"},
            # The device plugin runs exactly on our labelled, tainted GPU nodes.
            "nvidiaNodeSelector": GPU_NODE_LABEL.as_dict(),
            "tolerations": [GPU_TAINT.toleration()],
        },
    }
    if settings.monitoring:
        # The chart's two ServiceMonitors (values.yaml prometheus.enabled); its templates
        # */servicemonitor.yaml render only once monitoring.coreos.com/v1 exists, so the program
        # installs kube-prometheus-stack's CRDs before this release.
        values["prometheus"] = {"enabled": True}
    if image_registry is not None:
        values = through_registry(values, image_registry)
    return values


def through_registry(values: dict[str, Any], host: str) -> dict[str, Any]:
    """The values with every chart image pulled through the cache at `host`.

    global.imageRegistry replaces each image's registry (templates/_commons.tpl
    common.images.image); each repository gains the cache rule's prefix.
    """
    values = copy.deepcopy(values)
    values.setdefault("global", {})["imageRegistry"] = host
    for path, (registry, repository) in CHART_IMAGES.items():
        upstream = registry_mirror.upstream_for(registry)
        assert upstream is not None, f"no pull-through rule for {registry}"
        node = values
        for key in path:
            node = node.setdefault(key, {})
        node["repository"] = f"{upstream.prefix}/{node.get('repository', repository)}"
        node.pop("registry", None)
    return values


def scheduler_pod_disruption_budget() -> dict[str, Any]:
    """Keeps one hami-scheduler pod running through node drains (chart 2.10.0 ships no PDB).

    A voluntary eviction of the last ready replica would make every GPU pod create fail while
    the webhook is fail-closed; with minAvailable 1 a drain waits for the other replica instead.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": PDB_NAME, "namespace": hami.RELEASE_NAMESPACE,
                     "labels": {"app.kubernetes.io/part-of": "hami-eks"}},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(SCHEDULER_SELECTOR)}},
    }


WEBHOOK_READY_JOB = "hami-webhook-ready"
# Long enough for a first leader election and label patch, bounded so a broken webhook fails `up`.
WEBHOOK_READY_DEADLINE_SECONDS = 600


def webhook_ready_job(image: str) -> dict[str, Any]:
    """A Job that completes once the scheduler Service answers HTTPS, i.e. has an endpoint.

    Why a Job and not Helm's wait or an await on the Endpoints: Helm waits for the Deployment's
    ready replicas, but the Service selects the leader label the extender patches on later; the
    Kubernetes provider awaits a Job until Complete (and fails it on Failed), and an object it
    merely reads (Endpoints/EndpointSlice `.get`) is not awaited at all. The request goes through
    the Service exactly as the API server's webhook call does, so success means admission works;
    `-k` because the certificate is the chart's self-signed one. It runs in kube-system, outside
    the webhook's namespaces, so its own pod never needs the webhook it is waiting for.
    """
    url = f"https://{hami.SCHEDULER_DEPLOYMENT}.{hami.RELEASE_NAMESPACE}.svc:443/readyz"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": WEBHOOK_READY_JOB, "namespace": hami.RELEASE_NAMESPACE,
                     "labels": {"app.kubernetes.io/part-of": "hami-eks"}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": WEBHOOK_READY_DEADLINE_SECONDS,
            "template": {"spec": {
                "restartPolicy": "Never",
                "nodeSelector": SYSTEM_NODE_LABEL.as_dict(),
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 100, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "wait",
                    "image": image,
                    "command": ["sh", "-c", f"until curl -ksf --max-time 5 {url}; do sleep 2; done"],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                }],
            }},
        },
    }
