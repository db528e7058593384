"""The EKS control plane, its access, the node IAM role and a small CPU system node group."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from components.node_launch_template import hardened_launch_template, node_group_template
from hamieks.config.access_entries import principal_keys
from hamieks.config.settings import CONFIG_KEYS

ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# What a node itself needs, and nothing its pods could borrow: joining the cluster (and, in the
# worker policy, eks-auth:AssumeRoleForPodIdentity for the Pod Identity agent) and pulling images.
# PullOnly, not ReadOnly: no listing or describing of every repository in the account, and it
# includes ecr:BatchImportUpstreamImage, which a pull through an ECR pull-through cache needs.
# The VPC CNI's ENI permissions are on its own role (Pod Identity, below), not here: with them on
# the node role, any process that reaches the node's credentials can rewire the VPC's interfaces.
# No SSM: without SSH there is still `kubectl debug node/<name>` for a shell on a node.
NODE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "ecr": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
}
CNI_POLICY = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
CNI_SERVICE_ACCOUNT = ("kube-system", "aws-node")
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"
CONTROL_PLANE_LOG_TYPES = ["api", "audit", "authenticator"]
# EKS's own default root volume for managed nodes; the system pods need no more.
SYSTEM_DISK_GIB = 20


def _default(key: str) -> int:
    return int(next(k.default for k in CONFIG_KEYS if k.name == key))


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
    log_retention_days: int = _default("controlPlaneLogRetentionDays")
    # The stack's `aws:profile`: the kubeconfig the program's Helm/Kubernetes calls use must
    # authenticate as the same identity that created the cluster, not as the ambient default.
    aws_profile: str | None = None
    # Managed add-on name -> version for this Kubernetes minor (hamieks/versions.addon_version).
    addon_versions: dict[str, pulumi.Input[str]] | None = None


class Cluster(pulumi.ComponentResource):
    """Creates: a KMS key (rotation on) that envelope-encrypts Kubernetes Secrets, the CloudWatch
    log group of the control-plane logs (api, audit, authenticator) with a retention, created
    before the cluster so EKS does not create one that keeps logs forever and outlives the
    stack; an `eks.Cluster` (API authentication, access entries, private and public endpoint,
    OIDC provider, kube-proxy and vpc-cni managed add-ons, no default node group); the VPC CNI's
    own IAM role bound to its service account through EKS Pod Identity (and the Pod Identity
    agent add-on); the IAM role all node groups share; a CPU system node group from a hardened
    launch template on the AL2023 standard AMI; and the coredns and aws-ebs-csi-driver managed
    add-ons (the latter with an IRSA role).

    coredns and the EBS CSI driver are created here, after the system node group, rather than
    through eks.Cluster's options: a managed add-on waits for its pods to be ready, and inside
    eks.Cluster that happens before any node exists, so it would time out after 20 minutes.
    (DaemonSet add-ons - kube-proxy, vpc-cni, the Pod Identity agent - are ready with no node.)
    """

    eks_cluster: eks.Cluster
    node_role: aws.iam.Role
    system_node_group: eks.ManagedNodeGroup
    node_prerequisites: list[pulumi.Resource]
    kubeconfig_json: pulumi.Output[str]
    provider_kubeconfig: pulumi.Output[str]
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

        secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"EKS {args.cluster_name}: envelope encryption of Kubernetes Secrets",
            enable_key_rotation=True,
            # Deleting the stack deletes the cluster first; the key then waits the shortest window.
            deletion_window_in_days=7,
            tags=args.tags, opts=child)
        aws.kms.Alias(f"{name}-secrets", name=f"alias/{args.cluster_name}-eks-secrets",
                      target_key_id=secrets_key.key_id, opts=child)
        # EKS writes to /aws/eks/<cluster>/cluster and creates it, without retention, if it is
        # missing; owned here it has a retention and goes away with the stack.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=args.tags, opts=child)

        access_keys = principal_keys(args.admin_principal_arns)
        self.eks_cluster = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            vpc_id=args.vpc_id,
            public_subnet_ids=args.public_subnet_ids,
            private_subnet_ids=args.private_subnet_ids,
            endpoint_public_access=True,
            # Nodes and pods reach the API server inside the VPC, not through the NAT.
            endpoint_private_access=True,
            public_access_cidrs=list(args.public_access_cidrs),
            encryption_config_key_arn=secrets_key.arn,
            # The deployer gets cluster-admin from EKS itself (pulumi-eks always sets
            # bootstrapClusterCreatorAdminPermissions); the caller passes only other principals.
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                # Keyed by the principal, not its list position, so reordering the list does
                # not replace entries (hamieks/config/access_entries.py).
                access_keys[arn]: eks.AccessEntryArgs(
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
            enabled_cluster_log_types=CONTROL_PLANE_LOG_TYPES,
            # pulumi-eks's own Kubernetes provider authenticates with this profile
            # (cluster.ts createCore/generateKubeconfig: `aws eks get-token ... --profile`).
            provider_credential_opts=eks.KubeconfigOptionsArgs(profile_name=args.aws_profile) if args.aws_profile else None,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*attachments, log_group]),
        )

        # The VPC CNI through EKS Pod Identity rather than IRSA: pulumi-eks creates the vpc-cni
        # add-on inside eks.Cluster, before the OIDC provider a trust policy could name, so an IRSA
        # role for it would be a dependency cycle. A Pod Identity role trusts the EKS service and
        # exists before the cluster. The association and the agent must exist before any node
        # joins, or aws-node starts without credentials (amazon-vpc-cni-k8s#3840).
        cni_role = aws.iam.Role(
            f"{name}-vpc-cni",
            assume_role_policy=aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
            .account_id.apply(lambda account: json.dumps(_pod_identity_trust(account))),
            tags=args.tags, opts=child)
        cni_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-vpc-cni", role=cni_role.name, policy_arn=CNI_POLICY, opts=child)
        after_cluster = pulumi.ResourceOptions(parent=self, depends_on=[self.eks_cluster])
        pod_identity_agent = aws.eks.Addon(
            f"{name}-pod-identity-agent", cluster_name=args.cluster_name, addon_name="eks-pod-identity-agent",
            **_addon_version(args, "eks-pod-identity-agent"), tags=args.tags, opts=after_cluster)
        cni_identity = aws.eks.PodIdentityAssociation(
            f"{name}-vpc-cni", cluster_name=args.cluster_name, namespace=CNI_SERVICE_ACCOUNT[0],
            service_account=CNI_SERVICE_ACCOUNT[1], role_arn=cni_role.arn, tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.eks_cluster, cni_attachment]))
        # Every node group waits for these (GPU groups through node_prerequisites).
        self.node_prerequisites = [cni_identity, pod_identity_agent, *attachments]

        system_template = hardened_launch_template(f"{name}-system", SYSTEM_DISK_GIB, args.tags, child)
        self.system_node_group = eks.ManagedNodeGroup(
            f"{name}-system",
            cluster=self.eks_cluster,
            node_role=self.node_role,
            ami_type="AL2023_x86_64_STANDARD",
            instance_types=[args.system_instance_type],
            launch_template=node_group_template(system_template),
            # Follows the control plane on upgrades (see GpuNodeGroupArgs.kubernetes_version).
            version=args.kubernetes_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=args.system_node_count, min_size=args.system_node_count,
                max_size=args.system_node_count + 1),
            subnet_ids=args.private_subnet_ids,
            labels=args.system_node_labels,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.node_prerequisites),
        )
        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=[self.system_node_group])

        aws.eks.Addon(
            f"{name}-coredns", cluster_name=args.cluster_name, addon_name="coredns",
            **_addon_version(args, "coredns"), tags=args.tags, opts=after_nodes)

        oidc_arn = self.eks_cluster.oidc_provider_arn
        oidc_url = self.eks_cluster.oidc_provider_url
        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi",
            assume_role_policy=pulumi.Output.all(oidc_arn, oidc_url).apply(
                lambda v: json.dumps(_irsa_trust(v[0], v[1], EBS_CSI_SERVICE_ACCOUNT))),
            tags=args.tags, opts=child)
        ebs_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi", role=ebs_role.name, policy_arn=EBS_CSI_POLICY, opts=child)
        # The role ARN alone does not order the add-on after the policy attachment; started
        # first, the controller's first calls are denied and it backs off for minutes.
        aws.eks.Addon(
            f"{name}-ebs-csi", cluster_name=args.cluster_name, addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn, **_addon_version(args, "aws-ebs-csi-driver"),
            # Every volume the driver creates for a PVC carries the stack's tags (project, stack,
            # cluster), which the leak audit finds volumes left after destroy by.
            # controller.extraVolumeTags is in the add-on's configuration schema from its first
            # versions (`aws eks describe-addon-configuration`, additionalProperties: false), unlike
            # the chart's k8sTagClusterId, which a schema that does not list it would refuse.
            configuration_values=json.dumps({"controller": {"extraVolumeTags": dict(args.tags)}}),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_node_group, ebs_attachment]))

        self.name = args.cluster_name
        # The exported kubeconfig stays profile-free (pulumi-eks keeps it so for other users);
        # the program's own Kubernetes provider gets the profile's (Cluster.getKubeconfig). Both
        # come from pulumi-eks generateKubeconfig with the same cluster entry (name, endpoint,
        # CA), and pulumi-kubernetes replaces a provider's objects only when the active cluster
        # entry changes (provider.go DiffConfig), so adding --profile to the user is an update.
        self.kubeconfig_json = self.eks_cluster.kubeconfig_json
        self.provider_kubeconfig = (self.eks_cluster.get_kubeconfig(profile_name=args.aws_profile)
                                    if args.aws_profile else self.kubeconfig_json)
        self.endpoint = self.eks_cluster.core.apply(lambda core: core.endpoint)
        # Secret here too: a component's outputs are stored in the state like a stack's, and the
        # kubeconfig names the cluster's endpoint and how to get its credentials.
        self.register_outputs({"kubeconfig": pulumi.Output.secret(self.kubeconfig_json), "endpoint": self.endpoint})


def _addon_version(args: ClusterArgs, addon: str) -> dict[str, Any]:
    """The add-on's version for the cluster's Kubernetes minor, and OVERWRITE on create and on
    update: the add-on's settings are this program's, and an upgrade of kubernetesVersion moves
    the add-on with it instead of failing on a field someone edited by hand."""
    version = (args.addon_versions or {}).get(addon)
    return {"addon_version": version, "resolve_conflicts_on_create": "OVERWRITE",
            "resolve_conflicts_on_update": "OVERWRITE"}


def _pod_identity_trust(account_id: str) -> dict[str, Any]:
    # EKS Pod Identity: the EKS Auth service assumes the role and tags the session
    # (docs: "Create a Pod Identity association", trust policy). aws:SourceAccount keeps the
    # service from assuming it on behalf of another account's cluster (the confused deputy).
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }],
    }


def _irsa_trust(provider_arn: str, provider_url: str, subject: str) -> dict[str, Any]:
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
