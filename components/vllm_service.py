"""One vLLM model server: the objects hamieks.workloads builds for it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import kube_objects
from hamieks import workloads
from hamieks.services import ServiceSettings
from hamieks.settings import Settings



@dataclass(frozen=True)
class VllmServiceArgs:
    settings: Settings
    service: ServiceSettings


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
        self.resources = [kube_objects.create(obj, child)
                          for obj in workloads.service_objects(args.settings, args.service)]
        self.register_outputs({})
