"""The stack's configuration as one typed, validated model.

`load_settings` takes the stack's configuration as a flat mapping of full keys
("hami-eks:clusterName", "aws:region") to values, exactly what the Pulumi CLI hands a program,
and returns a frozen `Settings` or raises `ConfigError` listing every problem with the key that
causes it and the fix. Values may be typed (from YAML) or strings (as Pulumi stores config).

Defaults live here, in CONFIG_KEYS; Pulumi.yaml declares the same defaults for the CLI and a
test proves the two agree.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from hamieks import catalog, hami, quantity, versions
from hamieks.conventions import ACCELERATOR_LABEL_KEY, GPU_NODE_LABEL
from hamieks.errors import ConfigError, UnknownInstanceType

PROJECT = "hami-eks"


CAPACITY_TYPES = ("ON_DEMAND", "SPOT")

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ConfigKey:
    """A scalar config key: its Pulumi.yaml type, default and description."""

    name: str
    type: str  # Pulumi.yaml config type: string | integer | boolean | array
    default: Any
    description: str
    secret: bool = False


# Every scalar key the program reads, with its default. The structured keys (nodeGroups,
# services) are described in STRUCTURED_KEYS; their defaults are the reference demo.
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("clusterName", "string", "hami-eks", "EKS cluster name (also prefixes AWS names)."),
    ConfigKey("kubernetesVersion", "string", versions.DEFAULT_KUBERNETES_VERSION,
              f"EKS Kubernetes minor version; one of {', '.join(versions.EKS_KUBERNETES_VERSIONS)}."),
    ConfigKey("vpcCidr", "string", "10.0.0.0/16", "IPv4 CIDR of the VPC; split into one public and one private subnet per AZ."),
    ConfigKey("availabilityZoneCount", "integer", 2,
              "How many AZs to use (2-6); only AZs that offer every configured instance type are chosen."),
    ConfigKey("natGatewayPerAz", "boolean", False,
              "One NAT gateway per AZ (resilient to an AZ outage) instead of a single shared one (cheaper)."),
    ConfigKey("publicAccessCidrs", "array", ["0.0.0.0/0"],
              "CIDRs allowed to reach the public EKS API endpoint."),
    ConfigKey("adminPrincipalArns", "array", [],
              "Extra IAM role/user ARNs (e.g. a CI role) given cluster-admin access entries, besides the deployer."),
    ConfigKey("systemInstanceType", "string", "m6i.large",
              "Instance type of the CPU system node group (coredns, HAMi scheduler, controllers)."),
    ConfigKey("systemNodeCount", "integer", 2, "Number of system nodes (2 keeps coredns and the HAMi scheduler up during node replacement)."),
    ConfigKey("hamiChartVersion", "string", versions.HAMI_CHART_VERSION, "HAMi Helm chart version."),
    ConfigKey("vllmImage", "string", versions.VLLM_IMAGE, "Default vLLM image for services that set no image; pin a tag."),
    ConfigKey("namespace", "string", "llm", "Namespace the model servers run in."),
    ConfigKey("allowUnschedulable", "boolean", False,
              "Deploy even when the placement preflight finds replicas HAMi cannot place (a warning instead of an error)."),
    ConfigKey("hfToken", "string", "",
              "Hugging Face token for gated models; set it with `pulumi config set --secret hfToken hf_...`.",
              secret=True),
)

STRUCTURED_KEYS = {
    "nodeGroups": "Map of GPU node group name -> {instanceTypes, desiredSize, minSize, maxSize, diskSizeGiB, capacityType, labels}.",
    "services": "List of vLLM model servers: {name, model, gpuType, replicas, gpumem | gpumemPercentage, args, image, ...}.",
}

DEFAULT_REGION = "us-west-2"

_NODE_GROUP_FIELDS = {"instanceTypes", "desiredSize", "minSize", "maxSize", "diskSizeGiB", "capacityType", "labels"}
_SERVICE_FIELDS = {
    "name", "model", "gpuType", "replicas", "gpumem", "gpumemPercentage", "gpucores", "args", "image",
    "nodeGroup", "nodeSchedulerPolicy", "gpuSchedulerPolicy", "cpu", "memory", "shmSize",
    "startupTimeoutSeconds",
}


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

    @property
    def instance(self) -> catalog.InstanceType:
        """The first instance type: the one planning and pricing assume (all share a GPU model)."""
        return catalog.instance_type(self.instance_types[0])

    @property
    def gpu(self) -> catalog.GpuModel:
        gpu = self.instance.gpu
        assert gpu is not None, "validated in load_settings"
        return gpu

    @property
    def labels(self) -> dict[str, str]:
        return {**self.extra_labels, **GPU_NODE_LABEL.as_dict(), ACCELERATOR_LABEL_KEY: self.name}


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

    @property
    def memory_request_label(self) -> str:
        if self.gpumem is not None:
            return f"{self.gpumem} MiB"
        return f"{self.gpumem_percentage}%"


@dataclass(frozen=True)
class Settings:
    region: str
    cluster_name: str
    kubernetes_version: str
    vpc_cidr: str
    availability_zone_count: int
    nat_gateway_per_az: bool
    public_access_cidrs: tuple[str, ...]
    admin_principal_arns: tuple[str, ...]
    system_instance_type: str
    system_node_count: int
    hami_chart_version: str
    vllm_image: str
    namespace: str
    allow_unschedulable: bool
    hf_token_configured: bool
    node_groups: tuple[NodeGroupSettings, ...]
    services: tuple[ServiceSettings, ...]

    @property
    def instance_types(self) -> tuple[str, ...]:
        """Every instance type the stack launches, for the AZ offering check."""
        names = [self.system_instance_type]
        for group in self.node_groups:
            names.extend(group.instance_types)
        return tuple(dict.fromkeys(names))


def config_key(name: str) -> str:
    return f"{PROJECT}:{name}"


class _Problems:
    """Collects every problem so the user fixes them in one round, not one per deploy."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


# ---- coercion: config values arrive typed (YAML) or as strings (Pulumi) ----------------------

def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected structured (YAML/JSON) data: {exc}") from None
    return value


def _as_str_list(value: Any) -> tuple[str, ...]:
    value = _as_json(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _as_str(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


_COERCE: dict[str, Callable[[Any], Any]] = {
    "string": _as_str, "integer": _as_int, "boolean": _as_bool, "array": _as_str_list,
}


def _field(problems: _Problems, key: str, raw: Mapping[str, Any], name: str,
           coerce: Callable[[Any], Any], default: Any = None, required: bool = False) -> Any:
    if name not in raw or raw[name] is None:
        if required:
            problems.add(f"{key}.{name}", f"is required")
        return default
    try:
        return coerce(raw[name])
    except ValueError as exc:
        problems.add(f"{key}.{name}", str(exc))
        return default


def _unknown_fields(problems: _Problems, key: str, raw: Mapping[str, Any], known: set[str]) -> None:
    for name in raw:
        if name not in known:
            hint = difflib.get_close_matches(name, sorted(known), n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else f"known fields: {', '.join(sorted(known))}"
            problems.add(f"{key}.{name}", f"unknown field; {fix}")


# ---- structured keys ------------------------------------------------------------------------

def _node_group(problems: _Problems, name: str, raw: Any) -> NodeGroupSettings | None:
    key = f"{config_key('nodeGroups')}.{name}"
    if not isinstance(raw, Mapping):
        problems.add(key, "must be a map with instanceTypes, desiredSize, minSize, maxSize, ...")
        return None
    if not _DNS_LABEL.fullmatch(name) or len(name) > 40:
        problems.add(key, "group names must be lowercase DNS labels of at most 40 characters "
                          "(they become node labels and AWS names), e.g. 't4'")
    _unknown_fields(problems, key, raw, _NODE_GROUP_FIELDS)
    types = _field(problems, key, raw, "instanceTypes", _as_str_list, (), required=True)
    desired = _field(problems, key, raw, "desiredSize", _as_int, 1)
    min_size = _field(problems, key, raw, "minSize", _as_int, desired)
    max_size = _field(problems, key, raw, "maxSize", _as_int, desired)
    disk = _field(problems, key, raw, "diskSizeGiB", _as_int, 100)
    capacity = _field(problems, key, raw, "capacityType", _as_str, "ON_DEMAND")
    labels = _field(problems, key, raw, "labels", _as_json, {}) or {}

    if "instanceTypes" in raw and not types:
        problems.add(f"{key}.instanceTypes", "list at least one GPU instance type, e.g. [g4dn.xlarge]")
    models = set()
    for it_name in types:
        try:
            it = catalog.instance_type(it_name)
        except UnknownInstanceType as exc:
            problems.add(f"{key}.instanceTypes", str(exc))
            continue
        if not it.is_gpu:
            problems.add(f"{key}.instanceTypes", f"{it_name} has no GPU; a GPU node group needs GPU "
                                                 f"instance types such as g4dn.xlarge, g5.xlarge or g6.xlarge")
        else:
            models.add((it.gpu.name, it.gpu_count))
    if len(models) > 1:
        problems.add(f"{key}.instanceTypes", "all instance types of a group must have the same GPU model and "
                                             f"count (plans assume one shape per group); got {sorted(models)}")
    if min_size < 0 or min_size > desired or desired > max_size or max_size < 1:
        problems.add(key, f"sizes must satisfy 0 <= minSize <= desiredSize <= maxSize and maxSize >= 1; "
                          f"got minSize={min_size}, desiredSize={desired}, maxSize={max_size}")
    if disk < 20:
        problems.add(f"{key}.diskSizeGiB", f"{disk} GiB cannot hold the AMI, the vLLM image and model "
                                           f"weights; use at least 50 (100 recommended)")
    if capacity not in CAPACITY_TYPES:
        problems.add(f"{key}.capacityType", f"must be one of {', '.join(CAPACITY_TYPES)}, got {capacity!r}")
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        problems.add(f"{key}.labels", "must be a map of string to string")
        labels = {}
    reserved = {GPU_NODE_LABEL.key, ACCELERATOR_LABEL_KEY} & set(labels)
    if reserved:
        problems.add(f"{key}.labels", f"{', '.join(sorted(reserved))} are set by hami-eks "
                                      f"(HAMi's device plugin and service pinning rely on them); remove them")
    return NodeGroupSettings(name, tuple(types), desired, min_size, max_size, disk, capacity, dict(labels))


def _service(problems: _Problems, index: int, raw: Any, groups: Mapping[str, NodeGroupSettings],
             default_image: str) -> ServiceSettings | None:
    key = f"{config_key('services')}[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(key, "each service must be a map with name, model, gpuType, replicas and gpumem or gpumemPercentage")
        return None
    name = _field(problems, key, raw, "name", _as_str, "", required=True)
    if name:
        key = f"{config_key('services')}[{name}]"
    _unknown_fields(problems, key, raw, _SERVICE_FIELDS)
    model = _field(problems, key, raw, "model", _as_str, "", required=True)
    gpu_type = _field(problems, key, raw, "gpuType", _as_str, "", required=True)
    replicas = _field(problems, key, raw, "replicas", _as_int, 1)
    gpumem = _field(problems, key, raw, "gpumem", _as_int)
    pct = _field(problems, key, raw, "gpumemPercentage", _as_int)
    gpucores = _field(problems, key, raw, "gpucores", _as_int)
    args = _field(problems, key, raw, "args", _as_str_list, ())
    image = _field(problems, key, raw, "image", _as_str, default_image)
    node_policy = _field(problems, key, raw, "nodeSchedulerPolicy", _as_str)
    gpu_policy = _field(problems, key, raw, "gpuSchedulerPolicy", _as_str, ServiceSettings.gpu_scheduler_policy)
    cpu = _field(problems, key, raw, "cpu", _as_str, ServiceSettings.cpu)
    memory = _field(problems, key, raw, "memory", _as_str, ServiceSettings.memory)
    shm = _field(problems, key, raw, "shmSize", _as_str, ServiceSettings.shm_size)
    startup = _field(problems, key, raw, "startupTimeoutSeconds", _as_int, ServiceSettings.startup_timeout_seconds)
    wanted_group = _field(problems, key, raw, "nodeGroup", _as_str)

    if name and (not _DNS_LABEL.fullmatch(name) or len(name) > 63):
        problems.add(f"{key}.name", f"{name!r} is not a DNS label (RFC 1035: lowercase letters, digits and '-', "
                                    f"starting with a letter, at most 63 characters); it names the Deployment "
                                    f"and Service, e.g. 'vllm-t4-qwen'")
    if replicas < 0:
        problems.add(f"{key}.replicas", f"must be 0 or more, got {replicas}")
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
    for qkey, qty in (("cpu", cpu), ("memory", memory), ("shmSize", shm)):
        try:
            quantity.parse(qty)
        except ValueError as exc:
            problems.add(f"{key}.{qkey}", str(exc))
    if startup < 60:
        problems.add(f"{key}.startupTimeoutSeconds", f"{startup}s cannot cover a model download and load; use 600 or more")

    group = _resolve_group(problems, key, gpu_type, wanted_group, groups)
    if group is not None:
        gpu = group.gpu
        if gpumem is not None and gpumem > gpu.memory_mib:
            problems.add(f"{key}.gpumem", f"{gpumem} MiB is more than a whole {gpu.short} has as HAMi sees it "
                                          f"({gpu.memory_mib} MiB); lower gpumem or use a larger GPU")
        if catalog.needs_cuda12_image(gpu) and not image.endswith("-cu129"):
            problems.add(f"{key}.image", f"{gpu.short} (Volta) is not supported by CUDA 13 vLLM images; "
                                         f"use the -cu129 variant, e.g. {versions.VLLM_IMAGE}-cu129")
    return ServiceSettings(
        name=name, model=model, gpu_type=gpu_type, node_group=group.name if group else "",
        replicas=replicas, gpumem=gpumem, gpumem_percentage=pct, args=args, image=image,
        gpucores=gpucores, node_scheduler_policy=node_policy, gpu_scheduler_policy=gpu_policy,
        cpu=cpu, memory=memory, shm_size=shm, startup_timeout_seconds=startup,
    )


def _resolve_group(problems: _Problems, key: str, gpu_type: str, wanted: str | None,
                   groups: Mapping[str, NodeGroupSettings]) -> NodeGroupSettings | None:
    """The node group a service is pinned to (nodeSelector accelerator=<group>)."""
    if not gpu_type:
        return None
    valid = {n: g for n, g in groups.items() if g.instance_types and _group_is_valid(g)}
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


def _group_is_valid(group: NodeGroupSettings) -> bool:
    try:
        return all(catalog.instance_type(t).is_gpu for t in group.instance_types)
    except UnknownInstanceType:
        return False


# ---- network --------------------------------------------------------------------------------

def subnet_cidrs(vpc_cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Split the VPC into equal blocks: the first az_count private, the next az_count public.

    Private subnets hold the nodes and, with the VPC CNI, every pod's IP, so they get as much
    room as public ones; the unused blocks are left free for later growth.
    """
    network = ipaddress.ip_network(vpc_cidr)
    extra_bits = math.ceil(math.log2(2 * az_count))
    blocks = list(network.subnets(prefixlen_diff=extra_bits))
    private = [str(b) for b in blocks[:az_count]]
    public = [str(b) for b in blocks[az_count:2 * az_count]]
    return private, public


MIN_SUBNET_PREFIX = 24  # smaller subnets run out of pod IPs on a handful of GPU nodes


def _network(problems: _Problems, vpc_cidr: str, az_count: int) -> None:
    key = config_key("vpcCidr")
    try:
        network = ipaddress.ip_network(vpc_cidr)
    except ValueError as exc:
        problems.add(key, f"{vpc_cidr!r} is not a valid IPv4 CIDR ({exc}); use e.g. 10.0.0.0/16")
        return
    if network.version != 4:
        problems.add(key, "must be an IPv4 CIDR, e.g. 10.0.0.0/16")
        return
    if not 16 <= network.prefixlen <= 28:
        problems.add(key, f"AWS allows VPC CIDRs from /16 to /28, got /{network.prefixlen}; use e.g. 10.0.0.0/16")
        return
    if not 2 <= az_count <= 6:
        return  # reported on availabilityZoneCount
    needed = network.prefixlen + math.ceil(math.log2(2 * az_count))
    if needed > MIN_SUBNET_PREFIX:
        problems.add(key, f"/{network.prefixlen} is too small for {2 * az_count} subnets of at least "
                          f"/{MIN_SUBNET_PREFIX} ({az_count} AZs x public+private); use a /"
                          f"{MIN_SUBNET_PREFIX - math.ceil(math.log2(2 * az_count))} or larger, e.g. 10.0.0.0/16")


# ---- entry point ----------------------------------------------------------------------------

def _scalars(problems: _Problems, config: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in CONFIG_KEYS:
        key = config_key(spec.name)
        raw = config.get(key)
        if raw is None:
            values[spec.name] = spec.default
            continue
        if spec.secret:
            values[spec.name] = raw  # opaque: never parsed, printed or echoed in errors
            continue
        try:
            values[spec.name] = _COERCE[spec.type](raw)
        except ValueError as exc:
            problems.add(key, str(exc))
            values[spec.name] = spec.default
    return values


def _check_unknown_keys(problems: _Problems, config: Mapping[str, Any]) -> None:
    known = {config_key(k.name) for k in CONFIG_KEYS} | {config_key(k) for k in STRUCTURED_KEYS}
    for key in config:
        if key.startswith(PROJECT + ":") and key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            problems.add(key, "unknown config key" + (f"; did you mean {hint[0]!r}?" if hint else ""))


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Build and validate the settings from a flat config mapping; raise ConfigError on problems."""
    problems = _Problems()
    _check_unknown_keys(problems, config)
    v = _scalars(problems, config)

    if v["kubernetesVersion"] not in versions.EKS_KUBERNETES_VERSIONS:
        problems.add(config_key("kubernetesVersion"),
                     f"EKS does not offer {v['kubernetesVersion']!r} in standard support; "
                     f"use one of {', '.join(versions.EKS_KUBERNETES_VERSIONS)}")
    if not 2 <= v["availabilityZoneCount"] <= 6:
        problems.add(config_key("availabilityZoneCount"),
                     f"must be 2-6 (EKS needs subnets in at least two AZs), got {v['availabilityZoneCount']}")
    _network(problems, v["vpcCidr"], v["availabilityZoneCount"])
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", v["clusterName"]):
        problems.add(config_key("clusterName"), "must be 1-100 letters, digits, '-' or '_', starting "
                                                "with a letter or digit (EKS naming rule)")
    for cidr in v["publicAccessCidrs"]:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            problems.add(config_key("publicAccessCidrs"), f"{cidr!r} is not a CIDR; use e.g. 203.0.113.0/24")
    for arn in v["adminPrincipalArns"]:
        if not re.fullmatch(r"arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+", arn):
            problems.add(config_key("adminPrincipalArns"), f"{arn!r} is not an IAM role or user ARN "
                                                           f"(arn:aws:iam::<account>:role/<name>)")
    try:
        if catalog.instance_type(v["systemInstanceType"]).is_gpu:
            problems.add(config_key("systemInstanceType"), "use a CPU instance type; system pods must not take GPU nodes")
    except UnknownInstanceType as exc:
        problems.add(config_key("systemInstanceType"), str(exc))
    if v["systemNodeCount"] < 1:
        problems.add(config_key("systemNodeCount"), "at least one system node is needed for coredns and the HAMi scheduler")
    if not _DNS_LABEL.fullmatch(v["namespace"]):
        problems.add(config_key("namespace"), f"{v['namespace']!r} is not a DNS label, e.g. 'llm'")

    groups = _node_groups(problems, config.get(config_key("nodeGroups")))
    services = _services(problems, config.get(config_key("services")), groups, v["vllmImage"])

    problems.raise_if_any()
    region = config.get("aws:region") or DEFAULT_REGION
    return Settings(
        region=str(region), cluster_name=v["clusterName"], kubernetes_version=v["kubernetesVersion"],
        vpc_cidr=v["vpcCidr"], availability_zone_count=v["availabilityZoneCount"],
        nat_gateway_per_az=v["natGatewayPerAz"], public_access_cidrs=v["publicAccessCidrs"],
        admin_principal_arns=v["adminPrincipalArns"], system_instance_type=v["systemInstanceType"],
        system_node_count=v["systemNodeCount"], hami_chart_version=v["hamiChartVersion"],
        vllm_image=v["vllmImage"], namespace=v["namespace"], allow_unschedulable=v["allowUnschedulable"],
        hf_token_configured=bool(v["hfToken"]),
        node_groups=tuple(groups.values()), services=tuple(services),
    )


def _node_groups(problems: _Problems, raw: Any) -> dict[str, NodeGroupSettings]:
    key = config_key("nodeGroups")
    try:
        raw = _as_json(raw)
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


def _services(problems: _Problems, raw: Any, groups: Mapping[str, NodeGroupSettings],
              default_image: str) -> list[ServiceSettings]:
    key = config_key("services")
    try:
        raw = _as_json(raw)
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
