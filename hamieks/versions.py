"""Every pinned version in one place, so an upgrade is a one-line, reviewable change."""

# HAMi Helm chart. 2.10.0 is the release the reference demo was verified against; the packaged
# copy in ../shared/reference/charts is rendered by the tests with the values we pass.
HAMI_CHART_NAME = "hami"
HAMI_CHART_VERSION = "2.10.0"
HAMI_CHART_REPO = "https://project-hami.github.io/HAMi/"

# vLLM's OpenAI-compatible server. Tagged per release, never :latest, so a redeploy runs the
# same code. Since v0.20 the plain tag is a CUDA 13 build: it needs driver >= 580 (the AL2023
# NVIDIA AMI ships 580) and no longer supports Volta (V100) - see catalog.needs_cuda12_image.
VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"

# Kubernetes minor versions in EKS standard support in late 2026. 1.34 leaves standard support on
# 2026-12-02 (extended support costs six times as much per cluster-hour), so 1.35 is the default.
EKS_KUBERNETES_VERSIONS = ("1.34", "1.35", "1.36")
DEFAULT_KUBERNETES_VERSION = "1.35"
