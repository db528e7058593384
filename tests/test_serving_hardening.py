"""The model servers' hardening (issue 19): a read-only root with writable caches where vLLM and
HAMi-core write, Pod Security measured against `restricted`, and egress limited to DNS and HTTPS
out of the VPC (never the instance metadata service)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from helpers import SHIPPED_STACKS, selector_matches, stack_settings

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
        for variable in ("HF_HOME", "TRITON_CACHE_DIR"):
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
