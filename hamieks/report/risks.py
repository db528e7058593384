"""Settings that are valid but probably not what the user wants: warned about, never silent.

`plan` prints them and the Pulumi program logs them as warnings before it creates anything.
Each names the key and what to do about it.
"""

from __future__ import annotations

from hamieks import catalog, cost, versions
from hamieks.config.settings import Settings
from hamieks.config.values import config_key

# Below this a node's root disk holds the AMI and the vLLM image (~10 GB) but few model weights;
# the settings refuse less than 20 GiB outright.
RECOMMENDED_DISK_GIB = 50
OPEN_TO_THE_WORLD = "0.0.0.0/0"


def risks(settings: Settings, estimate: cost.CostEstimate | None) -> list[str]:
    """Every warning for the stack, in a stable order."""
    found: list[str] = []
    if not settings.services:
        gpus = sum(g.desired_size * g.instance.gpu_count for g in settings.node_groups)
        found.append(f"{config_key('services')} is empty: {gpus} GPU(s) would run and serve nothing; add "
                     f"services or lower the node groups' desiredSize to 0")
    used = {s.node_group for s in settings.services}
    for group in settings.node_groups:
        key = f"{config_key('nodeGroups')}.{group.name}"
        if settings.services and group.name not in used and group.desired_size > 0:
            found.append(f"{key}: no service runs on this group, yet its {group.desired_size} node(s) are paid for; "
                         f"remove it, set desiredSize 0, or point a service at it with nodeGroup")
        if not group.min_size == group.desired_size == group.max_size:
            # HAMi's gpumem is not node allocatable (HAMi #579/#922), so neither Cluster
            # Autoscaler nor Karpenter can tell that a new node would fit a Pending GPU pod.
            found.append(f"{key}: minSize {group.min_size}, desiredSize {group.desired_size}, maxSize "
                         f"{group.max_size}, but nothing autoscales GPU groups for HAMi pods (GPU memory is "
                         f"not node allocatable); the group stays at desiredSize: set all three equal")
        if group.disk_size_gib < RECOMMENDED_DISK_GIB:
            found.append(f"{key}.diskSizeGiB: {group.disk_size_gib} GiB leaves little room for model weights "
                         f"next to the AMI and the vLLM image; use at least {RECOMMENDED_DISK_GIB} (100 recommended)")
        if group.capacity_type == "SPOT" and estimate is not None and not any(
                line.variable for line in estimate.lines if line.item.startswith(f"{group.name} nodes")):
            found.append(f"{key}: SPOT is priced at the on-demand rate (an upper bound; Spot prices vary by "
                         f"zone and hour); with AWS credentials `plan --prices live` uses the Spot price history")
    if (ended := versions.END_OF_STANDARD_SUPPORT.get(settings.kubernetes_version)) is not None:
        newer = [v for v in versions.EKS_KUBERNETES_VERSIONS if v not in versions.END_OF_STANDARD_SUPPORT]
        found.append(f"{config_key('kubernetesVersion')}: {settings.kubernetes_version} left EKS standard support on "
                     f"{ended}; in extended support the control plane costs about six times the plan's "
                     f"${catalog.EKS_CONTROL_PLANE_USD_PER_HOUR:.2f}/hour; upgrade to {', '.join(newer)} (one minor "
                     f"per `up`)")
    if OPEN_TO_THE_WORLD in settings.public_access_cidrs:
        found.append(f"{config_key('publicAccessCidrs')}: the cluster's API endpoint is reachable from any address "
                     f"(still behind IAM authentication); list your office/VPN/CI CIDRs instead")
    return found
