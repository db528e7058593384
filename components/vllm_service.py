"""One vLLM model server: the objects hamieks.kube.workloads builds for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components import kube_objects
from hamieks.config.services import ServiceSettings
from hamieks.config.settings import Settings
from hamieks.kube import registry_mirror, workloads


@dataclass(frozen=True)
class VllmServiceArgs:
    settings: Settings
    service: ServiceSettings
    # The ECR pull-through cache's registry host when `ecrPullThroughCache` is on.
    image_registry: str | None = None


class VllmService(pulumi.ComponentResource):
    """Creates: the service's Deployment (HAMi GPU-memory limits, use-gputype and scheduler
    policy annotations, GPU toleration, node-group selector, probes) and its ClusterIP Service
    on port 8000, plus any per-service objects the builder adds. Waits for the rollout."""

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:serving:VllmService", name, None, opts)
        # A first start pulls the image, downloads the model and captures CUDA graphs; Pulumi's
        # default 10 minute Deployment await would give up while the startup probe still waits.
        # Creation starts every replica at once; an update replaces them one at a time
        # (maxSurge 0), so its budget grows with the replica count.
        per_replica = workloads.rollout_timeout_seconds(args.service)
        child = pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(
            create=f"{per_replica}s", update=f"{per_replica * max(1, args.service.replicas)}s"))
        objects = workloads.service_objects(args.settings, args.service)
        if args.image_registry is not None:
            for obj in objects:
                _pull_through(obj, args.image_registry)
        self.resources = [kube_objects.create(obj, child) for obj in objects]
        self.register_outputs({})


def _pull_through(obj: dict[str, Any], host: str) -> None:
    """Point every container of a workload object at the pull-through cache."""
    if obj["kind"] != "Deployment":
        return
    for container in obj["spec"]["template"]["spec"]["containers"]:
        container["image"] = registry_mirror.mirrored(container["image"], host)
