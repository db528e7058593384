"""The model-server objects (hamieks.kube.workloads) behave as a real cluster needs them to.

Properties are checked against Kubernetes semantics (label selectors, taints and tolerations,
NetworkPolicy admission, probe budgets, quantities) for every shipped stack, not against copies
of the builder's output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import selector_matches, stack_settings, tolerates, with_service_fields

from hamieks import hami
from hamieks.config import stackfiles
from hamieks.config.conventions import GPU_TAINT
from hamieks.kube import hami_values, workloads

REPO = Path(__file__).resolve().parent.parent
STACKS = stackfiles.available_stacks(REPO)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(deployment)["containers"]
    return only


# ---- Kubernetes semantics, written from the API reference --------------------------------------

def policy_admits(policy: dict[str, Any], policy_ns: str, *, src_ns: str, src_ns_labels: dict[str, str],
                  dst_pod_labels: dict[str, str], port: int, src_pod_labels: dict[str, str] | None = None) -> bool:
    """Whether one ingress NetworkPolicy lets a pod in src_ns reach a pod in the policy's namespace."""
    spec = policy["spec"]
    if not selector_matches(spec["podSelector"], dst_pod_labels) or "Ingress" not in spec["policyTypes"]:
        return True  # not selected by this policy: it says nothing
    for rule in spec.get("ingress") or []:
        ports_ok = not rule.get("ports") or any(p.get("port") == port for p in rule["ports"])
        for peer in rule.get("from") or [{}]:
            if "namespaceSelector" in peer:
                ns_ok = selector_matches(peer["namespaceSelector"], src_ns_labels)
            else:  # a bare podSelector means the policy's own namespace
                ns_ok = src_ns == policy_ns
            pod_ok = "podSelector" not in peer or selector_matches(peer["podSelector"], src_pod_labels or {})
            if ns_ok and pod_ok and ports_ok:
                return True
    return False


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()
    return float(number) * _UNITS[unit]


# ---- the stack as a whole -----------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_stack_objects_come_in_apply_order(stack):
    settings = stack_settings(stack)
    objects = workloads.stack_objects(settings)
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace", "everything else lives in the namespace, so it is applied first"
    assert all(o["metadata"]["namespace"] == settings.namespace for o in objects[1:])
    assert kinds.index("NetworkPolicy") < kinds.index("Deployment"), "no pod may start unprotected"
    names = [svc.name for svc in settings.services]
    assert [d["metadata"]["name"] for d in by_kind(objects, "Deployment")] == names
    assert [s["metadata"]["name"] for s in by_kind(objects, "Service")] == names
    assert "Secret" not in kinds, "without a token nothing may even hint at a Secret value"


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_routes_to_its_own_pods_on_the_vllm_port(stack):
    settings = stack_settings(stack)
    for svc in settings.services:
        deployment, service = workloads.service_objects(settings, svc)
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector_matches(deployment["spec"]["selector"], template_labels)
        assert selector_matches({"matchLabels": service["spec"]["selector"]}, template_labels)
        others = [workloads.deployment(settings, o) for o in settings.services if o.name != svc.name]
        assert not any(selector_matches({"matchLabels": service["spec"]["selector"]},
                                        o["spec"]["template"]["metadata"]["labels"]) for o in others)
        ports = {p["containerPort"] for p in container(deployment)["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


# ---- NetworkPolicy ------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_network_policy_admits_only_labelled_clients_on_8000(stack):
    settings = stack_settings(stack)
    ns = settings.namespace
    policy = workloads.network_policy(settings)
    client_label = dict([workloads.CLIENT_NAMESPACE_LABEL])
    for svc in settings.services:
        pod_labels = workloads.deployment(settings, svc)["spec"]["template"]["metadata"]["labels"]
        port = workloads.service(settings, svc)["spec"]["ports"][0]["targetPort"]
        assert selector_matches(policy["spec"]["podSelector"], pod_labels), "every server is protected"

        def admits(src_ns: str, src_labels: dict[str, str], to_port: int = port,
                   pod: dict[str, str] | None = None, dst: dict[str, str] = pod_labels) -> bool:
            return policy_admits(policy, ns, src_ns=src_ns, src_ns_labels=src_labels,
                                 dst_pod_labels=dst, port=to_port, src_pod_labels=pod)

        own_ns = {"kubernetes.io/metadata.name": ns}
        assert admits(ns, own_ns, pod={"app": "chat-ui", **client_label}), "labelled clients in the namespace"
        assert admits("my-app", {"kubernetes.io/metadata.name": "my-app", **client_label}), "labelled namespaces"
        assert not admits(ns, own_ns, pod={"app": "debug"}), "unlabelled pods of the servers' namespace"
        assert not admits(ns, own_ns, pod=pod_labels), "servers do not call each other"
        assert not admits("my-app", {"kubernetes.io/metadata.name": "my-app"}), "unlabelled namespaces"
        assert not admits(ns, own_ns, to_port=port + 1, pod=client_label), "other ports"
    # Weights come from Hugging Face: egress must stay unrestricted.
    assert policy["spec"]["policyTypes"] == ["Ingress"]


# ---- Hugging Face token -------------------------------------------------------------------------

class _Opaque:
    """Stands in for a Pulumi secret Output: anything but a plain string."""


def test_hf_token_secret_carries_the_token_untouched_and_matches_the_reference():
    settings = stack_settings("demo", hfToken=stackfiles.SecretValue("v1:cipher"))
    token = _Opaque()
    secret = workloads.hf_token_secret(settings, token)
    ((key, value),) = secret["stringData"].items()
    assert value is token, "an Output must pass through without being read or encoded"
    assert secret["metadata"]["namespace"] == settings.namespace
    for svc in settings.services:
        env = {e["name"]: e for e in container(workloads.deployment(settings, svc))["env"]}
        ref = env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], key)


def test_the_secret_is_created_after_the_namespace_and_before_any_pod():
    settings = stack_settings("demo", hfToken=stackfiles.SecretValue("v1:cipher"))
    kinds = [o["kind"] for o in workloads.stack_objects(settings, hf_token=_Opaque())]
    assert kinds.index("Namespace") < kinds.index("Secret") < kinds.index("Deployment")


def test_a_token_for_a_stack_without_hftoken_is_refused():
    with pytest.raises(ValueError, match="hfToken"):
        workloads.stack_objects(stack_settings("demo"), hf_token=_Opaque())


def test_without_hftoken_no_pod_references_a_secret():
    settings = stack_settings("demo")
    for svc in settings.services:
        assert "secretKeyRef" not in json.dumps(workloads.deployment(settings, svc))


# ---- production readiness -----------------------------------------------------------------------

@pytest.mark.parametrize("timeout", [600, 1800, 1805])
def test_startup_probe_budget_covers_download_and_load(timeout):
    settings = with_service_fields("demo", startupTimeoutSeconds=timeout)
    for svc in settings.services:
        deployment = workloads.deployment(settings, svc)
        c = container(deployment)
        startup = c["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert timeout <= budget < timeout + startup["periodSeconds"]
        port_names = {p["name"] for p in c["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["path"] == "/health"
            assert c[probe]["httpGet"]["port"] in port_names
        # A rollout must not be declared failed while a replica is still inside its budget.
        assert deployment["spec"]["progressDeadlineSeconds"] >= budget
        assert workloads.rollout_timeout_seconds(svc) == deployment["spec"]["progressDeadlineSeconds"]


@pytest.mark.parametrize("stack", STACKS)
def test_rollout_never_needs_a_second_gpu_slice(stack):
    settings = stack_settings(stack)
    for svc in settings.services:
        rolling = workloads.deployment(settings, svc)["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxSurge"] == 0
        assert rolling["maxUnavailable"] >= 1, "with no surge, 0 unavailable would never progress"


@pytest.mark.parametrize("stack", STACKS)
def test_shared_memory_is_memory_backed_and_fits_in_the_memory_limit(stack):
    settings = stack_settings(stack)
    for svc in settings.services:
        deployment = workloads.deployment(settings, svc)
        c = container(deployment)
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        (shm,) = [volumes[m["name"]] for m in c["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert shm["emptyDir"]["medium"] == "Memory"
        # tmpfs pages are charged to the container: a full /dev/shm must not OOM-kill it alone.
        limit = quantity_bytes(c["resources"]["limits"]["memory"])
        assert quantity_bytes(shm["emptyDir"]["sizeLimit"]) < limit
        assert quantity_bytes(c["resources"]["requests"]["memory"]) == limit


def test_per_service_resources_reach_the_container():
    settings = with_service_fields("demo", cpu="3", memory="20Gi", shmSize="4Gi")
    for svc in settings.services:
        deployment = workloads.deployment(settings, svc)
        resources = container(deployment)["resources"]
        assert resources["requests"] == {"cpu": "3", "memory": "20Gi"}
        assert resources["limits"]["memory"] == "20Gi"
        assert "cpu" not in resources["limits"]
        assert {v["name"]: v for v in pod_spec(deployment)["volumes"]}["dshm"]["emptyDir"]["sizeLimit"] == "4Gi"


@pytest.mark.parametrize("stack", STACKS)
def test_model_cache_survives_container_restarts_within_pod_security_baseline(stack):
    settings = stack_settings(stack)
    for svc in settings.services:
        deployment = workloads.deployment(settings, svc)
        c = container(deployment)
        hf_home = {e["name"]: e.get("value") for e in c["env"]}["HF_HOME"]
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == hf_home]
        # An emptyDir outlives container restarts (not the pod) and is on disk, not in memory,
        # where it would count against the memory limit; hostPath is forbidden by "baseline".
        cache = volumes[mount["name"]]
        assert set(cache) == {"name", "emptyDir"} and cache["emptyDir"].get("medium") != "Memory"
        assert not mount.get("readOnly")


@pytest.mark.parametrize("stack", STACKS)
def test_pods_run_only_on_their_gpu_group_and_tolerate_its_taint(stack):
    settings = stack_settings(stack)
    for svc in settings.services:
        spec = pod_spec(workloads.deployment(settings, svc))
        fits = [g.name for g in settings.node_groups
                if selector_matches({"matchLabels": spec["nodeSelector"]}, g.labels)]
        assert fits == [svc.node_group]
        assert tolerates(spec["tolerations"], GPU_TAINT.as_dict())


@pytest.mark.parametrize("stack", STACKS)
def test_container_is_pinned_graceful_and_unprivileged(stack):
    settings = stack_settings(stack)
    for svc in settings.services:
        deployment = workloads.deployment(settings, svc)
        spec, c = pod_spec(deployment), container(deployment)
        assert c["imagePullPolicy"] == "IfNotPresent"
        assert not c["image"].endswith(":latest") and (":" in c["image"].rsplit("/", 1)[-1] or "@sha256:" in c["image"])
        assert c["lifecycle"]["preStop"]["sleep"]["seconds"] < spec["terminationGracePeriodSeconds"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert spec["automountServiceAccountToken"] is False
        (account,) = by_kind(workloads.namespace_objects(settings), "ServiceAccount")
        assert spec["serviceAccountName"] == account["metadata"]["name"]
        assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_requests_follow_the_settings(stack):
    settings = stack_settings(stack)
    for svc in settings.services:
        deployment = workloads.deployment(settings, svc)
        limits = container(deployment)["resources"]["limits"]
        memory_keys = {hami.RESOURCE_GPUMEM, hami.RESOURCE_GPUMEM_PERCENTAGE} & set(limits)
        assert len(memory_keys) == 1, "HAMi: gpumem wins over percentage, so never send both"
        (key,) = memory_keys
        expected = svc.gpumem if key == hami.RESOURCE_GPUMEM else svc.gpumem_percentage
        assert int(limits[key]) == expected
        assert int(limits[hami.RESOURCE_GPU]) == 1
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations[hami.ANNOTATION_USE_GPUTYPE] == svc.gpu_type


# ---- namespace: HAMi webhook scope and Pod Security ---------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_namespace_is_in_the_hami_webhook_scope(stack):
    settings = stack_settings(stack)
    labels = workloads.namespace(settings)["metadata"]["labels"]
    selector = hami_values.release_values(settings)["scheduler"]["admissionWebhook"]["namespaceSelector"]
    assert selector_matches(selector, {**labels, "kubernetes.io/metadata.name": settings.namespace})
    assert not selector_matches(selector, {"kubernetes.io/metadata.name": "kube-system"}), \
        "a fail-closed webhook must not gate system pods"


# Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards), the
# "baseline" controls that a model server pod could trip, written from the standard.
_BASELINE_VOLUME_FORBIDDEN = {"hostPath"}
_BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                          "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def _violates_baseline(spec: dict[str, Any]) -> list[str]:
    problems = [f"volume {v['name']}: hostPath" for v in spec.get("volumes", []) if _BASELINE_VOLUME_FORBIDDEN & set(v)]
    problems += [f"host namespace {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    for c in spec["containers"]:
        ctx = c.get("securityContext", {})
        if ctx.get("privileged"):
            problems.append(f"{c['name']}: privileged")
        added = set(ctx.get("capabilities", {}).get("add", [])) - _BASELINE_CAPABILITIES
        problems += [f"{c['name']}: capability {cap}" for cap in sorted(added)]
        problems += [f"{c['name']}: hostPort" for p in c.get("ports", []) if p.get("hostPort")]
    if spec.get("securityContext", {}).get("seccompProfile", {}).get("type") == "Unconfined":
        problems.append("seccomp Unconfined")
    return problems


@pytest.mark.parametrize("stack", STACKS)
def test_namespace_enforces_pod_security_baseline_and_the_servers_meet_it(stack):
    settings = stack_settings(stack)
    labels = workloads.namespace(settings)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    for svc in settings.services:
        assert _violates_baseline(pod_spec(workloads.deployment(settings, svc))) == [], svc.name
    # The check is live: the old node-local hostPath cache would have been refused.
    spec = pod_spec(workloads.deployment(settings, settings.services[0]))
    spec["volumes"].append({"name": "old-cache", "hostPath": {"path": "/var/lib/hami-eks/hf-cache"}})
    assert _violates_baseline(spec) == ["volume old-cache: hostPath"]
