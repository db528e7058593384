"""The system node group: what each of its nodes must hold, and the cheapest catalog type that does.

hami-eks runs coredns, the EBS CSI controller, hami-scheduler and (hami-eks:monitoring) the
monitoring stack on a small CPU node group. The
webhook fails closed for GPU pods and hami-scheduler runs two leader-elected replicas that the
chart spreads one per node, so there are always at least two system nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hamieks import catalog, cost
from hamieks.config.settings import Settings
from hamieks.errors import NoFeasibleProposal
from hamieks.kube import monitoring
from hamieks.kube.hami_values import SCHEDULER_REPLICAS
from hamieks.scheduling import allocatable

# At least two system nodes: the webhook fails closed for GPU pods, and hami-scheduler runs
# SCHEDULER_REPLICAS leader-elected replicas that the chart spreads one per node.
SYSTEM_NODE_COUNT = max(2, SCHEDULER_REPLICAS)
SYSTEM_CAPACITY_TYPE = "ON_DEMAND"


@dataclass(frozen=True)
class SystemPod:
    """One replica of a system Deployment, as each system node must be able to hold it."""

    name: str
    cpu_millis: int
    memory_mib: int
    source: str


# One replica of each per node (each is a two-replica Deployment spread over the system nodes).
# Estimates: the first two are the EKS add-ons' requests; HAMi's chart sets no requests
# (values.yaml scheduler.kubeScheduler/extender resources: {}), so its figure is an allowance
# for what kube-scheduler and the extender use. The DaemonSets come from hamieks.scheduling.allocatable.
SYSTEM_PODS: tuple[SystemPod, ...] = (
    SystemPod("coredns", 100, 70, "EKS coredns add-on: requests 100m CPU, 70Mi"),
    SystemPod("ebs-csi-controller", 60, 240, "aws-ebs-csi-driver add-on controller: 6 containers x 10m, 40Mi"),
    SystemPod("hami-scheduler", 200, 512, "chart 2.10.0 requests nothing; allowance for kube-scheduler + extender"),
)
# With hami-eks:monitoring on (the default): kube-prometheus-stack's single-replica Prometheus,
# Grafana, operator and kube-state-metrics, and node-exporter (a DaemonSet on the system nodes
# only), at the requests hamieks/kube/monitoring.py sets. Counted whole on one node: after a node
# loss every singleton lands on the survivor.
MONITORING_PODS: tuple[SystemPod, ...] = tuple(
    SystemPod(pod.name, pod.cpu_millis, pod.memory_mib, "kube-prometheus-stack requests set by hami-eks")
    for pod in monitoring.MONITORING_PODS)


def system_pods(settings: Settings) -> tuple[SystemPod, ...]:
    """What one system node must hold for this stack: SYSTEM_PODS, and MONITORING_PODS when on."""
    return SYSTEM_PODS + (MONITORING_PODS if settings.monitoring else ())


def _holds(instance: catalog.InstanceType, pods: tuple[SystemPod, ...]) -> bool:
    return (allocatable.cpu_millis(instance) >= sum(pod.cpu_millis for pod in pods)
            and allocatable.memory_mib(instance) >= sum(pod.memory_mib for pod in pods)
            and allocatable.pods(instance) >= len(pods))


def system_type_problem(settings: Settings) -> str | None:
    """Why one node of the configured systemInstanceType cannot hold the system pods, or None:
    after a node loss (or with SYSTEM_NODE_COUNT nodes during a drain) coredns, hami-scheduler
    and the monitoring singletons would stay Pending."""
    pods = system_pods(settings)
    instance = catalog.instance_type(settings.system_instance_type)
    if _holds(instance, pods):
        return None
    return (f"one {instance.name} node allocates {allocatable.cpu_millis(instance)}m CPU / "
            f"{allocatable.memory_mib(instance)} MiB, less than the system pods request "
            f"({sum(p.cpu_millis for p in pods)}m / {sum(p.memory_mib for p in pods)} MiB: "
            f"{', '.join(p.name for p in pods)}); pick a larger systemInstanceType (`hami-eks rightsize` "
            f"names the cheapest that does)")


def cheapest_system_type(settings: Settings, prices: cost.PriceLookup) -> tuple[catalog.InstanceType, float]:
    """The cheapest catalog CPU type on which one node holds one replica of every system_pods entry."""
    pods = system_pods(settings)
    choices = []
    for instance in catalog.INSTANCE_TYPES.values():
        if instance.is_gpu:
            continue
        price = prices(instance.name, settings.region, SYSTEM_CAPACITY_TYPE)
        if price is None:
            continue
        if _holds(instance, pods):
            choices.append((round(price.usd_per_hour, 6), instance.name != settings.system_instance_type,
                            instance.name, instance))
    if not choices:
        raise NoFeasibleProposal("", [f"system nodes: no catalog CPU type is priced in {settings.region} "
                                      f"(recorded: {', '.join(catalog.PRICED_REGIONS)}) and holds the system pods"])
    usd, _, _, instance = min(choices, key=lambda c: c[:3])
    return instance, usd
