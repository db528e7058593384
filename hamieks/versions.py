"""Every pinned version in one place, so an upgrade is a one-line, reviewable change."""

# HAMi Helm chart. 2.10.0 is the release the reference demo was verified against; the packaged
# copy in ../shared/reference/charts is rendered by the tests with the values we pass.
HAMI_CHART_NAME = "hami"
HAMI_CHART_VERSION = "2.10.0"
HAMI_CHART_REPO = "https://project-hami.github.io/HAMi/"

# vLLM's OpenAI-compatible server. Tagged per release, never :latest, so a redeploy runs the
# same code. Since v0.20 the plain tag is a CUDA 13 build: it needs driver >= 580 (the AL2023
# NVIDIA AMI ships 580) and no longer supports Volta (V100) - see hamieks/config/vllm_args.py.
VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"

# Kubernetes minor versions in EKS standard support in late 2026. 1.34 leaves standard support on
# 2026-12-02 (extended support costs six times as much per cluster-hour), so 1.35 is the default.
EKS_KUBERNETES_VERSIONS = ("1.34", "1.35", "1.36")
DEFAULT_KUBERNETES_VERSION = "1.35"

# kube-scheduler image for HAMi's scheduler pod, per Kubernetes minor version. Left empty, the
# chart derives the tag from the live cluster when the release is rendered (templates/_helpers.tpl
# resolvedKubeSchedulerTag / strippedKubeVersion: "v1.35.6-eks-ab12cd3" -> "v1.35.6"), so after an
# EKS minor upgrade HAMi keeps scheduling with the old minor until the release changes for another
# reason. Stated here, an upgrade of kubernetesVersion is a visible diff of the release.
# The patch is the Kubernetes release EKS Distro builds the control plane from
# (aws/eks-distro projects/kubernetes/kubernetes/<1-NN>/GIT_TAG, 2026-07-10, PR #4792): never newer
# than what EKS serves once rolled out, and the same minor, which is what the version-skew policy
# requires of a scheduler.
KUBE_SCHEDULER_TAGS = {
    "1.34": "v1.34.9",
    "1.35": "v1.35.6",
    "1.36": "v1.36.2",
}

# kube-prometheus-stack (prometheus-community/helm-charts): the Prometheus operator and its CRDs,
# Prometheus, Grafana, kube-state-metrics and node-exporter (hamieks/kube/monitoring.py). 81.6.2
# is the release of 2026-02-11 (renovate bump in fullstackjam/k8s-gitops PR #304,
# kubernetes/system/monitoring-system/Chart.yaml); the values keys used are those of its values.yaml.
KUBE_PROMETHEUS_STACK_CHART_NAME = "kube-prometheus-stack"
KUBE_PROMETHEUS_STACK_CHART_VERSION = "81.6.2"
KUBE_PROMETHEUS_STACK_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
