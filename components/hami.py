"""The HAMi Helm release: scheduler extender, mutating webhook and device plugin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import kube_objects
from hamieks import hami, versions
from hamieks.kube import hami_values, registry_mirror


@dataclass(frozen=True)
class HamiArgs:
    chart_version: str
    values: dict[str, Any]
    namespace: str = hami.RELEASE_NAMESPACE
    # The ECR pull-through cache's registry (host and cluster namespace) when it is on.
    image_registry: str | None = None


class Hami(pulumi.ComponentResource):
    """Creates: a `k8s.helm.v3.Release` of the pinned HAMi chart in kube-system that waits until
    its workloads and hook jobs (the webhook certificate) are ready, so anything depending on
    this component is created only once the webhook can route GPU pods to hami-scheduler; and
    the PodDisruptionBudget that keeps one of its two scheduler replicas through node drains
    (the chart has none), created before the release so no drain can catch it unprotected; then
    a Job that completes once the webhook Service has an endpoint (only the elected leader
    serves it, after the release is ready: hamieks/kube/hami_values.py webhook_ready_job), so
    depending on this component means GPU pods are admitted through HAMi."""

    release: k8s.helm.v3.Release
    status: pulumi.Output[Any]

    def __init__(self, name: str, args: HamiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:hami:Hami", name, None, opts)
        budget = kube_objects.create(hami_values.scheduler_pod_disruption_budget(), pulumi.ResourceOptions(parent=self))
        # A real Release, not a rendered template: the chart creates its webhook certificate
        # in install hooks, which only Helm runs.
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name=hami.RELEASE_NAME,
                chart=versions.HAMI_CHART_NAME,
                version=args.chart_version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=versions.HAMI_CHART_REPO),
                namespace=args.namespace,
                values=args.values,
                skip_await=False,
                wait_for_jobs=True,
                atomic=True,
                cleanup_on_fail=True,
                timeout=900,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[budget]),
        )
        image = versions.CURL_IMAGE
        if args.image_registry is not None:
            image = registry_mirror.mirrored(image, args.image_registry)
        self.webhook_ready = kube_objects.create(
            hami_values.webhook_ready_job(image),
            pulumi.ResourceOptions(parent=self, depends_on=[self.release],
                                   custom_timeouts=pulumi.CustomTimeouts(
                                       create=f"{hami_values.WEBHOOK_READY_DEADLINE_SECONDS + 60}s")))
        self.status = self.release.status
        self.register_outputs({"status": self.status})
