"""The rules of the hami-eks policy pack.

Each rule names the harm it prevents. Resource rules see one resource's inputs; stack rules see
every resource with its parent and dependencies, for facts that span resources (which launch
template a node group starts from, which namespace a GPU Deployment lands in). Both kinds accept
the resources this project registers (pulumi-eks components, typed Kubernetes objects, a Helm
release) and the plain AWS resources pulumi-eks creates beneath them.

The pack stands alone (a policy pack is installed into its own virtualenv and may be applied to
other stacks), so HAMi's names are repeated here; tests/test_policy_pack.py proves they equal
hamieks.hami's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

# ---- HAMi's interface (chart 2.10.0; hamieks/hami.py holds the same facts) ----------------------
RESOURCE_GPU = "nvidia.com/gpu"
RESOURCE_GPUMEM = "nvidia.com/gpumem"
RESOURCE_GPUMEM_PERCENTAGE = "nvidia.com/gpumem-percentage"
WEBHOOK_SCOPE_LABEL = ("hami-eks.io/gpu-sharing", "enabled")
HAMI_CHART = "hami"
HAMI_SCHEDULER_COMPONENT = ("app.kubernetes.io/component", "hami-scheduler")
HAMI_DEFAULT_FAILURE_POLICY = "Ignore"  # chart values.yaml scheduler.admissionWebhook.failurePolicy
HAMI_DEFAULT_REPLICAS = 1  # chart values.yaml scheduler.replicas

# ---- resource types ------------------------------------------------------------------------------
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUPS = ("eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup")
EKS_COMPONENT = "eks:index:Cluster"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
WEBHOOK_CONFIGS = ("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration",
                   "kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration")
# Kinds whose pods come from a template at spec.template.spec (CronJob: spec.jobTemplate...).
POD_TEMPLATE_KINDS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
CONTROL_PLANE_LOG_GROUP = re.compile(r"^/aws/eks/(?P<cluster>[^/]+)/cluster$")


# ---- helpers -------------------------------------------------------------------------------------

def _get(props: Any, *path: Any) -> Any:
    """props[path...] or None; only the values on the path are read (an unknown elsewhere in
    the object does not stop the rule during preview)."""
    node = props
    for key in path:
        if isinstance(key, int):
            if not isinstance(node, Sequence) or isinstance(node, str) or key >= len(node):
                return None
        elif not isinstance(node, Mapping) or key not in list(node):
            return None
        node = node[key]
    return node


def _known_blank(props: Mapping[str, Any], key: str) -> bool:
    """Whether props[key] is known and blank; a value only known after the update (a KMS key's
    ARN during the first preview) is not blank, and is not read."""
    try:
        value = props[key]
    except UnknownValueError:
        return False
    return value is None or (isinstance(value, str) and not value.strip())


def _has(props: Mapping[str, Any], key: str) -> bool:
    """Whether a key is set, without reading its value (which may be unknown during preview)."""
    return key in list(props)


def _image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None: a digest, or a tag other than latest."""
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return "has no tag (Docker pulls :latest, a different image on every node replacement)"
    if name.rsplit(":", 1)[1] == "latest":
        return "uses :latest"
    return None


def _pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_TEMPLATE_KINDS.get(resource_type)
    return _get(props, *path) if path else None


def _containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("initContainers", "containers"):
        yield from _get(spec, key) or []


def _resource_rule(name: str, description: str, types: Iterable[str],
                   check: Callable[[ResourceValidationArgs, ReportViolation], None]) -> ResourceValidationPolicy:
    wanted = set(types)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type in wanted:
            check(args, report_violation)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def _upstream(resource: PolicyResource) -> list[PolicyResource]:
    """The resource's dependencies and those of the components it belongs to: a dependency on a
    component's input reaches the resources inside it through the component."""
    found: list[PolicyResource] = []
    node: PolicyResource | None = resource
    while node is not None:
        found.extend(node.dependencies)
        for deps in node.property_dependencies.values():
            found.extend(deps)
        node = node.parent
    return found


# ---- 1. nodes: IMDSv2 with hop limit 1, no SSH ---------------------------------------------------

def _launch_template_problems(props: Mapping[str, Any]) -> list[str]:
    metadata = _get(props, "metadataOptions") or {}
    if _get(metadata, "httpEndpoint") == "disabled":
        return []  # no metadata service at all is stricter still
    problems = []
    if _get(metadata, "httpTokens") != "required":
        problems.append("metadataOptions.httpTokens must be 'required' (IMDSv1 answers any SSRF'd GET "
                        "with the node role's credentials)")
    if _get(metadata, "httpPutResponseHopLimit") != 1:
        problems.append(f"metadataOptions.httpPutResponseHopLimit must be 1, is "
                        f"{_get(metadata, 'httpPutResponseHopLimit')} (at 2 every pod reaches the node's "
                        f"credentials)")
    if _get(props, "keyName"):
        problems.append("keyName is set: nodes take no SSH key (use `kubectl debug node/<name>`)")
    return problems


def _check_launch_template(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for problem in _launch_template_problems(args.props):
        report(problem, None)


def _check_node_group(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if not _has(props, "launchTemplate"):
        hint = " (pulumi-eks enableIMDSv2 sets hop limit 2)" if _get(props, "enableIMDSv2") else ""
        report(f"node group {args.name} starts without a launch template of the stack, so IMDS keeps "
               f"EKS's defaults{hint}; give it one with metadataOptions httpTokens=required, hop limit 1", None)
    if _has(props, "remoteAccess"):
        report(f"node group {args.name} sets remoteAccess (SSH); nodes take no SSH key", None)


def _check_node_group_templates(args: StackValidationArgs, report: ReportViolation) -> None:
    for resource in args.resources:
        if resource.resource_type not in NODE_GROUPS or not _has(resource.props, "launchTemplate"):
            continue
        if resource.parent is not None and resource.parent.resource_type in NODE_GROUPS:
            continue  # pulumi-eks's node group inside a component: the component is checked
        templates = [r for r in _upstream(resource) if r.resource_type == LAUNCH_TEMPLATE]
        if not templates:
            report(f"node group {resource.name} uses a launch template this stack does not manage; "
                   f"its metadata options cannot be verified", resource.urn)
        for template in templates:
            for problem in _launch_template_problems(template.props):
                report(f"node group {resource.name}, launch template {template.name}: {problem}", resource.urn)


# ---- 2. Kubernetes Secrets encrypted -------------------------------------------------------------

def _check_secret_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if args.resource_type == EKS_COMPONENT:
        if not _has(props, "encryptionConfigKeyArn"):
            report(f"cluster {args.name} sets no encryptionConfigKeyArn: Secrets (the Hugging Face token) "
                   f"sit in etcd without envelope encryption", None)
        elif _known_blank(props, "encryptionConfigKeyArn"):
            report(f"cluster {args.name} sets an empty encryptionConfigKeyArn: no key, so Secrets are not "
                   f"envelope-encrypted", None)
        return
    configs = _get(props, "encryptionConfig")
    configs = [configs] if isinstance(configs, Mapping) else list(configs or [])
    if not any("secrets" in (_get(c, "resources") or []) for c in configs):
        report(f"cluster {args.name} has no encryptionConfig for 'secrets'", None)


# ---- 3. control-plane logs kept, for a bounded time ----------------------------------------------

def _check_log_group_retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    name = _get(args.props, "name")
    if not isinstance(name, str) or not CONTROL_PLANE_LOG_GROUP.match(name):
        return
    retention = _get(args.props, "retentionInDays")
    if not retention:
        report(f"log group {name} has no retentionInDays: audit logs would be kept (and billed) forever", None)


def _check_control_plane_log_group(args: StackValidationArgs, report: ReportViolation) -> None:
    groups = {_get(r.props, "name"): r for r in args.resources if r.resource_type == LOG_GROUP}
    for resource in args.resources:
        if resource.resource_type not in (EKS_COMPONENT, EKS_CLUSTER):
            continue
        if resource.resource_type == EKS_CLUSTER and resource.parent is not None \
                and resource.parent.resource_type == EKS_COMPONENT:
            continue  # the component is checked
        log_types = _get(resource.props, "enabledClusterLogTypes") or []
        if not log_types:
            report(f"cluster {resource.name} sends no control-plane logs (enable api, audit, authenticator)",
                   resource.urn)
            continue
        expected = f"/aws/eks/{_get(resource.props, 'name')}/cluster"
        group = groups.get(expected)
        if group is None:
            report(f"cluster {resource.name} logs to {expected}, which the stack does not create: EKS then "
                   f"creates it with no retention and it outlives the stack", resource.urn)
        elif group not in _upstream(resource):
            report(f"cluster {resource.name} does not depend on log group {expected}: EKS may create the "
                   f"group first (without retention) and the stack's creation then fails", resource.urn)


# ---- 4. images pinned ----------------------------------------------------------------------------

def _check_workload_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = _pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    for container in _containers(spec):
        image = _get(container, "image")
        if not isinstance(image, str):
            report(f"container {_get(container, 'name')} of {args.name} has no image", None)
        elif (problem := _image_problem(image)) is not None:
            report(f"container {_get(container, 'name')} of {args.name}: image {image} {problem}", None)


def _helm_image_problems(values: Any, path: str = "values") -> Iterable[str]:
    if isinstance(values, Mapping):
        keys = list(values)
        if "repository" in keys and "tag" in keys:
            tag = values["tag"]
            if not isinstance(tag, str) or not tag.strip() or tag.strip() == "latest":
                yield (f"{path}.tag is {tag!r}: the chart then picks the tag at render time (an empty "
                       f"kube-scheduler tag follows whatever cluster version Helm saw once)")
        for key in keys:
            value = values[key]
            if key == "image" and isinstance(value, str) and (problem := _image_problem(value)):
                yield f"{path}.image {value} {problem}"
            else:
                yield from _helm_image_problems(value, f"{path}.{key}")
    elif isinstance(values, Sequence) and not isinstance(values, str):
        for i, item in enumerate(values):
            yield from _helm_image_problems(item, f"{path}[{i}]")


def _check_helm_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _get(args.props, "version"):
        report(f"Helm release {args.name} pins no chart version: every image default of the chart "
               f"floats with it", None)
    for problem in _helm_image_problems(_get(args.props, "values") or {}):
        report(f"Helm release {args.name}: {problem}", None)


# ---- 5. GPU workloads go through HAMi ------------------------------------------------------------

def _gpu_containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in _containers(spec)
            if RESOURCE_GPU in list(_get(c, "resources", "limits") or {})]


def _check_gpu_workload(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = _pod_spec(args.resource_type, args.props)
    if spec is None or not _gpu_containers(spec):
        return
    for container in _gpu_containers(spec):
        limits = list(_get(container, "resources", "limits") or {})
        if RESOURCE_GPUMEM not in limits and RESOURCE_GPUMEM_PERCENTAGE not in limits:
            report(f"container {_get(container, 'name')} of {args.name} asks for {RESOURCE_GPU} without "
                   f"{RESOURCE_GPUMEM} or {RESOURCE_GPUMEM_PERCENTAGE}: HAMi gives it a whole GPU exclusively "
                   f"and the plan no longer matches the cluster", None)
    if _get(spec, "schedulerName"):
        report(f"{args.name} sets schedulerName {_get(spec, 'schedulerName')!r}: HAMi's webhook assigns "
               f"hami-scheduler itself, and any other scheduler places the pod without HAMi's limits", None)


def _check_gpu_namespaces(args: StackValidationArgs, report: ReportViolation) -> None:
    scoped = {_get(r.props, "metadata", "name") for r in args.resources if r.resource_type == NAMESPACE
              and _get(r.props, "metadata", "labels", WEBHOOK_SCOPE_LABEL[0]) == WEBHOOK_SCOPE_LABEL[1]}
    for resource in args.resources:
        spec = _pod_spec(resource.resource_type, resource.props)
        if spec is None or not _gpu_containers(spec):
            continue
        namespace = _get(resource.props, "metadata", "namespace") or "default"
        if namespace not in scoped:
            report(f"{resource.name} runs GPU pods in namespace {namespace!r}, which is not a namespace of "
                   f"this stack labelled {WEBHOOK_SCOPE_LABEL[0]}={WEBHOOK_SCOPE_LABEL[1]}: HAMi's webhook "
                   f"skips it, so the pods bypass hami-scheduler and its memory limits", resource.urn)


# ---- 6. no single-replica fail-closed webhook ----------------------------------------------------

def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    match = _get(selector, "matchLabels") or {}
    return bool(match) and all(_get(labels, k) == v for k, v in match.items())


def _check_hami_webhook(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    budgets = [r for r in resources if r.resource_type == PDB]
    for release in resources:
        if release.resource_type != HELM_RELEASE or _get(release.props, "chart") != HAMI_CHART:
            continue
        scheduler = _get(release.props, "values", "scheduler") or {}
        policy = _get(scheduler, "admissionWebhook", "failurePolicy") or HAMI_DEFAULT_FAILURE_POLICY
        if policy != "Fail":
            continue
        replicas = _get(scheduler, "replicas") or HAMI_DEFAULT_REPLICAS
        if _get(scheduler, "leaderElect") is False:
            replicas = 1  # the chart renders one replica without leader election
        if replicas < 2:
            report(f"HAMi release {release.name}: failurePolicy Fail with {replicas} scheduler replica(s): "
                   f"while that pod restarts no GPU pod can be created; set scheduler.replicas >= 2",
                   release.urn)
        namespace = _get(release.props, "namespace") or "default"
        pod_labels = {HAMI_SCHEDULER_COMPONENT[0]: HAMI_SCHEDULER_COMPONENT[1],
                      "app.kubernetes.io/name": HAMI_CHART,
                      "app.kubernetes.io/instance": _get(release.props, "name") or release.name}
        if not any(_get(b.props, "metadata", "namespace") == namespace
                   and _selects(_get(b.props, "spec", "selector"), pod_labels)
                   and (_get(b.props, "spec", "minAvailable") or 0) >= 1 for b in budgets):
            report(f"HAMi release {release.name}: no PodDisruptionBudget keeps a scheduler pod through "
                   f"node drains, and a drain may evict both", release.urn)
    # Any other fail-closed webhook served by this stack's own Deployments.
    for config in resources:
        if config.resource_type not in WEBHOOK_CONFIGS:
            continue
        for hook in _get(config.props, "webhooks") or []:
            service = _get(hook, "clientConfig", "service")
            if _get(hook, "failurePolicy") not in (None, "Fail") or not service:
                continue
            targets = [s for s in resources if s.resource_type == SERVICE
                       and _get(s.props, "metadata", "name") == _get(service, "name")
                       and _get(s.props, "metadata", "namespace") == _get(service, "namespace")]
            for target in targets:
                selector = {"matchLabels": _get(target.props, "spec", "selector") or {}}
                replicas = sum(_get(d.props, "spec", "replicas") or 1 for d in resources
                               if d.resource_type == "kubernetes:apps/v1:Deployment"
                               and _selects(selector, _get(d.props, "spec", "template", "metadata", "labels") or {}))
                if replicas < 2:
                    report(f"webhook {_get(hook, 'name')} fails closed but its service "
                           f"{_get(service, 'name')} is backed by {replicas} replica(s)", config.urn)


POLICIES = [
    _resource_rule("nodes-imdsv2-hop-limit-1",
                   "Node launch templates require IMDSv2 with hop limit 1 and no SSH key; node groups use one.",
                   (LAUNCH_TEMPLATE,), _check_launch_template),
    _resource_rule("node-groups-use-launch-template",
                   "Every node group starts from a launch template of the stack and allows no SSH.",
                   NODE_GROUPS, _check_node_group),
    StackValidationPolicy(name="node-group-launch-templates-are-hardened",
                          description="The launch template a node group depends on requires IMDSv2 at hop limit 1.",
                          validate=_check_node_group_templates),
    _resource_rule("cluster-secrets-encrypted",
                   "EKS clusters envelope-encrypt Kubernetes Secrets with a KMS key.",
                   (EKS_COMPONENT, EKS_CLUSTER), _check_secret_encryption),
    _resource_rule("control-plane-log-retention",
                   "EKS control-plane log groups have a retention.",
                   (LOG_GROUP,), _check_log_group_retention),
    StackValidationPolicy(name="control-plane-log-group-owned",
                          description="Clusters send control-plane logs to a log group the stack creates first.",
                          validate=_check_control_plane_log_group),
    _resource_rule("images-pinned",
                   "Container images carry a release tag or digest, never :latest or none.",
                   POD_TEMPLATE_KINDS, _check_workload_images),
    _resource_rule("helm-images-pinned",
                   "Helm releases pin the chart version and set no empty or latest image tag.",
                   (HELM_RELEASE,), _check_helm_images),
    _resource_rule("gpu-workloads-use-hami-limits",
                   "GPU workloads ask HAMi for a memory slice and leave schedulerName to HAMi's webhook.",
                   POD_TEMPLATE_KINDS, _check_gpu_workload),
    StackValidationPolicy(name="gpu-workloads-in-webhook-scope",
                          description="GPU workloads run in a namespace HAMi's webhook is scoped to.",
                          validate=_check_gpu_namespaces),
    StackValidationPolicy(name="fail-closed-webhook-is-redundant",
                          description="A fail-closed admission webhook runs at least two replicas with a PDB.",
                          validate=_check_hami_webhook),
]
