"""__main__.py run as `pulumi up` runs it, for every shipped stack file, under mocks."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import stack_settings
from pulumi_harness import DEPLOYER_ROLE, FAKE_OFFERINGS, REPO, Secret, run_program

from hamieks import catalog, versions
from hamieks.config import stackfiles
from hamieks.kube import hami_values, rendering

STACKS = stackfiles.available_stacks(REPO)
OUTPUTS = {"kubeconfig", "clusterName", "region", "clusterEndpoint", "kubectlConfigCommand", "vpcId",
           "placementPlan", "gpuMemoryAllocation", "estimatedHourlyCostUsd",
           "publicSubnetIds", "privateSubnetIds", "nodeGroups", "services"}

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
MNG = "eks:index:ManagedNodeGroup"


@pytest.fixture(scope="module", params=STACKS)
def stack_run(request):
    return request.param, stack_settings(request.param), run_program(request.param)


def test_every_stack_file_is_exercised():
    assert "demo" in STACKS and len(STACKS) >= 1


def test_resource_counts(stack_run):
    _, s, run = stack_run
    azs = s.availability_zone_count
    expected = {
        "aws:ec2/vpc:Vpc": 1,
        "aws:ec2/subnet:Subnet": 2 * azs,
        "aws:ec2/natGateway:NatGateway": azs if s.nat_gateway_per_az else 1,
        "aws:ec2/internetGateway:InternetGateway": 1,
        "eks:index:Cluster": 1,
        MNG: 1 + len(s.node_groups),
        "hami-eks:gpu:GpuNodeGroup": len(s.node_groups),
        # HAMi's, and kube-prometheus-stack's with its namespace when hami-eks:monitoring is on.
        RELEASE: 1 + s.monitoring,
        "kubernetes:core/v1:Namespace": 1 + s.monitoring,
        DEPLOYMENT: len(s.services),
        SERVICE: len(s.services),
        "pulumi:providers:kubernetes": 1,
    }
    assert {t: len(run.of_type(t)) for t in expected} == expected


def test_subnets_only_in_zones_offering_every_instance_type(stack_run):
    _, s, run = stack_run
    zones = {r.inputs["availabilityZone"] for r in run.of_type("aws:ec2/subnet:Subnet")}
    assert len(zones) == s.availability_zone_count
    for zone in zones:
        offered = FAKE_OFFERINGS[zone[-1]]
        assert offered == "*" or set(s.instance_types) <= offered, zone
    public = [r for r in run.of_type("aws:ec2/subnet:Subnet") if r.inputs.get("mapPublicIpOnLaunch")]
    private = [r for r in run.of_type("aws:ec2/subnet:Subnet") if not r.inputs.get("mapPublicIpOnLaunch")]
    assert all(r.inputs["tags"]["kubernetes.io/role/elb"] == "1" for r in public)
    assert all(r.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for r in private)
    vpc = run.of_type("aws:ec2/vpc:Vpc")[0].inputs
    assert vpc["enableDnsSupport"] and vpc["enableDnsHostnames"] and vpc["cidrBlock"] == s.vpc_cidr


def test_cluster_inputs(stack_run):
    _, s, run = stack_run
    cluster = run.of_type("eks:index:Cluster")[0].inputs
    assert cluster["name"] == s.cluster_name
    assert cluster["version"] == s.kubernetes_version
    assert cluster["authenticationMode"] == "API"
    assert cluster["skipDefaultNodeGroup"] is True
    assert cluster["createOidcProvider"] is True
    assert cluster["publicAccessCidrs"] == list(s.public_access_cidrs)
    assert cluster["vpcCniOptions"]["enableNetworkPolicy"] is True
    # The deployer is admin through EKS's creator bootstrap; listing it again would 409.
    assert DEPLOYER_ROLE not in json.dumps(cluster.get("accessEntries", {}))
    addons = {r.inputs["addonName"] for r in run.of_type("aws:eks/addon:Addon")}
    assert addons == {"coredns", "aws-ebs-csi-driver", "eks-pod-identity-agent"}
    assert cluster["kubeProxyAddonOptions"]["enabled"] is True


def test_node_groups(stack_run):
    _, s, run = stack_run
    groups = {r.name: r for r in run.of_type(MNG)}
    system = groups[f"{s.cluster_name}-system"]
    assert system.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert system.inputs["instanceTypes"] == [s.system_instance_type]
    assert not system.inputs.get("taints")
    # With a launch template pulumi-eks no longer pins the version: without it, nodes would stay
    # on the old kubelet after a control-plane upgrade.
    assert system.inputs["version"] == s.kubernetes_version
    for group in s.node_groups:
        mng = groups[f"{s.cluster_name}-{group.name}-nodes"].inputs
        assert mng["version"] == s.kubernetes_version
        assert mng["amiType"] == "AL2023_x86_64_NVIDIA"
        assert mng["instanceTypes"] == list(group.instance_types)
        assert mng["scalingConfig"] == {"desiredSize": group.desired_size, "minSize": group.min_size,
                                        "maxSize": group.max_size}
        # The disk size is in the node group's launch template (EKS refuses both).
        assert "diskSize" not in mng and mng["capacityType"] == group.capacity_type
        (template,) = [r for r in run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
                       if r.name == f"{s.cluster_name}-{group.name}-lt"]
        assert template.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == group.disk_size_gib
        assert mng["labels"]["gpu"] == "on" and mng["labels"]["accelerator"] == group.name
        assert mng["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]


def test_hami_release(stack_run):
    _, s, run = stack_run
    release = _hami_release(run)
    assert release.inputs["chart"] == "hami"
    assert release.inputs["version"] == s.hami_chart_version == versions.HAMI_CHART_VERSION
    assert release.inputs["repositoryOpts"]["repo"] == "https://project-hami.github.io/HAMi/"
    assert release.inputs["namespace"] == "kube-system"
    assert release.inputs["skipAwait"] is False
    assert release.inputs["values"] == hami_values.release_values(s)
    image = release.inputs["values"]["scheduler"]["kubeScheduler"]["image"]
    assert (image["registry"], image["repository"], image["tag"]) == \
        ("registry.k8s.io", "kube-scheduler", versions.KUBE_SCHEDULER_TAGS[s.kubernetes_version])
    # HAMi waits for its device plugin, which only runs on GPU nodes: it depends on them.
    gpu_groups = run.of_type("hami-eks:gpu:GpuNodeGroup")
    assert gpu_groups and all(run.depends_on(release, g) for g in gpu_groups)


def test_kubernetes_objects_use_the_cluster_provider(stack_run):
    _, _, run = stack_run
    provider = run.of_type("pulumi:providers:kubernetes")[0]
    assert "kubeconfig" in provider.inputs
    k8s_resources = [r for r in run.resources if r.type.startswith("kubernetes:") and r.custom]
    assert k8s_resources
    assert all(r.provider.startswith(provider.urn + "::") for r in k8s_resources)


def test_deployments_depend_on_hami(stack_run):
    _, s, run = stack_run
    release = _hami_release(run)
    deployments = run.of_type(DEPLOYMENT)
    assert len(deployments) == len(s.services)
    for deployment in deployments:
        assert run.depends_on(deployment, release), deployment.name


def test_deployments_match_settings(stack_run):
    _, s, run = stack_run
    deployments = {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(DEPLOYMENT)}
    services = {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(SERVICE)}
    for svc in s.services:
        dep = deployments[svc.name]
        pod = dep["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert dep["metadata"]["namespace"] == s.namespace
        assert dep["spec"]["replicas"] == svc.replicas
        assert pod["metadata"]["annotations"]["nvidia.com/use-gputype"] == svc.gpu_type
        assert pod["spec"]["nodeSelector"] == {"accelerator": svc.node_group}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
        limits = container["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 1
        memory_key = "nvidia.com/gpumem" if svc.gpumem is not None else "nvidia.com/gpumem-percentage"
        assert limits[memory_key] == str(svc.gpumem if svc.gpumem is not None else svc.gpumem_percentage)
        assert container["command"] == ["vllm"] and container["args"] == ["serve", svc.model, *svc.args]
        assert ":" in container["image"] and not container["image"].endswith(":latest")
        assert services[svc.name]["spec"]["ports"][0]["port"] == 8000
        assert services[svc.name]["spec"]["selector"] == {"app": svc.name}


def test_outputs(stack_run):
    _, s, run = stack_run
    assert set(run.outputs) >= OUTPUTS
    assert run.secret_outputs == {"kubeconfig"}
    assert json.loads(run.outputs["kubeconfig"])["kind"] == "Config"
    assert run.outputs["clusterName"] == s.cluster_name
    assert run.outputs["region"] == s.region
    assert run.outputs["clusterEndpoint"].startswith("https://")
    assert run.outputs["kubectlConfigCommand"] == f"aws eks update-kubeconfig --region {s.region} --name {s.cluster_name}"
    assert len(run.outputs["publicSubnetIds"]) == len(run.outputs["privateSubnetIds"]) == s.availability_zone_count
    assert set(run.outputs["nodeGroups"]) == {g.name for g in s.node_groups}
    for group in s.node_groups:
        out = run.outputs["nodeGroups"][group.name]
        assert out["instanceTypes"] == list(group.instance_types)
        assert out["desiredSize"] == group.desired_size
        assert out["gpuModel"] == catalog.instance_type(group.instance_types[0]).gpu.short
    assert set(run.outputs["services"]) == {svc.name for svc in s.services}
    for svc in s.services:
        out = run.outputs["services"][svc.name]
        assert out["model"] == svc.model and out["gpuType"] == svc.gpu_type and out["replicas"] == svc.replicas
        assert out["url"] == f"http://{svc.name}.{s.namespace}.svc.cluster.local:8000"
        assert out["portForward"].startswith(f"kubectl -n {s.namespace} port-forward svc/{svc.name} ")


# ---- the demo stack reproduces the reference demo -------------------------------------------
# Its Deployments and Services are compared with the reference in tests/test_oracles.py (on the
# committed manifests, which test_registered_objects_are_the_committed_manifests ties to what
# the program registers); here only what the manifests do not show: the node groups.

def test_demo_node_groups_are_the_reference_ones():
    run = run_program("demo")
    gpu = {r.inputs["labels"]["accelerator"]: r.inputs for r in run.of_type(MNG) if "accelerator" in r.inputs.get("labels", {})}
    assert {k: v["instanceTypes"] for k, v in gpu.items()} == {"t4": ["g4dn.12xlarge"], "a10g": ["g5.12xlarge"]}
    assert all(v["scalingConfig"]["desiredSize"] == 1 for v in gpu.values())
    templates = {r.name: r.inputs for r in run.of_type("aws:ec2/launchTemplate:LaunchTemplate")}
    assert all(templates[f"hami-demo-aws-{g}-lt"]["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 100 for g in gpu)


def test_hf_token_becomes_a_secret_reference_never_plain_text():
    token = "hf_TESTTOKEN_must_not_leak"
    run = run_program("demo", overrides={"hami-eks:hfToken": stackfiles.SecretValue("v1:cipher")})
    secrets = run.of_type("kubernetes:core/v1:Secret")
    assert len(secrets) == 1
    data = secrets[0].inputs.get("stringData") or secrets[0].inputs.get("data")
    assert all(isinstance(v, Secret) for v in data.values())
    for dep in run.of_type(DEPLOYMENT):
        env = {e["name"]: e for e in dep.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secrets[0].inputs["metadata"]["name"]
    assert token not in json.dumps(run.outputs)


def test_per_az_nat_gateways():
    run = run_program("demo", overrides={"hami-eks:natGatewayPerAz": True, "hami-eks:availabilityZoneCount": 3})
    assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(run.of_type("aws:ec2/subnet:Subnet")) == 6


def test_the_deployer_is_admin_without_an_access_entry_even_when_listed():
    # Listing the deploying role again would make EKS answer 409 (the creator already has one).
    ci = "arn:aws:iam::123456789012:role/ci-deployer"
    run = run_program("demo", overrides={"hami-eks:adminPrincipalArns": [DEPLOYER_ROLE, ci]})
    entries = run.of_type("eks:index:Cluster")[0].inputs["accessEntries"]
    assert [e["principalArn"] for e in entries.values()] == [ci]
    assert run.outputs["clusterAdmins"] == [DEPLOYER_ROLE, ci]


def test_extra_admin_principals_get_access_entries():
    ci = "arn:aws:iam::123456789012:role/ci-deployer"
    run = run_program("demo", overrides={"hami-eks:adminPrincipalArns": [ci]})
    entries = run.of_type("eks:index:Cluster")[0].inputs["accessEntries"]
    assert [e["principalArn"] for e in entries.values()] == [ci]
    policy = next(iter(next(iter(entries.values()))["accessPolicies"].values()))
    assert policy["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    assert policy["accessScope"] == {"type": "cluster"}


def test_too_few_zones_offering_the_instance_types_is_a_config_error():
    # Only three of the fake region's four zones offer g5.12xlarge.
    run = run_program("demo", overrides={"hami-eks:availabilityZoneCount": 4}, expect_error=True)
    assert "hami-eks:availabilityZoneCount" in str(run.error) and "g5.12xlarge" in str(run.error)
    assert run.resources == []


# ---- placement preflight ----------------------------------------------------------------------

def test_placement_outputs_are_the_plan_the_cli_prints(stack_run):
    import subprocess
    import sys
    stack, _, run = stack_run
    printed = subprocess.run([sys.executable, "-m", "hamieks", "plan", "--stack", stack, "--json"],
                             cwd=REPO, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    cli_plan = json.loads(printed.stdout)
    assert run.outputs["modelFits"] == cli_plan.pop("models")
    assert run.outputs["placementPlan"] == cli_plan
    assert run.outputs["gpuMemoryAllocation"] == cli_plan["gpuMemoryAllocation"]
    assert run.outputs["estimatedHourlyCostUsd"] == cli_plan["estimatedHourlyCostUsd"] > 0
    assert cli_plan["unschedulable"] == []


def _too_big_service():
    services = stackfiles.load_stack_config(REPO, "demo")["hami-eks:services"]
    # The two 45% slices (2 x 10362 MiB) share one of the demo's four A10Gs (23028 MiB each),
    # leaving 2304 MiB there; 20000 MiB replicas fit only the three empty GPUs, so of five,
    # replicas 4 and 5 cannot be placed.
    extra = {"name": "vllm-a10g-big", "model": "org/m", "gpuType": "A10G", "replicas": 5, "gpumem": 20000,
             "gpuSchedulerPolicy": "spread"}
    return {"hami-eks:services": [*services, extra]}


def test_unschedulable_replica_fails_preview_before_any_resource():
    run = run_program("demo", overrides=_too_big_service(), preview=True, expect_error=True)
    message = str(run.error)
    assert "HAMi cannot place 2 of 9 replicas" in message
    assert "vllm-a10g-big replicas 4-5:" in message
    assert "hami-eks:allowUnschedulable" in message
    assert run.resources == []


def test_allow_unschedulable_deploys_with_a_warning():
    overrides = {**_too_big_service(), "hami-eks:allowUnschedulable": True}
    run = run_program("demo", overrides=overrides)
    assert len(run.of_type(DEPLOYMENT)) == 4
    assert any("vllm-a10g-big replicas 4-5:" in w for w in run.warnings)
    unplaced = run.outputs["placementPlan"]["unschedulable"]
    assert [(u["service"], u["replica"]) for u in unplaced] == [("vllm-a10g-big", 4), ("vllm-a10g-big", 5)]


def test_region_without_prices_still_deploys():
    run = run_program("demo", overrides={"aws:region": "eu-west-1"})
    assert run.outputs["estimatedHourlyCostUsd"] is None
    assert any("no recorded prices for eu-west-1" in w for w in run.warnings)
    assert {r.inputs["availabilityZone"][:-1] for r in run.of_type("aws:ec2/subnet:Subnet")} == {"eu-west-1"}


def test_pulumi_waits_as_long_as_a_model_may_take_to_start():
    from hamieks.kube import workloads
    run = run_program("demo")
    for svc in stack_settings("demo").services:
        dep = next(r for r in run.of_type(DEPLOYMENT) if r.inputs["metadata"]["name"] == svc.name)
        per_replica = workloads.rollout_timeout_seconds(svc)
        assert per_replica > svc.startup_timeout_seconds >= 600  # beyond Pulumi's 10 minute default
        assert dep.inputs["spec"]["progressDeadlineSeconds"] == per_replica
        # Replicas start together on create and are replaced one by one on update (maxSurge 0).
        assert dep.timeouts == {"create": f"{per_replica}s", "update": f"{per_replica * svc.replicas}s"}


def _hami_release(run):
    return next(r for r in run.of_type(RELEASE) if r.inputs["chart"] == "hami")


def _registered_resources(run):
    """The serving objects (the monitoring stack's are Helm- and CRD-based, not in manifests/)."""
    kinds = ("kubernetes:core/v1:", "kubernetes:apps/v1:", "kubernetes:networking.k8s.io/v1:")
    monitoring = {r.urn for c in run.of_type("hami-eks:monitoring:Monitoring") for r in run.descendants(c)}
    return [r for r in run.resources if r.custom and r.type.startswith(kinds) and r.urn not in monitoring]


def _registered_objects(run) -> list[dict]:
    return [r.inputs for r in _registered_resources(run)]


def test_registered_objects_are_the_rendered_manifests_and_schema_valid(stack_run):
    """What Pulumi creates is what `hami-eks render` writes to manifests/<stack>/ (test_render
    keeps the committed files of the shipped stacks equal to that rendering), so the oracles run
    on those files (checkov, the HAMi chart render) speak for the program too; strict schema
    validation runs here on the registered objects themselves, for every stack file, a user's too."""
    import kubernetes_validate
    stack, s, run = stack_run
    registered = _registered_objects(run)
    files = rendering.render_stack(REPO, stack)
    rendered = [doc for path, text in sorted(files.items()) if path.endswith(".yaml") and "/" not in path
                for doc in yaml.safe_load_all(text) if doc]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(registered, key=key) == sorted(rendered, key=key)
    for obj in registered:
        kubernetes_validate.validate(obj, s.kubernetes_version, strict=True)
    values = yaml.safe_load(files[rendering.HAMI_VALUES_PATH])
    assert _hami_release(run).inputs["values"] == values


def test_namespaced_objects_wait_for_their_namespace():
    # Created before it, a Secret or NetworkPolicy fails with "namespaces llm not found".
    run = run_program("demo", overrides={"hami-eks:hfToken": stackfiles.SecretValue("v1:cipher")})
    namespace = next(r for r in run.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "llm")
    namespaced = [r for r in _registered_resources(run) if r.type != namespace.type]
    assert {r.type for r in namespaced} >= {"kubernetes:core/v1:Secret", "kubernetes:networking.k8s.io/v1:NetworkPolicy", DEPLOYMENT, SERVICE}
    assert all(run.depends_on(r, namespace) for r in namespaced)


# ---- access entries do not depend on who runs `up` (issue 18) -------------------------------

LAPTOP = "arn:aws:iam::123456789012:user/alice"
CI_ROLE = "arn:aws:iam::123456789012:role/ci-deployer"
DEMO_CLUSTER = stack_settings("demo").cluster_name


def _entries(run):
    return {key: e["principalArn"] for key, e in run.of_type("eks:index:Cluster")[0].inputs["accessEntries"].items()}


def test_access_entries_are_the_same_whoever_runs_up():
    # Alice created the cluster; CI and Alice take turns running `up` on it.
    config = {"hami-eks:adminPrincipalArns": [LAPTOP, CI_ROLE], "hami-eks:clusterCreatorArn": LAPTOP}
    by_alice = run_program("demo", overrides=config, caller=LAPTOP, existing_clusters=(DEMO_CLUSTER,))
    by_ci = run_program("demo", overrides=config, caller=CI_ROLE, existing_clusters=(DEMO_CLUSTER,))
    assert _entries(by_alice) == _entries(by_ci) == {"role-ci-deployer": CI_ROLE}
    assert by_alice.outputs["clusterAdmins"] == by_ci.outputs["clusterAdmins"] == [LAPTOP, CI_ROLE]


def test_a_listed_second_principal_keeps_access_when_the_creator_runs_up_again():
    config = {"hami-eks:adminPrincipalArns": [CI_ROLE], "hami-eks:clusterCreatorArn": LAPTOP}
    run = run_program("demo", overrides=config, caller=LAPTOP, existing_clusters=(DEMO_CLUSTER,))
    assert CI_ROLE in _entries(run).values()


def test_a_new_cluster_records_its_creator_and_asks_to_keep_it():
    run = run_program("demo", overrides={"hami-eks:adminPrincipalArns": [CI_ROLE]}, caller=LAPTOP)
    assert _entries(run) == {"role-ci-deployer": CI_ROLE}
    assert run.outputs["clusterAdmins"] == [LAPTOP, CI_ROLE]
    assert any(f"pulumi config set hami-eks:clusterCreatorArn {LAPTOP}" in w for w in run.warnings)


def test_an_existing_cluster_without_a_recorded_creator_is_refused_before_any_resource():
    run = run_program("demo", overrides={"hami-eks:adminPrincipalArns": [CI_ROLE]}, caller=CI_ROLE,
                      existing_clusters=(DEMO_CLUSTER,), expect_error=True)
    assert "hami-eks:clusterCreatorArn" in str(run.error)
    assert "pulumi config set hami-eks:clusterCreatorArn" in str(run.error)
    assert not run.of_type("eks:index:Cluster")


def test_a_caller_who_is_not_an_admin_is_refused_before_any_resource():
    stranger = "arn:aws:iam::123456789012:role/someone-else"
    run = run_program("demo", overrides={"hami-eks:clusterCreatorArn": LAPTOP}, caller=stranger,
                      existing_clusters=(DEMO_CLUSTER,), expect_error=True)
    assert stranger in str(run.error) and "hami-eks:adminPrincipalArns" in str(run.error)
    assert not run.of_type("eks:index:Cluster")


def test_a_recorded_creator_other_than_the_caller_cannot_create_the_cluster():
    # EKS would make the caller admin, not the recorded creator, and its entry would then clash.
    run = run_program("demo", overrides={"hami-eks:clusterCreatorArn": LAPTOP,
                                         "hami-eks:adminPrincipalArns": [CI_ROLE]},
                      caller=CI_ROLE, expect_error=True)
    assert "does not exist" in str(run.error) and CI_ROLE in str(run.error)


def test_an_existing_cluster_without_extra_admins_needs_no_recorded_creator():
    run = run_program("demo", caller=CI_ROLE, existing_clusters=(DEMO_CLUSTER,))
    assert _entries(run) == {}


# ---- aws:profile reaches the kubeconfig (issue 18) ------------------------------------------

def test_the_stack_profile_reaches_the_kubeconfig_of_every_kubernetes_call():
    run = run_program("demo", overrides={"aws:profile": "team-dev"})
    cluster = run.of_type("eks:index:Cluster")[0].inputs
    assert cluster["providerCredentialOpts"] == {"profileName": "team-dev"}
    kubeconfig = json.loads(run.of_type("pulumi:providers:kubernetes")[0].inputs["kubeconfig"])
    args = kubeconfig["users"][0]["user"]["exec"]["args"]
    assert args[args.index("--profile") + 1] == "team-dev"


def test_without_a_profile_the_kubeconfig_uses_the_default_chain():
    run = run_program("demo")
    assert "providerCredentialOpts" not in run.of_type("eks:index:Cluster")[0].inputs
    assert "--profile" not in run.of_type("pulumi:providers:kubernetes")[0].inputs["kubeconfig"]


# ---- managed add-ons follow kubernetesVersion (issue 18) ------------------------------------

ADDON = "aws:eks/addon:Addon"


@pytest.mark.parametrize("minor", ["1.35", "1.37"])
def test_program_created_addons_run_the_version_for_the_cluster_minor(minor):
    run = run_program("demo", overrides={"hami-eks:kubernetesVersion": minor})
    addons = {r.inputs["addonName"]: r.inputs for r in run.of_type(ADDON)}
    assert set(versions.EKS_ADDONS) <= set(addons)
    for name in versions.EKS_ADDONS:
        expected = versions.pinned_addon_version(minor, name) or f"v0.{minor}-{name}-eksbuild.default"
        assert addons[name]["addonVersion"] == expected, name
        assert addons[name]["resolveConflictsOnUpdate"] == "OVERWRITE"
        assert addons[name]["resolveConflictsOnCreate"] == "OVERWRITE"


def test_a_pinned_addon_version_wins_over_the_eks_default():
    run = run_program("demo", overrides={"hami-eks:kubernetesVersion": "1.34"})
    coredns = next(r.inputs for r in run.of_type(ADDON) if r.inputs["addonName"] == "coredns")
    assert coredns["addonVersion"] == versions.ADDON_VERSIONS["1.34"]["coredns"]


def test_ebs_csi_tags_its_volumes_with_the_cluster_for_the_leak_audit():
    run = run_program("demo")
    ebs = next(r.inputs for r in run.of_type(ADDON) if r.inputs["addonName"] == "aws-ebs-csi-driver")
    name = run.of_type("eks:index:Cluster")[0].inputs["name"]
    tags = json.loads(ebs["configurationValues"])["controller"]["extraVolumeTags"]
    assert tags == {"project": "hami-eks", "stack": "demo", "cluster": name}
    # ... which is what the leak audit takes a volume to be the stack's by.
    from hamieks.aws.leaks import Owner
    assert Owner(name, "demo", "us-west-2").reason(tags)


# ---- Kubernetes versions (issue 18) ----------------------------------------------------------

def test_kubernetes_1_37_is_accepted_with_its_scheduler_tag():
    run = run_program("demo", overrides={"hami-eks:kubernetesVersion": "1.37"})
    assert run.of_type("eks:index:Cluster")[0].inputs["version"] == "1.37"
    (hami_release,) = [r for r in run.of_type(RELEASE) if r.inputs["chart"] == "hami"]
    values = json.dumps(hami_release.inputs["values"])
    assert versions.KUBE_SCHEDULER_TAGS["1.37"] in values and versions.KUBE_SCHEDULER_TAGS["1.37"].startswith("v1.37.")


def test_kubernetes_1_34_warns_that_standard_support_ended():
    old = run_program("demo", overrides={"hami-eks:kubernetesVersion": "1.34"})
    assert any("1.34 left EKS standard support on 2026-12-02" in w for w in old.warnings)
    current = run_program("demo", overrides={"hami-eks:kubernetesVersion": "1.35"})
    assert not any("left EKS standard support" in w for w in current.warnings)


def test_a_read_only_preview_role_may_preview_with_a_warning():
    preview_role = "arn:aws:iam::123456789012:role/hami-eks-preview"
    config = {"hami-eks:adminPrincipalArns": [CI_ROLE], "hami-eks:clusterCreatorArn": LAPTOP}
    run = run_program("demo", overrides=config, caller=preview_role, existing_clusters=(DEMO_CLUSTER,), preview=True)
    assert _entries(run) == {"role-ci-deployer": CI_ROLE}
    assert any(preview_role in w and "a preview only" in w for w in run.warnings)
    # The same caller running `up` is stopped.
    run_program("demo", overrides=config, caller=preview_role, existing_clusters=(DEMO_CLUSTER,), expect_error=True)
