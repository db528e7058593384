"""The GPU catalog against EC2's own instance-type data (moto ships AWS's DescribeInstanceTypes)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from hamieks import catalog, errors

GPU_TYPES = sorted(n for n, it in catalog.INSTANCE_TYPES.items() if it.is_gpu)


@pytest.fixture(scope="module")
def ec2_instance_types():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        found = {}
        names = sorted(catalog.INSTANCE_TYPES)
        for start in range(0, len(names), 100):
            for it in ec2.describe_instance_types(InstanceTypes=names[start:start + 100])["InstanceTypes"]:
                found[it["InstanceType"]] = it
        return found


def test_families_required_by_the_planner_are_present():
    families = {name.split(".")[0] for name in GPU_TYPES}
    for family in ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5"):
        # p3 lives on as p3dn; the plain p3 sizes are retired (see catalog.py).
        assert any(f == family or (f.startswith(family) and f[len(family):].isalpha()) for f in families), family


@pytest.mark.parametrize("name", sorted(catalog.INSTANCE_TYPES))
def test_catalog_matches_ec2(name, ec2_instance_types):
    ours = catalog.INSTANCE_TYPES[name]
    theirs = ec2_instance_types[name]
    assert ours.vcpu == theirs["VCpuInfo"]["DefaultVCpus"]
    assert ours.memory_gib * 1024 == pytest.approx(theirs["MemoryInfo"]["SizeInMiB"], rel=0.03)
    gpus = theirs.get("GpuInfo", {}).get("Gpus", [])
    if not ours.is_gpu:
        assert not gpus
        return
    assert [(g["Name"], g["Count"]) for g in gpus] == [(ours.gpu.short, ours.gpu_count)]
    # HAMi sees what nvidia-smi reports, a few percent off AWS's nominal figure either way.
    assert ours.gpu.memory_mib == pytest.approx(gpus[0]["MemoryInfo"]["SizeInMiB"], rel=0.07)


@pytest.mark.parametrize("name", sorted(catalog.INSTANCE_TYPES))
def test_eni_limits_match_ec2(name, ec2_instance_types):
    """nodeadm's max pods (util/ec2.go getInstanceInfoFromDescribeResponse) uses the ENIs of the
    default network card, not NetworkInfo.MaximumNetworkInterfaces: they differ on multi-card types
    (p4d: 15 on card 0 of 60 in all, p5: 2 of 64)."""
    ours = catalog.INSTANCE_TYPES[name]
    network = ec2_instance_types[name]["NetworkInfo"]
    default_card = network.get("DefaultNetworkCardIndex", 0)
    card = next(c for c in network["NetworkCards"] if c["NetworkCardIndex"] == default_card)
    assert (ours.enis, ours.ipv4_per_eni) == (card["MaximumNetworkInterfaces"], network["Ipv4AddressesPerInterface"])


def test_numa_layouts_are_recorded_only_where_known():
    # EC2 does not publish GPU-to-NUMA layouts; the catalog records none rather than guess.
    for it in catalog.INSTANCE_TYPES.values():
        assert it.gpu_numa == () or len(it.gpu_numa) == it.gpu_count
        assert it.numa_of(0) == (it.gpu_numa[0] if it.gpu_numa else 0)


@pytest.mark.parametrize("name", sorted(catalog.INSTANCE_TYPES))
def test_every_type_is_priced_in_both_regions(name):
    it = catalog.INSTANCE_TYPES[name]
    assert all(it.price(region) > 0 for region in catalog.PRICED_REGIONS)


def test_unpriced_region_is_a_clear_error():
    with pytest.raises(errors.UnpricedRegion, match="no recorded price for g5.xlarge in eu-west-1"):
        catalog.instance_type("g5.xlarge").price("eu-west-1")


def test_unknown_instance_type_names_the_fix():
    with pytest.raises(errors.UnknownInstanceType, match="not in the hami-eks catalog.*hamieks/catalog.py"):
        catalog.instance_type("g9.mega")
