"""Leak audit end to end: leftovers planted in a moto server are found by `python -m hamieks leaks`
(a subprocess talking to 127.0.0.1 through AWS_ENDPOINT_URL), the delete commands it prints are
real AWS CLI operations that, run in its order, leave the account clean; decoys of other clusters
and stacks are left alone."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import xform_name
from moto.server import ThreadedMotoServer

from hamieks.aws.leaks import Owner, find_leftovers
from hamieks.aws.session import Aws

REPO = Path(__file__).resolve().parent.parent
CLUSTER = "hami-demo-aws"  # Pulumi.demo.yaml's clusterName
REGION = "us-west-2"
STACK_TAGS = {"project": "hami-eks", "stack": "demo", "cluster": CLUSTER}  # __main__.py `tags`


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def env(endpoint, tmp_path, monkeypatch) -> dict[str, str]:
    """A clean moto account, reached through AWS_ENDPOINT_URL by this process and the CLI alike."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    settings = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true"}
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return {**{k: v for k, v in os.environ.items()}, **settings}


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def spec(resource: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": tag_list(tags)}]


def leaks_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hamieks", "leaks", "--stack", "demo", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def plant_decoys(vpc: str, subnet: str) -> None:
    """Resources of another cluster / stack, and the VPC's default group: never reported."""
    ec2, logs = client("ec2"), client("logs")
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10,
                      TagSpecifications=spec("volume", {"kubernetes.io/cluster/other-cluster": "owned"}))
    ec2.create_security_group(GroupName="lean-sg", Description="another stack", VpcId=vpc,
                              TagSpecifications=spec("security-group", {**STACK_TAGS, "stack": "lean"}))
    ec2.create_network_interface(SubnetId=subnet, TagSpecifications=spec(
        "network-interface", {"cluster.k8s.amazonaws.com/name": f"{CLUSTER}-2"}))
    logs.create_log_group(logGroupName=f"/aws/eks/{CLUSTER}-2/cluster")  # prefix trap: not ours


def plant_leftovers() -> dict[str, str]:
    """What Kubernetes, EKS and a half-finished destroy leave, tagged as they tag it. kind -> id."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")
               ["Subnet"]["SubnetId"] for i, zone in enumerate("ab")]
    plant_decoys(vpc, subnets[0])
    found: dict[str, str] = {}
    found["ec2-instance"] = ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="g4dn.xlarge", SubnetId=subnets[0],
        TagSpecifications=spec("instance", {"eks:cluster-name": CLUSTER, "eks:nodegroup-name": "t4"}),
    )["Instances"][0]["InstanceId"]
    found["network-interface"] = ec2.create_network_interface(
        SubnetId=subnets[0], Description="aws-K8S-i-0123", TagSpecifications=spec(
            "network-interface", {"cluster.k8s.amazonaws.com/name": CLUSTER}))["NetworkInterface"]["NetworkInterfaceId"]
    found["ebs-volume"] = ec2.create_volume(
        AvailabilityZone=f"{REGION}a", Size=100, TagSpecifications=spec(
            "volume", {f"kubernetes.io/cluster/{CLUSTER}": "owned", "CSIVolumeName": "pvc-1"}))["VolumeId"]
    found["security-group"] = ec2.create_security_group(
        GroupName="k8s-elb-a1", Description="Security group for Kubernetes ELB", VpcId=vpc,
        TagSpecifications=spec("security-group", {f"kubernetes.io/cluster/{CLUSTER}": "owned"}))["GroupId"]
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=spec("elastic-ip", STACK_TAGS))["AllocationId"]
    found["elastic-ip"] = eip
    found["nat-gateway"] = ec2.create_nat_gateway(
        SubnetId=subnets[0], AllocationId=eip, TagSpecifications=spec("natgateway", STACK_TAGS),
    )["NatGateway"]["NatGatewayId"]
    elbv2 = client("elbv2")
    controller_tags = tag_list({"elbv2.k8s.aws/cluster": CLUSTER, "service.k8s.aws/stack": "llm/vllm"})
    found["load-balancer"] = elbv2.create_load_balancer(
        Name="k8s-llm-vllm-0123", Subnets=subnets, Type="network", Tags=controller_tags,
    )["LoadBalancers"][0]["LoadBalancerArn"]
    found["target-group"] = elbv2.create_target_group(
        Name="k8s-llm-vllm-tg", Protocol="TCP", Port=8000, VpcId=vpc, TargetType="ip", Tags=controller_tags,
    )["TargetGroups"][0]["TargetGroupArn"]
    found["classic-load-balancer"] = "a1b2c3d4e5"
    client("elb").create_load_balancer(
        LoadBalancerName="a1b2c3d4e5", Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 30080}],
        Subnets=subnets, Tags=tag_list({f"kubernetes.io/cluster/{CLUSTER}": "owned"}))
    found["log-group"] = f"/aws/eks/{CLUSTER}/cluster"
    client("logs").create_log_group(logGroupName=found["log-group"])
    eks = client("eks")
    role = "arn:aws:iam::123456789012:role/eks"
    eks.create_cluster(name=CLUSTER, roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="t4", nodeRole=role, subnets=subnets)
    found["eks-nodegroup"] = "t4"
    found["eks-cluster"] = CLUSTER
    return found


def run_aws_cli(command: str) -> None:
    """Run one `aws <service> <operation> --param value ...` line through botocore: the operation
    and every parameter must exist in AWS's service model (as the AWS CLI requires), and the call
    goes to the moto server. The aws CLI itself is not a dependency of this project."""
    for part in command.split(" && "):
        words = shlex.split(part)
        assert words[0] == "aws", part
        service, operation, options = words[1], words[2], words[3:]
        aws_client = client(service)
        names = {xform_name(op, "-"): op for op in aws_client.meta.service_model.operation_names}
        assert operation in names, f"{service} has no operation {operation}"
        shape = aws_client.meta.service_model.operation_model(names[operation]).input_shape
        members = {xform_name(m, "-"): m for m in shape.members}
        params: dict[str, Any] = {}
        i = 0
        while i < len(options):
            option = options[i].removeprefix("--")
            if option == "region":
                assert options[i + 1] == REGION
                i += 2
                continue
            assert option in members, f"{part}: {names[operation]} has no parameter --{option}"
            member = members[option]
            if shape.members[member].type_name == "boolean":
                params[member], i = True, i + 1
            else:
                value = options[i + 1]
                params[member] = [value] if shape.members[member].type_name == "list" else value
                i += 2
        getattr(aws_client, xform_name(names[operation]))(**params)


def test_planted_leftovers_are_found_and_their_commands_clean_the_account(env):
    planted = plant_leftovers()
    result = leaks_cli(env, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["clean"] is False
    found = {(item["kind"], item["id"]) for item in report["leftovers"]}
    assert found == set(planted.items())
    assert all(item["region"] == REGION and item["reason"] for item in report["leftovers"])
    reasons = {item["kind"]: item["reason"] for item in report["leftovers"]}
    assert reasons["nat-gateway"].startswith("stack tags project=hami-eks, stack=demo")
    assert reasons["load-balancer"].startswith(f"tag elbv2.k8s.aws/cluster={CLUSTER}")
    assert reasons["network-interface"].startswith(f"tag cluster.k8s.amazonaws.com/name={CLUSTER}")

    for item in report["leftovers"]:  # in the printed order: node group before cluster, NAT before EIP...
        run_aws_cli(item["deleteCommand"])
    again = leaks_cli(env, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout) == {"clean": True, "leftovers": []}


def test_a_clean_account_exits_0(env):
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    plant_decoys(vpc, ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24")["Subnet"]["SubnetId"])
    result = leaks_cli(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"Clean: nothing of cluster {CLUSTER} (stack demo) in {REGION} is left."


def test_the_readable_report_lists_the_delete_commands_in_order(env):
    client("logs").create_log_group(logGroupName=f"/aws/eks/{CLUSTER}/cluster")
    volume = client("ec2").create_volume(AvailabilityZone=f"{REGION}a", Size=8, TagSpecifications=spec(
        "volume", {f"kubernetes.io/cluster/{CLUSTER}": "owned"}))["VolumeId"]
    result = leaks_cli(env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"2 leftover(s) of cluster {CLUSTER} (stack demo) in {REGION}:"
    commands = lines[lines.index("Delete them in this order:") + 1:]
    assert commands == [f"  aws ec2 delete-volume --volume-id {volume} --region {REGION}",
                        f"  aws logs delete-log-group --log-group-name /aws/eks/{CLUSTER}/cluster --region {REGION}"]


def test_listings_are_paginated(env):
    logs = client("logs")
    for n in range(55):  # DescribeLogGroups pages at 50
        logs.create_log_group(logGroupName=f"/aws/eks/{CLUSTER}/group-{n:02d}")
    leftovers = find_leftovers(Aws(REGION), Owner(CLUSTER, "demo", REGION))
    assert sorted(item.id for item in leftovers) == sorted(f"/aws/eks/{CLUSTER}/group-{n:02d}" for n in range(55))


def test_without_credentials_exits_2(env):
    bare = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = leaks_cli(bare)
    assert result.returncode == 2
    assert result.stderr.startswith("leaks: ") and "credentials" in result.stderr and "Traceback" not in result.stderr


def test_unknown_stack_exits_2(env):
    result = subprocess.run([sys.executable, "-m", "hamieks", "leaks", "--stack", "nosuch"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("leaks: no stack file Pulumi.nosuch.yaml")
