"""One vLLM model server: the objects hamieks.workloads builds for it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import kube_objects
from hamieks import workloads
from hamieks.settings import ServiceSettings, Settings

# A first start downloads the model and captures CUDA graphs; Pulumi's default 10 minute
# Deployment await would give up while the startup probe (30 minutes by default) still waits.
ROLLOUT_TIMEOUT = "45m"


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
        child = pulumi.ResourceOptions(
            parent=self,
            custom_timeouts=pulumi.CustomTimeouts(create=ROLLOUT_TIMEOUT, update=ROLLOUT_TIMEOUT))
        self.resources = [kube_objects.create(obj, child)
                          for obj in workloads.service_objects(args.settings, args.service)]
        self.register_outputs({})
