"""Stack outputs that are pure functions of the settings (what CI reads after `pulumi up`)."""

from __future__ import annotations

from typing import Any

from hamieks.config.settings import Settings
from hamieks.kube import workloads


def kubectl_config_command(settings: Settings) -> str:
    return f"aws eks update-kubeconfig --region {settings.region} --name {settings.cluster_name}"


def node_groups(settings: Settings) -> dict[str, Any]:
    return {
        group.name: {
            "instanceTypes": list(group.instance_types),
            "gpuModel": group.gpu.short,
            "gpusPerNode": group.instance.gpu_count,
            "desiredSize": group.desired_size,
        }
        for group in settings.node_groups
    }


def services(settings: Settings) -> dict[str, Any]:
    return {
        svc.name: {
            "model": svc.model,
            "gpuType": svc.gpu_type,
            "nodeGroup": svc.node_group,
            "replicas": svc.replicas,
            "memoryRequest": svc.memory_request_label,
            "url": workloads.service_url(settings, svc),
            "portForward": workloads.port_forward_command(settings, svc),
        }
        for svc in settings.services
    }
