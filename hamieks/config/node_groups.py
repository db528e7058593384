"""GPU node groups: the `nodeGroups` config key, parsed and checked.

Each group resolves its instance types against the catalog once, at load; everything after
that (planner, pricing, components) reads the resolved entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hamieks import catalog
from hamieks.config import names
from hamieks.config.conventions import ACCELERATOR_LABEL_KEY, GPU_NODE_LABEL
from hamieks.config.values import (
    DNS_LABEL,
    Problems,
    as_int,
    as_json,
    as_str,
    as_str_list,
    config_key,
    read_field,
    unknown_fields,
)
from hamieks.errors import UnknownInstanceType

CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
_NODE_GROUP_FIELDS = {"instanceTypes", "desiredSize", "minSize", "maxSize", "diskSizeGiB", "capacityType", "labels"}


@dataclass(frozen=True)
class NodeGroupSettings:
    name: str
    instance_types: tuple[str, ...]
    desired_size: int
    min_size: int
    max_size: int
    disk_size_gib: int
    capacity_type: str
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    # The catalog entries of instance_types that exist and carry GPUs, resolved once at load.
    instances: tuple[catalog.InstanceType, ...] = ()

    @property
    def valid(self) -> bool:
        """Every instance type is a known GPU type (otherwise the group's errors are reported)."""
        return bool(self.instances) and len(self.instances) == len(self.instance_types)

    @property
    def instance(self) -> catalog.InstanceType:
        """The first instance type: the one planning and pricing assume (all share a GPU model)."""
        return self.instances[0]

    @property
    def gpu(self) -> catalog.GpuModel:
        gpu = self.instance.gpu
        assert gpu is not None, "validated in load_settings"
        return gpu

    @property
    def labels(self) -> dict[str, str]:
        return {**self.extra_labels, **GPU_NODE_LABEL.as_dict(), ACCELERATOR_LABEL_KEY: self.name}


def _node_group(problems: Problems, name: str, raw: Any) -> NodeGroupSettings | None:
    key = f"{config_key('nodeGroups')}.{name}"
    if not isinstance(raw, Mapping):
        problems.add(key, "must be a map with instanceTypes, desiredSize, minSize, maxSize, ...")
        return None
    if not DNS_LABEL.fullmatch(name) or len(name) > 40:
        problems.add(key, "group names must be lowercase DNS labels of at most 40 characters "
                          "(they become node labels and AWS names), e.g. 't4'")
    unknown_fields(problems, key, raw, _NODE_GROUP_FIELDS)
    types = read_field(problems, key, raw, "instanceTypes", as_str_list, (), required=True)
    desired = read_field(problems, key, raw, "desiredSize", as_int, 1)
    min_size = read_field(problems, key, raw, "minSize", as_int, desired)
    max_size = read_field(problems, key, raw, "maxSize", as_int, desired)
    disk = read_field(problems, key, raw, "diskSizeGiB", as_int, 100)
    capacity = read_field(problems, key, raw, "capacityType", as_str, "ON_DEMAND")
    labels = read_field(problems, key, raw, "labels", as_json, {}) or {}

    if "instanceTypes" in raw and not types:
        problems.add(f"{key}.instanceTypes", "list at least one GPU instance type, e.g. [g4dn.xlarge]")
    models = set()
    instances = []
    for it_name in types:
        try:
            it = catalog.instance_type(it_name)
        except UnknownInstanceType as exc:
            problems.add(f"{key}.instanceTypes", str(exc))
            continue
        if it.gpu is None or not it.is_gpu:
            problems.add(f"{key}.instanceTypes", f"{it_name} has no GPU; a GPU node group needs GPU "
                                                 f"instance types such as g4dn.xlarge, g5.xlarge or g6.xlarge")
        else:
            models.add((it.gpu.name, it.gpu_count))
            instances.append(it)
    if len(models) > 1:
        problems.add(f"{key}.instanceTypes", "all instance types of a group must have the same GPU model and "
                                             f"count (plans assume one shape per group); got {sorted(models)}")
    if min_size < 0 or min_size > desired or desired > max_size or max_size < 1:
        problems.add(key, f"sizes must satisfy 0 <= minSize <= desiredSize <= maxSize and maxSize >= 1; "
                          f"got minSize={min_size}, desiredSize={desired}, maxSize={max_size}")
    elif max_size > names.MAX_NODES_PER_GROUP:
        problems.add(f"{key}.maxSize", f"{max_size} nodes is more than an EKS managed node group holds "
                                       f"({names.MAX_NODES_PER_GROUP}); split it into several groups")
    if disk < 20:
        problems.add(f"{key}.diskSizeGiB", f"{disk} GiB cannot hold the AMI, the vLLM image and model "
                                           f"weights; use at least 50 (100 recommended)")
    elif disk > names.MAX_DISK_GIB:
        problems.add(f"{key}.diskSizeGiB", f"{disk} GiB is more than an EBS gp3 volume holds "
                                           f"({names.MAX_DISK_GIB} GiB); 100-500 is plenty for a few models")
    if capacity not in CAPACITY_TYPES:
        problems.add(f"{key}.capacityType", f"must be one of {', '.join(CAPACITY_TYPES)}, got {capacity!r}")
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        problems.add(f"{key}.labels", "must be a map of string to string")
        labels = {}
    for label_key, label_value in labels.items():
        if (problem := names.label_key_problem(str(label_key)) or names.label_value_problem(label_value)) is not None:
            problems.add(f"{key}.labels", problem)
    reserved = {GPU_NODE_LABEL.key, ACCELERATOR_LABEL_KEY} & set(labels)
    if reserved:
        problems.add(f"{key}.labels", f"{', '.join(sorted(reserved))} are set by hami-eks "
                                      f"(HAMi's device plugin and service pinning rely on them); remove them")
    return NodeGroupSettings(name, tuple(types), desired, min_size, max_size, disk, capacity, dict(labels),
                             tuple(instances))


def node_groups_from_config(problems: Problems, raw: Any) -> dict[str, NodeGroupSettings]:
    key = config_key("nodeGroups")
    try:
        raw = as_json(raw)
    except ValueError as exc:
        problems.add(key, str(exc))
        return {}
    if not isinstance(raw, Mapping) or not raw:
        problems.add(key, "define at least one GPU node group, e.g. {t4: {instanceTypes: [g4dn.xlarge], desiredSize: 1}}")
        return {}
    groups = {}
    for name, body in raw.items():
        group = _node_group(problems, str(name), body)
        if group is not None:
            groups[group.name] = group
    return groups
