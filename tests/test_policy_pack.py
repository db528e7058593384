"""The policy pack (policies/) judges the resources the program registers, through the analyzer
protocol the Pulumi CLI speaks to it.

The pack runs as the CLI runs it - `python policies/__main__.py` serving the Analyzer gRPC service
on the port it prints - and is sent every resource of a stack run under mocks
(tests/pulumi_harness.run_program): one Analyze call per resource with its inputs, and one
AnalyzeStack call with all of them, their parents and dependencies. The shipped stacks must pass;
stacks weakened in the program (monkeypatched constants) or in the registered inputs must fail
with exactly the expected violations.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, plugin_pb2
from pulumi_harness import ProgramRun, Registered, run_program

from hamieks import hami
from hamieks.config import stackfiles
from hamieks.kube import hami_values

REPO = Path(__file__).resolve().parent.parent
PACK = REPO / "policies"
STACKS = stackfiles.available_stacks(REPO)

Violation = tuple[str, str]  # (policy name, resource name)


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    server = subprocess.Popen([sys.executable, "-u", "__main__.py"], cwd=PACK,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        assert port.isdigit(), f"the pack did not start: {server.stderr.read() if server.poll() is not None else port}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        server.kill()
        server.wait()


def _struct(inputs: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(inputs)), struct_pb2.Struct())


def _name_of(run_resources: list[Registered], urn: str) -> str:
    return next((r.name for r in run_resources if r.urn == urn), urn)


def diagnostics(stub: analyzer_pb2_grpc.AnalyzerStub,
                resources: list[Registered]) -> list[tuple[analyzer_pb2.AnalyzeDiagnostic, str]]:
    """What the pack answers for these resources, as the CLI asks during `pulumi preview`: each
    diagnostic with the name of the resource it is about."""
    found = []
    for r in resources:
        response = stub.Analyze(analyzer_pb2.AnalyzeRequest(type=r.type, properties=_struct(r.inputs), urn=r.urn,
                                                            name=r.name))
        found += [(d, r.name) for d in response.diagnostics]
    response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name,
                                      parent=r.parent, dependencies=r.dependencies)
        for r in resources]))
    found += [(d, _name_of(resources, d.urn)) for d in response.diagnostics]
    return found


def judge(stub: analyzer_pb2_grpc.AnalyzerStub, resources: list[Registered]) -> set[Violation]:
    """The violations that stop a deployment (mandatory diagnostics)."""
    return {(d.policyName, name) for d, name in diagnostics(stub, resources)
            if d.enforcementLevel == analyzer_pb2.MANDATORY}


def test_the_pack_declares_every_rule_the_issue_asks_for(analyzer):
    info = analyzer.GetAnalyzerInfo(plugin_pb2.Empty() if hasattr(plugin_pb2, "Empty") else __import__(
        "google.protobuf.empty_pb2", fromlist=["Empty"]).Empty())
    assert info.name == "hami-eks-baseline"
    names = {p.name for p in info.policies}
    assert names >= {"nodes-imdsv2-hop-limit-1", "cluster-secrets-encrypted", "control-plane-log-retention",
                     "images-pinned", "helm-images-pinned", "gpu-workloads-use-hami-limits",
                     "gpu-workloads-in-webhook-scope", "fail-closed-webhook-is-redundant",
                     # issue 19
                     "node-disks-encrypted", "api-endpoint-not-world-open", "no-admin-policies",
                     "serving-namespace-pod-security", "workloads-unprivileged", "model-servers-network-isolated",
                     "hami-webhook-fails-closed"}
    assert all(p.enforcementLevel == analyzer_pb2.MANDATORY for p in info.policies)


def test_the_packs_hami_names_are_hamieks_hami(monkeypatch):
    monkeypatch.syspath_prepend(str(PACK))
    import hami_eks_rules as rules
    assert (rules.RESOURCE_GPU, rules.RESOURCE_GPUMEM, rules.RESOURCE_GPUMEM_PERCENTAGE) == \
        (hami.RESOURCE_GPU, hami.RESOURCE_GPUMEM, hami.RESOURCE_GPUMEM_PERCENTAGE)
    assert rules.WEBHOOK_SCOPE_LABEL == hami.WEBHOOK_SCOPE_LABEL
    assert dict([rules.HAMI_SCHEDULER_COMPONENT]).items() <= hami_values.SCHEDULER_SELECTOR.items()


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_pass_the_pack(analyzer, stack):
    run = run_program(stack, preview=True)
    # Nothing reported at all: no violation, and no rule that could not run on a value only known
    # after the update (the pack would then be silent exactly when it matters).
    assert [(d.policyName, name, d.message) for d, name in diagnostics(analyzer, run.resources)] == []


# ---- weakened in the program -----------------------------------------------------------------------

def test_hop_limit_two_fails_every_node_group(analyzer, monkeypatch):
    from components import node_launch_template
    monkeypatch.setattr(node_launch_template, "METADATA_HOP_LIMIT", 2)
    run = run_program("demo", preview=True)
    groups = [r.name for r in run.of_type("eks:index:ManagedNodeGroup")]
    templates = [r.name for r in run.of_type("aws:ec2/launchTemplate:LaunchTemplate")]
    assert len(groups) == len(templates) == 3
    assert judge(analyzer, run.resources) == (
        {("nodes-imdsv2-hop-limit-1", t) for t in templates}
        | {("node-group-launch-templates-are-hardened", g) for g in groups})


def test_a_single_hami_scheduler_fails_the_fail_closed_webhook_rule(analyzer, monkeypatch):
    monkeypatch.setattr(hami_values, "SCHEDULER_REPLICAS", 1)
    run = run_program("lean", preview=True)
    assert judge(analyzer, run.resources) == {("fail-closed-webhook-is-redundant", "hami-release")}


# ---- weakened in the registered inputs ---------------------------------------------------------------

def _edit(run: ProgramRun, type_: str, change: Callable[[dict[str, Any]], Any], name: str | None = None) -> str:
    """Apply `change` to the first resource of the type (`type#name` picks one by name)."""
    if "#" in type_:
        type_, name = type_.split("#", 1)
    # Releases: HAMi's (hami-eks:monitoring adds kube-prometheus-stack's).
    (target,) = [r for r in run.of_type(type_) if (name is None or r.name == name)
                 and r.inputs.get("chart", "hami") == "hami"][:1]
    change(target.inputs)
    return target.name


def _pod(inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["spec"]["template"]["spec"]


def _container(inputs: dict[str, Any]) -> dict[str, Any]:
    return _pod(inputs)["containers"][0]


WEAKENINGS: dict[str, tuple[str, Callable[[dict[str, Any]], Any], set[str]]] = {
    "no secret encryption": ("eks:index:Cluster", lambda i: i.pop("encryptionConfigKeyArn"),
                             {"cluster-secrets-encrypted"}),
    "no log retention": ("aws:cloudwatch/logGroup:LogGroup", lambda i: i.pop("retentionInDays"),
                         {"control-plane-log-retention"}),
    "no control-plane logs": ("eks:index:Cluster", lambda i: i.pop("enabledClusterLogTypes"),
                              {"control-plane-log-group-owned"}),
    "latest image": ("kubernetes:apps/v1:Deployment",
                     lambda i: _container(i).update(image="vllm/vllm-openai:latest"), {"images-pinned"}),
    "untagged image": ("kubernetes:apps/v1:Deployment",
                       lambda i: _container(i).update(image="vllm/vllm-openai"), {"images-pinned"}),
    "kube-scheduler tag derived by Helm": (
        "kubernetes:helm.sh/v3:Release",
        lambda i: i["values"]["scheduler"]["kubeScheduler"]["image"].update(tag=""), {"helm-images-pinned"}),
    "floating chart": ("kubernetes:helm.sh/v3:Release", lambda i: i.pop("version"), {"helm-images-pinned"}),
    "whole GPU without a memory slice": (
        "kubernetes:apps/v1:Deployment",
        lambda i: [_container(i)["resources"]["limits"].pop(k, None)
                   for k in (hami.RESOURCE_GPUMEM, hami.RESOURCE_GPUMEM_PERCENTAGE)],
        {"gpu-workloads-use-hami-limits"}),
    "own scheduler": ("kubernetes:apps/v1:Deployment", lambda i: _pod(i).update(schedulerName="default-scheduler"),
                      {"gpu-workloads-use-hami-limits"}),
    # Moved out of the serving namespace, the servers also leave its NetworkPolicies behind.
    "outside the webhook's namespaces": ("kubernetes:apps/v1:Deployment",
                                         lambda i: i["metadata"].update(namespace="default"),
                                         {"gpu-workloads-in-webhook-scope", "model-servers-network-isolated"}),
    "SSH on a node group": ("eks:index:ManagedNodeGroup", lambda i: i.update(remoteAccess={"ec2SshKey": "ops"}),
                            {"node-groups-use-launch-template"}),
    "node group without a launch template": ("eks:index:ManagedNodeGroup",
                                             lambda i: (i.pop("launchTemplate"), i.update(enableIMDSv2=True)),
                                             {"node-groups-use-launch-template"}),
    "IMDSv1 allowed": ("aws:ec2/launchTemplate:LaunchTemplate",
                       lambda i: i["metadataOptions"].update(httpTokens="optional"),
                       {"nodes-imdsv2-hop-limit-1", "node-group-launch-templates-are-hardened"}),
    # ---- issue 19: each of these got through the pack before ----
    "unencrypted node disk": ("aws:ec2/launchTemplate:LaunchTemplate",
                              lambda i: i["blockDeviceMappings"][0]["ebs"].update(encrypted="false"),
                              {"node-disks-encrypted"}),
    "node disk left to the AMI": ("aws:ec2/launchTemplate:LaunchTemplate", lambda i: i.pop("blockDeviceMappings"),
                                  {"node-disks-encrypted"}),
    "empty KMS key ARN": ("eks:index:Cluster", lambda i: i.update(encryptionConfigKeyArn=""),
                          {"cluster-secrets-encrypted"}),
    "privileged Pod Security on the serving namespace": (
        "kubernetes:core/v1:Namespace#namespace-llm",
        lambda i: i["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "privileged"}),
        {"serving-namespace-pod-security"}),
    "no Pod Security on the serving namespace": (
        "kubernetes:core/v1:Namespace#namespace-llm",
        lambda i: i["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce"),
        {"serving-namespace-pod-security"}),
    "privileged model server on the host network with the host's /": (
        "kubernetes:apps/v1:Deployment",
        lambda i: (_container(i)["securityContext"].update(privileged=True), _pod(i).update(hostNetwork=True),
                   _pod(i)["volumes"].append({"name": "host", "hostPath": {"path": "/"}})),
        {"workloads-unprivileged"}),
    "AdministratorAccess on the node role": (
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        lambda i: i.update(policyArn="arn:aws:iam::aws:policy/AdministratorAccess"), {"no-admin-policies"}),
    "private endpoint off, public endpoint open to the world": (
        "eks:index:Cluster", lambda i: i.update(endpointPrivateAccess=False), {"api-endpoint-not-world-open"}),
    "NetworkPolicies not enforced by the VPC CNI": (
        "eks:index:Cluster", lambda i: i["vpcCniOptions"].update(enableNetworkPolicy=False),
        {"model-servers-network-isolated"}),
    "HAMi's webhook failing open": (
        "kubernetes:helm.sh/v3:Release",
        lambda i: i["values"]["scheduler"]["admissionWebhook"].update(failurePolicy="Ignore"),
        {"hami-webhook-fails-closed"}),
}


@pytest.mark.parametrize("weakening", sorted(WEAKENINGS))
def test_each_weakened_input_fails_exactly_its_rule(analyzer, weakening):
    type_, change, rules = WEAKENINGS[weakening]
    run = run_program("demo", preview=True)
    name = _edit(run, type_, change)
    found = judge(analyzer, run.resources)
    assert {policy for policy, _ in found} == rules
    assert {resource for policy, resource in found if policy in rules} - {name} <= {
        # A launch template's node group is reported beside the template.
        r.name for r in run.of_type("eks:index:ManagedNodeGroup")}


@pytest.mark.parametrize("removed", ["vllm-ingress", "vllm-egress"])
def test_a_removed_network_policy_fails_isolation(analyzer, removed):
    run = run_program("demo", preview=True)
    resources = [r for r in run.resources if not (r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
                                                  and r.inputs["metadata"]["name"] == removed)]
    assert len(resources) == len(run.resources) - 1
    servers = {r.name for r in run.of_type("kubernetes:apps/v1:Deployment")}
    assert judge(analyzer, resources) == {("model-servers-network-isolated", name) for name in servers}


def test_a_restricted_endpoint_or_private_access_passes(analyzer):
    run = run_program("demo", preview=True)
    _edit(run, "eks:index:Cluster", lambda i: i.update(endpointPrivateAccess=False, publicAccessCidrs=["203.0.113.0/24"]))
    assert judge(analyzer, run.resources) == set()


def test_the_hami_disruption_budget_is_required(analyzer):
    run = run_program("demo", preview=True)
    resources = [r for r in run.resources if r.type != "kubernetes:policy/v1:PodDisruptionBudget"]
    assert judge(analyzer, resources) == {("fail-closed-webhook-is-redundant", "hami-release")}


def test_a_log_group_the_stack_does_not_own_fails(analyzer):
    run = run_program("demo", preview=True)
    resources = [r for r in run.resources if r.type != "aws:cloudwatch/logGroup:LogGroup"]
    assert judge(analyzer, resources) == {("control-plane-log-group-owned", "hami-demo-aws-eks")}


def test_a_weakened_stack_reports_every_violation_at_once(analyzer):
    run = run_program("demo", preview=True)
    for type_, change, _ in (WEAKENINGS["no secret encryption"], WEAKENINGS["latest image"],
                             WEAKENINGS["outside the webhook's namespaces"]):
        _edit(run, type_, change)
    resources = [copy.deepcopy(r) for r in run.resources]
    assert {p for p, _ in judge(analyzer, resources)} == {
        "cluster-secrets-encrypted", "images-pinned", "gpu-workloads-in-webhook-scope", "model-servers-network-isolated"}
