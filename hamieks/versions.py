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

# The webhook certificate jobs' image. HAMi 2.10.0's chart defaults to images from personal Docker
# Hub accounts (jettech/..., and liangjw/kube-webhook-certgen on Kubernetes >= 1.22); the upstream
# project is ingress-nginx's, on registry.k8s.io, with the same `create`/`patch` flags the chart's
# jobs pass. Pinned by digest: the release ingress-nginx's own chart 4.12 runs
# (charts/ingress-nginx/values.yaml controller.admissionWebhooks.patch.image).
CERTGEN_REGISTRY = "registry.k8s.io"
CERTGEN_REPOSITORY = "ingress-nginx/kube-webhook-certgen"
CERTGEN_TAG = "v1.5.2@sha256:e8825994b7a2c7497375a9b945f386506ca6a3eda80b89b74ef2db743f66a5ea"

# curl, for the Job that waits until HAMi's webhook Service has its leader endpoint
# (hamieks/kube/hami_values.webhook_ready_job). A pinned release tag of the curl project's image.
CURL_IMAGE = "curlimages/curl:8.11.1"

# Kubernetes minor versions in EKS standard support in late 2026. 1.34 leaves standard support on
# 2026-12-02 (extended support costs six times as much per cluster-hour), so 1.35 is the default.
# 1.37 went GA on EKS in October 2026; 1.34 is still accepted, with a warning
# (hamieks/report/risks.py), until EKS ends its extended support.
EKS_KUBERNETES_VERSIONS = ("1.34", "1.35", "1.36", "1.37")
# Minor -> the day it leaves EKS standard support (EKS user guide, "Kubernetes version lifecycle").
END_OF_STANDARD_SUPPORT = {"1.34": "2026-12-02"}
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
    # 1.37: the eks-distro snapshot read here (2026-08-19) has no 1-37/GIT_TAG yet, so this is
    # upstream's first 1.37 release, which EKS (GA October 2026) serves or exceeds: never newer
    # than the control plane and the same minor, all the version-skew policy asks. Replace it
    # with eks-distro's 1-37 GIT_TAG once published.
    "1.37": "v1.37.0",
}

# The EKS managed add-ons the program creates itself (components/cluster.py).
EKS_ADDONS = ("coredns", "eks-pod-identity-agent", "aws-ebs-csi-driver")
# Pins per Kubernetes minor, from `aws eks describe-addon-versions --kubernetes-version <minor>
# --addon-name <name>`. A minor or add-on missing here gets EKS's default version for the
# cluster's minor, resolved at deploy time through the same API (aws.eks.get_addon_version,
# most_recent=False: the version the CLI output marks `defaultVersion: true`), so the add-on
# follows kubernetesVersion either way. Only versions read from that output belong here.
ADDON_VERSIONS: dict[str, dict[str, str]] = {
    # EKS user guide, "Manage CoreDNS": latest coredns add-on for 1.34 (table "CoreDNS versions").
    "1.34": {"coredns": "v1.12.4-eksbuild.1"},
}


def pinned_addon_version(kubernetes_version: str, addon: str) -> str | None:
    """The pinned version of a managed add-on for a Kubernetes minor, or None (use EKS's default)."""
    return ADDON_VERSIONS.get(kubernetes_version, {}).get(addon)

# kube-prometheus-stack (prometheus-community/helm-charts): the Prometheus operator and its CRDs,
# Prometheus, Grafana, kube-state-metrics and node-exporter (hamieks/kube/monitoring.py). 81.6.2
# is the release of 2026-02-11 (renovate bump in fullstackjam/k8s-gitops PR #304,
# kubernetes/system/monitoring-system/Chart.yaml); the values keys used are those of its values.yaml.
KUBE_PROMETHEUS_STACK_CHART_NAME = "kube-prometheus-stack"
KUBE_PROMETHEUS_STACK_CHART_VERSION = "81.6.2"
KUBE_PROMETHEUS_STACK_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
