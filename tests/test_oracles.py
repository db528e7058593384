"""External oracles: the Kubernetes API schemas, checkov, the real HAMi chart and the reference demo.

Each judges our objects with knowledge we did not write: kubernetes-validate's bundled OpenAPI
schemas (strict: unknown fields fail), checkov's policy set, HAMi 2.10.0's own templates rendered
offline by Helm, and the reference manifests the demo stack must reproduce.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helpers import SHIPPED_STACKS, selector_matches, stack_settings, tolerates

from hamieks import hami, versions
from hamieks.config import stackfiles
from hamieks.config.conventions import GPU_TAINT
from hamieks.config.settings import Settings
from hamieks.hami import DEVICE_SPLIT_COUNT
from hamieks.kube import hami_values, rendering, workloads

REPO = Path(__file__).resolve().parent.parent
STACKS = SHIPPED_STACKS  # checks manifests/<stack>/, which only shipped stacks must have
CHART = Path("reference/charts/hami-2.10.0.tgz")
REFERENCE_WORKLOADS = Path("reference/hami-ecosystem-demo/demo/workloads")


def rendered_objects(stack: str) -> list[dict[str, Any]]:
    """What `kubectl apply -f manifests/<stack>/` would send (the files test_render keeps fresh)."""
    paths = sorted((REPO / "manifests" / stack).glob("*.yaml"))
    return [doc for p in paths for doc in yaml.safe_load_all(p.read_text()) if doc]


# ---- kubernetes-validate ------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_rendered_objects_pass_strict_schema_validation_for_the_stack_version(stack):
    settings = stack_settings(stack)
    objects = rendered_objects(stack)
    assert {o["kind"] for o in objects} >= {"Namespace", "NetworkPolicy", "Deployment", "Service"}
    for obj in objects:
        kubernetes_validate.validate(obj, settings.kubernetes_version, strict=True)


@pytest.mark.parametrize("version", versions.EKS_KUBERNETES_VERSIONS)
def test_everything_pulumi_creates_is_valid_on_every_offered_eks_version(version):
    """A user may pick any offered version; the token Secret exists only under Pulumi."""
    settings = stack_settings("demo", hfToken=stackfiles.SecretValue("v1:cipher"), kubernetesVersion=version)
    objects = workloads.stack_objects(settings, hf_token="hf_not_a_real_token")
    assert "Secret" in {o["kind"] for o in objects}
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_the_rendered_scheduler_pdb_is_valid_and_selects_the_charts_scheduler(stack, hami_chart):
    settings = stack_settings(stack)
    (pdb,) = list(yaml.safe_load_all((REPO / "manifests" / stack / rendering.HAMI_PDB_PATH).read_text()))
    kubernetes_validate.validate(pdb, settings.kubernetes_version, strict=True)
    scheduler = _one(_render_chart(hami_chart, settings), "Deployment", "hami-scheduler")
    assert selector_matches(pdb["spec"]["selector"], scheduler["spec"]["template"]["metadata"]["labels"])
    assert pdb["spec"]["minAvailable"] < scheduler["spec"]["replicas"]


def test_strict_validation_is_a_live_oracle():
    """A misspelt field must fail, or the passes above prove nothing."""
    deployment = workloads.deployment(stack_settings("demo"), stack_settings("demo").services[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, versions.DEFAULT_KUBERNETES_VERSION, strict=True)


# ---- checkov ------------------------------------------------------------------------------------

def _checkov_bin() -> str | None:
    for candidate in (os.environ.get("CHECKOV_BIN"), str(REPO / ".venv-checkov" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _reports(stdout: str) -> list[dict[str, Any]]:
    data = json.loads(stdout)
    return data if isinstance(data, list) else [data]


@pytest.fixture(scope="module")
def checkov(tmp_path_factory) -> dict[str, Any]:
    """Two checkov runs, in parallel, once per session (~3 s each).

    - `repo`: exactly what a user runs, on manifests/, with the repo's skip list;
    - `bare`: no skip list, on manifests/ plus a rendering of a stack that sets hfToken (no
      shipped stack does), to see every finding and so whether each skip is still needed.
    """
    binary = _checkov_bin()
    if binary is None:
        pytest.skip("checkov not installed: set CHECKOV_BIN or run `make test` (creates .venv-checkov)")
    scratch = tmp_path_factory.mktemp("checkov")
    scan = scratch / "scan"
    shutil.copytree(REPO / "manifests", scan / "manifests")
    project = scratch / "project"
    project.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", project)
    doc = yaml.safe_load((REPO / "Pulumi.demo.yaml").read_text())
    doc["config"]["hami-eks:hfToken"] = {"secure": "v1:placeholder"}
    (project / "Pulumi.gated.yaml").write_text(yaml.safe_dump(doc))
    for rel, text in rendering.render_stack(project, "gated").items():
        (scan / "gated" / rel).parent.mkdir(parents=True, exist_ok=True)
        (scan / "gated" / rel).write_text(text)

    common = ["--framework", "kubernetes", "--skip-download", "-o", "json"]
    runs = {
        "repo": subprocess.Popen([binary, "-d", "manifests", "--config-file", str(REPO / ".checkov.yaml"), *common],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "bare": subprocess.Popen([binary, "-d", str(scan), *common],
                                 cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    results = {}
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = {"returncode": proc.returncode, "reports": _reports(out), "stderr": err}
    return results


def _skip_list() -> list[str]:
    return yaml.safe_load((REPO / ".checkov.yaml").read_text())["skip-check"]


def test_checkov_passes_on_manifests_with_the_documented_skip_list(checkov):
    run = checkov["repo"]
    assert run["returncode"] == 0, run["stderr"][-2000:]
    (report,) = [r for r in run["reports"] if r["check_type"] == "kubernetes"]
    assert report["summary"]["failed"] == 0 and report["summary"]["parsing_errors"] == 0
    checked = {(c["resource"], "/".join(Path(c["file_path"]).parts[-2:])) for c in report["results"]["passed_checks"]}
    # Every rendered Deployment and Service was really scanned, not silently missed.
    for stack in STACKS:
        for path in sorted((REPO / "manifests" / stack).glob("*.yaml")):
            for obj in yaml.safe_load_all(path.read_text()):
                if obj and obj["kind"] in ("Deployment", "Service"):
                    resource = f"{obj['kind']}.{obj['metadata']['namespace']}.{obj['metadata']['name']}"
                    assert (resource, f"{stack}/{path.name}") in checked, (resource, path)


def test_every_finding_is_skipped_for_a_reason_and_every_skip_is_needed(checkov):
    run = checkov["bare"]
    (report,) = [r for r in run["reports"] if r["check_type"] == "kubernetes"]
    assert report["summary"]["parsing_errors"] == 0
    found = {c["check_id"] for c in report["results"]["failed_checks"]}
    skipped = set(_skip_list())
    assert found <= skipped, f"new findings to fix (or skip with a reason): {sorted(found - skipped)}"
    assert skipped <= found, f"skips no rendering needs any more; remove them: {sorted(skipped - found)}"


def test_every_skipped_check_carries_its_reason():
    lines = (REPO / ".checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    for i, line in enumerate(lines[start + 1:], start + 1):
        if not line.strip().startswith("- CKV"):
            continue
        j = i - 1
        while lines[j].strip().startswith("- CKV"):  # a group of checks may share one reason
            j -= 1
        assert lines[j].strip().startswith("#") and len(lines[j].strip()) > 20, f"no reason above {line.strip()}"
    assert len(_skip_list()) == sum(1 for line in lines if line.strip().startswith("- CKV"))


# ---- the real HAMi chart ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hami_chart(shared_dir, tmp_path_factory):
    helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk (requirements-dev.txt) renders the chart offline")
    target = tmp_path_factory.mktemp("chart")
    with tarfile.open(shared_dir / CHART) as archive:
        archive.extractall(target, filter="data")
    return helm_python.Chart.load(target / "hami")


def test_hamieks_hami_states_the_charts_own_names_and_defaults(shared_dir):
    """hamieks/hami.py against HAMi 2.10.0's values.yaml: resource names, scheduler name, default
    policies and split count. If the chart's defaults moved, the planner's would be wrong for
    anyone installing HAMi without our values."""
    with tarfile.open(shared_dir / CHART) as archive:
        member = archive.extractfile("hami/values.yaml")
        assert member is not None
        defaults = yaml.safe_load(member.read())
    assert (defaults["resourceName"], defaults["resourceMem"], defaults["resourceMemPercentage"],
            defaults["resourceCores"]) == (hami.RESOURCE_GPU, hami.RESOURCE_GPUMEM,
                                           hami.RESOURCE_GPUMEM_PERCENTAGE, hami.RESOURCE_GPUCORES)
    assert defaults["schedulerName"] == hami.SCHEDULER_NAME
    assert defaults["scheduler"]["defaultSchedulerPolicy"] == {
        "nodeSchedulerPolicy": hami.DEFAULT_NODE_POLICY, "gpuSchedulerPolicy": hami.DEFAULT_GPU_POLICY}
    assert defaults["devicePlugin"]["deviceSplitCount"] == hami.DEVICE_SPLIT_COUNT
    assert defaults["devicePlugin"]["deviceMemoryScaling"] == hami.DEVICE_MEMORY_SCALING


def _render_chart(chart, settings: Settings) -> list[dict[str, Any]]:
    # Exactly what the Hami component hands the Helm release.
    manifests = chart.render(hami_values.release_values(settings), name="hami", namespace="kube-system",
                             is_install=True)
    return [doc for path, text in sorted(manifests.items()) if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_hami_device_plugin_runs_on_every_gpu_node_and_tolerates_its_taint(hami_chart, stack):
    settings = stack_settings(stack)
    docs = _render_chart(hami_chart, settings)
    (plugin,) = [d for d in docs if d["kind"] == "DaemonSet"]
    pod = plugin["spec"]["template"]["spec"]
    assert pod.get("nodeSelector"), "without a selector the plugin would claim CPU nodes too"
    assert "affinity" not in pod
    for group in settings.node_groups:
        assert selector_matches({"matchLabels": pod["nodeSelector"]}, group.labels), group.name
    assert tolerates(pod.get("tolerations"), GPU_TAINT.as_dict())


def test_chart_defaults_would_leave_our_gpu_nodes_without_a_device_plugin(hami_chart):
    """Control: the toleration comes from our values, not from the chart."""
    manifests = hami_chart.render({}, name="hami", namespace="kube-system", is_install=True)
    docs = [d for p, t in manifests.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]
    (plugin,) = [d for d in docs if d["kind"] == "DaemonSet"]
    assert not tolerates(plugin["spec"]["template"]["spec"].get("tolerations"), GPU_TAINT.as_dict())


@pytest.mark.parametrize("stack", STACKS)
def test_hami_scheduler_and_webhook_are_configured_as_we_chose(hami_chart, stack):
    settings = stack_settings(stack)
    docs = _render_chart(hami_chart, settings)

    scheduler = _one(docs, "Deployment", "hami-scheduler")
    images = {c["name"]: c["image"] for c in scheduler["spec"]["template"]["spec"]["containers"]}
    registry_repo, tag = images["kube-scheduler"].rsplit(":", 1)
    assert registry_repo == "registry.k8s.io/kube-scheduler"
    assert tag.startswith("v1.") and tag.count(".") == 2, "the chart derives the tag from the cluster version"

    (webhook,) = _one(docs, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"]
    # Fail closed: a GPU pod that skips the webhook bypasses hami-scheduler and never starts.
    assert webhook["failurePolicy"] == "Fail"
    (namespace,) = [o for o in rendered_objects(stack) if o["kind"] == "Namespace"]
    ns_labels = {**namespace["metadata"]["labels"], "kubernetes.io/metadata.name": namespace["metadata"]["name"]}
    assert selector_matches(webhook["namespaceSelector"], ns_labels)
    assert not selector_matches(webhook["namespaceSelector"], {"kubernetes.io/metadata.name": "kube-system"}), \
        "fail-closed must not extend to kube-system, where hami-scheduler itself runs"
    for deployment in (o for o in rendered_objects(stack) if o["kind"] == "Deployment"):
        assert selector_matches(webhook["objectSelector"], deployment["spec"]["template"]["metadata"]["labels"])

    device_config = yaml.safe_load(_one(docs, "ConfigMap", "hami-scheduler-device")["data"]["device-config.yaml"])
    assert device_config["nvidia"]["deviceSplitCount"] == DEVICE_SPLIT_COUNT == 10
    assert device_config["nvidia"]["deviceMemoryScaling"] == 1, "no over-subscription: plans assume real MiB"

    # The webhook and metrics endpoints are reached in-cluster only: no NodePorts on the nodes.
    assert {s["metadata"]["name"]: s["spec"]["type"] for s in docs if s["kind"] == "Service"} == \
        {"hami-scheduler": "ClusterIP", "hami-device-plugin-monitor": "ClusterIP"}


# ---- reference parity ---------------------------------------------------------------------------

def _reference(shared_dir: Path) -> list[dict[str, Any]]:
    paths = sorted((shared_dir / REFERENCE_WORKLOADS).glob("*.yaml"))
    if not paths:
        pytest.skip(reason=f"no reference manifests in {shared_dir / REFERENCE_WORKLOADS}")
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def _nvidia(resources: dict[str, Any]) -> dict[str, str]:
    # Quantities: the reference writes `1` and "7500"; the API server treats both as the same.
    return {k: str(v) for k, v in resources.items() if k.startswith("nvidia.com/")}


def test_demo_reproduces_the_reference_deployments_and_services(shared_dir):
    reference = _reference(shared_dir)
    ours = {(o["kind"], o["metadata"]["name"]): o for o in rendered_objects("demo")
            if o["kind"] in ("Deployment", "Service")}
    assert set(ours) == {(r["kind"], r["metadata"]["name"]) for r in reference}
    for ref in reference:
        mine = ours[(ref["kind"], ref["metadata"]["name"])]
        if ref["kind"] == "Service":
            assert mine["spec"]["selector"] == ref["spec"]["selector"]
            assert [(p["name"], p["port"], p["targetPort"]) for p in mine["spec"]["ports"]] == \
                [(p["name"], p["port"], p["targetPort"]) for p in ref["spec"]["ports"]]
            continue
        assert mine["spec"]["replicas"] == ref["spec"]["replicas"]
        assert mine["spec"]["selector"] == ref["spec"]["selector"]
        ref_tpl, my_tpl = ref["spec"]["template"], mine["spec"]["template"]
        assert my_tpl["metadata"]["labels"]["app"] == ref_tpl["metadata"]["labels"]["app"]
        assert my_tpl["metadata"]["annotations"] == ref_tpl["metadata"]["annotations"]
        # The reference pins one service to its node group; we pin all of them the same way.
        assert ref_tpl["spec"].get("nodeSelector", {}).items() <= my_tpl["spec"]["nodeSelector"].items()
        (ref_c,), (my_c,) = ref_tpl["spec"]["containers"], my_tpl["spec"]["containers"]
        assert (my_c["name"], my_c["command"], my_c["args"]) == (ref_c["name"], ref_c["command"], ref_c["args"])
        assert _nvidia(my_c["resources"]["limits"]) == _nvidia(ref_c["resources"]["limits"])
        assert [(p["name"], p["containerPort"]) for p in my_c["ports"]] == \
            [(p["name"], p["containerPort"]) for p in ref_c["ports"]]
        # Same image, but a pinned release instead of the reference's :latest.
        assert my_c["image"].rsplit(":", 1)[0] == ref_c["image"].rsplit(":", 1)[0]
        assert my_c["image"] != ref_c["image"] and not my_c["image"].endswith(":latest")


def test_every_chart_image_comes_from_an_upstream_registry_and_certgen_by_digest(hami_chart):
    """The chart's certificate jobs default to personal Docker Hub accounts (jettech/,
    liangjw/kube-webhook-certgen); the release runs the upstream image, pinned by digest."""
    docs = _render_chart(hami_chart, stack_settings("demo"))
    images = {c["image"] for d in docs for c in _containers(d)}
    certgen = {i for i in images if "kube-webhook-certgen" in i}
    assert certgen == {f"{versions.CERTGEN_REGISTRY}/{versions.CERTGEN_REPOSITORY}:{versions.CERTGEN_TAG}"}
    assert "@sha256:" in versions.CERTGEN_TAG
    assert not any(owner in image for image in images for owner in ("liangjw/", "jettech/")), images


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else spec
    return [*pod.get("containers", []), *pod.get("initContainers", [])]
