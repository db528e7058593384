"""One round of every check against a cluster, and polling rounds until all pass (`--wait`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hamieks.check import Check, all_ok
from hamieks.config.settings import Settings
from hamieks.kube import monitoring_metrics, workloads
from hamieks.scheduling.placement import Plan
from hamieks.verify import checks, in_pod, scrapes
from hamieks.verify.cluster import Cluster


@dataclass(frozen=True)
class Options:
    exec_nvidia_smi: bool = False
    inference: bool = True
    exec_timeout: float = 60.0
    inference_timeout: float = 120.0  # the chat completion through the service proxy
    in_pod_timeout: float = 30.0  # the same request from inside a pod, when the proxy is blocked


# The exec websocket outlives the in-pod request by this much, so its own timeout is the one reported.
_EXEC_MARGIN_SECONDS = 15.0


def verify_once(cluster: Cluster, settings: Settings, plan: Plan, options: Options) -> list[Check]:
    """Every check once; raises ClusterUnreachable when the API cannot be read at all."""
    snapshot = cluster.snapshot(settings.namespace)
    results = checks.object_checks(snapshot, settings, plan)
    if options.exec_nvidia_smi:
        for target in in_pod.exec_targets(snapshot, settings):
            output = cluster.exec(settings.namespace, target.pod, target.container, list(checks.NVIDIA_SMI_QUERY),
                                  timeout=options.exec_timeout)
            results.append(in_pod.check_memory_cap(settings.namespace, target, output))
    if options.inference:
        for svc in settings.services:
            response = cluster.post_service(settings.namespace, svc.name, workloads.VLLM_PORT, in_pod.CHAT_PATH,
                                            in_pod.chat_request(svc.model),
                                            timeout=options.inference_timeout)
            inside = None
            # The service proxy comes first: it also proves the Service routes to the pods. When
            # a NetworkPolicy keeps the control plane out, ask the server from inside a Ready pod.
            # So does a server that requires vllmApiKey, which the proxy cannot carry.
            elsewhere = in_pod.proxy_blocked(response) or in_pod.proxy_lacks_the_key(settings, response)
            pod = in_pod.inference_pod(snapshot, settings, svc) if elsewhere else None
            if pod is not None:
                command = in_pod.in_pod_command(svc.model, options.in_pod_timeout)
                result = cluster.exec(settings.namespace, pod.pod, pod.container, command,
                                      timeout=options.in_pod_timeout + _EXEC_MARGIN_SECONDS)
                inside = in_pod.InPodAnswer(pod.pod, result)
            results.append(in_pod.check_inference(settings, svc, response, inside))
    if settings.monitoring:
        answer = cluster.get_service(monitoring_metrics.MONITORING_NAMESPACE, monitoring_metrics.PROMETHEUS_SERVICE,
                                     monitoring_metrics.PROMETHEUS_PORT, scrapes.QUERY_PATH,
                                     [("query", scrapes.up_query(settings))])
        results.extend(scrapes.check_scrapes(settings, answer.status, answer.body))
    return results


Progress = Callable[[float, float, list[Check]], None]  # (elapsed, budget, this round's checks)


def poll(round_: Callable[[], list[Check]], wait_seconds: float, interval: float, progress: Progress,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> list[Check]:
    """Run rounds until every check passes or `wait_seconds` are spent; the last round's checks.

    A round always runs at least once; with no budget left for another round, it is the answer.
    """
    started = clock()
    while True:
        results = round_()
        elapsed = clock() - started
        if all_ok(results) or elapsed + interval > wait_seconds:
            return results
        progress(elapsed, wait_seconds, results)
        sleep(interval)
