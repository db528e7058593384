"""One EKS managed node group of GPU instances, labelled and tainted for HAMi."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from hamieks.conventions import GPU_TAINT
from hamieks.node_groups import NodeGroupSettings

# AL2023 NVIDIA AMI: NVIDIA driver 580 and the container toolkit, with nodeadm making `nvidia`
# containerd's default runtime (HAMi needs that; no RuntimeClass). It does not install NVIDIA's
# device plugin, which must not run beside HAMi's. Set explicitly: the `gpu` flag alone does not
# reliably select it, and AL2_x86_64_GPU (the reference's) is past end of support and has no
# AMI for Kubernetes >= 1.33.
GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"


@dataclass(frozen=True)
class GpuNodeGroupArgs:
    cluster: eks.Cluster
    node_role: aws.iam.Role
    subnet_ids: pulumi.Input[list[str]]
    group: NodeGroupSettings
    tags: dict[str, str]


class GpuNodeGroup(pulumi.ComponentResource):
    """Creates: an `eks.ManagedNodeGroup` on the AL2023 NVIDIA AMI with the group's instance
    types, scaling, disk and capacity type, labels `gpu=on` (HAMi's device plugin selects it)
    and `accelerator=<group>`, and the `nvidia.com/gpu=present:NoSchedule` taint."""

    node_group: eks.ManagedNodeGroup

    def __init__(self, name: str, args: GpuNodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:gpu:GpuNodeGroup", name, None, opts)
        group = args.group
        self.node_group = eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=args.cluster,
            node_role=args.node_role,
            ami_type=GPU_AMI_TYPE,
            instance_types=list(group.instance_types),
            capacity_type=group.capacity_type,
            disk_size=group.disk_size_gib,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=group.desired_size, min_size=group.min_size, max_size=group.max_size),
            subnet_ids=args.subnet_ids,
            labels=group.labels,
            taints=[aws.eks.NodeGroupTaintArgs(
                key=GPU_TAINT.key, value=GPU_TAINT.value, effect=GPU_TAINT.eks_effect,
            )],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
