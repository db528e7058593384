"""The model servers' hardening (issue 19): a read-only root with writable caches where vLLM and
HAMi-core write, Pod Security measured against `restricted`, and egress limited to DNS and HTTPS
out of the VPC (never the instance metadata service)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from helpers import REPO, SHIPPED_STACKS, selector_matches, stack_settings

from hamieks.kube import workloads


def _deployments(stack: str) -> list[dict[str, Any]]:
    settings = stack_settings(stack)
    return [workloads.deployment(settings, svc) for svc in settings.services]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_root_filesystem_is_read_only_and_every_write_has_a_capped_volume(stack):
    for deployment in _deployments(stack):
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        # $HOME caches and /tmp (HAMi-core's shared accounting file) are writable emptyDirs
        for path in ("/root/.cache", "/root/.config", "/tmp", "/dev/shm"):
            assert path in mounts, path
            volume = volumes[mounts[path]]
            assert "emptyDir" in volume and volume["emptyDir"].get("sizeLimit"), volume
        # every directory the environment sends writes to is on one of those mounts
        env = {e["name"]: e.get("value") for e in container["env"]}
        for variable in ("HF_HOME", "TRITON_CACHE_DIR", "NUMBA_CACHE_DIR"):
            assert any(env[variable] == m or env[variable].startswith(m + "/") for m in mounts), variable


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_namespace_enforces_baseline_and_warns_and_audits_restricted(stack):
    labels = workloads.namespace(stack_settings(stack))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


# ---- egress, evaluated with NetworkPolicy's own semantics ---------------------------------------------

def _egress_allowed(policies: list[dict[str, Any]], pod_labels: dict[str, str], ip: str, port: int, protocol: str,
                    peer: tuple[dict[str, str], dict[str, str]] | None = None) -> bool:
    """Whether some Egress policy selecting the pod admits (ip, port); `peer` is the destination
    pod's (namespace labels, pod labels) when it is a pod. A pod no Egress policy selects is open."""
    selecting = [p for p in policies if "Egress" in p["spec"]["policyTypes"]
                 and selector_matches(p["spec"]["podSelector"], pod_labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("egress", []):
            ports = rule.get("ports")
            if ports and not any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports):
                continue
            for to in rule.get("to", []):
                if "ipBlock" in to:
                    block = to["ipBlock"]
                    address = ipaddress.ip_address(ip)
                    if address in ipaddress.ip_network(block["cidr"]) and not any(
                            address in ipaddress.ip_network(e) for e in block.get("except", [])):
                        return True
                elif peer is not None and selector_matches(to.get("namespaceSelector", {}), peer[0]) \
                        and selector_matches(to.get("podSelector", {}), peer[1]):
                    return True
    return False


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_servers_reach_dns_and_https_out_but_not_metadata_or_the_vpc(stack):
    settings = stack_settings(stack)
    policies = [o for o in workloads.namespace_objects(settings) if o["kind"] == "NetworkPolicy"]
    vpc = ipaddress.ip_network(settings.vpc_cidr)
    inside_vpc = str(vpc.network_address + 10)
    coredns = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"})
    for deployment in _deployments(stack):
        pod = deployment["spec"]["template"]["metadata"]["labels"]
        assert _egress_allowed(policies, pod, "18.164.52.75", 443, "TCP")  # Hugging Face's CDN
        assert _egress_allowed(policies, pod, "10.0.0.2", 53, "UDP", peer=coredns)
        assert _egress_allowed(policies, pod, "10.0.0.2", 53, "TCP", peer=coredns)
        assert not _egress_allowed(policies, pod, "169.254.169.254", 443, "TCP")  # IMDS
        assert not _egress_allowed(policies, pod, "169.254.169.254", 80, "TCP")
        assert not _egress_allowed(policies, pod, "169.254.170.23", 80, "TCP")  # Pod Identity agent
        assert not _egress_allowed(policies, pod, inside_vpc, 443, "TCP")  # nodes, the API's ENIs
        assert not _egress_allowed(policies, pod, "8.8.8.8", 53, "UDP")  # only the cluster's DNS
        assert not _egress_allowed(policies, pod, "18.164.52.75", 80, "TCP")  # HTTPS only
        other_server = ({"kubernetes.io/metadata.name": settings.namespace}, pod)
        assert not _egress_allowed(policies, pod, inside_vpc, 8000, "TCP", peer=other_server)


def test_the_evaluator_sees_an_open_pod_as_open():
    # The checks above must be able to fail: with no Egress policy everything is allowed.
    assert _egress_allowed([], {"app": "x"}, "169.254.169.254", 80, "TCP")


# ---- the API key (vllmApiKey) ------------------------------------------------------------------------

def test_the_api_key_reaches_every_server_from_a_secret_never_in_plain_inputs():
    from pulumi_harness import Secret, run_program

    from hamieks.config import stackfiles

    run = run_program("demo", overrides={"hami-eks:vllmApiKey": stackfiles.SecretValue("v1:cipher")})
    (secret,) = [r for r in run.of_type("kubernetes:core/v1:Secret")
                 if r.inputs["metadata"]["name"] == workloads.API_KEY_SECRET]
    assert all(isinstance(v, Secret) for v in secret.inputs["stringData"].values())
    (namespace,) = [r for r in run.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "llm"]
    assert run.depends_on(secret, namespace)
    deployments = run.of_type("kubernetes:apps/v1:Deployment")
    assert deployments
    for deployment in deployments:
        (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env[workloads.API_KEY_ENV]["valueFrom"]["secretKeyRef"] == {
            "name": workloads.API_KEY_SECRET, "key": workloads.API_KEY_SECRET_KEY}
        assert "--api-key" not in container["args"]
        assert run.depends_on(deployment, secret)  # the Secret exists before a pod reads it


def test_without_an_api_key_no_secret_and_no_variable():
    settings = stack_settings("demo")
    assert not any(o["kind"] == "Secret" for o in workloads.namespace_objects(settings))
    for deployment in _deployments("demo"):
        env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert workloads.API_KEY_ENV not in env


def test_renderings_never_hold_the_key_and_say_how_to_create_it(project):
    from hamieks.kube import rendering

    body = (REPO / "Pulumi.lean.yaml").read_text() + "  hami-eks:vllmApiKey:\n    secure: v1:KEYCIPHER\n"
    files = rendering.render_stack(project("keyed", body), "keyed")
    text = "".join(files.values())
    assert "KEYCIPHER" not in text
    assert f"create secret generic {workloads.API_KEY_SECRET}" in files["00-namespace.yaml"]


# ---- what the cluster component leaves in the state and trusts -------------------------------------

def test_the_kubeconfig_is_a_secret_component_output_too():
    from pulumi_harness import Secret, run_program

    run = run_program("demo")
    (outputs,) = [o for urn, o in run.component_outputs.items() if "hami-eks:cluster:Cluster" in urn]
    # Sent as Pulumi's secret signature object: the state stores the value encrypted.
    assert isinstance(outputs["kubeconfig"], Secret) and '"kind": "Config"' in outputs["kubeconfig"]
    assert not isinstance(outputs["endpoint"], Secret)  # the stack exports it as clusterEndpoint


def test_the_pod_identity_role_is_only_for_this_accounts_clusters():
    from pulumi_harness import ACCOUNT, run_program

    run = run_program("demo")
    roles = [r for r in run.of_type("aws:iam/role:Role") if "pods.eks.amazonaws.com" in r.inputs["assumeRolePolicy"]]
    assert roles
    for role in roles:
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
