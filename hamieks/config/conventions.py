"""The labels and taint hami-eks puts on its nodes, as small value types.

Each convention yields every spelling it is needed in (a Kubernetes taint, the toleration that
matches it, the EKS API's upper-snake effect, a nodeSelector entry), so no caller rebuilds
them by hand.
"""

from __future__ import annotations

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
