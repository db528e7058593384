"""The values the HAMi Helm release is installed with, built from hamieks.hami and the settings.

Every key is documented in the chart's values.yaml (chart 2.10.0). The values that must agree
with the planner (default policies, deviceSplitCount, the webhook's namespaceSelector) come
from hamieks.hami, so flipping one there changes the release and the plan together.
"""

from __future__ import annotations

from typing import Any

from hamieks import hami
from hamieks.conventions import GPU_NODE_LABEL, GPU_TAINT
from hamieks.settings import Settings


def release_values(settings: Settings) -> dict[str, Any]:
    del settings  # every GPU group carries the same label and taint (settings.GPU_*)
    return {
        "scheduler": {
            "kubeScheduler": {
                "image": {
                    # The chart defaults to an Aliyun mirror; EKS nodes pull from registry.k8s.io
                    # reliably. The tag stays empty so the chart derives it from the live cluster
                    # (v1.35.x-eks-... -> v1.35.x) when the release is rendered.
                    "registry": "registry.k8s.io",
                    "repository": "kube-scheduler",
                    "tag": "",
                },
            },
            # HAMi's defaults, stated so the planner and the cluster agree on them.
            "defaultSchedulerPolicy": {
                "nodeSchedulerPolicy": hami.DEFAULT_NODE_POLICY,
                "gpuSchedulerPolicy": hami.DEFAULT_GPU_POLICY,
            },
            "admissionWebhook": {
                # Fail closed: a GPU pod admitted while the webhook is down bypasses hami-scheduler
                # and sits Pending forever. Scoped by namespace label so an outage can never block
                # system pods (hami-scheduler itself runs in kube-system); hami-eks labels its
                # workload namespace.
                "failurePolicy": hami.WEBHOOK_FAILURE_POLICY,
                "namespaceSelector": {"matchLabels": {hami.WEBHOOK_SCOPE_LABEL[0]: hami.WEBHOOK_SCOPE_LABEL[1]}},
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
