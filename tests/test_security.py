"""The security and availability baseline (issue 12) in what the program registers under mocks,
and in what HAMi's real chart renders from our values."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import selector_matches, stack_settings
from pulumi_harness import ACCOUNT, ProgramRun, Registered, run_program

from hamieks import hami, versions
from hamieks.config import stackfiles
from hamieks.config.access_entries import principal_keys
from hamieks.errors import ConfigError
from hamieks.kube import hami_values, registry_mirror

REPO = Path(__file__).resolve().parent.parent
STACKS = stackfiles.available_stacks(REPO)
MNG = "eks:index:ManagedNodeGroup"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
CREDENTIAL = f"arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:ecr-pullthroughcache/docker-hub-AbCdEf"


@pytest.fixture(scope="module", params=STACKS)
def stack_run(request) -> tuple[str, ProgramRun]:
    return request.param, run_program(request.param)


def _by_name(run: ProgramRun, type_: str) -> dict[str, Registered]:
    return {r.name: r for r in run.of_type(type_)}


def _cluster(run: ProgramRun) -> Registered:
    (cluster,) = run.of_type("eks:index:Cluster")
    return cluster


# ---- control plane -------------------------------------------------------------------------------

def test_secrets_are_encrypted_with_a_rotating_key_of_the_stack(stack_run):
    _, run = stack_run
    (key,) = run.of_type("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    # The key ARN is an output (unknown in a preview), so the cluster's input comes from the key.
    preview = run_program(run.stack, preview=True)
    assert "encryptionConfigKeyArn" in _cluster(preview).inputs
    assert key.urn in _cluster(preview).dependencies


def test_control_plane_logs_go_to_a_retained_log_group_created_first(stack_run):
    stack, run = stack_run
    settings = stack_settings(stack)
    cluster = _cluster(run)
    assert set(cluster.inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator"}
    (group,) = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == f"/aws/eks/{settings.cluster_name}/cluster"
    assert group.inputs["retentionInDays"] == settings.control_plane_log_retention_days == 90
    assert group.urn in cluster.dependencies


def test_log_retention_follows_the_config_key():
    run = run_program("demo", overrides={"hami-eks:controlPlaneLogRetentionDays": 30})
    (group,) = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["retentionInDays"] == 30


def test_a_retention_cloudwatch_does_not_offer_is_a_config_error():
    with pytest.raises(ConfigError, match="hami-eks:controlPlaneLogRetentionDays"):
        stack_settings("demo", controlPlaneLogRetentionDays=45)


def test_endpoint_is_private_too_and_an_open_public_endpoint_is_warned_about():
    run = run_program("demo")
    inputs = _cluster(run).inputs
    assert inputs["endpointPrivateAccess"] is True and inputs["publicAccessCidrs"] == ["0.0.0.0/0"]
    assert any("hami-eks:publicAccessCidrs" in w and "any address" in w for w in run.warnings)
    narrowed = run_program("demo", overrides={"hami-eks:publicAccessCidrs": ["203.0.113.0/24"]})
    assert _cluster(narrowed).inputs["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert not any("hami-eks:publicAccessCidrs" in w for w in narrowed.warnings)


# ---- nodes ---------------------------------------------------------------------------------------

def test_every_node_group_starts_from_a_hardened_launch_template(stack_run):
    stack, run = stack_run
    settings = stack_settings(stack)
    templates = _by_name(run, LT)
    groups = run.of_type(MNG)
    assert len(groups) == 1 + len(settings.node_groups) == len(templates)
    for group in groups:
        assert "diskSize" not in group.inputs and "remoteAccess" not in group.inputs
        template = templates[group.inputs["launchTemplate"]["id"].removesuffix("-id")]
        assert template.urn in group.dependencies
        lt = template.inputs
        assert lt["metadataOptions"]["httpTokens"] == "required"
        assert lt["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert "keyName" not in lt and "imageId" not in lt and "instanceType" not in lt
        (root,) = lt["blockDeviceMappings"]
        assert root["deviceName"] == "/dev/xvda"
        assert (root["ebs"]["volumeType"], root["ebs"]["encrypted"]) == ("gp3", "true")
    sizes = {g.name: templates[g.inputs["launchTemplate"]["id"].removesuffix("-id")].inputs[
        "blockDeviceMappings"][0]["ebs"]["volumeSize"] for g in groups}
    for group in settings.node_groups:
        assert sizes[f"{settings.cluster_name}-{group.name}-nodes"] == group.disk_size_gib


def _attached(run: ProgramRun, role: Registered) -> set[str]:
    return {a.inputs["policyArn"].rsplit("/", 1)[-1] for a in run.of_type(ATTACHMENT)
            if a.inputs["role"] == role.name}


def test_the_node_role_holds_only_what_nodes_need(stack_run):
    stack, run = stack_run
    roles = _by_name(run, "aws:iam/role:Role")
    node_role = roles[f"{stack_settings(stack).cluster_name}-node-role"]
    assert _attached(run, node_role) == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}
    assert not [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == node_role.name]


def test_the_vpc_cni_gets_its_permissions_through_pod_identity_before_any_node_joins(stack_run):
    stack, run = stack_run
    name = stack_settings(stack).cluster_name
    cni_role = _by_name(run, "aws:iam/role:Role")[f"{name}-vpc-cni"]
    assert _attached(run, cni_role) == {"AmazonEKS_CNI_Policy"}
    trust = json.loads(cni_role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                      "Action": ["sts:AssumeRole", "sts:TagSession"],
                      "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]
    (association,) = run.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == ("kube-system", "aws-node")
    assert association.inputs["roleArn"].endswith(f":role/{name}-vpc-cni")
    agent = _by_name(run, "aws:eks/addon:Addon")[f"{name}-pod-identity-agent"]
    assert agent.inputs["addonName"] == "eks-pod-identity-agent"
    for group in run.of_type(MNG):
        assert association.urn in group.dependencies and agent.urn in group.dependencies, group.name


def test_the_ebs_csi_add_on_waits_for_its_roles_policy(stack_run):
    stack, run = stack_run
    name = stack_settings(stack).cluster_name
    addon = _by_name(run, "aws:eks/addon:Addon")[f"{name}-ebs-csi"]
    (attachment,) = [a for a in run.of_type(ATTACHMENT) if a.name == f"{name}-ebs-csi"]
    assert attachment.inputs["policyArn"].endswith("AmazonEBSCSIDriverPolicy")
    assert attachment.urn in addon.dependencies


# ---- admin access entries ------------------------------------------------------------------------

def test_access_entry_keys_are_unique_per_arn_and_keep_simple_arns_unchanged():
    simple = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"
    nested = f"arn:aws:iam::{ACCOUNT}:role/team-a/ci-deployer"
    other_nested = f"arn:aws:iam::{ACCOUNT}:role/team-b/ci-deployer"
    other_account = "arn:aws:iam::210987654321:role/ci-deployer"
    user = f"arn:aws:iam::{ACCOUNT}:user/ci-deployer"
    keys = principal_keys([simple, nested, other_nested, user])
    assert len(set(keys.values())) == 4
    assert keys[user] == "user-ci-deployer"
    assert principal_keys([simple])[simple] == keys[simple] == "role-ci-deployer", "a simple ARN keeps its key"
    assert principal_keys([nested])[nested] == "role-ci-deployer", "no collision, no change"
    assert keys == principal_keys([user, other_nested, nested, simple]), "order-independent"
    # The same name in two accounts: neither can claim the plain key.
    cross = principal_keys([simple, other_account])
    assert len(set(cross.values())) == 2 and "role-ci-deployer" not in cross.values()


def test_two_roles_with_one_name_under_different_paths_get_two_entries():
    first = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"
    second = f"arn:aws:iam::{ACCOUNT}:role/platform/ci-deployer"
    run = run_program("demo", overrides={"hami-eks:adminPrincipalArns": [first, second]})
    entries = _cluster(run).inputs["accessEntries"]
    assert sorted(e["principalArn"] for e in entries.values()) == [first, second]
    assert entries["role-ci-deployer"]["principalArn"] == first


# ---- HAMi available ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hami_chart(shared_dir, tmp_path_factory):
    helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk (requirements-dev.txt) renders the chart offline")
    target = tmp_path_factory.mktemp("chart")
    with tarfile.open(shared_dir / "reference/charts/hami-2.10.0.tgz") as archive:
        archive.extractall(target, filter="data")
    return helm_python.Chart.load(target / "hami")


def _render(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = chart.render(values, name=hami.RELEASE_NAME, namespace=hami.RELEASE_NAMESPACE,
                             is_install=True)
    return [d for p, t in sorted(manifests.items()) if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]


def _scheduler(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "hami-scheduler"]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_hami_scheduler_runs_twice_on_system_nodes_under_a_budget(hami_chart, stack):
    settings = stack_settings(stack)
    scheduler = _scheduler(_render(hami_chart, hami_values.release_values(settings)))
    pod = scheduler["spec"]["template"]
    assert scheduler["spec"]["replicas"] >= 2
    assert pod["spec"]["nodeSelector"] == {"role": "system"}
    anti = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert selector_matches(anti[0]["podAffinityTerm"]["labelSelector"], pod["metadata"]["labels"])
    budget = hami_values.scheduler_pod_disruption_budget()
    assert budget["metadata"]["namespace"] == scheduler["metadata"]["namespace"]
    assert selector_matches(budget["spec"]["selector"], pod["metadata"]["labels"])
    assert 1 <= budget["spec"]["minAvailable"] < scheduler["spec"]["replicas"], "a drain can still proceed"
    # The chart ships no budget of its own, which is why the stack creates one.
    assert not [d for d in _render(hami_chart, {}) if d["kind"] == "PodDisruptionBudget"]


@pytest.mark.parametrize("version", versions.EKS_KUBERNETES_VERSIONS)
def test_kube_scheduler_follows_the_clusters_minor_version(hami_chart, version):
    settings = stack_settings("demo", kubernetesVersion=version)
    containers = {c["name"]: c["image"] for c in
                  _scheduler(_render(hami_chart, hami_values.release_values(settings)))["spec"]["template"]["spec"]["containers"]}
    repo, tag = containers["kube-scheduler"].rsplit(":", 1)
    assert repo == "registry.k8s.io/kube-scheduler"
    assert tag == versions.KUBE_SCHEDULER_TAGS[version] and tag.startswith(f"v{version}.")


def test_the_budget_is_created_with_the_release(stack_run):
    _, run = stack_run
    (budget,) = run.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    (release,) = [r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "hami"]
    assert budget.inputs == hami_values.scheduler_pod_disruption_budget()
    assert budget.urn in release.dependencies


# ---- workloads -----------------------------------------------------------------------------------

def test_model_servers_run_under_their_own_token_less_account(stack_run):
    _, run = stack_run
    (account,) = run.of_type("kubernetes:core/v1:ServiceAccount")
    assert account.inputs["automountServiceAccountToken"] is False
    for deployment in run.of_type("kubernetes:apps/v1:Deployment"):
        spec = deployment.inputs["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == account.inputs["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False


# ---- ECR pull-through cache ----------------------------------------------------------------------

def test_pull_through_cache_is_off_by_default(stack_run):
    _, run = stack_run
    assert not run.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    images = [c["image"] for d in run.of_type("kubernetes:apps/v1:Deployment")
              for c in d.inputs["spec"]["template"]["spec"]["containers"]]
    assert images and not any(".dkr.ecr." in image for image in images)


def test_pull_through_cache_needs_a_docker_hub_credential():
    with pytest.raises(ConfigError, match="hami-eks:dockerHubCredentialArn"):
        stack_settings("demo", ecrPullThroughCache=True)
    with pytest.raises(ConfigError, match="ecr-pullthroughcache/"):
        stack_settings("demo", ecrPullThroughCache=True,
                       dockerHubCredentialArn=f"arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:dockerhub")


def test_image_references_are_rewritten_as_ecr_serves_them():
    host = registry_mirror.registry_host(ACCOUNT, "us-west-2")
    assert registry_mirror.mirrored("vllm/vllm-openai:v0.33.0", host) == f"{host}/docker-hub/vllm/vllm-openai:v0.33.0"
    assert registry_mirror.mirrored("nginx:1.27", host) == f"{host}/docker-hub/library/nginx:1.27"
    assert registry_mirror.mirrored("docker.io/projecthami/hami:v2.10.0", host) == \
        f"{host}/docker-hub/projecthami/hami:v2.10.0"
    assert registry_mirror.mirrored("registry.k8s.io/kube-scheduler:v1.35.6", host) == \
        f"{host}/k8s/kube-scheduler:v1.35.6"
    assert registry_mirror.mirrored("quay.io/prometheus/node-exporter:v1.9.0", host) == \
        "quay.io/prometheus/node-exporter:v1.9.0", "no rule for quay.io: left alone"


def test_with_the_cache_on_every_image_comes_from_the_accounts_registry(hami_chart):
    overrides = {"hami-eks:ecrPullThroughCache": True, "hami-eks:dockerHubCredentialArn": CREDENTIAL}
    run = run_program("demo", overrides=overrides)
    # Per cluster: the demo's clusterName is hami-demo-aws (issue 18: prefixes were per account).
    host = f"{registry_mirror.registry_host(ACCOUNT, 'us-west-2')}/hami-demo-aws"
    rules = {r.inputs["ecrRepositoryPrefix"].removeprefix("hami-demo-aws/"): r.inputs
             for r in run.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")}
    assert set(rules) == {"docker-hub", "k8s"} and all(r["ecrRepositoryPrefix"].startswith("hami-demo-aws/")
                                                       for r in rules.values())
    assert rules["docker-hub"]["upstreamRegistryUrl"] == "registry-1.docker.io"
    assert rules["docker-hub"]["credentialArn"] == CREDENTIAL
    assert rules["k8s"]["upstreamRegistryUrl"] == "registry.k8s.io" and "credentialArn" not in rules["k8s"]
    (policy,) = run.of_type("aws:iam/rolePolicy:RolePolicy")
    statement = json.loads(policy.inputs["policy"])["Statement"]
    assert statement == [{"Effect": "Allow", "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
                          "Resource": [f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/hami-demo-aws/docker-hub/*",
                                       f"arn:aws:ecr:us-west-2:{ACCOUNT}:repository/hami-demo-aws/k8s/*"]}]
    for deployment in run.of_type("kubernetes:apps/v1:Deployment"):
        (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{host}/docker-hub/{versions.VLLM_IMAGE}"
    (release,) = [r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "hami"]
    cache = next(r for r in run.resources if r.type == "hami-eks:images:ImageCache")
    assert run.depends_on(release, cache)
    # Every image HAMi's real chart renders from those values, hooks included, is the cache's.
    images = [c["image"] for d in _render(hami_chart, release.inputs["values"])
              for spec in [d.get("spec", {}).get("template", {}).get("spec", {})]
              for c in spec.get("containers", []) + spec.get("initContainers", [])]
    assert images and all(image.startswith(f"{host}/") for image in images), images
    assert f"{host}/k8s/kube-scheduler:{versions.KUBE_SCHEDULER_TAGS['1.35']}" in images


# ---- serving waits for the webhook Service's leader endpoint (issue 18) ----------------------

JOB = "kubernetes:batch/v1:Job"


def _hami_release(run):
    (release,) = [r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == versions.HAMI_CHART_NAME]
    return release


def _ready_job(run):
    (job,) = [r for r in run.of_type(JOB) if r.inputs["metadata"]["namespace"] == hami.RELEASE_NAMESPACE]
    return job


def test_the_webhook_service_selects_the_leader_and_the_ready_job_asks_it(hami_chart):
    """Chart 2.10.0 routes the webhook to the leader only; the Job polls that very Service."""
    run = run_program("demo")
    release = _hami_release(run)
    (service,) = [d for d in _render(hami_chart, release.inputs["values"])
                  if d["kind"] == "Service" and d["metadata"]["name"] == hami.SCHEDULER_DEPLOYMENT]
    assert service["spec"]["selector"]["hami.io/scheduler-role"] == "leader"
    job = _ready_job(run)
    command = job.inputs["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert (f"https://{service['metadata']['name']}.{service['metadata'].get('namespace', hami.RELEASE_NAMESPACE)}"
            f".svc:{port}/readyz") in command
    assert job.inputs["metadata"]["namespace"] == hami.RELEASE_NAMESPACE  # outside the webhook's namespaces


def test_every_model_server_waits_for_the_webhook_ready_job():
    run = run_program("demo")
    job = _ready_job(run)
    release = _hami_release(run)
    assert run.depends_on(job, release)
    deployments = run.of_type("kubernetes:apps/v1:Deployment")
    assert deployments and all(run.depends_on(d, job) for d in deployments)
    spec = job.inputs["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0
    assert job.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == versions.CURL_IMAGE


def test_with_the_cache_the_ready_job_pulls_through_it_too():
    run = run_program("demo", overrides={"hami-eks:ecrPullThroughCache": True, "hami-eks:dockerHubCredentialArn": CREDENTIAL})
    (job,) = run.of_type(JOB)
    host = f"{registry_mirror.registry_host(ACCOUNT, 'us-west-2')}/hami-demo-aws"
    assert job.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == f"{host}/docker-hub/{versions.CURL_IMAGE}"
