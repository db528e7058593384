"""Every config check, from both sides: a value just inside its bound loads, one just outside is
refused naming the key and the fix. Removing a check fails the `refused` row; inverting or
tightening it fails the `accepted` row. Pure: through `load_settings`, as plan and the program
call it (tests/test_config_errors.py runs a sample of these through the Pulumi program)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import QWEN_ARGS, REPO, group, svc

from hamieks.config import stackfiles
from hamieks.config.settings import load_settings
from hamieks.config.values import SECRET_PRESENT
from hamieks.errors import ConfigError

ROLE = "arn:aws:iam::123456789012:role/ci"


def config(**changes: Any) -> dict[str, Any]:
    """A small valid stack; `changes` maps full keys (or `svc.<field>` / `group.<field>`) to values."""
    service, node_group = svc("a", cpu="1", memory="6Gi"), group("g4dn.xlarge")
    base: dict[str, Any] = {"aws:region": "us-west-2", "hami-eks:clusterName": "c"}
    for key, value in changes.items():
        if key.startswith("svc."):
            service[key[4:]] = value
        elif key.startswith("group."):
            node_group[key[6:]] = value
        else:
            base[key] = value
    return {**base, "hami-eks:nodeGroups": {"t4": node_group}, "hami-eks:services": [service]}


ACCEPTED = {
    "two AZs": {"hami-eks:availabilityZoneCount": 2},
    "six AZs": {"hami-eks:availabilityZoneCount": 6},
    "one system node": {"hami-eks:systemNodeCount": 1},
    "longest cluster name AWS's derived names hold": {"hami-eks:clusterName": "c" * 39},
    "cluster name with _ and -": {"hami-eks:clusterName": "a-b_c1"},
    "prices live": {"hami-eks:prices": "live"},
    "prices recorded": {"hami-eks:prices": "recorded"},
    "namespace": {"hami-eks:namespace": "serving-2"},
    "admin role": {"hami-eks:adminPrincipalArns": [ROLE]},
    "admin user in GovCloud": {"hami-eks:adminPrincipalArns": ["arn:aws-us-gov:iam::123456789012:user/ops"]},
    "CIDR list": {"hami-eks:publicAccessCidrs": ["203.0.113.0/24"]},
    "CIDR list as the CLI hands it": {"hami-eks:publicAccessCidrs": '["203.0.113.0/24"]'},
    "chart version": {"hami-eks:hamiChartVersion": "2.10.0"},
    "chart pre-release": {"hami-eks:hamiChartVersion": "2.11.0-rc.1"},
    "region": {"aws:region": "eu-central-1"},
    "GovCloud region": {"aws:region": "us-gov-west-1"},
    "retention": {"hami-eks:controlPlaneLogRetentionDays": 30},
    "smallest disk": {"group.diskSizeGiB": 20},
    "largest disk": {"group.diskSizeGiB": 16384},
    "labels": {"group.labels": {"team": "ml", "example.com/tier": "a.b-c_d", "empty": ""}},
    "label value of 63": {"group.labels": {"team": "x" * 63}},
    "cpu in millicores": {"svc.cpu": "500m"},
    "shm as large as memory": {"svc.shmSize": "6Gi"},
    "largest node group": {"group.desiredSize": 1, "group.maxSize": 450},
    "most system nodes": {"hami-eks:systemNodeCount": 450},
    "most replicas": {"svc.replicas": 10_000},
    "day-long startup": {"svc.startupTimeoutSeconds": 86_400},
}

REFUSED = {
    # case: (changes, offending key, words of the message)
    "one AZ": ({"hami-eks:availabilityZoneCount": 1}, "hami-eks:availabilityZoneCount", "must be 2-6"),
    "seven AZs": ({"hami-eks:availabilityZoneCount": 7}, "hami-eks:availabilityZoneCount", "must be 2-6"),
    "no system node": ({"hami-eks:systemNodeCount": 0}, "hami-eks:systemNodeCount", "at least one system node"),
    "cluster name of 101": ({"hami-eks:clusterName": "c" * 101}, "hami-eks:clusterName", "1-100"),
    "cluster name too long for its IAM roles": ({"hami-eks:clusterName": "c" * 40}, "hami-eks:clusterName",
                                                "1 character(s) too long for the IAM role name"),
    "cluster name starting with -": ({"hami-eks:clusterName": "-c"}, "hami-eks:clusterName", "starting"),
    "cluster name with a dot": ({"hami-eks:clusterName": "a.b"}, "hami-eks:clusterName", "letters, digits"),
    "prices typo": ({"hami-eks:prices": "cheap"}, "hami-eks:prices", "one of recorded, live, auto"),
    "namespace not a label": ({"hami-eks:namespace": "LLM"}, "hami-eks:namespace", "not a DNS label"),
    "namespace kube-system": ({"hami-eks:namespace": "kube-system"}, "hami-eks:namespace", "belongs to Kubernetes"),
    "namespace default": ({"hami-eks:namespace": "default"}, "hami-eks:namespace", "belongs to Kubernetes"),
    "namespace kube- prefix": ({"hami-eks:namespace": "kube-llm"}, "hami-eks:namespace", "kube- prefix"),
    "admin ARN short account": ({"hami-eks:adminPrincipalArns": ["arn:aws:iam::1234:role/ci"]},
                                "hami-eks:adminPrincipalArns", "not an IAM role or user ARN"),
    "admin assumed-role ARN": ({"hami-eks:adminPrincipalArns": ["arn:aws:sts::123456789012:assumed-role/ci/s"]},
                               "hami-eks:adminPrincipalArns", "not an IAM role or user ARN"),
    "CIDR out of range": ({"hami-eks:publicAccessCidrs": ["10.0.0.0/33"]}, "hami-eks:publicAccessCidrs", "not a CIDR"),
    "CIDR as a plain string": ({"hami-eks:publicAccessCidrs": "10.0.0.0/8"}, "hami-eks:publicAccessCidrs",
                               "write it as a YAML list, e.g. [10.0.0.0/8]"),
    "Kubernetes version read as a number": ({"hami-eks:kubernetesVersion": 1.30}, "hami-eks:kubernetesVersion",
                                            'write it quoted, e.g. "1.35"'),
    "chart version latest": ({"hami-eks:hamiChartVersion": "latest"}, "hami-eks:hamiChartVersion", "pin an exact release"),
    "chart version with v": ({"hami-eks:hamiChartVersion": "v2.10.0"}, "hami-eks:hamiChartVersion", "not a chart version"),
    "chart version range": ({"hami-eks:hamiChartVersion": ">=2.10"}, "hami-eks:hamiChartVersion", "not a chart version"),
    "region typo": ({"aws:region": "us-west2"}, "aws:region", "did you mean 'us-west-2'"),
    "region unknown": ({"aws:region": "mars-1"}, "aws:region", "not an AWS region"),
    "retention CloudWatch lacks": ({"hami-eks:controlPlaneLogRetentionDays": 91},
                                   "hami-eks:controlPlaneLogRetentionDays", "e.g. 90"),
    "system type typo": ({"hami-eks:systemInstanceType": "m6i.larg"}, "hami-eks:systemInstanceType",
                         "did you mean 'm6i.large'"),
    "GPU type typo": ({"group.instanceTypes": ["g4dn.xlarg"]}, "hami-eks:nodeGroups.t4.instanceTypes",
                      "did you mean 'g4dn.xlarge'"),
    "disk too small": ({"group.diskSizeGiB": 19}, "hami-eks:nodeGroups.t4.diskSizeGiB", "at least 50"),
    "disk over gp3": ({"group.diskSizeGiB": 16385}, "hami-eks:nodeGroups.t4.diskSizeGiB", "16384"),
    "label key reserved": ({"group.labels": {"node.kubernetes.io/role": "gpu"}}, "hami-eks:nodeGroups.t4.labels",
                           "never join"),
    "label key with a space": ({"group.labels": {"my team": "ml"}}, "hami-eks:nodeGroups.t4.labels", "label key"),
    "label value with a space": ({"group.labels": {"team": "m l"}}, "hami-eks:nodeGroups.t4.labels", "label value"),
    "label value of 64": ({"group.labels": {"team": "x" * 64}}, "hami-eks:nodeGroups.t4.labels", "at most 63"),
    "cpu zero": ({"svc.cpu": "0"}, "hami-eks:services[a].cpu", "more than 0"),
    "memory zero": ({"svc.memory": "0"}, "hami-eks:services[a].memory", "more than 0"),
    "shm above memory": ({"svc.shmSize": "8Gi"}, "hami-eks:services[a].shmSize", "more than memory"),
    "empty service name": ({"svc.name": ""}, "hami-eks:services[0].name", "must not be empty"),
    "node group over the EKS limit": ({"group.maxSize": 451}, "hami-eks:nodeGroups.t4.maxSize", "450"),
    "system nodes over the EKS limit": ({"hami-eks:systemNodeCount": 451}, "hami-eks:systemNodeCount", "450"),
    "replicas typo": ({"svc.replicas": 10**12}, "hami-eks:services[a].replicas", "10000 per service"),
    "startup over a day": ({"svc.startupTimeoutSeconds": 86_401}, "hami-eks:services[a].startupTimeoutSeconds",
                           "more than a day"),
}


@pytest.mark.parametrize("changes", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_value_inside_the_bound_loads(changes):
    load_settings(config(**changes))


@pytest.mark.parametrize("changes, key, words", REFUSED.values(), ids=REFUSED.keys())
def test_a_value_outside_the_bound_is_refused_naming_the_key(changes, key, words):
    with pytest.raises(ConfigError) as caught:
        load_settings(config(**changes))
    assert key in caught.value.keys, str(caught.value)
    message = dict(caught.value.problems)[key] if list(caught.value.keys).count(key) == 1 else str(caught.value)
    assert words in message, str(caught.value)


@pytest.mark.parametrize("token, words", [
    ("hf_plaintextSECRET", "is written in plain text"),
    (12345, "is a int, not an encrypted string"),
    (["hf_x"], "not an encrypted string"),
])
def test_an_hf_token_that_is_not_encrypted_is_refused_without_echoing_it(token, words):
    with pytest.raises(ConfigError) as caught:
        load_settings(config(**{"hami-eks:hfToken": token}))
    message = dict(caught.value.problems)["hami-eks:hfToken"]
    assert words in message and "pulumi config set --secret hfToken" in message
    assert "SECRET" not in str(caught.value) and "12345" not in str(caught.value) and "hf_x" not in str(caught.value)


@pytest.mark.parametrize("token", ["", stackfiles.SecretValue("v1:cipher"), SECRET_PRESENT])
def test_an_encrypted_or_absent_hf_token_loads(token):
    assert load_settings(config(**{"hami-eks:hfToken": token})).hf_token_configured == bool(token)


def test_trust_remote_code_needs_the_services_opt_in():
    args = [*QWEN_ARGS, "--trust-remote-code"]
    with pytest.raises(ConfigError) as caught:
        load_settings(config(**{"svc.args": args}))
    assert "set `trustRemoteCode: true`" in dict(caught.value.problems)["hami-eks:services[a].args"]
    settings = load_settings(config(**{"svc.args": args, "svc.trustRemoteCode": True}))
    assert settings.services[0].trust_remote_code


@pytest.mark.parametrize("args", [
    ["--api-key", "sk-hunter2"],
    ["--api-key=sk-hunter2"],
    ["--api-key", "sk-hunter2", "--api-key", "sk-hunter2"],
])
def test_an_api_key_in_args_is_refused_and_never_shown(args):
    with pytest.raises(ConfigError) as caught:
        load_settings(config(**{"svc.args": [*QWEN_ARGS, *args]}))
    assert "hunter2" not in str(caught.value)
    assert "pulumi config set --secret vllmApiKey" in str(caught.value)


def test_a_long_node_group_name_counts_with_the_cluster_name():
    groups = {"g" * 40: group("g4dn.xlarge")}
    base = {"aws:region": "us-west-2", "hami-eks:services": [svc("a", cpu="1", memory="6Gi")]}
    with pytest.raises(ConfigError) as caught:
        load_settings({**base, "hami-eks:clusterName": "c" * 9, "hami-eks:nodeGroups": groups})
    assert "too long for the node group name" in dict(caught.value.problems)["hami-eks:clusterName"]
    load_settings({**base, "hami-eks:clusterName": "c" * 8, "hami-eks:nodeGroups": groups})  # 8+1+40+6+8 = 63


@pytest.mark.parametrize("stack", ["demo", "lean"])
def test_every_name_that_grows_with_the_cluster_name_is_counted(stack):
    """The program's own auto-named IAM roles and node groups are exactly those names.derived_names
    lists (pulumi-eks's service role is inside eks.Cluster, which mocks do not expand)."""
    from pulumi_harness import run_program

    from hamieks.config import names

    run = run_program(stack)
    settings = load_settings(stackfiles.load_stack_config(REPO, stack))
    registered = {r.name for r in run.of_type("aws:iam/role:Role")} | {
        r.name for r in run.of_type("eks:index:ManagedNodeGroup")}
    counted = {name for _, name, _ in names.derived_names(settings.cluster_name, [g.name for g in settings.node_groups])}
    assert registered <= counted, registered - counted
