"""Create Kubernetes objects given as plain dicts (from hamieks.kube.workloads) as typed resources."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

_RESOURCE_CLASSES = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}


def create(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register one object; the Pulumi name is kind-namespace-name, stable across edits."""
    key = (obj["apiVersion"], obj["kind"])
    try:
        cls = _RESOURCE_CLASSES[key]
    except KeyError:
        raise TypeError(f"no Pulumi resource class mapped for {key}; add it to _RESOURCE_CLASSES") from None
    meta = obj["metadata"]
    resource_name = "-".join(p for p in (obj["kind"].lower(), meta.get("namespace"), meta["name"]) if p)
    # Top-level fields are Python keyword arguments (stringData -> string_data); nested dicts
    # are sent to the engine as they are, camelCase included.
    fields = {_snake(k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return cls(resource_name, **fields, opts=opts)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
