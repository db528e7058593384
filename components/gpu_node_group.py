"""One EKS managed node group of GPU instances, labelled and tainted for HAMi."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from components.node_launch_template import hardened_launch_template, node_group_template
from hamieks.config.conventions import GPU_TAINT
from hamieks.config.node_groups import NodeGroupSettings

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
    # The nodes' kubelet/AMI minor version. pulumi-eks sets it from the cluster only for node groups
    # without a launch template (nodegroup.ts createManagedNodeGroup), so without it the nodes would
    # stay behind a control-plane upgrade. The group depends on the cluster, so Pulumi upgrades the
    # control plane first, as EKS requires.
    kubernetes_version: str
    # What must exist before a node joins (Cluster.node_prerequisites): the VPC CNI's Pod Identity
    # association and agent, or aws-node on the new node starts without AWS credentials.
    prerequisites: tuple[pulumi.Resource, ...] = ()


class GpuNodeGroup(pulumi.ComponentResource):
    """Creates: a launch template (IMDSv2 at hop limit 1, encrypted gp3 root volume of the group's
    disk size, no SSH key) and an `eks.ManagedNodeGroup` from it on the AL2023 NVIDIA AMI with the
    group's instance types, scaling and capacity type, labels `gpu=on` (HAMi's device plugin
    selects it) and `accelerator=<group>`, and the `nvidia.com/gpu=present:NoSchedule` taint."""

    node_group: eks.ManagedNodeGroup

    def __init__(self, name: str, args: GpuNodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:gpu:GpuNodeGroup", name, None, opts)
        group = args.group
        # The disk size lives in the template: EKS refuses diskSize beside a launch template.
        # Switching an existing group from diskSize to a template replaces it (EKS cannot add a
        # template to a group created without one); the new group is created before the old one
        # is drained and deleted.
        self.launch_template = hardened_launch_template(
            name, group.disk_size_gib, args.tags, pulumi.ResourceOptions(parent=self))
        self.node_group = eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=args.cluster,
            node_role=args.node_role,
            ami_type=GPU_AMI_TYPE,
            instance_types=list(group.instance_types),
            capacity_type=group.capacity_type,
            launch_template=node_group_template(self.launch_template),
            version=args.kubernetes_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=group.desired_size, min_size=group.min_size, max_size=group.max_size),
            subnet_ids=args.subnet_ids,
            labels=group.labels,
            taints=[aws.eks.NodeGroupTaintArgs(
                key=GPU_TAINT.key, value=GPU_TAINT.value, effect=GPU_TAINT.eks_effect,
            )],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.prerequisites)),
        )
        self.register_outputs({})
