"""The EKS control plane, its access, the node IAM role and a small CPU system node group."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
NODE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "ecr": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    # SSM lets an operator open a shell on a GPU node (nvidia-smi) without SSH keys.
    "ssm": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
}
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"


@dataclass(frozen=True)
class ClusterArgs:
    cluster_name: str
    kubernetes_version: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    private_subnet_ids: pulumi.Input[list[str]]
    public_access_cidrs: tuple[str, ...]
    admin_principal_arns: tuple[str, ...]
    system_instance_type: str
    system_node_count: int
    system_node_labels: dict[str, str]
    tags: dict[str, str]


class Cluster(pulumi.ComponentResource):
    """Creates: an `eks.Cluster` (API authentication, access entries, OIDC provider, kube-proxy
    and vpc-cni managed add-ons, no default node group), the IAM role all node groups share,
    a CPU system node group on the AL2023 standard AMI, and the coredns and aws-ebs-csi-driver
    managed add-ons (the latter with an IRSA role).

    coredns and the EBS CSI driver are created here, after the system node group, rather than
    through eks.Cluster's options: a managed add-on waits for its pods to be ready, and inside
    eks.Cluster that happens before any node exists, so it would time out after 20 minutes.
    """

    eks_cluster: eks.Cluster
    node_role: aws.iam.Role
    system_node_group: eks.ManagedNodeGroup
    kubeconfig_json: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    name: str

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("hami-eks:cluster:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            }),
            tags=args.tags, opts=child)
        attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{role}", role=self.node_role.name, policy_arn=arn, opts=child)
            for role, arn in NODE_POLICIES.items()
        ]

        self.eks_cluster = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            vpc_id=args.vpc_id,
            public_subnet_ids=args.public_subnet_ids,
            private_subnet_ids=args.private_subnet_ids,
            endpoint_public_access=True,
            endpoint_private_access=True,
            public_access_cidrs=list(args.public_access_cidrs),
            # The deployer gets cluster-admin from EKS itself (pulumi-eks always sets
            # bootstrapClusterCreatorAdminPermissions); the caller passes only other principals.
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                # Keyed by the principal's name, not its list position, so reordering the list
                # does not replace entries.
                _principal_key(arn): eks.AccessEntryArgs(
                    principal_arn=arn,
                    access_policies={"cluster-admin": eks.AccessPolicyAssociationArgs(
                        policy_arn=ADMIN_POLICY,
                        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    )},
                )
                for arn in args.admin_principal_arns
            },
            skip_default_node_group=True,
            create_oidc_provider=True,
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=True),
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            # The VPC CNI's network-policy agent enforces the NetworkPolicies around the model
            # servers; without it they are accepted and silently ignored.
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )

        self.system_node_group = eks.ManagedNodeGroup(
            f"{name}-system",
            cluster=self.eks_cluster,
            node_role=self.node_role,
            ami_type="AL2023_x86_64_STANDARD",
            instance_types=[args.system_instance_type],
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=args.system_node_count, min_size=args.system_node_count,
                max_size=args.system_node_count + 1),
            subnet_ids=args.private_subnet_ids,
            labels=args.system_node_labels,
            tags=args.tags,
            opts=child,
        )
        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=[self.system_node_group])

        aws.eks.Addon(
            f"{name}-coredns", cluster_name=args.cluster_name, addon_name="coredns",
            resolve_conflicts_on_create="OVERWRITE", tags=args.tags, opts=after_nodes)

        oidc_arn = self.eks_cluster.oidc_provider_arn
        oidc_url = self.eks_cluster.oidc_provider_url
        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi",
            assume_role_policy=pulumi.Output.all(oidc_arn, oidc_url).apply(
                lambda v: json.dumps(_irsa_trust(v[0], v[1], EBS_CSI_SERVICE_ACCOUNT))),
            tags=args.tags, opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-ebs-csi", role=ebs_role.name, policy_arn=EBS_CSI_POLICY, opts=child)
        aws.eks.Addon(
            f"{name}-ebs-csi", cluster_name=args.cluster_name, addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn, resolve_conflicts_on_create="OVERWRITE",
            tags=args.tags, opts=after_nodes)

        self.name = args.cluster_name
        self.kubeconfig_json = self.eks_cluster.kubeconfig_json
        self.endpoint = self.eks_cluster.core.apply(lambda core: core.endpoint)
        self.register_outputs({"kubeconfig": self.kubeconfig_json, "endpoint": self.endpoint})


def _principal_key(arn: str) -> str:
    kind, _, path = arn.split(":", 5)[-1].partition("/")
    return f"{kind}-{path.rsplit('/', 1)[-1]}"


def _irsa_trust(provider_arn: str, provider_url: str, subject: str) -> dict:
    issuer = provider_url.removeprefix("https://")
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{issuer}:sub": subject, f"{issuer}:aud": "sts.amazonaws.com"}},
        }],
    }
