"""hami-eks: settings -> preflight -> components -> outputs.

Every check that can fail runs before the first resource is registered, so a bad stack never
half-creates anything.
"""

from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import stack_config
from components.cluster import Cluster, ClusterArgs
from components.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs
from components.hami import Hami, HamiArgs
from components.image_cache import ImageCache, ImageCacheArgs
from components.monitoring import Monitoring, MonitoringArgs, ServingScrape
from components.network import Network, NetworkArgs
from components.serving import ModelServing, ModelServingArgs
from hamieks import cost, versions
from hamieks.aws import pricing as aws_pricing
from hamieks.aws import session as aws_session
from hamieks.config import access_entries, stackfiles, zones
from hamieks.config import network as network_plan
from hamieks.config import settings as settings_mod
from hamieks.config.conventions import SYSTEM_NODE_LABEL
from hamieks.errors import HamiEksError
from hamieks.kube import hami_values, monitoring_dashboards
from hamieks.modelfit import report as modelfit_report
from hamieks.report import outputs, risks
from hamieks.scheduling import placement, placement_report

# ---- settings and preflight (no resources yet) ----------------------------------------------
config, secrets = stack_config.read()
try:
    # `pulumi stack init` writes a stack file holding only `encryptionsalt:`; `up` would then build
    # the project defaults (the $10/hour demo). The CLI runs the program in the project directory.
    stackfiles.check_stack_file_if_present(Path.cwd(), pulumi.get_stack())
    settings = settings_mod.load_settings(config)
    # Simulate HAMi before paying for anything: a replica that cannot be placed would sit
    # Pending after a twenty-minute, dollars-an-hour deploy.
    # Live prices where AWS answers (hami-eks:prices), the recorded table otherwise.
    prices, price_note = aws_pricing.price_lookup(settings.prices, settings.region, aws_session.stack_profile(config))
    plan = placement.plan(settings, prices=prices)
    # ... and whether each model loads in its slice: a misfit crash-loops after the same wait.
    fits = modelfit_report.model_fits(settings)
    offerings = aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=list(settings.instance_types))],
    )
    zone_names = zones.choose_availability_zones(
        zip(offerings.instance_types, offerings.locations, strict=True), settings.instance_types,
        settings.availability_zone_count, settings.region)
    # EKS makes whoever creates the cluster an admin (pulumi-eks always bootstraps the creator);
    # every other admin gets an access entry. Which ones depends on the config and on whether the
    # cluster exists, never on who runs this `up` (hamieks/config/access_entries.py).
    # An assumed-role session ARN is resolved to its IAM role to recognise it in the list.
    caller = aws.get_caller_identity()
    deployer = aws.iam.get_session_context(arn=caller.arn).issuer_arn
    access, access_warnings = access_entries.cluster_access(
        settings.admin_principal_arns, settings.cluster_creator_arn, deployer,
        cluster_exists=settings.cluster_name in aws.eks.get_clusters().names,
        cluster_name=settings.cluster_name, stack=pulumi.get_stack(), previewing=pulumi.runtime.is_dry_run())
except HamiEksError as error:
    raise pulumi.RunError(str(error)) from None
for warning in access_warnings:
    pulumi.log.warn(warning)
if access.creator and not settings.cluster_creator_arn:
    pulumi.log.warn(
        f"{access.creator} creates cluster {settings.cluster_name} and stays its admin through EKS: record it once "
        f"with `pulumi config set hami-eks:clusterCreatorArn {access.creator} --stack {pulumi.get_stack()}` and "
        f"commit Pulumi.{pulumi.get_stack()}.yaml, so that another principal's `up` keeps the same access entries")
# An order-dependent plan fails like an unplaceable one: the rollout's arrival order decides.
if not plan.deployable:
    message = placement_report.format_unschedulable(plan, pulumi.get_stack())
    if not settings.allow_unschedulable:
        raise pulumi.RunError(message)
    pulumi.log.warn(message)
elif plan.order_unproven:  # hami-eks:acceptSampledOrderCheck took the sample
    pulumi.log.warn(placement_report.format_unproven(plan, pulumi.get_stack()))
if modelfit_report.misfits(fits):
    message = modelfit_report.format_misfits(fits, pulumi.get_stack())
    if not settings.allow_model_misfit:
        raise pulumi.RunError(message)
    pulumi.log.warn(message)
for warning in [*risks.risks(settings, plan.cost), *modelfit_report.format_warnings(fits),
                *modelfit_report.vllm_warnings(settings)]:
    pulumi.log.warn(warning)
pulumi.log.info(price_note)
if plan.cost is None:
    pulumi.log.warn(f"{cost.unpriced_message(settings)}; estimatedHourlyCostUsd is unset")

tags = {"project": "hami-eks", "stack": pulumi.get_stack(), "cluster": settings.cluster_name}

# ---- AWS ------------------------------------------------------------------------------------
network = Network(settings.cluster_name, NetworkArgs(
    cidr=settings.vpc_cidr, subnets=network_plan.zone_subnets(settings.vpc_cidr, zone_names),
    nat_gateway_per_az=settings.nat_gateway_per_az, tags=tags))

# Each add-on the program creates runs the version for the cluster's Kubernetes minor: a pin from
# hamieks/versions.py, else EKS's default for that minor (DescribeAddonVersions).
addon_versions: dict[str, pulumi.Input[str]] = {
    addon: versions.pinned_addon_version(settings.kubernetes_version, addon) or aws.eks.get_addon_version_output(
        addon_name=addon, kubernetes_version=settings.kubernetes_version, most_recent=False).version
    for addon in versions.EKS_ADDONS
}
cluster = Cluster(settings.cluster_name, ClusterArgs(
    cluster_name=settings.cluster_name, kubernetes_version=settings.kubernetes_version,
    vpc_id=network.vpc_id, public_subnet_ids=network.public_subnet_ids,
    private_subnet_ids=network.private_subnet_ids, public_access_cidrs=settings.public_access_cidrs,
    admin_principal_arns=access.entries, system_instance_type=settings.system_instance_type,
    system_node_count=settings.system_node_count, system_node_labels=SYSTEM_NODE_LABEL.as_dict(), tags=tags,
    log_retention_days=settings.control_plane_log_retention_days,
    aws_profile=aws_session.stack_profile(config), addon_versions=addon_versions))

gpu_groups = [
    GpuNodeGroup(f"{settings.cluster_name}-{group.name}", GpuNodeGroupArgs(
        cluster=cluster.eks_cluster, node_role=cluster.node_role, subnet_ids=network.private_subnet_ids,
        group=group, tags=tags, prerequisites=tuple(cluster.node_prerequisites),
        kubernetes_version=settings.kubernetes_version))
    for group in settings.node_groups
]

# ---- Kubernetes -----------------------------------------------------------------------------
# One explicit provider from the cluster's kubeconfig: nothing may fall back to an ambient
# ~/.kube/config and deploy into some other cluster.
provider = k8s.Provider(f"{settings.cluster_name}-k8s", kubeconfig=cluster.provider_kubeconfig,
                        enable_server_side_apply=True)

# Optional: nodes pull Docker Hub and registry.k8s.io images through ECR instead of anonymously;
# everything that pulls through it depends on the cache (the serving objects through hami).
image_cache = None
if settings.ecr_pull_through_cache:
    image_cache = ImageCache(settings.cluster_name, ImageCacheArgs(
        cluster_name=settings.cluster_name,
        node_role=cluster.node_role, account_id=caller.account_id, region=settings.region,
        docker_hub_credential_arn=settings.docker_hub_credential_arn))
image_registry = image_cache.registry if image_cache else None

# Optional (on by default): kube-prometheus-stack. Its CRDs must exist before HAMi's release,
# whose chart renders its ServiceMonitors only when monitoring.coreos.com/v1 is served. The
# plan-vs-reality dashboard carries the plan's figures.
monitoring = None
if settings.monitoring:
    planned = monitoring_dashboards.PlanFigures(
        services=tuple(monitoring_dashboards.PlannedService(
            name, tuple(p.memory_mib for p in plan.placements if p.service == name),
            next((fit.kv_cache_tokens for fit in fits if fit.service == name), None))
            for name in (svc.name for svc in settings.services)),
        usd_per_hour=plan.estimated_hourly_cost_usd)
    monitoring = Monitoring("monitoring", MonitoringArgs(settings=settings, plan=planned),
                            opts=pulumi.ResourceOptions(provider=provider, depends_on=[cluster]))

# HAMi's device plugin only starts once GPU nodes exist, and the release waits for it.
hami = Hami("hami", HamiArgs(chart_version=settings.hami_chart_version,
                             values=hami_values.release_values(settings, image_registry),
                             image_registry=image_registry),
            opts=pulumi.ResourceOptions(provider=provider,
                                        depends_on=[cluster, *gpu_groups, *([image_cache] if image_cache else []),
                                                    *([monitoring] if monitoring else [])]))

# GPU pods created before HAMi's webhook serves bypass hami-scheduler and stay Pending: the
# serving objects wait for the whole Hami component, its webhook-ready Job included.
serving = ModelServing("serving", ModelServingArgs(settings=settings, hf_token=secrets.get("hfToken"),
                                                   api_key=secrets.get("vllmApiKey"),
                                                   image_registry=image_registry),
                       opts=pulumi.ResourceOptions(provider=provider, depends_on=[hami]))
if monitoring is not None:
    ServingScrape("serving-scrape", settings,
                  opts=pulumi.ResourceOptions(provider=provider, depends_on=[monitoring, serving]))

# ---- outputs --------------------------------------------------------------------------------
pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig_json))
pulumi.export("clusterName", cluster.name)
pulumi.export("region", settings.region)
pulumi.export("clusterEndpoint", cluster.endpoint)
pulumi.export("kubectlConfigCommand", outputs.kubectl_config_command(settings))
pulumi.export("clusterAdmins", access.admins)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("availabilityZones", zone_names)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("nodeGroups", outputs.node_groups(settings))
pulumi.export("services", outputs.services(settings))
pulumi.export("placementPlan", plan.to_dict(pulumi.get_stack()))
pulumi.export("modelFits", [fit.to_dict() for fit in fits])
pulumi.export("gpuMemoryAllocation", plan.gpu_memory_allocation)
pulumi.export("estimatedHourlyCostUsd", plan.estimated_hourly_cost_usd)
