from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from hamieks.config import zones
from hamieks.errors import ConfigError

OFFERINGS = [("g4dn.12xlarge", z) for z in ("r-a", "r-b", "r-c", "r-d")] + \
            [("g5.12xlarge", z) for z in ("r-b", "r-d", "r-c")] + \
            [("m6i.large", z) for z in ("r-a", "r-b", "r-c", "r-d")]


@pytest.mark.parametrize("types, count, expected", [
    (["g4dn.12xlarge"], 2, ["r-a", "r-b"]),
    (["g4dn.12xlarge", "g5.12xlarge"], 2, ["r-b", "r-c"]),
    (["g4dn.12xlarge", "g5.12xlarge", "m6i.large"], 3, ["r-b", "r-c", "r-d"]),
])
def test_only_zones_offering_every_type(types, count, expected):
    assert zones.choose_availability_zones(OFFERINGS, types, count, "r") == expected


def test_not_enough_zones_names_the_key_and_where_each_type_is():
    with pytest.raises(ConfigError) as error:
        zones.choose_availability_zones(OFFERINGS, ["g4dn.12xlarge", "g5.12xlarge"], 4, "r")
    assert error.value.keys == ["hami-eks:availabilityZoneCount"]
    assert "g5.12xlarge: r-b, r-c, r-d" in str(error.value)


def test_against_ec2_offerings():
    """The shape EC2 returns (moto ships AWS's real per-zone offering data)."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-west-2")
        wanted = ["g4dn.12xlarge", "g5.12xlarge", "m6i.large"]
        pages = ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": wanted}])
        pairs = [(o["InstanceType"], o["Location"]) for o in pages["InstanceTypeOfferings"]]
    chosen = zones.choose_availability_zones(pairs, wanted, 2, "us-west-2")
    for zone in chosen:
        assert {t for t, z in pairs if z == zone} == set(wanted)
    every_zone = {z for _, z in pairs}
    excluded = every_zone - {z for z in every_zone if {t for t, zz in pairs if zz == z} == set(wanted)}
    assert not excluded & set(chosen)
