"""hami-eks: settings -> preflight -> components -> outputs.

Every check that can fail runs before the first resource is registered, so a bad stack never
half-creates anything.
"""

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import stack_config
from components.cluster import Cluster, ClusterArgs
from components.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs
from components.hami import Hami, HamiArgs
from components.network import Network, NetworkArgs
from components.serving import ModelServing, ModelServingArgs
from hamieks import cost, hami_values, outputs, placement, settings as settings_mod, zones
from hamieks import network as network_plan
from hamieks.conventions import SYSTEM_NODE_LABEL
from hamieks.errors import HamiEksError

# ---- settings and preflight (no resources yet) ----------------------------------------------
config, hf_token = stack_config.read()
try:
    settings = settings_mod.load_settings(config)
    # Simulate HAMi before paying for anything: a replica that cannot be placed would sit
    # Pending after a twenty-minute, dollars-an-hour deploy.
    plan = placement.plan(settings)
    offerings = aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=list(settings.instance_types))],
    )
    zone_names = zones.choose_availability_zones(
        zip(offerings.instance_types, offerings.locations), settings.instance_types,
        settings.availability_zone_count, settings.region)
    # EKS makes whoever creates the cluster an admin (pulumi-eks always bootstraps the creator),
    # so the deployer needs no access entry, and one for the same principal fails with a 409.
    # An assumed-role session ARN is resolved to its IAM role to recognise it in the list.
    caller = aws.get_caller_identity()
    deployer = aws.iam.get_session_context(arn=caller.arn).issuer_arn
    extra_admins = tuple(arn for arn in settings.admin_principal_arns if arn != deployer)
except HamiEksError as error:
    raise pulumi.RunError(str(error)) from None
if not plan.all_placed:
    message = placement.format_unschedulable(plan, pulumi.get_stack())
    if not settings.allow_unschedulable:
        raise pulumi.RunError(message)
    pulumi.log.warn(message)
if plan.cost is None:
    pulumi.log.warn(f"{cost.unpriced_message(settings)}; estimatedHourlyCostUsd is unset")

tags = {"project": "hami-eks", "stack": pulumi.get_stack(), "cluster": settings.cluster_name}

# ---- AWS ------------------------------------------------------------------------------------
network = Network(settings.cluster_name, NetworkArgs(
    cidr=settings.vpc_cidr, subnets=network_plan.zone_subnets(settings.vpc_cidr, zone_names),
    nat_gateway_per_az=settings.nat_gateway_per_az, tags=tags))

cluster = Cluster(settings.cluster_name, ClusterArgs(
    cluster_name=settings.cluster_name, kubernetes_version=settings.kubernetes_version,
    vpc_id=network.vpc_id, public_subnet_ids=network.public_subnet_ids,
    private_subnet_ids=network.private_subnet_ids, public_access_cidrs=settings.public_access_cidrs,
    admin_principal_arns=extra_admins, system_instance_type=settings.system_instance_type,
    system_node_count=settings.system_node_count, system_node_labels=SYSTEM_NODE_LABEL.as_dict(), tags=tags))

gpu_groups = [
    GpuNodeGroup(f"{settings.cluster_name}-{group.name}", GpuNodeGroupArgs(
        cluster=cluster.eks_cluster, node_role=cluster.node_role, subnet_ids=network.private_subnet_ids,
        group=group, tags=tags))
    for group in settings.node_groups
]

# ---- Kubernetes -----------------------------------------------------------------------------
# One explicit provider from the cluster's kubeconfig: nothing may fall back to an ambient
# ~/.kube/config and deploy into some other cluster.
provider = k8s.Provider(f"{settings.cluster_name}-k8s", kubeconfig=cluster.kubeconfig_json,
                        enable_server_side_apply=True)

# HAMi's device plugin only starts once GPU nodes exist, and the release waits for it.
hami = Hami("hami", HamiArgs(chart_version=settings.hami_chart_version,
                             values=hami_values.release_values(settings)),
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[cluster, *gpu_groups]))

# GPU pods created before HAMi's webhook exists bypass hami-scheduler and stay Pending.
serving = ModelServing("serving", ModelServingArgs(settings=settings, hf_token=hf_token),
                       opts=pulumi.ResourceOptions(provider=provider, depends_on=[hami]))

# ---- outputs --------------------------------------------------------------------------------
pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig_json))
pulumi.export("clusterName", cluster.name)
pulumi.export("region", settings.region)
pulumi.export("clusterEndpoint", cluster.endpoint)
pulumi.export("kubectlConfigCommand", outputs.kubectl_config_command(settings))
pulumi.export("clusterAdmins", [deployer, *extra_admins])
pulumi.export("vpcId", network.vpc_id)
pulumi.export("availabilityZones", zone_names)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("nodeGroups", outputs.node_groups(settings))
pulumi.export("services", outputs.services(settings))
pulumi.export("placementPlan", plan.to_dict(pulumi.get_stack()))
pulumi.export("gpuMemoryAllocation", plan.gpu_memory_allocation)
pulumi.export("estimatedHourlyCostUsd", plan.estimated_hourly_cost_usd)
