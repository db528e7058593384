"""Whether Prometheus scrapes HAMi and every model server (hami-eks:monitoring on).

One instant query of `up` for the expected jobs, sent to the Prometheus HTTP API
(/api/v1/query, prometheus web/api/v1 api.go query) through the API server's service proxy, as
the inference check reaches vLLM: no port-forward. Each HAMi job needs at least one target and
every target up; each model server needs as many targets up as it has replicas (the operator
names a ServiceMonitor's job after the Service, i.e. the service's name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hamieks.check import Check
from hamieks.config.settings import Settings
from hamieks.kube import monitoring_metrics as m
from hamieks.verify.checks import SCRAPES

QUERY_PATH = "api/v1/query"


def expected_jobs(settings: Settings) -> dict[str, int]:
    """Job -> the fewest targets that must be up (0: at least one, however many there are)."""
    jobs = dict.fromkeys(m.HAMI_JOBS, 0)
    jobs.update({svc.name: svc.replicas for svc in settings.services})
    return jobs


def up_query(settings: Settings) -> str:
    return f'up{{job=~"{"|".join(expected_jobs(settings))}"}}'


def check_scrapes(settings: Settings, status: int, body: str) -> list[Check]:
    """The checks for Prometheus's answer (`status` 0: no HTTP answer, `body` says why)."""
    target = f"svc/{m.PROMETHEUS_SERVICE} -n {m.MONITORING_NAMESPACE}"
    try:
        document: Mapping[str, Any] = json.loads(body) if status == 200 else {}
        series = document["data"]["result"] if document.get("status") == "success" else None
    except (ValueError, KeyError, TypeError):
        series = None
    if series is None:
        return [Check(SCRAPES, target, False,
                      f"Prometheus did not answer the query (HTTP {status or 'none'}: {body[:200]}); is "
                      f"kube-prometheus-stack running? `kubectl -n {m.MONITORING_NAMESPACE} get pods`")]
    results = []
    for job, replicas in expected_jobs(settings).items():
        values = [float(s["value"][1]) for s in series if s.get("metric", {}).get("job") == job]
        up = sum(1 for v in values if v == 1)
        need = max(replicas, 1)
        ok = bool(values) and up >= need and up == len(values)
        detail = (f"{up}/{len(values)} targets up" + (f", {replicas} replicas expected" if replicas else ""))
        if not ok:
            detail += (f"; not scraped: see Prometheus's targets page (Status > Targets) for job {job}"
                       if not values else "; a target is down: its /metrics does not answer")
        results.append(Check(SCRAPES, f"job/{job}", ok, detail))
    return results
