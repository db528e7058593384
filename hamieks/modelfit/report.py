"""The stack's model-fit report: one `ModelFit` per service, and the preflight message for misfits.

`plan` prints it (`"models"` in `--json`, a line per service in text) and the Pulumi program
stops on any `no` before creating a resource, unless `hami-eks:allowModelMisfit` is true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from hamieks import hami
from hamieks.config import vllm_args
from hamieks.config.settings import Settings
from hamieks.modelfit import budget, hub
from hamieks.modelfit.facts import ModelFacts

OVERRIDE_KEY = "hami-eks:allowModelMisfit"

Lookup = Callable[[str], ModelFacts | None]


def model_fits(settings: Settings, services: Iterable[str] | None = None,
               lookup: Lookup = hub.lookup) -> list[budget.ModelFit]:
    """Each service's (or only the named services') fit in the slice HAMi grants it."""
    wanted = set(services) if services else None
    groups = {group.name: group for group in settings.node_groups}
    fits = []
    for svc in settings.services:
        if wanted is not None and svc.name not in wanted:
            continue
        gpu = groups[svc.node_group].gpu
        granted = hami.granted_memory_mib(svc.gpumem, svc.gpumem_percentage, gpu.memory_mib)
        fits.append(budget.fit(svc, granted, gpu, lookup(svc.model), name=svc.name))
    return fits


def misfits(fits: Sequence[budget.ModelFit]) -> list[budget.ModelFit]:
    return [f for f in fits if f.verdict == budget.NO]


def format_misfits(fits: Sequence[budget.ModelFit], stack: str | None = None) -> str:
    """The preflight error (or, with the override, warning) for the services that cannot load."""
    bad = misfits(fits)
    lines = [f"{len(bad)} model server(s) cannot load in their GPU slice (vLLM would refuse to start):"]
    lines += [f"  - {f.service} ({f.model}): {f.reason}" for f in bad]
    where = f" --stack {stack}" if stack else ""
    lines.append(f"See every service's budget with `hami-eks plan{where}`; to deploy anyway (those pods "
                 f"crash-loop) set {OVERRIDE_KEY} to true.")
    return "\n".join(lines)


def format_warnings(fits: Sequence[budget.ModelFit]) -> list[str]:
    """One warning per `tight` or `unknown` service."""
    return [f"{f.service} ({f.model}) is {f.verdict}: {f.reason}" for f in fits
            if f.verdict in (budget.TIGHT, budget.UNKNOWN)]


def vllm_warnings(settings: Settings, services: Iterable[str] | None = None,
                  lookup: Lookup = hub.lookup) -> list[str]:
    """vLLM settings that run, but slower or less precisely than they could (vllm_args.warnings),
    with the model's facts where known (a bf16 checkpoint on a T4 needs them)."""
    wanted = set(services) if services else None
    return [f"{svc.name}: {warning}" for svc in settings.services if wanted is None or svc.name in wanted
            for warning in vllm_args.warnings(svc, settings.node_group(svc.node_group).gpu, lookup(svc.model))]
