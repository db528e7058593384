"""The hardening rules of the pack: node disks, the API endpoint, IAM, Pod Security, privileged pods,
network isolation of the model servers, and HAMi's webhook failing closed.

Each rule names the harm it prevents. Values that are unknown during a preview (an ARN the cloud
has not assigned yet) are never read as "missing": `_known` tells them apart, so a rule neither
fires on them nor stops with pulumi-policy's "can't be known during preview" advisory.
"""

from __future__ import annotations

from typing import Any

from hami_eks_rules import (
    EKS_CLUSTER,
    EKS_COMPONENT,
    HAMI_CHART,
    HAMI_DEFAULT_FAILURE_POLICY,
    HELM_RELEASE,
    LAUNCH_TEMPLATE,
    NAMESPACE,
    POD_TEMPLATE_KINDS,
    WEBHOOK_SCOPE_LABEL,
    _containers,
    _get,
    _gpu_containers,
    _has,
    _pod_spec,
    _resource_rule,
    _selects,
)
from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ROLE = "aws:iam/role:Role"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
# AWS managed policies that hand out the account: none of this stack's roles needs one.
ADMIN_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
# Pod Security levels that refuse privileged, host-namespace and hostPath pods.
SAFE_POD_SECURITY = ("baseline", "restricted")
WORLD = ("0.0.0.0/0", "::/0")


class _Unknown:
    """A value the engine will only know after the update."""


UNKNOWN = _Unknown()


def _known(props: Any, *path: Any) -> Any:
    """props[path...], None when absent, UNKNOWN when not known during this preview."""
    try:
        return _get(props, *path)
    except UnknownValueError:
        return UNKNOWN


def _true(value: Any) -> bool:
    # Launch-template booleans travel as strings ("true") in pulumi-aws's schema.
    return value is True or (isinstance(value, str) and value.lower() == "true")


# ---- node root volumes encrypted -------------------------------------------------------------------

def _check_node_disks(args: ResourceValidationArgs, report: ReportViolation) -> None:
    mappings = _known(args.props, "blockDeviceMappings")
    if mappings is UNKNOWN:
        return
    if not mappings:
        report(f"launch template {args.name} declares no root volume, so the AMI's default (unencrypted "
               f"unless the account turns on EBS encryption by default) applies; map /dev/xvda with "
               f"ebs.encrypted=true", None)
        return
    for mapping in mappings:
        encrypted = _known(mapping, "ebs", "encrypted")
        if encrypted is not UNKNOWN and not _true(encrypted):
            report(f"launch template {args.name}: volume {_known(mapping, 'deviceName')} is not encrypted "
                   f"(model weights, the HF token in the kubelet's pod files)", None)


# ---- the API endpoint is not open to the world alone ----------------------------------------------

def _check_endpoint(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if args.resource_type == EKS_CLUSTER:
        props = _known(props, "vpcConfig") or {}
    private = _known(props, "endpointPrivateAccess")
    public = _known(props, "endpointPublicAccess")
    cidrs = _known(props, "publicAccessCidrs")
    if UNKNOWN in (private, public, cidrs) or private is True or public is False:
        return
    # pulumi-eks and EKS default to a public endpoint open to 0.0.0.0/0 and no private access.
    open_to = [c for c in (cidrs or list(WORLD[:1])) if c in WORLD]
    if open_to:
        report(f"cluster {args.name}: the private endpoint is off and the public one is open to "
               f"{', '.join(open_to)}: nodes and kubectl alike reach the API over the internet; turn "
               f"endpointPrivateAccess on and list your CIDRs in publicAccessCidrs", None)


# ---- no account-wide IAM policies ----------------------------------------------------------------

def _admin_policy(arn: Any) -> str | None:
    if isinstance(arn, str) and arn.startswith("arn:") and arn.rsplit("/", 1)[-1] in ADMIN_POLICIES:
        return arn.rsplit("/", 1)[-1]
    return None


def _check_admin_policies(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == ROLE_POLICY_ATTACHMENT:
        arns = [_known(args.props, "policyArn")]
    else:
        managed = _known(args.props, "managedPolicyArns")
        arns = [] if managed is UNKNOWN else list(managed or [])
    for arn in arns:
        if (name := _admin_policy(arn)) is not None:
            report(f"{args.name} gives a role {name}: a node (or any pod that reaches its credentials) could "
                   f"take over the account; attach only the worker, CNI and ECR pull policies", None)


# ---- Pod Security on the serving namespace --------------------------------------------------------

def _check_pod_security(args: ResourceValidationArgs, report: ReportViolation) -> None:
    labels = _known(args.props, "metadata", "labels") or {}
    if labels is UNKNOWN or _get(labels, WEBHOOK_SCOPE_LABEL[0]) != WEBHOOK_SCOPE_LABEL[1]:
        return
    level = _get(labels, "pod-security.kubernetes.io/enforce")
    if level not in SAFE_POD_SECURITY:
        report(f"namespace {_get(args.props, 'metadata', 'name')} runs the model servers with Pod Security "
               f"enforce={level or 'unset (privileged)'}: privileged, host-namespace and hostPath pods are "
               f"admitted beside the GPU servers; enforce baseline", None)


# ---- no privileged or host-sharing pods -----------------------------------------------------------

def _check_unprivileged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = _pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if _known(spec, field) is True:
            report(f"{args.name} sets {field}: its pods share the node's namespaces (and reach IMDS and the "
                   f"kubelet as the node does)", None)
    for volume in _known(spec, "volumes") or []:
        if _has(volume, "hostPath"):
            report(f"{args.name} mounts hostPath {_known(volume, 'hostPath', 'path')} (volume "
                   f"{_known(volume, 'name')}): a path onto the node's own filesystem", None)
    for container in _containers(spec):
        context = _known(container, "securityContext") or {}
        if context is not UNKNOWN and _known(context, "privileged") is True:
            report(f"container {_known(container, 'name')} of {args.name} is privileged: it owns the node", None)


# ---- model servers isolated by NetworkPolicy -------------------------------------------------------

def _check_network_isolation(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    for cluster in resources:
        if cluster.resource_type == EKS_COMPONENT \
                and _known(cluster.props, "vpcCniOptions", "enableNetworkPolicy") is not True:
            report(f"cluster {cluster.name}: the VPC CNI runs without enableNetworkPolicy, so every "
                   f"NetworkPolicy of the stack is ignored", cluster.urn)
    policies = [r for r in resources if r.resource_type == NETWORK_POLICY]
    for workload in resources:
        spec = _pod_spec(workload.resource_type, workload.props)
        if spec is None or not _gpu_containers(spec):
            continue
        namespace = _get(workload.props, "metadata", "namespace") or "default"
        pod_labels = _get(workload.props, *POD_TEMPLATE_KINDS[workload.resource_type][:-1], "metadata", "labels") or {}
        for direction in ("Ingress", "Egress"):
            covering = [p for p in policies if _get(p.props, "metadata", "namespace") == namespace
                        and direction in (_get(p.props, "spec", "policyTypes") or [])
                        and _selects(_get(p.props, "spec", "podSelector"), pod_labels)]
            if not covering:
                report(f"{workload.name}: no {direction} NetworkPolicy selects its pods in namespace {namespace}: "
                       + ("any pod in the cluster can call the model server" if direction == "Ingress" else
                          "a compromised server can reach instance metadata, the nodes and the whole VPC"),
                       workload.urn)


# ---- HAMi's webhook fails closed -----------------------------------------------------------------

def _check_hami_fails_closed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _known(args.props, "chart") != HAMI_CHART:
        return
    policy = _known(args.props, "values", "scheduler", "admissionWebhook", "failurePolicy")
    if policy is UNKNOWN:
        return
    if (policy or HAMI_DEFAULT_FAILURE_POLICY) != "Fail":
        report(f"HAMi release {args.name}: the webhook's failurePolicy is {policy or HAMI_DEFAULT_FAILURE_POLICY}: "
               f"while hami-scheduler is down GPU pods are admitted without HAMi, take a whole GPU without its "
               f"memory limit or sit Pending; set scheduler.admissionWebhook.failurePolicy=Fail", None)


POLICIES = [
    _resource_rule("node-disks-encrypted", "Node launch templates encrypt every EBS volume they map.",
                   (LAUNCH_TEMPLATE,), _check_node_disks),
    _resource_rule("api-endpoint-not-world-open",
                   "An EKS API endpoint that is public to 0.0.0.0/0 is not also the only (private access off).",
                   (EKS_COMPONENT, EKS_CLUSTER), _check_endpoint),
    _resource_rule("no-admin-policies", "No role of the stack gets AdministratorAccess, PowerUserAccess or IAMFullAccess.",
                   (ROLE_POLICY_ATTACHMENT, ROLE), _check_admin_policies),
    _resource_rule("serving-namespace-pod-security",
                   "The namespace HAMi's webhook serves enforces Pod Security baseline or restricted.",
                   (NAMESPACE,), _check_pod_security),
    _resource_rule("workloads-unprivileged",
                   "Workloads of the stack are not privileged, share no host namespace and mount no hostPath.",
                   POD_TEMPLATE_KINDS, _check_unprivileged),
    StackValidationPolicy(name="model-servers-network-isolated",
                          description="GPU workloads are selected by an Ingress and an Egress NetworkPolicy, "
                                      "and the VPC CNI enforces NetworkPolicies.",
                          validate=_check_network_isolation),
    _resource_rule("hami-webhook-fails-closed", "HAMi's admission webhook fails closed (failurePolicy Fail).",
                   (HELM_RELEASE,), _check_hami_fails_closed),
]
