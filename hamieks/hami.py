"""HAMi's interface and rules (chart and app 2.10.0), in one place.

Everything hami-eks assumes about HAMi lives here: the names of its resources, annotations and
labels, its scheduling policies and their defaults, the device plugin's split count and core
units, how much memory a request is granted, the type string a GPU registers under and how
`use-gputype` matches it. HAMi keeps the same facts in `pkg/util/types.go`,
`pkg/device/nvidia/device.go` (constants and `checkGPUtype`) and the device plugin's
`register.go`; each constant below names its source.

The release values that must agree with the planner (default policies, deviceSplitCount, the
webhook's namespaceSelector) are computed from these constants in `hamieks/kube/hami_values.py`, so
there is no second place to flip them.
"""

from __future__ import annotations

# ---- resources (chart values resourceName / resourceMem / resourceMemPercentage / resourceCores)
RESOURCE_GPU = "nvidia.com/gpu"
RESOURCE_GPUMEM = "nvidia.com/gpumem"
RESOURCE_GPUMEM_PERCENTAGE = "nvidia.com/gpumem-percentage"
RESOURCE_GPUCORES = "nvidia.com/gpucores"

# ---- pod annotations --------------------------------------------------------------------------
# pkg/device/nvidia/device.go: GPUInUse / GPUNoUse
ANNOTATION_USE_GPUTYPE = "nvidia.com/use-gputype"
ANNOTATION_NOUSE_GPUTYPE = "nvidia.com/nouse-gputype"
# pkg/util/types.go: NodeSchedulerPolicyAnnotationKey / GPUSchedulerPolicyAnnotationKey
ANNOTATION_NODE_POLICY = "hami.io/node-scheduler-policy"
ANNOTATION_GPU_POLICY = "hami.io/gpu-scheduler-policy"
# Written by hami-scheduler once a pod is placed (pkg/util/types.go, device.go SupportDevices):
# the node, and per container `GPU-uuid,NVIDIA,<MiB>,<cores>:` records, `;` ending a container.
ANNOTATION_ASSIGNED_NODE = "hami.io/vgpu-node"
ANNOTATION_DEVICES_ALLOCATED = "hami.io/vgpu-devices-allocated"
ANNOTATION_BIND_PHASE = "hami.io/bind-phase"
BIND_PHASE_SUCCESS = "success"

# ---- node annotation --------------------------------------------------------------------------
# pkg/device/nvidia/device.go RegisterAnnos: the device plugin's inventory of the node's GPUs
# (a JSON list since 2.8; `UUID,count,mem,core,type,numa,health,index,mode:` records before).
ANNOTATION_NODE_REGISTER = "hami.io/node-nvidia-register"

# ---- components -------------------------------------------------------------------------------
# The scheduler name the webhook writes into a GPU pod's spec (chart: schedulerName).
SCHEDULER_NAME = "hami-scheduler"
# The release hami-eks installs (components/hami.py), and how the chart labels its workloads:
# the scheduler Deployment and device-plugin DaemonSet carry `app.kubernetes.io/component:
# hami-scheduler` / `hami-device-plugin` (templates/scheduler/deployment.yaml,
# templates/device-plugin/daemonsetnvidia.yaml) and are named `<fullname>-scheduler` /
# `<fullname>-device-plugin`, i.e. hami-scheduler and hami-device-plugin for release "hami".
RELEASE_NAME = "hami"
RELEASE_NAMESPACE = "kube-system"
COMPONENT_LABEL = "app.kubernetes.io/component"
SCHEDULER_COMPONENT = "hami-scheduler"
DEVICE_PLUGIN_COMPONENT = "hami-device-plugin"
SCHEDULER_DEPLOYMENT = "hami-scheduler"
DEVICE_PLUGIN_DAEMONSET = "hami-device-plugin"

# ---- scheduling policies (pkg/util/types.go) ---------------------------------------------------
BINPACK = "binpack"
SPREAD = "spread"
SCHEDULER_POLICIES = (BINPACK, SPREAD)
# hami-scheduler's defaults (chart scheduler.defaultSchedulerPolicy); the release states them
# explicitly (hami_values.py) so this file and the cluster cannot disagree.
DEFAULT_NODE_POLICY = BINPACK
DEFAULT_GPU_POLICY = SPREAD
# GPU policy values HAMi 2.10 understands besides binpack/spread (pkg/util/types.go): sort-key
# chains ("binpack,numa"), "numa", and the filters "mutex" / "topology-aware". The planner does
# not model them (hamieks.scheduling.placement refuses a pod that uses one).
GPU_POLICY_NUMA = "numa"
GPU_POLICY_MUTEX = "mutex"
GPU_POLICY_TOPOLOGY = "topology-aware"
# pkg/util/types.go Weight: both the GPU and the node score are multiplied by it (float32).
SCORE_WEIGHT = 10

# ---- device plugin ------------------------------------------------------------------------------
# devicePlugin.deviceSplitCount: at most this many pods share one GPU. Set in the release values.
DEVICE_SPLIT_COUNT = 10
# The device plugin registers devcore 100 per GPU: gpucores is a percentage of one GPU
# (pkg/util/types.go DeviceLimit).
CORES_PER_GPU = 100
# pkg/device/nvidia/device.go validateMemoryPercentage: the webhook rejects other percentages.
GPUMEM_PERCENTAGE_RANGE = (0, 100)
# devicePlugin.deviceMemoryScaling: 1 = no over-subscription, a 45% slice is 45% of memory.total.
DEVICE_MEMORY_SCALING = 1

# ---- which namespaces the webhook acts on ------------------------------------------------------
# The release's webhook fails closed, but only for namespaces carrying this label, so an outage
# cannot block system pods; the model servers' namespace carries it.
WEBHOOK_SCOPE_LABEL = ("hami-eks.io/gpu-sharing", "enabled")
WEBHOOK_FAILURE_POLICY = "Fail"


def granted_memory_mib(gpumem: int | None, percentage: int | None, gpu_memory_mib: int) -> int:
    """The GPU memory HAMi grants, which the pod sees as memory.total, on a GPU of that size.

    `nvidia.com/gpumem` wins over `gpumem-percentage`; a percentage is floor(total * pct / 100)
    of the memory HAMi registered; with neither the pod gets the whole GPU.
    """
    if gpumem is not None:
        return gpumem
    if percentage is not None:
        return gpu_memory_mib * percentage // 100
    return gpu_memory_mib


def registered_type(nvidia_smi_name: str) -> str:
    """The type string the device plugin registers for a GPU of that nvidia-smi name.

    register.go (getAPIDevices) prefixes "NVIDIA-" only when the name does not already start
    with "NVIDIA": "Tesla T4" -> "NVIDIA-Tesla T4", but "NVIDIA A10G" stays "NVIDIA A10G".
    """
    if nvidia_smi_name.startswith("NVIDIA"):
        return nvidia_smi_name
    return f"NVIDIA-{nvidia_smi_name}"


def gpu_type_matches(use_gputype: str, registered: str) -> bool:
    """`nvidia.com/use-gputype` as device.go's checkGPUtype reads it: a comma list,
    case-insensitive substring match against the registered type.

    The consequence holds in HAMi too: "A10" also matches "A100", "L4" also matches "L40S".
    A blank value is no constraint and matches every GPU (pkg/device/devices.go CheckType, v2.10.0:
    `strings.TrimSpace(inuse) != ""` guards the match); a list of only commas matches none.
    """
    if not use_gputype.strip():
        return True
    registered = registered.lower()
    return any(wanted.strip().lower() in registered for wanted in use_gputype.split(",") if wanted.strip())
