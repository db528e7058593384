"""The labels and taint hami-eks puts on its nodes, as small value types.

Each convention yields every spelling it is needed in (a Kubernetes taint, the toleration that
matches it, the EKS API's upper-snake effect, a nodeSelector entry), so no caller rebuilds
them by hand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

# The Kubernetes taint effects and the EKS node group API's spelling of each.
_EKS_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


@dataclass(frozen=True)
class Label:
    key: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return {self.key: self.value}


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str  # Kubernetes spelling: NoSchedule | NoExecute | PreferNoSchedule

    def __post_init__(self) -> None:
        if self.effect not in _EKS_EFFECTS:
            raise ValueError(f"unknown taint effect {self.effect!r}")

    def as_dict(self) -> dict[str, str]:
        """The taint as it appears in a Node's spec.taints."""
        return {"key": self.key, "value": self.value, "effect": self.effect}

    def toleration(self) -> dict[str, Any]:
        """A pod toleration for this taint, whatever its value."""
        return {"key": self.key, "operator": "Exists", "effect": self.effect}

    @property
    def eks_effect(self) -> str:
        """The effect as the EKS node group API spells it (NO_SCHEDULE)."""
        return _EKS_EFFECTS[self.effect]

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}"


# HAMi's device plugin DaemonSet selects `gpu=on` (chart default devicePlugin.nvidiaNodeSelector).
GPU_NODE_LABEL = Label("gpu", "on")
# `accelerator=<group>` pins a service to its node group (the Deployment's nodeSelector).
ACCELERATOR_LABEL_KEY = "accelerator"
# Keeps system pods off the expensive GPU nodes; model servers tolerate it.
GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")
SYSTEM_NODE_LABEL = Label("role", "system")
# Every model server asks HAMi for one vGPU (a slice of one physical GPU).
GPUS_PER_POD = 1


# ECR pull-through cache: every repository the cache creates for a cluster sits under this
# namespace (`<namespace>/docker-hub/...`), so two clusters in one account never share a cache
# rule and the leak audit can find one cluster's cached repositories. ECR allows a rule prefix of
# 2-30 characters, lowercase path components separated by '/' ([a-z0-9] runs joined by one
# '.', '_' or '-'); the longest upstream part is "/docker-hub" (11), leaving 19 for the cluster.
ECR_NAMESPACE_MAX = 19


def ecr_cache_namespace(cluster_name: str) -> str:
    """The cluster's ECR cache namespace: its name lowercased, separator runs folded to one '-';
    a name too long for ECR keeps 12 characters and gains 6 hex of its hash (stable, unique)."""
    slug = re.sub(r"[-_]+", "-", cluster_name.lower()).strip("-")
    if len(slug) <= ECR_NAMESPACE_MAX:
        return slug
    return f"{slug[:12].rstrip('-')}-{hashlib.sha256(cluster_name.encode()).hexdigest()[:6]}"
