"""vLLM model servers: the `services` config key, parsed and cross-checked against the node groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hamieks import hami, versions
from hamieks.config import names, quantity, vllm_args
from hamieks.config.conventions import GPUS_PER_POD
from hamieks.config.node_groups import NodeGroupSettings
from hamieks.config.values import (
    DNS_LABEL,
    Problems,
    as_bool,
    as_int,
    as_json,
    as_str,
    as_str_list,
    config_key,
    read_field,
    unknown_fields,
)

_SERVICE_FIELDS = {
    "name", "model", "gpuType", "replicas", "gpumem", "gpumemPercentage", "gpucores", "args", "image",
    "nodeGroup", "nodeSchedulerPolicy", "gpuSchedulerPolicy", "cpu", "memory", "shmSize",
    "startupTimeoutSeconds", "trustRemoteCode",
}



@dataclass(frozen=True)
class ServiceSettings:
    name: str
    model: str
    gpu_type: str
    node_group: str
    replicas: int
    gpumem: int | None
    gpumem_percentage: int | None
    args: tuple[str, ...]
    image: str
    gpucores: int | None = None
    node_scheduler_policy: str | None = None
    # The product exists to co-locate servers on one GPU, so GPU binpack is our default
    # (HAMi's own default is spread); set "spread" to get one GPU per replica when possible.
    gpu_scheduler_policy: str | None = "binpack"
    cpu: str = "2"
    memory: str = "16Gi"
    shm_size: str = "2Gi"
    # Download of several GB plus load and CUDA-graph capture: minutes on first start.
    startup_timeout_seconds: int = 1800
    # The service's owner has reviewed the model repository's code: --trust-remote-code may run it.
    trust_remote_code: bool = False

    @property
    def memory_request_label(self) -> str:
        if self.gpumem is not None:
            return f"{self.gpumem} MiB"
        return f"{self.gpumem_percentage}%"


def _service(problems: Problems, index: int, raw: Any, groups: Mapping[str, NodeGroupSettings],
             default_image: str) -> ServiceSettings | None:
    key = f"{config_key('services')}[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(key, "each service must be a map with name, model, gpuType, replicas and gpumem or gpumemPercentage")
        return None
    name = read_field(problems, key, raw, "name", as_str, "", required=True)
    if name:
        key = f"{config_key('services')}[{name}]"
    elif "name" in raw and raw["name"] is not None:
        problems.add(f"{key}.name", "must not be empty; it names the Deployment and Service, e.g. 'vllm-t4-qwen'")
    unknown_fields(problems, key, raw, _SERVICE_FIELDS)
    model = read_field(problems, key, raw, "model", as_str, "", required=True)
    gpu_type = read_field(problems, key, raw, "gpuType", as_str, None, required=True)
    replicas = read_field(problems, key, raw, "replicas", as_int, 1)
    gpumem = read_field(problems, key, raw, "gpumem", as_int)
    pct = read_field(problems, key, raw, "gpumemPercentage", as_int)
    gpucores = read_field(problems, key, raw, "gpucores", as_int)
    args = read_field(problems, key, raw, "args", as_str_list, ())
    image = read_field(problems, key, raw, "image", as_str, default_image)
    node_policy = read_field(problems, key, raw, "nodeSchedulerPolicy", as_str)
    gpu_policy = read_field(problems, key, raw, "gpuSchedulerPolicy", as_str, ServiceSettings.gpu_scheduler_policy)
    cpu = read_field(problems, key, raw, "cpu", as_str, ServiceSettings.cpu)
    memory = read_field(problems, key, raw, "memory", as_str, ServiceSettings.memory)
    shm = read_field(problems, key, raw, "shmSize", as_str, ServiceSettings.shm_size)
    startup = read_field(problems, key, raw, "startupTimeoutSeconds", as_int, ServiceSettings.startup_timeout_seconds)
    wanted_group = read_field(problems, key, raw, "nodeGroup", as_str)
    trust_remote_code = read_field(problems, key, raw, "trustRemoteCode", as_bool, False)

    if name and (not DNS_LABEL.fullmatch(name) or len(name) > 63):
        problems.add(f"{key}.name", f"{name!r} is not a DNS label (RFC 1035: lowercase letters, digits and '-', "
                                    f"starting with a letter, at most 63 characters); it names the Deployment "
                                    f"and Service, e.g. 'vllm-t4-qwen'")
    if replicas < 0:
        problems.add(f"{key}.replicas", f"must be 0 or more, got {replicas}")
    elif replicas > names.MAX_REPLICAS:
        problems.add(f"{key}.replicas", f"{replicas} is more than hami-eks plans ({names.MAX_REPLICAS} per service; "
                                        f"a GPU holds at most {hami.DEVICE_SPLIT_COUNT} pods)")
        replicas = 0  # not simulated: the stack is refused anyway
    if (gpumem is None) == (pct is None):
        problems.add(key, "set exactly one of gpumem (MiB) or gpumemPercentage (1-100): "
                          + ("both are set" if gpumem is not None else "neither is set"))
    if pct is not None and not 1 <= pct <= 100:
        problems.add(f"{key}.gpumemPercentage", f"must be between 1 and 100, got {pct}")
    if gpumem is not None and gpumem < 1:
        problems.add(f"{key}.gpumem", f"must be a positive number of MiB, got {gpumem}")
    if gpucores is not None and not 1 <= gpucores <= 100:
        problems.add(f"{key}.gpucores", f"must be between 1 and 100 (percent of the GPU's cores), got {gpucores}")
    for policy_key, policy in (("nodeSchedulerPolicy", node_policy), ("gpuSchedulerPolicy", gpu_policy)):
        if policy is not None and policy not in hami.SCHEDULER_POLICIES:
            problems.add(f"{key}.{policy_key}", f"must be binpack or spread, got {policy!r}")
    if image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")) and "@sha256:" not in image:
        problems.add(f"{key}.image", f"{image!r} is not pinned; use a release tag such as {versions.VLLM_IMAGE}")
    amounts = {}
    for qkey, qty in (("cpu", cpu), ("memory", memory), ("shmSize", shm)):
        try:
            amounts[qkey] = quantity.parse(qty)
        except ValueError as exc:
            problems.add(f"{key}.{qkey}", str(exc))
            continue
        if amounts[qkey] <= 0:
            problems.add(f"{key}.{qkey}", f"must be more than 0, got {qty!r}; e.g. "
                                          + {"cpu": "'1'", "memory": "'6Gi'", "shmSize": "'2Gi'"}[qkey])
    # /dev/shm is a memory-backed emptyDir: its pages count against the pod's memory limit, so
    # a shm larger than the limit promises memory the pod can never have (filling it OOM-kills).
    # Only a shmSize the user wrote: the 2Gi default beside a small memory is never filled by a
    # single-GPU server (tensor-parallel NCCL is what fills /dev/shm).
    if raw.get("shmSize") is not None and {"memory", "shmSize"} <= amounts.keys() and 0 < amounts["memory"] < amounts["shmSize"]:
        problems.add(f"{key}.shmSize", f"{shm} is more than memory ({memory}); /dev/shm counts against the "
                                       f"memory limit: lower shmSize (2Gi is plenty) or raise memory")
    if startup < 60:
        problems.add(f"{key}.startupTimeoutSeconds", f"{startup}s cannot cover a model download and load; use 600 or more")
    elif startup > names.MAX_STARTUP_SECONDS:
        problems.add(f"{key}.startupTimeoutSeconds", f"{startup}s is more than a day; 1800 covers a large model's "
                                                     f"first download and load")

    # A blank gpuType is no constraint in HAMi (hami.gpu_type_matches): every group matches.
    group = _resolve_group(problems, key, gpu_type, wanted_group, groups) if gpu_type is not None else None
    gpu_type = gpu_type or ""
    service = ServiceSettings(
        name=name, model=model, gpu_type=gpu_type, node_group=group.name if group else "",
        replicas=replicas, gpumem=gpumem, gpumem_percentage=pct, args=args, image=image,
        gpucores=gpucores, node_scheduler_policy=node_policy, gpu_scheduler_policy=gpu_policy,
        cpu=cpu, memory=memory, shm_size=shm, startup_timeout_seconds=startup, trust_remote_code=trust_remote_code,
    )
    if group is not None:
        gpu = group.gpu
        if gpumem is not None and gpumem > gpu.memory_mib:
            problems.add(f"{key}.gpumem", f"{gpumem} MiB is more than a whole {gpu.short} has as HAMi sees it "
                                          f"({gpu.memory_mib} MiB); lower gpumem or use a larger GPU")
        # vLLM under HAMi: the args, the model id and the GPU's architecture (hamieks/config/vllm_args.py).
        for field_name, message in vllm_args.problems(service, gpu, GPUS_PER_POD):
            problems.add(f"{key}.{field_name}", message)
    elif model and (model_error := vllm_args.model_problem(model)):
        problems.add(f"{key}.model", model_error)
    return service


def _resolve_group(problems: Problems, key: str, gpu_type: str, wanted: str | None,
                   groups: Mapping[str, NodeGroupSettings]) -> NodeGroupSettings | None:
    """The node group a service is pinned to (nodeSelector accelerator=<group>)."""
    valid = {n: g for n, g in groups.items() if g.valid}
    matching = [g for g in valid.values() if hami.gpu_type_matches(gpu_type, g.gpu.registered_type)]
    if wanted is not None:
        if wanted not in groups:
            problems.add(f"{key}.nodeGroup", f"no node group {wanted!r}; defined: {', '.join(groups) or 'none'}")
            return None
        if wanted in valid and valid[wanted] not in matching:
            problems.add(f"{key}.gpuType", f"{gpu_type!r} does not match node group {wanted!r}'s GPU "
                                           f"({valid[wanted].gpu.registered_type}); HAMi would never place it there")
            return None
        return valid.get(wanted)
    if not matching:
        offered = ", ".join(f"{g.name}: {g.gpu.short}" for g in valid.values()) or "none"
        problems.add(f"{key}.gpuType", f"no node group provides a GPU matching {gpu_type!r} (groups: {offered}); "
                                       f"add a node group with that GPU or change gpuType")
        return None
    if len(matching) > 1:
        problems.add(f"{key}.nodeGroup", f"gpuType {gpu_type!r} matches several node groups "
                                         f"({', '.join(g.name for g in matching)}); set nodeGroup to choose one")
        return None
    return matching[0]


def services_from_config(problems: Problems, raw: Any, groups: Mapping[str, NodeGroupSettings],
              default_image: str) -> list[ServiceSettings]:
    key = config_key("services")
    try:
        raw = as_json(raw)
    except ValueError as exc:
        problems.add(key, str(exc))
        return []
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        problems.add(key, "must be a list of services")
        return []
    services = [s for i, body in enumerate(raw) if (s := _service(problems, i, body, groups, default_image))]
    seen: set[str] = set()
    for service in services:
        if service.name and service.name in seen:
            problems.add(f"{key}[{service.name}].name", "duplicate service name; every service needs its own name")
        seen.add(service.name)
    return services
