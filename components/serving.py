"""Everything the model servers share, and the servers themselves."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import kube_objects
from components.vllm_service import VllmService, VllmServiceArgs
from hamieks import workloads
from hamieks.settings import Settings


@dataclass(frozen=True)
class ModelServingArgs:
    settings: Settings
    hf_token: pulumi.Output[str] | None


class ModelServing(pulumi.ComponentResource):
    """Creates: the serving namespace (labelled for HAMi's webhook), the Hugging Face token
    Secret when `hfToken` is set, and one VllmService per configured service."""

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:serving:ModelServing", name, None, opts)
        settings = args.settings
        shared = [kube_objects.create(obj, pulumi.ResourceOptions(parent=self))
                  for obj in workloads.namespace_objects(settings)]
        if args.hf_token is not None:
            shared.append(kube_objects.create(
                workloads.hf_token_secret(settings, pulumi.Output.secret(args.hf_token)),
                pulumi.ResourceOptions(parent=self, depends_on=shared[:1])))
        self.services = {
            svc.name: VllmService(svc.name, VllmServiceArgs(settings=settings, service=svc),
                                  opts=pulumi.ResourceOptions(parent=self, depends_on=shared))
            for svc in settings.services
        }
        self.register_outputs({})
