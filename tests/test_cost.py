"""$/hour of a stack: nodes at desired size, EKS control plane, NAT gateways; unknown when unpriced."""

from __future__ import annotations

import pytest
from helpers import group, stack, stack_settings, svc

from hamieks import catalog, cost
from hamieks.scheduling import placement


@pytest.mark.parametrize("per_az, azs, nats", [(False, 3, 1), (True, 3, 3), (True, 2, 2)])
def test_nat_gateways_in_the_cost(per_az, azs, nats):
    settings = stack({"t4": group("g4dn.xlarge", 2)}, [svc("x")], natGatewayPerAz=per_az,
                     availabilityZoneCount=azs, systemInstanceType="t3.large", systemNodeCount=1)
    def price(name: str) -> float:
        return catalog.instance_type(name).price("us-west-2")
    expected = (2 * price("g4dn.xlarge") + price("t3.large") + catalog.EKS_CONTROL_PLANE_USD_PER_HOUR
                + nats * catalog.NAT_GATEWAY_USD_PER_HOUR)
    estimate = cost.estimate_cost(settings)
    assert estimate is not None and estimate.usd_per_hour == pytest.approx(expected, abs=1e-4)


def test_an_unpriced_region_has_no_cost_but_still_a_plan():
    settings = stack_settings("demo", **{"aws:region": "eu-west-1"})
    assert cost.estimate_cost(settings) is None
    result = placement.plan(settings)
    assert result.cost is None and result.estimated_hourly_cost_usd is None
    assert result.all_placed and len(result.placements) == 4
    assert "eu-west-1" in cost.unpriced_message(settings)


def test_a_price_lookup_replaces_the_recorded_table_and_its_source_is_reported():
    def spot(instance: str, region: str, capacity: str) -> cost.Price | None:
        return cost.Price(0.25, "test spot", variable=True) if capacity == "SPOT" else cost.recorded_price(
            instance, region, capacity)
    settings = stack({"t4": {**group("g4dn.xlarge", 2), "capacityType": "SPOT"}}, [svc("x")],
                     systemInstanceType="t3.large", systemNodeCount=1)
    estimate = cost.estimate_cost(settings, spot)
    assert estimate is not None
    assert estimate.lines[0].usd_per_hour == 0.5 and estimate.variable
    assert estimate.sources == ("test spot", cost.RECORDED_SOURCE)


def test_a_missing_price_makes_the_whole_estimate_unknown():
    settings = stack_settings("demo")
    def no_system_price(instance: str, region: str, capacity: str) -> cost.Price | None:
        return None if instance == settings.system_instance_type else cost.recorded_price(instance, region, capacity)
    assert cost.estimate_cost(settings, no_system_price) is None
