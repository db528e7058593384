"""Everything the model servers share, and the servers themselves."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import kube_objects
from components.vllm_service import VllmService, VllmServiceArgs
from hamieks.config.settings import Settings
from hamieks.kube import workloads


@dataclass(frozen=True)
class ModelServingArgs:
    settings: Settings
    hf_token: pulumi.Output[str] | None
    # `vllmApiKey`, when set: every server then requires it on its API routes.
    api_key: pulumi.Output[str] | None = None
    # The ECR pull-through cache's registry host when `ecrPullThroughCache` is on.
    image_registry: str | None = None


class ModelServing(pulumi.ComponentResource):
    """Creates: the serving namespace (labelled for HAMi's webhook and Pod Security "baseline"),
    the Hugging Face token Secret when `hfToken` is set, the API key Secret when `vllmApiKey` is
    set, the ingress NetworkPolicy, the servers'
    token-less ServiceAccount, and one VllmService per configured service."""

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:serving:ModelServing", name, None, opts)
        settings = args.settings
        token = pulumi.Output.secret(args.hf_token) if args.hf_token is not None else None
        api_key = pulumi.Output.secret(args.api_key) if args.api_key is not None else None
        # The builder lists the Namespace first; everything else lives in it and must wait.
        namespace, *rest = workloads.namespace_objects(settings, token, api_key)
        namespace_resource = kube_objects.create(namespace, pulumi.ResourceOptions(parent=self))
        shared = [namespace_resource, *(
            kube_objects.create(obj, pulumi.ResourceOptions(parent=self, depends_on=[namespace_resource]))
            for obj in rest)]
        self.services = {
            svc.name: VllmService(svc.name, VllmServiceArgs(settings=settings, service=svc,
                                                            image_registry=args.image_registry),
                                  opts=pulumi.ResourceOptions(parent=self, depends_on=shared))
            for svc in settings.services
        }
        self.register_outputs({})
