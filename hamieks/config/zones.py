"""Which availability zones to build in: only those that offer every instance type we launch.

The reference takes the first two zones of the region blindly; g5.12xlarge is not offered in
every us-west-2 zone, so that node group can fail to launch after twenty minutes of waiting.
"""

from __future__ import annotations

from collections.abc import Iterable

from hamieks.config.values import config_key
from hamieks.errors import ConfigError


def choose_availability_zones(offerings: Iterable[tuple[str, str]], instance_types: Iterable[str],
                              count: int, region: str) -> list[str]:
    """Pick `count` zones (in name order, so the choice is stable) offering every type.

    `offerings` are (instance type, zone) pairs as EC2 DescribeInstanceTypeOfferings returns
    them for location type availability-zone.
    """
    wanted = list(dict.fromkeys(instance_types))
    zones_by_type: dict[str, set[str]] = {t: set() for t in wanted}
    for instance_type, zone in offerings:
        if instance_type in zones_by_type:
            zones_by_type[instance_type].add(zone)
    common = set.intersection(*zones_by_type.values()) if wanted else set()
    if len(common) < count:
        detail = "; ".join(f"{t}: {', '.join(sorted(z)) or 'no zone'}" for t, z in zones_by_type.items())
        raise ConfigError([(
            config_key("availabilityZoneCount"),
            f"only {len(common)} zone(s) in {region} offer every instance type "
            f"({', '.join(sorted(common)) or 'none'}), {count} requested. Offered: {detail}. "
            f"Lower availabilityZoneCount, pick instance types offered more widely, or use another region",
        )])
    return sorted(common)[:count]
