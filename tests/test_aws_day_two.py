"""Issue 18's account checks: a control-plane log group left by an earlier cluster (preflight
names it with the fix, the leak audit catches it), and whether this machine's egress address may
reach a restricted public endpoint (a loopback echo server stands in for the lookup)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import pytest
from helpers import REPO
from moto import mock_aws

from hamieks.aws import egress, preflight
from hamieks.aws.leaks import Owner, cached_repository_leftovers, log_group_leftovers
from hamieks.aws.session import Aws
from hamieks.config import stackfiles
from hamieks.config.conventions import ecr_cache_namespace
from hamieks.config.settings import load_settings
from hamieks.kube import registry_mirror

REGION = "us-west-2"
CLUSTER = "hami-demo-aws"
LOG_GROUP = f"/aws/eks/{CLUSTER}/cluster"


def settings(**changes: Any):
    config = stackfiles.load_stack_config(REPO, "demo")
    config.update({f"hami-eks:{k}": v for k, v in changes.items()})
    assert config["hami-eks:clusterName"] == CLUSTER
    return load_settings(config)


@pytest.fixture
def aws(monkeypatch) -> Iterator[Aws]:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield Aws(REGION)


# ---- the control-plane log group ------------------------------------------------------------------

def test_an_untagged_log_group_fails_preflight_with_the_delete_command(aws):
    # What EKS leaves: it re-creates the group from late logs after a destroy, without our tags.
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=LOG_GROUP)
    check = preflight.check_log_group(aws, settings(), "demo")
    assert not check.ok and check.target == LOG_GROUP
    assert "ResourceAlreadyExists" in check.detail
    assert f"aws logs delete-log-group --log-group-name {LOG_GROUP} --region {REGION}" in check.detail
    assert (f"pulumi import --stack demo aws:cloudwatch/logGroup:LogGroup {CLUSTER}-control-plane-logs {LOG_GROUP} "
            f"--parent cluster=urn:pulumi:demo::hami-eks::hami-eks:cluster:Cluster::{CLUSTER}") in check.detail


def test_the_import_command_names_the_log_groups_real_urn():
    """The parent and name in the import command are the ones the program registers."""
    from pulumi_harness import run_program

    run = run_program("demo")
    group = next(r for r in run.of_type("aws:cloudwatch/logGroup:LogGroup") if r.inputs["name"] == LOG_GROUP)
    assert group.name == f"{CLUSTER}-control-plane-logs"
    # The mock monitor keeps the root stack's type in a child's URN; the engine leaves it out.
    assert group.parent.replace("pulumi:pulumi:Stack$", "") == \
        f"urn:pulumi:demo::hami-eks::hami-eks:cluster:Cluster::{CLUSTER}"


def test_the_stacks_own_log_group_passes(aws):
    boto3.client("logs", region_name=REGION).create_log_group(
        logGroupName=LOG_GROUP, tags={"project": "hami-eks", "stack": "demo", "cluster": CLUSTER})
    assert preflight.check_log_group(aws, settings(), "demo").ok
    # ... but not for another stack using the same cluster name.
    assert not preflight.check_log_group(aws, settings(), "other").ok


def test_no_log_group_passes_and_a_neighbours_does_not_count(aws):
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=f"/aws/eks/{CLUSTER}-2/cluster")
    assert preflight.check_log_group(aws, settings(), "demo").ok


def test_run_preflight_includes_the_log_group_check(aws, monkeypatch):
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=LOG_GROUP)
    # Only the new check matters here; the others have their own tests.
    for name in ("check_instance_types", "check_quotas"):
        monkeypatch.setattr(preflight, name, lambda *a: [])
    monkeypatch.setattr(preflight, "check_zones", lambda *a: preflight.Check("zones", "", True, ""))
    monkeypatch.setattr(preflight, "check_kubernetes_version", lambda *a: preflight.Check("k", "", True, ""))
    checks = preflight.run_preflight(aws, settings(), stack="demo", egress_lookup=lambda: None)
    assert [c.ok for c in checks if c.name == "log-group"] == [False]


def test_the_leak_audit_lists_the_log_group_and_says_to_re_run_later(aws):
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=LOG_GROUP)
    found = list(log_group_leftovers(aws, Owner(stack="demo", cluster_name=CLUSTER, region=REGION)))
    assert [f.id for f in found] == [LOG_GROUP]
    assert "re-run `hami-eks leaks` a few minutes" in found[0].reason
    assert f"delete-log-group --log-group-name {LOG_GROUP}" in found[0].delete_command


# ---- the egress address and publicAccessCidrs ----------------------------------------------------

class Echo(BaseHTTPRequestHandler):
    answer: ClassVar[str] = "203.0.113.7"
    delay: ClassVar[float] = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = (self.answer + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    Echo.answer, Echo.delay = "203.0.113.7", 0.0


def test_the_lookup_reads_the_echoed_address(echo):
    assert egress.lookup_egress_address(echo) == "203.0.113.7"


def test_the_lookup_is_time_bounded_and_says_unknown(echo):
    Echo.delay = 2.0
    started = time.monotonic()
    assert egress.lookup_egress_address(echo, timeout=0.3) is None
    assert time.monotonic() - started < 1.5


def test_a_garbled_answer_is_unknown(echo):
    Echo.answer = "<html>proxy login</html>"
    assert egress.lookup_egress_address(echo) is None


def test_the_lookup_url_comes_from_the_environment(echo, monkeypatch):
    monkeypatch.setenv("HAMI_EKS_EGRESS_URL", echo)
    assert egress.lookup_egress_address() == "203.0.113.7"


def test_an_open_endpoint_needs_no_lookup():
    def lookup() -> str:
        raise AssertionError("no lookup for 0.0.0.0/0")
    assert egress.check_public_access(("0.0.0.0/0",), lookup) is None


def test_an_address_inside_the_cidrs_passes():
    check = egress.check_public_access(("198.51.100.0/24", "203.0.113.0/24"), lambda: "203.0.113.7")
    assert check is not None and check.ok and "inside 203.0.113.0/24" in check.detail


def test_an_address_outside_the_cidrs_fails_with_the_fix():
    check = egress.check_public_access(("198.51.100.0/24",), lambda: "203.0.113.7")
    assert check is not None and not check.ok
    assert "203.0.113.7/32" in check.detail and "CI runners have no fixed address" in check.detail


def test_an_unknown_address_is_said_not_guessed():
    check = egress.check_public_access(("198.51.100.0/24",), lambda: None)
    assert check is not None and "is unknown" in check.detail


def test_run_preflight_checks_a_restricted_endpoint(aws, monkeypatch, echo):
    for name in ("check_instance_types", "check_quotas"):
        monkeypatch.setattr(preflight, name, lambda *a: [])
    monkeypatch.setattr(preflight, "check_zones", lambda *a: preflight.Check("zones", "", True, ""))
    monkeypatch.setattr(preflight, "check_kubernetes_version", lambda *a: preflight.Check("k", "", True, ""))
    monkeypatch.setenv("HAMI_EKS_EGRESS_URL", echo)
    checks = preflight.run_preflight(aws, settings(publicAccessCidrs=["198.51.100.0/24"]), stack="demo")
    public = [c for c in checks if c.name == "public-access"]
    assert len(public) == 1 and not public[0].ok and "203.0.113.7" in public[0].detail


# ---- ECR pull-through cache: per-cluster prefixes and the leak audit -------------------------------

ECR_PREFIX = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")  # ECR API pattern


@pytest.mark.parametrize("cluster", ["hami-demo-aws", "Team_A--GPU", "a" * 100, "x1", "Very-Long_Cluster-Name-2026-prod"])
def test_every_rule_prefix_is_one_ecr_accepts_and_names_the_cluster(cluster):
    for upstream in registry_mirror.UPSTREAMS:
        prefix = registry_mirror.rule_prefix(cluster, upstream)
        assert 2 <= len(prefix) <= 30 and ECR_PREFIX.fullmatch(prefix), prefix
        assert prefix.endswith(f"/{upstream.prefix}")


def test_two_clusters_never_share_a_namespace():
    assert ecr_cache_namespace("hami-demo-aws") != ecr_cache_namespace("hami-lean-aws")
    long_a, long_b = "team-gpu-cluster-number-one", "team-gpu-cluster-number-two"
    assert ecr_cache_namespace(long_a) != ecr_cache_namespace(long_b)
    assert ecr_cache_namespace(long_a) == ecr_cache_namespace(long_a)  # stable across runs


def test_the_leak_audit_lists_the_clusters_cached_repositories_only(aws):
    ecr = boto3.client("ecr", region_name=REGION)
    ours = f"{ecr_cache_namespace(CLUSTER)}/docker-hub/vllm/vllm-openai"
    for name in (ours, f"{ecr_cache_namespace(CLUSTER)}-2/docker-hub/vllm/vllm-openai", "docker-hub/library/nginx"):
        ecr.create_repository(repositoryName=name)
    found = list(cached_repository_leftovers(aws, Owner(stack="demo", cluster_name=CLUSTER, region=REGION)))
    assert [f.id for f in found] == [ours]
    assert found[0].delete_command == (f"aws ecr delete-repository --repository-name {ours} --force "
                                       f"--region {REGION}")
