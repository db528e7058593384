"""Helpers shared by the tests: stacks through the real loaders, and Kubernetes semantics
written from the API reference (label selectors, taints and tolerations), so a test can check
that an object does what it claims without trusting the code under test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hamieks.config import stackfiles
from hamieks.config.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
# Only the stacks the project ships: a user's own Pulumi.<name>.yaml is exercised by the
# program tests but is not expected in README or manifests/.
SHIPPED_STACKS = ("demo", "lean", "policies")
QWEN_ARGS = ["--dtype", "auto", "--gpu-memory-utilization", "0.65", "--max-model-len", "2048"]


# ---- stacks ----------------------------------------------------------------------------------

def stack_config(stack: str, project_dir: Path = REPO, **overrides: Any) -> dict[str, Any]:
    """The stack's config as the CLI sees it; overrides are project keys (`clusterName=...`) or
    full keys passed through a dict (`**{"aws:region": "eu-west-1"}`)."""
    config = stackfiles.load_stack_config(project_dir, stack)
    config.update({k if ":" in k else f"hami-eks:{k}": v for k, v in overrides.items()})
    return config


def stack_settings(stack: str, **overrides: Any) -> Settings:
    return load_settings(stack_config(stack, **overrides))


def with_service_fields(stack: str, **fields: Any) -> Settings:
    """The stack with extra fields on every service, as a user would write them in the stack file."""
    config = stack_config(stack)
    services = config["hami-eks:services"]
    services = json.loads(services) if isinstance(services, str) else services
    config["hami-eks:services"] = [{**svc, **fields} for svc in services]
    return load_settings(config)


def group(instance_type: str, size: int = 1) -> dict[str, Any]:
    """A node group entry as a stack file writes it."""
    return {"instanceTypes": [instance_type], "desiredSize": size, "minSize": 0, "maxSize": max(size, 1)}


def svc(name: str, gpu: str = "T4", replicas: int = 1, **fields: Any) -> dict[str, Any]:
    """A service entry as a stack file writes it (7500 MiB unless a percentage is given)."""
    body: dict[str, Any] = {"name": name, "model": "Qwen/Qwen2.5-1.5B-Instruct", "gpuType": gpu,
                            "replicas": replicas, "args": QWEN_ARGS, "cpu": "500m", "memory": "1Gi"}
    if "gpumemPercentage" not in fields:
        body["gpumem"] = 7500
    body.update(fields)
    return body


def stack(groups: dict[str, Any], services: list[dict[str, Any]], **scalars: Any) -> Settings:
    """Settings for an ad-hoc stack in us-west-2, through the real settings loader."""
    config: dict[str, Any] = {"aws:region": "us-west-2", "hami-eks:nodeGroups": groups, "hami-eks:services": services}
    config.update({f"hami-eks:{k}": v for k, v in scalars.items()})
    return load_settings(config)


# ---- Kubernetes semantics --------------------------------------------------------------------

def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector: matchLabels AND every matchExpression; {} selects everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def tolerates(tolerations: list[dict[str, Any]] | None, taint: dict[str, str]) -> bool:
    """core/v1 Toleration: effect and key match when set; Exists ignores the value."""
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and t.get("value") == taint.get("value"):
            return True
    return False
