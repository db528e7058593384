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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hamieks import catalog, versions
from hamieks.config import names, network, stackfiles
from hamieks.config.node_groups import NodeGroupSettings, node_groups_from_config
from hamieks.config.services import ServiceSettings, services_from_config
from hamieks.config.values import COERCE, DNS_LABEL, PROJECT, SECRET_PRESENT, Problems, config_key
from hamieks.errors import UnknownInstanceType


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
              "One NAT gateway per AZ (survives an AZ outage) instead of one shared gateway (cheaper)."),
    ConfigKey("publicAccessCidrs", "array", ["0.0.0.0/0"],
              "CIDRs allowed to reach the public EKS API endpoint."),
    ConfigKey("adminPrincipalArns", "array", [],
              "Extra IAM role/user ARNs (e.g. a CI role) given cluster-admin access entries; the cluster creator always is one."),
    ConfigKey("clusterCreatorArn", "string", "",
              "IAM role/user ARN that created the cluster (EKS made it admin); set once so access entries do "
              "not depend on who runs `up`."),
    ConfigKey("systemInstanceType", "string", "m6i.large",
              "Instance type of the CPU system node group (coredns, HAMi scheduler, controllers)."),
    ConfigKey("systemNodeCount", "integer", 2, "Number of system nodes."),
    ConfigKey("hamiChartVersion", "string", versions.HAMI_CHART_VERSION, "HAMi Helm chart version."),
    ConfigKey("vllmImage", "string", versions.VLLM_IMAGE, "vLLM image for services that set no image; always a pinned tag."),
    ConfigKey("namespace", "string", "llm", "Namespace the model servers run in."),
    ConfigKey("allowUnschedulable", "boolean", False,
              "Deploy even when the placement preflight finds replicas HAMi cannot place (warn instead of fail)."),
    ConfigKey("acceptSampledOrderCheck", "boolean", False,
              "Deploy when the arrival-order check could only sample orders (too many to check them all) and "
              "none it tried left a replica Pending; otherwise an unproven check fails the preflight."),
    ConfigKey("prices", "string", "auto",
              "Where the program's cost estimate comes from: auto (live from AWS where it answers, else the recorded "
              "table), live, or recorded."),
    ConfigKey("allowModelMisfit", "boolean", False,
              "Deploy even when the model-fit preflight finds a model that cannot load in its slice (warn instead of fail)."),
    ConfigKey("hfToken", "string", "",
              "Hugging Face token for gated models; set it with `pulumi config set --secret hfToken hf_...`.",
              secret=True),
    ConfigKey("vllmApiKey", "string", "",
              "API key every model server requires on /v1 (Authorization: Bearer); set it with "
              "`pulumi config set --secret vllmApiKey <key>`.", secret=True),
    ConfigKey("controlPlaneLogRetentionDays", "integer", 90,
              "Days CloudWatch keeps the EKS control-plane logs (api, audit, authenticator); a CloudWatch "
              "retention value such as 30, 90, 365."),
    ConfigKey("ecrPullThroughCache", "boolean", False,
              "Pull Docker Hub and registry.k8s.io images (vLLM, HAMi, its certificate job, kube-scheduler) "
              "through ECR pull-through cache rules in this account instead of anonymously through the NAT."),
    ConfigKey("dockerHubCredentialArn", "string", "",
              "ARN of a Secrets Manager secret named ecr-pullthroughcache/... holding Docker Hub "
              "{username, accessToken}; required by ecrPullThroughCache."),
    ConfigKey("monitoring", "boolean", True,
              "Install kube-prometheus-stack (Prometheus, Grafana, alerts) on the system nodes, scrape HAMi and "
              "every model server, and provision the plan-vs-reality dashboards; false leaves it out."),
)

# CloudWatch Logs PutRetentionPolicy accepts only these retentions (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)

STRUCTURED_KEYS = {
    "nodeGroups": ("Map of GPU node group name -> {instanceTypes, desiredSize, minSize, maxSize, diskSizeGiB, "
                   "capacityType, labels}."),
    "services": "List of vLLM servers: {name, model, gpuType, replicas, gpumem | gpumemPercentage, args, image, ...}.",
}

DEFAULT_REGION = "us-west-2"


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
    cluster_creator_arn: str
    system_instance_type: str
    system_node_count: int
    hami_chart_version: str
    vllm_image: str
    namespace: str
    allow_unschedulable: bool
    allow_model_misfit: bool
    accept_sampled_order_check: bool
    prices: str  # one of catalog.PRICE_MODES
    hf_token_configured: bool
    vllm_api_key_configured: bool
    node_groups: tuple[NodeGroupSettings, ...]
    services: tuple[ServiceSettings, ...]
    control_plane_log_retention_days: int
    ecr_pull_through_cache: bool
    docker_hub_credential_arn: str
    monitoring: bool = True

    def node_group(self, name: str) -> NodeGroupSettings:
        return next(group for group in self.node_groups if group.name == name)

    @property
    def instance_types(self) -> tuple[str, ...]:
        """Every instance type the stack launches, for the AZ offering check."""
        names = [self.system_instance_type]
        for group in self.node_groups:
            names.extend(group.instance_types)
        return tuple(dict.fromkeys(names))


# ---- entry point ----------------------------------------------------------------------------

def _scalars(problems: Problems, config: Mapping[str, Any]) -> dict[str, Any]:
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
            values[spec.name] = COERCE[spec.type](raw)
        except ValueError as exc:
            problems.add(key, str(exc))
            values[spec.name] = spec.default
    return values


# pulumi-aws provider keys a stack file commonly sets (registry: pulumi/aws, Configuration). Any
# other `aws:` key is passed to the provider untouched; only near-misses of these are refused,
# because a misspelt `aws:region` silently deploys into the default region.
AWS_PROVIDER_KEYS = ("aws:region", "aws:profile", "aws:accessKey", "aws:secretKey", "aws:token",
                     "aws:sharedCredentialsFiles", "aws:sharedConfigFiles", "aws:assumeRole",
                     "aws:defaultTags", "aws:skipCredentialsValidation", "aws:skipMetadataApiCheck",
                     "aws:skipRegionValidation", "aws:allowedAccountIds", "aws:forbiddenAccountIds",
                     "aws:maxRetries", "aws:retryMode", "aws:endpoints")


def _check_unknown_keys(problems: Problems, config: Mapping[str, Any]) -> None:
    known = {config_key(k.name) for k in CONFIG_KEYS} | {config_key(k) for k in STRUCTURED_KEYS}
    for key in config:
        if key.startswith(PROJECT + ":") and key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            problems.add(key, "unknown config key" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        elif key.startswith("aws:") and key not in AWS_PROVIDER_KEYS:
            hint = difflib.get_close_matches(key, AWS_PROVIDER_KEYS, n=1, cutoff=0.8)
            if hint:
                problems.add(key, f"unknown aws provider key; did you mean {hint[0]!r}?")


def _secret_problem(name: str, value: Any) -> str | None:
    """A secret must reach the program encrypted (`secure:`, or the engine's secret). The message
    never contains the value: it would land in CI logs."""
    if value in ("", None, SECRET_PRESENT) or isinstance(value, stackfiles.SecretValue):
        return None
    what = "is written in plain text in the stack file" if isinstance(value, str) else (
        f"is a {type(value).__name__}, not an encrypted string")
    example = "hf_..." if name == "hfToken" else "<value>"
    return (f"{what} (value not shown), so anyone with the repository can read it: remove the line and run "
            f"`pulumi config set --secret {name} {example}`")


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Build and validate the settings from a flat config mapping; raise ConfigError on problems."""
    problems = Problems()
    _check_unknown_keys(problems, config)
    v = _scalars(problems, config)

    if v["kubernetesVersion"] not in versions.EKS_KUBERNETES_VERSIONS:
        raw_version = config.get(config_key("kubernetesVersion"))
        # YAML reads an unquoted 1.30 as the number 1.3: say so instead of "no 1.3".
        quote = (f" (YAML read the unquoted number {raw_version!r}: write it quoted, e.g. \"1.35\")"
                 if isinstance(raw_version, float) else "")
        problems.add(config_key("kubernetesVersion"),
                     f"EKS does not offer {v['kubernetesVersion']!r} in standard support{quote}; "
                     f"use one of {', '.join(versions.EKS_KUBERNETES_VERSIONS)}")
    if (problem := names.chart_version_problem(v["hamiChartVersion"])) is not None:
        problems.add(config_key("hamiChartVersion"), problem)
    region = config.get("aws:region")
    if region is not None and (problem := names.region_problem(str(region))) is not None:
        problems.add("aws:region", problem)
    if not network.MIN_AZS <= v["availabilityZoneCount"] <= network.MAX_AZS:
        problems.add(config_key("availabilityZoneCount"),
                     f"must be 2-6 (EKS needs subnets in at least two AZs), got {v['availabilityZoneCount']}")
    if (problem := network.vpc_cidr_problem(v["vpcCidr"], v["availabilityZoneCount"])) is not None:
        problems.add(config_key("vpcCidr"), problem)
    if v["prices"] not in catalog.PRICE_MODES:
        problems.add(config_key("prices"), f"must be one of {', '.join(catalog.PRICE_MODES)}, got {v['prices']!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", v["clusterName"]):
        problems.add(config_key("clusterName"), "must be 1-100 letters, digits, '-' or '_', starting "
                                                "with a letter or digit (EKS naming rule)")
    for cidr in v["publicAccessCidrs"]:
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            problems.add(config_key("publicAccessCidrs"), f"{cidr!r} is not a CIDR; use e.g. 203.0.113.0/24")
    creator = v["clusterCreatorArn"]
    if creator and not re.fullmatch(r"arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+", creator):
        problems.add(config_key("clusterCreatorArn"), f"{creator!r} is not an IAM role or user ARN "
                                                      f"(arn:aws:iam::<account>:role/<name>)")
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
    elif v["systemNodeCount"] > names.MAX_NODES_PER_GROUP:
        problems.add(config_key("systemNodeCount"), f"more than an EKS managed node group holds "
                                                    f"({names.MAX_NODES_PER_GROUP}); 2 is enough for the system pods")
    if not DNS_LABEL.fullmatch(v["namespace"]) or len(v["namespace"]) > 63:
        problems.add(config_key("namespace"), f"{v['namespace']!r} is not a DNS label, e.g. 'llm'")
    elif (problem := names.namespace_problem(v["namespace"])) is not None:
        problems.add(config_key("namespace"), problem)
    if v["controlPlaneLogRetentionDays"] not in LOG_RETENTION_DAYS:
        problems.add(config_key("controlPlaneLogRetentionDays"),
                     f"CloudWatch keeps logs for one of {', '.join(map(str, LOG_RETENTION_DAYS))} days, "
                     f"got {v['controlPlaneLogRetentionDays']}; e.g. 90")
    for spec in CONFIG_KEYS:
        if spec.secret and (problem := _secret_problem(spec.name, v[spec.name])) is not None:
            problems.add(config_key(spec.name), problem)
    credential = v["dockerHubCredentialArn"]
    if credential and not re.fullmatch(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:"
                                       r"ecr-pullthroughcache/.+", credential):
        problems.add(config_key("dockerHubCredentialArn"),
                     f"{credential!r} is not the ARN of a Secrets Manager secret named ecr-pullthroughcache/... "
                     f"(ECR accepts upstream credentials only under that prefix)")
    if v["ecrPullThroughCache"] and not credential:
        problems.add(config_key("dockerHubCredentialArn"),
                     "required when hami-eks:ecrPullThroughCache is true (ECR's Docker Hub cache rule "
                     "authenticates upstream): create the secret with `aws secretsmanager create-secret --name "
                     "ecr-pullthroughcache/docker-hub --secret-string '{\"username\":\"...\",\"accessToken\":\"...\"}'` "
                     "and set its ARN")

    groups = node_groups_from_config(problems, config.get(config_key("nodeGroups")))
    if (problem := names.derived_name_problem(v["clusterName"], groups)) is not None:
        problems.add(config_key("clusterName"), problem)
    services = services_from_config(problems, config.get(config_key("services")), groups, v["vllmImage"])

    problems.raise_if_any()
    region = config.get("aws:region") or DEFAULT_REGION
    return Settings(
        region=str(region), cluster_name=v["clusterName"], kubernetes_version=v["kubernetesVersion"],
        vpc_cidr=v["vpcCidr"], availability_zone_count=v["availabilityZoneCount"],
        nat_gateway_per_az=v["natGatewayPerAz"], public_access_cidrs=v["publicAccessCidrs"],
        admin_principal_arns=v["adminPrincipalArns"], cluster_creator_arn=creator,
        system_instance_type=v["systemInstanceType"],
        system_node_count=v["systemNodeCount"], hami_chart_version=v["hamiChartVersion"],
        vllm_image=v["vllmImage"], namespace=v["namespace"], allow_unschedulable=v["allowUnschedulable"],
        allow_model_misfit=v["allowModelMisfit"], accept_sampled_order_check=v["acceptSampledOrderCheck"],
        prices=v["prices"],
        hf_token_configured=bool(v["hfToken"]), vllm_api_key_configured=bool(v["vllmApiKey"]),
        node_groups=tuple(groups.values()), services=tuple(services),
        control_plane_log_retention_days=v["controlPlaneLogRetentionDays"],
        ecr_pull_through_cache=v["ecrPullThroughCache"], docker_hub_credential_arn=credential,
        monitoring=v["monitoring"],
    )


