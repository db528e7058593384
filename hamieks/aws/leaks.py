"""Teardown leak audit: what still exists in the account that belonged to the cluster.

`pulumi destroy` deletes what is in Pulumi's state. Kubernetes and EKS create more outside it:
load balancers, target groups and their security groups for Services, EBS volumes for
PersistentVolumes, ENIs of the VPC CNI, the cluster's security group, control-plane log groups.
Left behind they keep costing money, and ENIs / security groups block the VPC's deletion. A
destroy that failed half-way also leaves the stack's own resources.

A resource belongs to the cluster when it carries one of the tags these creators set:
- `kubernetes.io/cluster/<name>` (EKS, the in-tree and the AWS load balancer controllers);
- `eks:cluster-name` = name (managed node groups) or `aws:eks:cluster-name` = name (EKS itself);
- `elbv2.k8s.aws/cluster` = name (AWS Load Balancer Controller);
- `cluster.k8s.amazonaws.com/name` = name (VPC CNI, on the ENIs it creates);
- the stack's own tags project=hami-eks, stack=<stack>, cluster=<name> (__main__.py `tags`; the
  EBS CSI add-on puts them on PVC volumes too, components/cluster.py extraVolumeTags);
plus, without tags, the cluster's own EKS objects, its log groups /aws/eks/<name>/... (EKS may
re-create /aws/eks/<name>/cluster from late logs minutes after a destroy: re-run the audit) and
the ECR repositories its pull-through cache created under the cluster's prefix.
Each leftover comes with the AWS CLI command that deletes it, listed in an order that works
(node groups before the cluster, instances and load balancers before the ENIs and security groups
they hold). The VPC, subnets, route tables and internet gateway are not audited: they cost nothing,
nothing outside Pulumi creates them, and they are left only when a destroy failed, which says so
(run `pulumi destroy` again once the leftovers here are gone).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from hamieks.aws.session import Aws, AwsError, describe_client_error, is_credentials_error
from hamieks.config.conventions import ecr_cache_namespace

PROJECT_TAG_VALUE = "hami-eks"  # __main__.py tags every resource {project, stack, cluster}


@dataclass(frozen=True)
class Leftover:
    kind: str
    id: str
    region: str
    reason: str
    delete_command: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "region": self.region, "reason": self.reason,
                "deleteCommand": self.delete_command}


def cluster_tag(tags: Mapping[str, str], cluster_name: str) -> str | None:
    """The tag that EKS, Kubernetes or their controllers put on what they create for the cluster
    (see the module doc), as "tag key=value", or None."""
    key = f"kubernetes.io/cluster/{cluster_name}"
    if key in tags:
        return f"tag {key}={tags[key]}"
    for key in ("eks:cluster-name", "aws:eks:cluster-name", "elbv2.k8s.aws/cluster", "cluster.k8s.amazonaws.com/name"):
        if tags.get(key) == cluster_name:
            return f"tag {key}={cluster_name}"
    return None


@dataclass(frozen=True)
class Owner:
    """Which cluster (and stack) to look for."""

    cluster_name: str
    stack: str
    region: str

    def reason(self, tags: Mapping[str, str]) -> str | None:
        """Why tags mark a resource as ours, or None."""
        name = self.cluster_name
        by_cluster = cluster_tag(tags, name)
        if by_cluster:
            return by_cluster
        if (tags.get("project"), tags.get("stack"), tags.get("cluster")) == (PROJECT_TAG_VALUE, self.stack, name):
            return f"stack tags project={PROJECT_TAG_VALUE}, stack={self.stack}, cluster={name}"
        return None

    def aws_cli(self, *words: str) -> str:
        """An `aws` CLI command line for this region, each word shell-quoted."""
        return " ".join(["aws", *(shlex.quote(w) for w in words), "--region", shlex.quote(self.region)])


def tag_map(items: Iterable[Any] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in items or [] if "Key" in t}


# ---- EKS ----------------------------------------------------------------------------------------

def eks_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    eks = aws.eks()
    try:
        cluster = eks.describe_cluster(name=owner.cluster_name)["cluster"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return
        raise
    for page in eks.get_paginator("list_nodegroups").paginate(clusterName=owner.cluster_name):
        for group in page.get("nodegroups", []):
            yield Leftover("eks-nodegroup", group, owner.region, f"node group of EKS cluster {owner.cluster_name}",
                           owner.aws_cli("eks", "delete-nodegroup", "--cluster-name", owner.cluster_name,
                                         "--nodegroup-name", group))
    yield Leftover("eks-cluster", owner.cluster_name, owner.region,
                   f"EKS cluster {owner.cluster_name} still exists (status {cluster.get('status', '?')}); "
                   f"delete its node groups first",
                   owner.aws_cli("eks", "delete-cluster", "--name", owner.cluster_name))


# ---- EC2 ----------------------------------------------------------------------------------------

_LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def instance_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    paginator = aws.ec2().get_paginator("describe_instances")
    for page in paginator.paginate(Filters=[{"Name": "instance-state-name", "Values": _LIVE_INSTANCE_STATES}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                reason = owner.reason(tag_map(instance.get("Tags")))
                if reason:
                    iid = instance["InstanceId"]
                    yield Leftover("ec2-instance", iid, owner.region,
                                   f"{reason}; {instance.get('InstanceType', '?')} "
                                   f"{instance.get('State', {}).get('Name', '?')}",
                                   owner.aws_cli("ec2", "terminate-instances", "--instance-ids", iid))


def nat_gateway_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    paginator = aws.ec2().get_paginator("describe_nat_gateways")
    for page in paginator.paginate(Filters=[{"Name": "state", "Values": ["pending", "available", "failed"]}]):
        for gateway in page["NatGateways"]:
            reason = owner.reason(tag_map(gateway.get("Tags")))
            if reason:
                gid = gateway["NatGatewayId"]
                yield Leftover("nat-gateway", gid, owner.region, f"{reason}; billed per hour",
                               owner.aws_cli("ec2", "delete-nat-gateway", "--nat-gateway-id", gid))


def address_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    # DescribeAddresses has no pagination: it returns every address of the region at once.
    for address in aws.ec2().describe_addresses()["Addresses"]:
        reason = owner.reason(tag_map(address.get("Tags")))
        if not reason or "AllocationId" not in address:
            continue
        allocation = address["AllocationId"]
        command = owner.aws_cli("ec2", "release-address", "--allocation-id", allocation)
        if "AssociationId" in address:
            disassociate = owner.aws_cli("ec2", "disassociate-address", "--association-id", address["AssociationId"])
            command = f"{disassociate} && {command}"
        yield Leftover("elastic-ip", allocation, owner.region,
                       f"{reason}; {address.get('PublicIp', '?')}, billed per hour", command)


def network_interface_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    paginator = aws.ec2().get_paginator("describe_network_interfaces")
    for page in paginator.paginate():
        for eni in page["NetworkInterfaces"]:
            reason = owner.reason(tag_map(eni.get("TagSet")))
            if not reason and eni.get("Description") == f"Amazon EKS {owner.cluster_name}":
                reason = f"description 'Amazon EKS {owner.cluster_name}' (an EKS control-plane ENI)"
            if not reason:
                continue
            eid = eni["NetworkInterfaceId"]
            command = owner.aws_cli("ec2", "delete-network-interface", "--network-interface-id", eid)
            attachment = eni.get("Attachment", {})
            if eni.get("Status") == "in-use" and "AttachmentId" in attachment:
                detach = owner.aws_cli("ec2", "detach-network-interface", "--attachment-id",
                                       attachment["AttachmentId"], "--force")
                command = f"{detach} && {command}"
            yield Leftover("network-interface", eid, owner.region,
                           f"{reason}; {eni.get('Status', '?')} in {eni.get('VpcId', '?')} (blocks VPC deletion)",
                           command)


def volume_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    paginator = aws.ec2().get_paginator("describe_volumes")
    for page in paginator.paginate():
        for volume in page["Volumes"]:
            reason = owner.reason(tag_map(volume.get("Tags")))
            if reason:
                vid = volume["VolumeId"]
                yield Leftover("ebs-volume", vid, owner.region,
                               f"{reason}; {volume.get('Size', '?')} GiB {volume.get('State', '?')}, "
                               f"billed per GiB-month",
                               owner.aws_cli("ec2", "delete-volume", "--volume-id", vid))


def security_group_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    paginator = aws.ec2().get_paginator("describe_security_groups")
    for page in paginator.paginate():
        for group in page["SecurityGroups"]:
            if group.get("GroupName") == "default":
                continue  # every VPC's own; it goes with the VPC and cannot be deleted alone
            reason = owner.reason(tag_map(group.get("Tags")))
            if reason:
                gid = group["GroupId"]
                yield Leftover("security-group", gid, owner.region,
                               f"{reason}; {group.get('GroupName', '?')} in {group.get('VpcId', '?')}",
                               owner.aws_cli("ec2", "delete-security-group", "--group-id", gid))


# ---- load balancers -----------------------------------------------------------------------------

def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def elbv2_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    elbv2 = aws.elbv2()
    load_balancers = [lb["LoadBalancerArn"] for page in elbv2.get_paginator("describe_load_balancers").paginate()
                      for lb in page["LoadBalancers"]]
    target_groups = [tg["TargetGroupArn"] for page in elbv2.get_paginator("describe_target_groups").paginate()
                     for tg in page["TargetGroups"]]
    tags: dict[str, dict[str, str]] = {}
    for chunk in _chunks(load_balancers + target_groups, 20):  # DescribeTags takes at most 20 ARNs
        for description in elbv2.describe_tags(ResourceArns=chunk)["TagDescriptions"]:
            tags[description["ResourceArn"]] = tag_map(description.get("Tags"))
    for arn in load_balancers:
        reason = owner.reason(tags.get(arn, {}))
        if reason:
            yield Leftover("load-balancer", arn, owner.region, f"{reason}; billed per hour",
                           owner.aws_cli("elbv2", "delete-load-balancer", "--load-balancer-arn", arn))
    for arn in target_groups:
        reason = owner.reason(tags.get(arn, {}))
        if reason:
            yield Leftover("target-group", arn, owner.region, reason,
                           owner.aws_cli("elbv2", "delete-target-group", "--target-group-arn", arn))


def classic_elb_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    elb = aws.elb()
    names = [lb["LoadBalancerName"] for page in elb.get_paginator("describe_load_balancers").paginate()
             for lb in page["LoadBalancerDescriptions"]]
    for chunk in _chunks(names, 20):  # DescribeTags takes at most 20 names
        for description in elb.describe_tags(LoadBalancerNames=chunk)["TagDescriptions"]:
            reason = owner.reason(tag_map(description.get("Tags")))
            if reason:
                name = description["LoadBalancerName"]
                yield Leftover("classic-load-balancer", name, owner.region, f"{reason}; billed per hour",
                               owner.aws_cli("elb", "delete-load-balancer", "--load-balancer-name", name))


# ---- CloudWatch Logs ----------------------------------------------------------------------------

def log_group_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    # EKS writes control-plane logs to /aws/eks/<name>/cluster; keep the trailing slash so that
    # cluster "demo" does not claim "demo-2"'s groups.
    prefix = f"/aws/eks/{owner.cluster_name}/"
    for page in aws.logs().get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
        for group in page["logGroups"]:
            name = group["logGroupName"]
            # After a destroy EKS may still deliver control-plane logs for a few minutes and
            # re-create the group; the next `up` then fails with ResourceAlreadyExists.
            yield Leftover("log-group", name, owner.region,
                           f"EKS log group of {owner.cluster_name}; {group.get('storedBytes', 0)} bytes stored; "
                           f"EKS may re-create it from late logs: re-run `hami-eks leaks` a few minutes after "
                           f"deleting it",
                           owner.aws_cli("logs", "delete-log-group", "--log-group-name", name))


# ---- ECR pull-through cache ---------------------------------------------------------------------

def cached_repository_leftovers(aws: Aws, owner: Owner) -> Iterator[Leftover]:
    # ECR creates a repository per cached image on first pull, under the cluster's rule prefix
    # (config/conventions.ecr_cache_namespace); destroying the rules leaves them, billed per GB.
    prefix = f"{ecr_cache_namespace(owner.cluster_name)}/"
    for page in aws.ecr().get_paginator("describe_repositories").paginate():
        for repository in page["repositories"]:
            name = repository["repositoryName"]
            if name.startswith(prefix):
                yield Leftover("ecr-repository", name, owner.region,
                               f"image cached by {owner.cluster_name}'s ECR pull-through rules (prefix {prefix})",
                               owner.aws_cli("ecr", "delete-repository", "--repository-name", name, "--force"))


# Deletion order: what holds something else goes first.
FINDERS: tuple[tuple[str, Callable[[Aws, Owner], Iterator[Leftover]]], ...] = (
    ("eks:DescribeCluster, eks:ListNodegroups", eks_leftovers),
    ("ec2:DescribeInstances", instance_leftovers),
    ("elasticloadbalancing:DescribeLoadBalancers, DescribeTargetGroups, DescribeTags", elbv2_leftovers),
    ("elasticloadbalancing:DescribeLoadBalancers, DescribeTags (classic)", classic_elb_leftovers),
    ("ec2:DescribeNatGateways", nat_gateway_leftovers),
    ("ec2:DescribeAddresses", address_leftovers),
    ("ec2:DescribeNetworkInterfaces", network_interface_leftovers),
    ("ec2:DescribeVolumes", volume_leftovers),
    ("ec2:DescribeSecurityGroups", security_group_leftovers),
    ("logs:DescribeLogGroups", log_group_leftovers),
    ("ecr:DescribeRepositories", cached_repository_leftovers),
)


def find_leftovers(aws: Aws, owner: Owner) -> list[Leftover]:
    """Every leftover, in an order in which the delete commands can be run."""
    found: list[Leftover] = []
    for permission, finder in FINDERS:
        try:
            found.extend(finder(aws, owner))
        except ClientError as exc:
            if is_credentials_error(exc):
                raise
            # A part we cannot list may hold leftovers: never report "clean" on a partial audit.
            raise AwsError(f"leak audit incomplete: {describe_client_error(exc)}; the principal needs "
                           f"{permission}") from None
    return found
