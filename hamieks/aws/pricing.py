"""Live prices for any region: a `cost.PriceLookup` backed by AWS.

- ON_DEMAND: the AWS Price List API (`pricing:GetProducts`, served from us-east-1 for every
  region), Linux, shared tenancy, no pre-installed software, capacity status Used: the list price
  the recorded table in hamieks/catalog.py was copied from by hand.
- SPOT: the EC2 Spot price history (`ec2:DescribeSpotPriceHistory`) in the stack's region: the
  price in effect now in each zone that offers the type, averaged over those zones. Spot prices
  move, so these prices are marked variable and labelled with the time they were read.

`price_lookup(mode, region)` picks the lookup for `plan --prices` and the program:
"recorded" (offline, deterministic), "live" (AWS, error without credentials) or "auto" (live when
credentials resolve, the recorded table otherwise and wherever a live lookup fails).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hamieks import catalog, cost
from hamieks.aws.session import CREDENTIALS_FIX, Aws, AwsCredentialsError, translated_errors
from hamieks.errors import HamiEksError

if TYPE_CHECKING:
    from mypy_boto3_pricing.type_defs import FilterTypeDef

PRICE_MODES = catalog.PRICE_MODES

# Price List attribute values that select the plain Linux on-demand price of an instance type.
ON_DEMAND_ATTRIBUTES = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),  # not the price of an unused capacity reservation
)
SPOT_PRODUCT = "Linux/UNIX"


def on_demand_filters(instance_type: str, region: str) -> list[FilterTypeDef]:
    pairs = (("instanceType", instance_type), ("regionCode", region), *ON_DEMAND_ATTRIBUTES)
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in pairs]


def hourly_on_demand_usd(price_list: Iterable[str]) -> list[float]:
    """USD per hour of each product's OnDemand terms (Price List items are JSON documents:
    terms.OnDemand.<offer>.priceDimensions.<rate>.{unit, pricePerUnit.USD})."""
    prices = []
    for item in price_list:
        product = json.loads(item)
        for offer in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in offer.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if dimension.get("unit") == "Hrs" and usd is not None and float(usd) > 0:
                    prices.append(float(usd))
    return prices


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LivePrices:
    """A cost.PriceLookup that asks AWS, remembering each answer for the life of the object."""

    def __init__(self, aws: Aws, now: Callable[[], datetime] = _utc_now) -> None:
        self.aws = aws
        self._now = now
        self._cache: dict[tuple[str, str, str], cost.Price | None] = {}

    def __call__(self, instance_type: str, region: str, capacity_type: str) -> cost.Price | None:
        key = (instance_type, region, capacity_type)
        if key not in self._cache:
            lookup = self.spot if capacity_type == "SPOT" else self.on_demand
            with translated_errors(f"live {capacity_type} price of {instance_type} in {region}"):
                self._cache[key] = lookup(instance_type, region)
        return self._cache[key]

    def on_demand(self, instance_type: str, region: str) -> cost.Price | None:
        paginator = self.aws.pricing().get_paginator("get_products")
        prices: list[float] = []
        for page in paginator.paginate(ServiceCode="AmazonEC2", Filters=on_demand_filters(instance_type, region)):
            prices += hourly_on_demand_usd(page["PriceList"])
        if not prices:
            return None
        # Several matching products would differ only in attributes we do not filter on; the
        # highest keeps the estimate an upper bound, like the recorded table's SPOT rule.
        return cost.Price(max(prices), f"AWS Price List API, on-demand Linux shared tenancy, read "
                                       f"{self._now():%Y-%m-%d %H:%M} UTC")

    def spot(self, instance_type: str, region: str) -> cost.Price | None:
        now = self._now()
        latest: dict[str, tuple[datetime, float]] = {}
        # StartTime = EndTime = now returns, per zone, the price in effect at that moment.
        paginator = self.aws.ec2(region).get_paginator("describe_spot_price_history")
        for page in paginator.paginate(InstanceTypes=[instance_type],  # type: ignore[list-item]
                                       ProductDescriptions=[SPOT_PRODUCT], StartTime=now, EndTime=now):
            for record in page["SpotPriceHistory"]:
                zone, stamp = record.get("AvailabilityZone", ""), record.get("Timestamp")
                if not zone or stamp is None or "SpotPrice" not in record:
                    continue
                if zone not in latest or stamp > latest[zone][0]:
                    latest[zone] = (stamp, float(record["SpotPrice"]))
        if not latest:
            return None
        mean = sum(price for _, price in latest.values()) / len(latest)
        return cost.Price(mean, f"EC2 Spot price history, {SPOT_PRODUCT}, mean of the current price in "
                                f"{len(latest)} zone(s) of {region} at {now:%Y-%m-%d %H:%M} UTC; varies",
                          variable=True)


class LiveOrRecorded:
    """Live prices, and the recorded table wherever AWS cannot answer (labelled as such).

    After the first failed call it stops asking AWS: offline, each call would otherwise wait for
    its connect timeout and retries."""

    def __init__(self, live: LivePrices) -> None:
        self.live = live
        self.failure: str | None = None

    def __call__(self, instance_type: str, region: str, capacity_type: str) -> cost.Price | None:
        if self.failure is None:
            try:
                price = self.live(instance_type, region, capacity_type)
            except HamiEksError as exc:
                self.failure = str(exc)
            else:
                if price is not None:
                    return price
        recorded = cost.recorded_price(instance_type, region, capacity_type)
        if recorded is None:
            return None
        why = f"live price failed: {self.failure}" if self.failure else "AWS has no live price for it"
        return cost.Price(recorded.usd_per_hour, f"{recorded.source} ({why})", recorded.variable)


def price_lookup(mode: str, region: str, profile: str | None = None) -> tuple[cost.PriceLookup, str]:
    """The lookup for `mode` and a sentence saying which prices it gives, for the report.

    `profile` is the stack's aws:profile (session.stack_profile), if it sets one."""
    recorded_note = f"recorded on-demand table as of {catalog.PRICES_AS_OF} (SPOT at on-demand rates)"
    if mode == "recorded":
        return cost.recorded_price, f"prices: {recorded_note}"
    if mode not in PRICE_MODES:
        raise HamiEksError(f"--prices {mode!r}: use one of {', '.join(PRICE_MODES)}")
    try:
        aws = Aws(region, profile=profile)
        credentials = aws.has_credentials()
    except HamiEksError as exc:
        if mode == "live":
            raise
        return cost.recorded_price, f"prices: {recorded_note}; no live prices ({exc})"
    if mode == "live":
        if not credentials:
            raise AwsCredentialsError(f"--prices live needs AWS credentials; {CREDENTIALS_FIX}")
        return LivePrices(aws), f"prices: live from AWS in {region} (Price List API on-demand, Spot price history)"
    if not credentials:
        return cost.recorded_price, f"prices: {recorded_note}; no AWS credentials, so no live prices"
    return (LiveOrRecorded(LivePrices(aws)),
            f"prices: live from AWS in {region} where it answers, else the {recorded_note}")
