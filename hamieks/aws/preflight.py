"""Account preflight: what in the AWS account would make `pulumi up` fail after twenty minutes.

Each check is a `Check(name, target, ok, detail)`; a failed one's detail says what to do.
- identity: which account and principal the credentials are, in which region;
- instance-type: every configured type exists in the region and its GPUs (EC2 GpuInfo) are the
  model and count our catalog plans with;
- zones: at least availabilityZoneCount zones offer every type (hamieks.config.zones decides, as the
  program does);
- vcpu-quota: the EC2 vCPU quotas (Service Quotas) cover every node group at maxSize plus what
  other instances already use, with the exact value to request when they do not;
- kubernetes-version: EKS offers the configured version in the region;
- log-group: no control-plane log group /aws/eks/<name>/cluster that the stack does not own (EKS
  re-creates it from late logs after a destroy; `up` would then fail with ResourceAlreadyExists);
- public-access: with publicAccessCidrs restricted, whether this machine's egress address is
  inside (hamieks/aws/egress.py; unknown is said, not guessed).
Credentials that do not work raise AwsCredentialsError (the command exits 2); a call the
principal may not make is a failed check naming the permission.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from hamieks import catalog, versions
from hamieks.aws import egress
from hamieks.aws.leaks import PROJECT_TAG_VALUE, cluster_tag, tag_map
from hamieks.aws.session import (
    CREDENTIALS_FIX,
    Aws,
    AwsCredentialsError,
    describe_client_error,
    is_credentials_error,
)
from hamieks.check import Check
from hamieks.config import zones
from hamieks.config.settings import Settings
from hamieks.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeInfoTypeDef


# ---- vCPU quotas ------------------------------------------------------------------------------

@dataclass(frozen=True)
class VcpuQuota:
    code: str  # Service Quotas code, service "ec2"
    name: str  # as the Service Quotas console names it


# Amazon EC2 User Guide, "Amazon EC2 instance type quotas" (ec2-resource-limits): vCPU quotas per
# family class and purchase option. P5 Spot has its own quota; P5 On-Demand shares the P quota.
ON_DEMAND_STANDARD = VcpuQuota("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")
ON_DEMAND_G = VcpuQuota("L-DB2E81BA", "Running On-Demand G and VT instances")
ON_DEMAND_P = VcpuQuota("L-417A185B", "Running On-Demand P instances")
SPOT_STANDARD = VcpuQuota("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")
SPOT_G = VcpuQuota("L-3819A6DF", "All G and VT Spot Instance Requests")
SPOT_P = VcpuQuota("L-7212CCBC", "All P4, P3 and P2 Spot Instance Requests")
SPOT_P5 = VcpuQuota("L-C4BD4855", "All P5 Spot Instance Requests")

# Leading letters of the family ("g4dn" -> "g", "im4gn" -> "im") -> quota class.
_STANDARD_LETTERS = frozenset({"a", "c", "d", "h", "i", "im", "is", "m", "r", "t", "z"})
_G_LETTERS = frozenset({"g", "gr", "vt"})

# components/cluster.py gives the system node group max_size = systemNodeCount + 1 (one spare
# node for rolling updates); the quota must cover it. Keep the two in step.
SYSTEM_NODE_GROUP_SURGE = 1


def vcpu_quota(instance_type: str, capacity_type: str) -> VcpuQuota | None:
    """The vCPU quota an instance type draws on, or None for classes this tool does not map."""
    family = instance_type.split(".")[0]
    match = re.match(r"[a-z]+", family)
    letters = match.group(0) if match else ""
    spot = capacity_type == "SPOT"
    if letters in _STANDARD_LETTERS:
        return SPOT_STANDARD if spot else ON_DEMAND_STANDARD
    if letters in _G_LETTERS:
        return SPOT_G if spot else ON_DEMAND_G
    if letters == "p":
        if spot:
            return SPOT_P5 if family.startswith("p5") else SPOT_P
        return ON_DEMAND_P
    return None


@dataclass(frozen=True)
class VcpuDemand:
    quota: VcpuQuota
    parts: tuple[tuple[str, int], ...]  # (what, vCPUs)

    @property
    def vcpus(self) -> int:
        return sum(v for _, v in self.parts)


def vcpu_demand(settings: Settings) -> tuple[list[VcpuDemand], list[str]]:
    """vCPUs each quota must cover with every node group at maxSize, and types with no known quota.

    A group with several instance types is counted at its largest one (the worst case EKS may
    launch)."""
    parts: dict[VcpuQuota, list[tuple[str, int]]] = {}
    unmapped: list[str] = []
    groups = [(g.name, g.instance_types, g.max_size, g.capacity_type) for g in settings.node_groups]
    groups.append(("system", (settings.system_instance_type,),
                   settings.system_node_count + SYSTEM_NODE_GROUP_SURGE, "ON_DEMAND"))
    for name, types, max_size, capacity in groups:
        per_quota: dict[VcpuQuota, tuple[int, str]] = {}
        for instance_type in types:
            quota = vcpu_quota(instance_type, capacity)
            if quota is None:
                unmapped.append(instance_type)
                continue
            vcpu = catalog.instance_type(instance_type).vcpu
            if quota not in per_quota or vcpu > per_quota[quota][0]:
                per_quota[quota] = (vcpu, instance_type)
        for quota, (vcpu, instance_type) in per_quota.items():
            label = f"{name}: {max_size} x {instance_type}{' (SPOT)' if capacity == 'SPOT' else ''}"
            parts.setdefault(quota, []).append((label, max_size * vcpu))
    return [VcpuDemand(q, tuple(p)) for q, p in parts.items()], unmapped


def _default_vcpus(aws: Aws, instance_types: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    names = sorted(instance_types)
    paginator = aws.ec2().get_paginator("describe_instance_types")
    for start in range(0, len(names), 100):
        chunk = names[start:start + 100]
        for page in paginator.paginate(Filters=[{"Name": "instance-type", "Values": chunk}]):
            for info in page["InstanceTypes"]:
                found[info["InstanceType"]] = info["VCpuInfo"]["DefaultVCpus"]
    return found


def vcpus_in_use(aws: Aws, cluster_name: str) -> dict[VcpuQuota, int]:
    """vCPUs that running instances outside this cluster already take from each quota.

    The cluster's own instances are left out so a preflight of a deployed stack does not count
    its nodes twice."""
    instances: list[tuple[str, str, int | None]] = []
    paginator = aws.ec2().get_paginator("describe_instances")
    for page in paginator.paginate(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                if cluster_tag(tag_map(instance.get("Tags")), cluster_name):
                    continue
                capacity = "SPOT" if instance.get("InstanceLifecycle") == "spot" else "ON_DEMAND"
                cpu = instance.get("CpuOptions", {})
                vcpus = cpu["CoreCount"] * cpu["ThreadsPerCore"] if "CoreCount" in cpu and "ThreadsPerCore" in cpu \
                    else None
                instances.append((instance["InstanceType"], capacity, vcpus))
    defaults = _default_vcpus(aws, {t for t, _, v in instances if v is None}) if instances else {}
    used: dict[VcpuQuota, int] = {}
    for instance_type, capacity, vcpus in instances:
        quota = vcpu_quota(instance_type, capacity)
        if quota is not None:
            used[quota] = used.get(quota, 0) + (vcpus if vcpus is not None else defaults.get(instance_type, 0))
    return used


def quota_value(aws: Aws, quota: VcpuQuota) -> float:
    """The applied quota value; AWS documents that some quotas only have a default value."""
    client = aws.service_quotas()
    try:
        return client.get_service_quota(ServiceCode="ec2", QuotaCode=quota.code)["Quota"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
    return client.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=quota.code)["Quota"]["Value"]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def increase_command(quota: VcpuQuota, desired: int, region: str) -> str:
    return (f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {quota.code} "
            f"--desired-value {desired} --region {shlex.quote(region)}")


def quota_check(demand: VcpuDemand, value: float, in_use: int, region: str) -> Check:
    needed = demand.vcpus + in_use
    breakdown = "; ".join(f"{what} = {vcpus}" for what, vcpus in demand.parts)
    need = f"needs {demand.vcpus} vCPUs at maxSize ({breakdown}) + {in_use} in use by other instances = {needed}"
    target = f"{demand.quota.code} {demand.quota.name}"
    if value >= needed:
        return Check("vcpu-quota", target, True, f"{need}; quota {_number(value)}")
    desired = max(needed, math.ceil(value))
    return Check("vcpu-quota", target, False,
                 f"{need}; quota is only {_number(value)} in {region}: request an increase to {desired} "
                 f"(+{desired - math.floor(value)}): {increase_command(demand.quota, desired, region)} "
                 f"(or in the Service Quotas console; GPU quota requests can take a day or more)")


def check_quotas(aws: Aws, settings: Settings) -> list[Check]:
    demands, unmapped = vcpu_demand(settings)
    checks = [Check("vcpu-quota", t, False, f"no vCPU quota mapping for {t} in hami-eks; check its EC2 quota "
                                            f"in the Service Quotas console before deploying")
              for t in dict.fromkeys(unmapped)]
    in_use = vcpus_in_use(aws, settings.cluster_name)
    for demand in demands:
        target = f"{demand.quota.code} {demand.quota.name}"
        try:
            value = quota_value(aws, demand.quota)
        except ClientError as exc:
            if is_credentials_error(exc):
                raise
            checks.append(Check("vcpu-quota", target, False,
                                f"cannot read the quota ({describe_client_error(exc)}); it must be at least "
                                f"{demand.vcpus + in_use.get(demand.quota, 0)} vCPUs. Grant "
                                f"servicequotas:GetServiceQuota, or check it in the Service Quotas console"))
            continue
        checks.append(quota_check(demand, value, in_use.get(demand.quota, 0), aws.region))
    return checks


# ---- instance types and zones -----------------------------------------------------------------

def _gpus(info: InstanceTypeInfoTypeDef) -> list[tuple[str, int]]:
    return [(g.get("Name", "?"), g.get("Count", 0)) for g in info.get("GpuInfo", {}).get("Gpus", [])]


def gpu_check(instance_type: str, info: InstanceTypeInfoTypeDef | None, offered: bool, region: str) -> Check:
    """Offered in the region, and EC2's GpuInfo agrees with the catalog. AWS names GPUs as our
    catalog's short names do ("T4", "A10G", "L4", ...; tests/test_catalog.py checks every entry
    against EC2's data), so they compare directly."""
    if not offered or info is None:
        return Check("instance-type", instance_type, False,
                     f"EC2 does not offer {instance_type} in {region} (DescribeInstanceTypeOfferings); "
                     f"pick another instance type or region")
    ours = catalog.instance_type(instance_type)
    expected = [(ours.gpu.short, ours.gpu_count)] if ours.gpu is not None and ours.gpu_count else []
    actual = _gpus(info)
    shown = ", ".join(f"{count}x {name}" for name, count in actual) or "no GPU"
    if [(n.lower(), c) for n, c in actual] == [(n.lower(), c) for n, c in expected]:
        return Check("instance-type", instance_type, True,
                     f"offered in {region}; EC2 GpuInfo: {shown}, as in the catalog")
    wanted = ", ".join(f"{count}x {name}" for name, count in expected) or "no GPU"
    return Check("instance-type", instance_type, False,
                 f"EC2 GpuInfo says {shown}, the hami-eks catalog says {wanted}: plans and HAMi memory slices "
                 f"would be wrong. Fix {instance_type} in hamieks/catalog.py (GPU model, count, memory as HAMi "
                 f"registers it) or use another instance type")


def check_instance_types(aws: Aws, settings: Settings) -> list[Check]:
    wanted = list(settings.instance_types)
    type_filter: list[FilterTypeDef] = [{"Name": "instance-type", "Values": wanted}]
    ec2 = aws.ec2()
    offered = {
        o["InstanceType"]
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(LocationType="region",
                                                                                   Filters=type_filter)
        for o in page["InstanceTypeOfferings"]
    }
    # A filter, not InstanceTypes=[...]: an unknown name in InstanceTypes fails the whole call.
    found: dict[str, InstanceTypeInfoTypeDef] = {
        info["InstanceType"]: info
        for page in ec2.get_paginator("describe_instance_types").paginate(Filters=type_filter)
        for info in page["InstanceTypes"]
    }
    return [gpu_check(t, found.get(t), t in offered, aws.region) for t in wanted]


def check_zones(aws: Aws, settings: Settings) -> Check:
    wanted = list(settings.instance_types)
    paginator = aws.ec2().get_paginator("describe_instance_type_offerings")
    offerings = [
        (o["InstanceType"], o["Location"])
        for page in paginator.paginate(LocationType="availability-zone",
                                       Filters=[{"Name": "instance-type", "Values": wanted}])
        for o in page["InstanceTypeOfferings"]
    ]
    target = f"{settings.availability_zone_count} zones in {settings.region}"
    try:
        chosen = zones.choose_availability_zones(offerings, wanted, settings.availability_zone_count, settings.region)
    except ConfigError as exc:
        return Check("zones", target, False, "; ".join(f"{key}: {message}" for key, message in exc.problems))
    return Check("zones", target, True, f"{', '.join(chosen)} offer every instance type ({', '.join(wanted)})")


# ---- identity and EKS -------------------------------------------------------------------------

def check_identity(aws: Aws) -> Check:
    identity = aws.sts().get_caller_identity()
    return Check("identity", aws.region, True,
                 f"account {identity['Account']} as {identity['Arn']}, region {aws.region}")


# EKS pricing: extended support bills the control plane at $0.60/hour instead of $0.10.
EXTENDED_SUPPORT_USD_PER_HOUR = 0.60


def check_kubernetes_version(aws: Aws, settings: Settings) -> Check:
    wanted = settings.kubernetes_version
    offered: dict[str, dict[str, Any]] = {}
    for page in aws.eks().get_paginator("describe_cluster_versions").paginate(includeAll=True):
        for version in page.get("clusterVersions", []):
            offered[version.get("clusterVersion", "")] = dict(version)
    ours = ", ".join(versions.EKS_KUBERNETES_VERSIONS)
    info = offered.get(wanted)
    supported = sorted((v for v, i in offered.items() if _support(i) != "UNSUPPORTED"),
                       key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))
    if info is None or _support(info) == "UNSUPPORTED":
        state = "does not offer" if info is None else "no longer supports"
        return Check("kubernetes-version", wanted, False,
                     f"EKS in {aws.region} {state} Kubernetes {wanted} (offered: {', '.join(supported) or 'none'}); "
                     f"set hami-eks:kubernetesVersion to one of those that hami-eks supports ({ours})")
    if _support(info) == "EXTENDED_SUPPORT":
        end = info.get("endOfExtendedSupportDate")
        until = f" until {end:%Y-%m-%d}" if end is not None else ""
        return Check("kubernetes-version", wanted, True,
                     f"offered in {aws.region}, but in extended support{until}: the control plane costs "
                     f"${EXTENDED_SUPPORT_USD_PER_HOUR:.2f}/hour, not the plan's "
                     f"${catalog.EKS_CONTROL_PLANE_USD_PER_HOUR:.2f}; move to a newer version ({ours})")
    end = info.get("endOfStandardSupportDate")
    until = f" until {end:%Y-%m-%d}" if end is not None else ""
    return Check("kubernetes-version", wanted, True, f"offered in {aws.region}, standard support{until}")


def _support(info: dict[str, Any]) -> str:
    # versionStatus is the newer field; status (lower-case, hyphenated) the older one.
    status = info.get("versionStatus") or str(info.get("status", "")).upper().replace("-", "_")
    return str(status)


# ---- leftovers of an earlier cluster ------------------------------------------------------------

def control_plane_log_group(cluster_name: str) -> str:
    """Where EKS writes the control-plane logs, and the name components/cluster.py gives its group."""
    return f"/aws/eks/{cluster_name}/cluster"


def check_log_group(aws: Aws, settings: Settings, stack: str) -> Check:
    """The stack creates the log group itself (with a retention); one that exists without the
    stack's tags was made by EKS - typically from late logs after a destroy - or by hand, and
    `up` would fail on it with ResourceAlreadyExists."""
    name = control_plane_log_group(settings.cluster_name)
    logs = aws.logs()
    groups = [g for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
              for g in page["logGroups"] if g["logGroupName"] == name]
    if not groups:
        return Check("log-group", name, True, "absent; `up` creates it with the configured retention")
    arn = str(groups[0].get("arn", "")).removesuffix(":*")
    tags = logs.list_tags_for_resource(resourceArn=arn).get("tags", {}) if arn else {}
    if (tags.get("project"), tags.get("stack")) == (PROJECT_TAG_VALUE, stack):
        return Check("log-group", name, True, f"exists and belongs to stack {stack}")
    delete = shlex.join(["aws", "logs", "delete-log-group", "--log-group-name", name, "--region", aws.region])
    # components/cluster.py: LogGroup "<cluster>-control-plane-logs" under the top-level
    # hami-eks:cluster:Cluster component named after the cluster.
    parent = f"urn:pulumi:{stack}::hami-eks::hami-eks:cluster:Cluster::{settings.cluster_name}"
    adopt = shlex.join(["pulumi", "import", "--stack", stack, "aws:cloudwatch/logGroup:LogGroup",
                        f"{settings.cluster_name}-control-plane-logs", name, "--parent", f"cluster={parent}"])
    return Check("log-group", name, False,
                 f"exists but is not stack {stack}'s (EKS re-creates it from late logs after a destroy): `up` would "
                 f"fail with ResourceAlreadyExists. Delete it (export its logs first if you need them): {delete}; "
                 f"or, if the stack's cluster still runs (upgrading a stack whose group EKS created), adopt it: {adopt}")


# ---- all of it ----------------------------------------------------------------------------------

_PERMISSIONS = {
    "instance-type": "ec2:DescribeInstanceTypeOfferings, ec2:DescribeInstanceTypes",
    "zones": "ec2:DescribeInstanceTypeOfferings",
    "vcpu-quota": "ec2:DescribeInstances, ec2:DescribeInstanceTypes, servicequotas:GetServiceQuota",
    "kubernetes-version": "eks:DescribeClusterVersions",
    "log-group": "logs:DescribeLogGroups, logs:ListTagsForResource",
}


def _guarded(name: str, target: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check whose API call is refused fails with the permission to grant; bad credentials and
    unreachable endpoints propagate (the command cannot run at all)."""
    try:
        return run()
    except ClientError as exc:
        if is_credentials_error(exc):
            raise
        return [Check(name, target, False, f"cannot check ({describe_client_error(exc)}); the principal needs "
                                           f"{_PERMISSIONS[name]}")]


def run_preflight(aws: Aws, settings: Settings, stack: str = "",
                  egress_lookup: egress.EgressLookup = egress.lookup_egress_address) -> list[Check]:
    """Every check, identity first: without working credentials nothing else can be asked.
    `stack` names the stack whose tags mark its own log group (empty: the check is skipped)."""
    if not aws.has_credentials():
        raise AwsCredentialsError(f"no AWS credentials found; {CREDENTIALS_FIX}")
    checks = [check_identity(aws)]
    checks += _guarded("instance-type", ", ".join(settings.instance_types), lambda: check_instance_types(aws, settings))
    checks += _guarded("zones", settings.region, lambda: [check_zones(aws, settings)])
    checks += _guarded("vcpu-quota", settings.region, lambda: check_quotas(aws, settings))
    checks += _guarded("kubernetes-version", settings.kubernetes_version,
                       lambda: [check_kubernetes_version(aws, settings)])
    if stack:
        checks += _guarded("log-group", control_plane_log_group(settings.cluster_name),
                           lambda: [check_log_group(aws, settings, stack)])
    public = egress.check_public_access(settings.public_access_cidrs, egress_lookup)
    return checks + ([public] if public else [])
