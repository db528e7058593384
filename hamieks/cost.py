"""What a stack costs per hour: its nodes at desired size, the EKS control plane, NAT gateways.

Prices come from a `PriceLookup`. The default is the table recorded in the catalog (on-demand
list prices, dated); with AWS credentials a live lookup (hamieks.aws.pricing) can stand in for
it. When any price the stack needs is unknown the estimate is `None`: placement does not need
prices, and callers say that cost is unknown instead of refusing to plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hamieks import catalog
from hamieks.config.settings import Settings
from hamieks.errors import HamiEksError

HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    source: str  # where the figure comes from, for the report
    variable: bool = False  # Spot prices move; an on-demand list price does not


# (instance type, region, capacity type "ON_DEMAND" | "SPOT") -> price, or None when unknown
PriceLookup = Callable[[str, str, str], "Price | None"]

RECORDED_SOURCE = f"recorded on-demand list prices as of {catalog.PRICES_AS_OF} ({catalog.PRICE_SOURCE})"


def recorded_price(instance_type: str, region: str, capacity_type: str) -> Price | None:
    """The catalog's recorded on-demand price. SPOT is priced at on-demand too (an upper bound;
    the settings warn about it), since spot prices cannot be recorded meaningfully."""
    del capacity_type
    try:
        return Price(catalog.instance_type(instance_type).price(region), RECORDED_SOURCE)
    except HamiEksError:
        return None


@dataclass(frozen=True)
class CostLine:
    item: str
    count: int
    usd_per_hour_each: float
    source: str = RECORDED_SOURCE
    variable: bool = False

    @property
    def usd_per_hour(self) -> float:
        return self.count * self.usd_per_hour_each


@dataclass(frozen=True)
class CostEstimate:
    region: str
    lines: tuple[CostLine, ...]

    @property
    def usd_per_hour(self) -> float:
        return round(sum(line.usd_per_hour for line in self.lines), 4)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(line.source for line in self.lines))

    @property
    def variable(self) -> bool:
        return any(line.variable for line in self.lines)


def estimate_cost(settings: Settings, prices: PriceLookup = recorded_price) -> CostEstimate | None:
    """$/hour of the stack, or None when a price it needs is unknown (see module doc)."""
    region = settings.region
    nodes = [(f"{g.name} nodes ({g.instance.name})", g.desired_size, g.instance.name, g.capacity_type)
             for g in settings.node_groups]
    nodes.append((f"system nodes ({settings.system_instance_type})", settings.system_node_count,
                  settings.system_instance_type, "ON_DEMAND"))
    lines = []
    for item, count, instance, capacity in nodes:
        price = prices(instance, region, capacity)
        if price is None:
            return None
        lines.append(CostLine(item, count, price.usd_per_hour, price.source, price.variable))
    nat_count = settings.availability_zone_count if settings.nat_gateway_per_az else 1
    # Flat fees: recorded, whatever priced the nodes (they are the same in every priced region).
    lines.append(CostLine("EKS control plane", 1, catalog.EKS_CONTROL_PLANE_USD_PER_HOUR))
    lines.append(CostLine("NAT gateway(s)", nat_count, catalog.NAT_GATEWAY_USD_PER_HOUR))
    return CostEstimate(region, tuple(lines))


def unpriced_message(settings: Settings) -> str:
    return (f"cost unknown: no recorded prices for {settings.region} (recorded: "
            f"{', '.join(catalog.PRICED_REGIONS)}); placement does not depend on prices")
