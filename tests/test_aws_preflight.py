"""Account preflight against moto (EC2 instance data, per-zone offerings, instances, STS) and
botocore's Stubber for what moto lacks (Service Quotas for EC2, EKS DescribeClusterVersions), then
the CLI end to end in a subprocess against a moto server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from moto import mock_aws
from moto.server import ThreadedMotoServer

from hamieks import catalog
from hamieks.aws import preflight
from hamieks.aws.session import Aws, AwsCredentialsError
from hamieks.check import Check
from hamieks.config.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
CLUSTER = "hami-demo-aws"

# The reference demo's shape: a 4xT4 and a 4xA10G node, two m6i.large system nodes.
DEMO = {
    "aws:region": "us-west-2",
    "hami-eks:clusterName": CLUSTER,
    "hami-eks:nodeGroups": {
        "t4": {"instanceTypes": ["g4dn.12xlarge"], "desiredSize": 1, "minSize": 1, "maxSize": 1},
        "a10g": {"instanceTypes": ["g5.12xlarge"], "desiredSize": 1, "minSize": 1, "maxSize": 1},
    },
    "hami-eks:services": [{"name": "t4-svc", "model": "Qwen/Qwen2.5-1.5B-Instruct", "gpuType": "T4", "gpumem": 7500},
                          {"name": "a10g-svc", "model": "Qwen/Qwen2.5-1.5B-Instruct", "gpuType": "A10G", "gpumemPercentage": 45}],
}


def stack(**changes: Any) -> dict[str, Any]:
    return {**DEMO, **{f"hami-eks:{k}" if ":" not in k else k: v for k, v in changes.items()}}


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws("us-west-2")


def quota_response(code: str, value: float) -> dict[str, Any]:
    return {"Quota": {"ServiceCode": "ec2", "QuotaCode": code, "Value": value, "Unit": "None"}}


def expect_quota(stubber: Stubber, code: str, value: float) -> None:
    stubber.add_response("get_service_quota", quota_response(code, value), {"ServiceCode": "ec2", "QuotaCode": code})


# ---- what the node groups need --------------------------------------------------------------

@pytest.mark.parametrize("instance_type, capacity, code", [
    ("g4dn.12xlarge", "ON_DEMAND", "L-DB2E81BA"),
    ("g6e.xlarge", "SPOT", "L-3819A6DF"),
    ("gr6.4xlarge", "ON_DEMAND", "L-DB2E81BA"),
    ("vt1.3xlarge", "ON_DEMAND", "L-DB2E81BA"),
    ("p4d.24xlarge", "ON_DEMAND", "L-417A185B"),
    ("p5.48xlarge", "ON_DEMAND", "L-417A185B"),   # one On-Demand quota for every P
    ("p4d.24xlarge", "SPOT", "L-7212CCBC"),
    ("p5.48xlarge", "SPOT", "L-C4BD4855"),        # P5 Spot has its own quota
    ("m6i.large", "ON_DEMAND", "L-1216C47A"),
    ("t3.large", "SPOT", "L-34B43A08"),
    ("im4gn.large", "ON_DEMAND", "L-1216C47A"),   # storage optimized I family is Standard
    ("inf2.xlarge", "ON_DEMAND", None),
    ("x2idn.16xlarge", "ON_DEMAND", None),
])
def test_each_family_draws_on_its_documented_quota(instance_type, capacity, code):
    quota = preflight.vcpu_quota(instance_type, capacity)
    assert (quota.code if quota else None) == code


def test_the_demo_needs_96_g_vcpus_and_the_system_group_with_its_spare_node():
    demands, unmapped = preflight.vcpu_demand(load_settings(stack()))
    by_code = {d.quota.code: d for d in demands}
    assert not unmapped
    assert by_code["L-DB2E81BA"].vcpus == 96  # README: "the demo needs 96 vCPUs of ... G and VT"
    # system: systemNodeCount 2 + the rolling-update spare, m6i.large has 2 vCPUs
    assert by_code["L-1216C47A"].vcpus == 2 * (2 + 1)


def test_max_size_and_the_largest_type_of_a_group_count():
    settings = load_settings(stack(nodeGroups={
        "t4": {"instanceTypes": ["g4dn.xlarge", "g4dn.2xlarge"], "desiredSize": 1, "minSize": 1, "maxSize": 3,
               "capacityType": "SPOT"}},
        services=[{"name": "s", "model": "Qwen/Qwen2.5-1.5B-Instruct", "gpuType": "T4", "gpumem": 1000}]))
    demands, _ = preflight.vcpu_demand(settings)
    spot = next(d for d in demands if d.quota == preflight.SPOT_G)
    assert spot.vcpus == 3 * catalog.instance_type("g4dn.2xlarge").vcpu
    assert spot.parts == (("t4: 3 x g4dn.2xlarge (SPOT)", 24),)


# ---- quotas against the account ------------------------------------------------------------------

def test_short_quota_says_the_exact_increase_counting_other_instances(aws):
    ec2 = aws.ec2()
    # Another team's running G instance takes 4 vCPUs of the same quota ...
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="g4dn.xlarge")
    # ... while this cluster's own node (a re-run on a deployed stack) must not be counted twice.
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="g5.12xlarge",
                      TagSpecifications=[{"ResourceType": "instance",
                                          "Tags": [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}]}])
    with Stubber(aws.service_quotas()) as quotas:
        expect_quota(quotas, "L-DB2E81BA", 64.0)
        expect_quota(quotas, "L-1216C47A", 32.0)
        checks = preflight.check_quotas(aws, load_settings(stack()))
        quotas.assert_no_pending_responses()
    g, standard = checks
    assert not g.ok and g.target.startswith("L-DB2E81BA Running On-Demand G and VT instances")
    assert "+ 4 in use by other instances = 100" in g.detail
    assert "quota is only 64 in us-west-2: request an increase to 100 (+36)" in g.detail
    assert ("aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA "
            "--desired-value 100 --region us-west-2") in g.detail
    assert standard.ok and "quota 32" in standard.detail


def test_a_quota_with_only_a_default_value_is_read_from_the_defaults(aws):
    with Stubber(aws.service_quotas()) as quotas:
        quotas.add_client_error("get_service_quota", "NoSuchResourceException", "no applied value",
                                expected_params={"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"})
        quotas.add_response("get_aws_default_service_quota", quota_response("L-DB2E81BA", 0.0),
                            {"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"})
        expect_quota(quotas, "L-1216C47A", 5.0)
        g, standard = preflight.check_quotas(aws, load_settings(stack()))
    assert not g.ok and "--desired-value 96" in g.detail
    assert not standard.ok and "request an increase to 6 (+1)" in standard.detail


def test_a_refused_quota_read_fails_naming_the_permission(aws):
    with Stubber(aws.service_quotas()) as quotas:
        quotas.add_client_error("get_service_quota", "AccessDeniedException", "not authorized")
        expect_quota(quotas, "L-1216C47A", 100.0)
        g, standard = preflight.check_quotas(aws, load_settings(stack()))
    assert not g.ok and "servicequotas:GetServiceQuota" in g.detail and "at least 96 vCPUs" in g.detail
    assert standard.ok


# ---- instance types, GPUs, zones ------------------------------------------------------------------

def test_types_and_gpus_agree_with_ec2(aws):
    checks = preflight.check_instance_types(aws, load_settings(stack()))
    assert [(c.target, c.ok) for c in checks] == [("m6i.large", True), ("g4dn.12xlarge", True), ("g5.12xlarge", True)]
    assert "4x A10G" in checks[2].detail


def test_a_catalog_entry_that_disagrees_with_ec2_gpuinfo_fails(aws, monkeypatch):
    wrong = dataclasses.replace(catalog.INSTANCE_TYPES["g5.12xlarge"], gpu_count=8)
    monkeypatch.setitem(catalog.INSTANCE_TYPES, "g5.12xlarge", wrong)
    checks = {c.target: c for c in preflight.check_instance_types(aws, load_settings(stack()))}
    assert checks["g4dn.12xlarge"].ok
    bad = checks["g5.12xlarge"]
    assert not bad.ok
    assert "EC2 GpuInfo says 4x A10G, the hami-eks catalog says 8x A10G" in bad.detail
    assert "hamieks/catalog.py" in bad.detail


def test_a_type_the_region_does_not_offer_fails():
    with mock_aws():
        aws = Aws("eu-south-2")  # moto's copy of EC2 offerings: no g4dn in eu-south-2
        settings = load_settings(stack(**{"aws:region": "eu-south-2"}, systemInstanceType="t3.large",
                                       nodeGroups={"t4": {"instanceTypes": ["g4dn.xlarge"]}},
                                       services=[{"name": "s", "model": "Qwen/Qwen2.5-1.5B-Instruct", "gpuType": "T4", "gpumem": 1000}]))
        checks = {c.target: c for c in preflight.check_instance_types(aws, settings)}
    assert not checks["g4dn.xlarge"].ok
    assert "EC2 does not offer g4dn.xlarge in eu-south-2" in checks["g4dn.xlarge"].detail


def test_zones_pass_when_enough_offer_every_type(aws):
    check = preflight.check_zones(aws, load_settings(stack()))
    assert check.ok and check.detail.startswith("us-west-2a, us-west-2b offer every instance type")


def test_too_few_zones_offering_every_type_fails_naming_the_key(aws):
    # moto's (AWS's) offerings: g5.12xlarge in three us-west-2 zones only.
    offered = aws.ec2().describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["g5.12xlarge"]}])
    zones = sorted(o["Location"] for o in offered["InstanceTypeOfferings"])
    check = preflight.check_zones(aws, load_settings(stack(availabilityZoneCount=len(zones) + 1)))
    assert not check.ok
    assert check.detail.startswith("hami-eks:availabilityZoneCount: only 3 zone(s)")
    assert f"g5.12xlarge: {', '.join(zones)}" in check.detail


# ---- Kubernetes version -----------------------------------------------------------------------------

def _version(version: str, status: str) -> dict[str, Any]:
    return {"clusterVersion": version, "clusterType": "eks", "versionStatus": status,
            "status": status.lower().replace("_", "-"),
            "endOfStandardSupportDate": datetime(2027, 3, 1, tzinfo=UTC),
            "endOfExtendedSupportDate": datetime(2028, 3, 1, tzinfo=UTC)}


def _check_version(aws: Aws, wanted: str, offered: list[dict[str, Any]]) -> Check:
    with Stubber(aws.eks()) as eks:
        eks.add_response("describe_cluster_versions", {"clusterVersions": offered[:1], "nextToken": "n"},
                         {"includeAll": True})
        eks.add_response("describe_cluster_versions", {"clusterVersions": offered[1:]},
                         {"includeAll": True, "nextToken": "n"})
        check = preflight.check_kubernetes_version(aws, load_settings(stack(kubernetesVersion=wanted)))
        eks.assert_no_pending_responses()
    return check


def test_kubernetes_version_offered_in_standard_support(aws):
    check = _check_version(aws, "1.35", [_version("1.34", "STANDARD_SUPPORT"), _version("1.35", "STANDARD_SUPPORT")])
    assert check.ok and "standard support until 2027-03-01" in check.detail


def test_kubernetes_version_not_offered_fails_listing_what_is(aws):
    check = _check_version(aws, "1.36", [_version("1.34", "STANDARD_SUPPORT"), _version("1.35", "STANDARD_SUPPORT")])
    assert not check.ok
    assert "does not offer Kubernetes 1.36 (offered: 1.34, 1.35)" in check.detail
    assert "hami-eks:kubernetesVersion" in check.detail


def test_kubernetes_version_out_of_support_fails(aws):
    check = _check_version(aws, "1.34", [_version("1.34", "UNSUPPORTED"), _version("1.35", "STANDARD_SUPPORT")])
    assert not check.ok and "no longer supports Kubernetes 1.34 (offered: 1.35)" in check.detail


def test_kubernetes_version_in_extended_support_passes_with_its_price(aws):
    check = _check_version(aws, "1.34", [_version("1.34", "EXTENDED_SUPPORT"), _version("1.35", "STANDARD_SUPPORT")])
    assert check.ok and "extended support until 2028-03-01" in check.detail and "$0.60/hour" in check.detail


def test_no_credentials_raise_before_any_check(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AwsCredentialsError, match="no AWS credentials found"):
        preflight.run_preflight(Aws("us-west-2"), load_settings(stack()))


# ---- the CLI end to end, against a moto server ------------------------------------------------------

class FakeQuotasAndEks(BaseHTTPRequestHandler):
    """The two AWS APIs moto lacks, as the wire protocols botocore speaks: Service Quotas
    (JSON 1.1, X-Amz-Target) and EKS DescribeClusterVersions (REST, GET /cluster-versions)."""

    quotas: ClassVar[dict[str, float]] = {}
    versions: ClassVar[list[dict[str, Any]]] = []

    def _reply(self, status: int, body: dict[str, Any], content_type: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        code = body.get("QuotaCode", "")
        if operation == "GetServiceQuota" and code in self.quotas:
            self._reply(200, quota_response(code, self.quotas[code]), "application/x-amz-json-1.1")
        else:
            self._reply(400, {"__type": "NoSuchResourceException", "message": f"no quota {code}"},
                        "application/x-amz-json-1.1")

    def do_GET(self) -> None:
        if self.path.startswith("/cluster-versions"):
            self._reply(200, {"clusterVersions": self.versions}, "application/json")
        else:
            self._reply(404, {"message": "not found"}, "application/json")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[str, str]]:
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeQuotasAndEks)
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    host, port = moto_server.get_host_and_port()
    FakeQuotasAndEks.versions = [
        {"clusterVersion": v, "clusterType": "eks", "versionStatus": "STANDARD_SUPPORT", "status": "standard-support"}
        for v in ("1.34", "1.35", "1.36")]
    yield {"AWS_ENDPOINT_URL": f"http://{host}:{port}",
           "AWS_ENDPOINT_URL_SERVICE_QUOTAS": f"http://127.0.0.1:{fake.server_address[1]}",
           "AWS_ENDPOINT_URL_EKS": f"http://127.0.0.1:{fake.server_address[1]}"}
    fake.shutdown()
    moto_server.stop()


@pytest.fixture
def cli_env(endpoints, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(endpoints)
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def preflight_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hamieks", "preflight", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path) -> Path:
    """A project directory: the real Pulumi.yaml plus the stack file a test writes."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    return tmp_path


def write_stack(project: Path, name: str, config: dict[str, Any]) -> None:
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))


def test_cli_the_demo_stack_passes_in_a_ready_account(cli_env):
    FakeQuotasAndEks.quotas = {"L-DB2E81BA": 96.0, "L-1216C47A": 16.0}
    result = preflight_cli(cli_env, "--stack", "demo", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert names[0] == "identity"
    assert set(names) == {"identity", "instance-type", "zones", "vcpu-quota", "kubernetes-version", "log-group"}
    identity = report["checks"][0]
    sts = boto3.client("sts", region_name="us-west-2", endpoint_url=cli_env["AWS_ENDPOINT_URL"],
                       aws_access_key_id="testing", aws_secret_access_key="testing").get_caller_identity()
    assert f"account {sts['Account']} as {sts['Arn']}, region us-west-2" == identity["detail"]
    assert all(set(c) == {"name", "target", "ok", "detail"} for c in report["checks"])


def test_cli_a_zero_gpu_quota_fails_with_the_request_to_make(cli_env):
    FakeQuotasAndEks.quotas = {"L-DB2E81BA": 0.0, "L-1216C47A": 16.0}
    result = preflight_cli(cli_env, "--stack", "demo")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  vcpu-quota" in result.stdout
    assert "--quota-code L-DB2E81BA --desired-value 96 --region us-west-2" in result.stdout
    assert "1 of 9 checks failed" in result.stdout  # the 9th: log-group


def test_cli_a_stack_in_a_region_without_the_types_fails(cli_env, project):
    FakeQuotasAndEks.quotas = {"L-DB2E81BA": 96.0, "L-1216C47A": 16.0}
    write_stack(project, "south", stack(**{"aws:region": "ap-southeast-4"}, systemInstanceType="t3.large"))
    result = preflight_cli(cli_env, "--stack", "south", "--project-dir", str(project), "--json")
    assert result.returncode == 1
    failed = {(c["name"], c["target"]) for c in json.loads(result.stdout)["checks"] if not c["ok"]}
    # moto's copy of EC2: ap-southeast-4 offers t3.large but neither g4dn nor g5.12xlarge
    assert failed == {("instance-type", "g4dn.12xlarge"), ("instance-type", "g5.12xlarge"),
                      ("zones", "2 zones in ap-southeast-4")}


def test_cli_without_credentials_exits_2(cli_env):
    env = {k: v for k, v in cli_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = preflight_cli(env, "--stack", "demo")
    assert result.returncode == 2
    assert result.stderr.startswith("preflight: ") and "credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_unknown_stack_exits_2(cli_env):
    result = preflight_cli(cli_env, "--stack", "nosuch")
    assert result.returncode == 2 and "no stack file Pulumi.nosuch.yaml" in result.stderr


def test_cli_credentials_from_aws_profile_or_the_stacks_aws_profile(cli_env, project, tmp_path):
    FakeQuotasAndEks.quotas = {"L-DB2E81BA": 96.0, "L-1216C47A": 16.0}
    credentials = tmp_path / "credentials"
    credentials.write_text("[ci]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {k: v for k, v in cli_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials)
    write_stack(project, "plain", stack())
    write_stack(project, "profiled", stack(**{"aws:profile": "ci"}))
    by_env = preflight_cli({**env, "AWS_PROFILE": "ci"}, "--stack", "plain", "--project-dir", str(project))
    by_stack = preflight_cli(env, "--stack", "profiled", "--project-dir", str(project))
    assert (by_env.returncode, by_stack.returncode) == (0, 0), by_env.stderr + by_stack.stderr
    write_stack(project, "typo", stack(**{"aws:profile": "cj"}))
    typo = preflight_cli(env, "--stack", "typo", "--project-dir", str(project))
    assert typo.returncode == 2 and "(cj) could not be found" in typo.stderr
