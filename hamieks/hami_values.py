"""The values the HAMi Helm release is installed with: manifests/hami-values.yaml plus what is
computed from the node groups, so the device plugin runs exactly on our tainted GPU nodes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from hamieks.settings import GPU_NODE_LABEL, GPU_TAINT, Settings

VALUES_FILE = Path(__file__).resolve().parent.parent / "manifests" / "hami-values.yaml"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def file_values(path: Path = VALUES_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def computed_values(settings: Settings) -> dict[str, Any]:
    del settings  # every GPU group carries the same label and taint (settings.GPU_*)
    return {
        "devicePlugin": {
            "nvidiaNodeSelector": {GPU_NODE_LABEL[0]: GPU_NODE_LABEL[1]},
            "tolerations": [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}],
        },
    }


def release_values(settings: Settings, path: Path = VALUES_FILE) -> dict[str, Any]:
    """File values with the computed ones on top (computed wins: they must match the nodes)."""
    return _merge(file_values(path), computed_values(settings))
