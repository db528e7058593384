"""Live prices: the Price List API through botocore's Stubber (moto has no Price List API; the
Stubber still checks every request against AWS's service model), Spot price history from moto and
from the Stubber where moto's fixed history cannot show "latest per zone"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from hamieks import cost
from hamieks.aws import pricing
from hamieks.aws.session import Aws, AwsCredentialsError
from hamieks.config.settings import load_settings
from hamieks.errors import HamiEksError

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def _product(instance_type: str, region: str, on_demand_usd: str) -> str:
    """A Price List item shaped as GetProducts returns it (a JSON document per product)."""
    sku = "SKU" + instance_type.replace(".", "")
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku,
                    "attributes": {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
                                   "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}},
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {f"{sku}.JRTCKXETXF": {"priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": on_demand_usd},
                "description": f"${on_demand_usd} per On Demand Linux {instance_type} Instance Hour"}}}},
            # Reserved terms sit beside OnDemand in the same document and must not be read.
            "Reserved": {f"{sku}.4NA7Y494T4": {"priceDimensions": {f"{sku}.4NA7Y494T4.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": "0.1000000000"}}}}},
        },
    })


def _expect_products(stubber: Stubber, instance_type: str, region: str, pages: list[list[str]]) -> None:
    filters = pricing.on_demand_filters(instance_type, region)
    for number, items in enumerate(pages):
        params = {"ServiceCode": "AmazonEC2", "Filters": filters}
        if number:
            params["NextToken"] = f"page-{number}"
        response = {"PriceList": items, "FormatVersion": "aws_v1"}
        if number < len(pages) - 1:
            response["NextToken"] = f"page-{number + 1}"
        stubber.add_response("get_products", response, params)


@pytest.fixture
def aws():
    with mock_aws():
        yield Aws("us-west-2")


def test_on_demand_price_from_the_price_list_api_in_any_region(aws):
    live = pricing.LivePrices(aws, now=lambda: NOW)
    with Stubber(aws.pricing()) as stubber:
        # eu-central-1 is not in the recorded table; the product arrives on the second page.
        second_page = [_product("g5.2xlarge", "eu-central-1", "1.4660000000")]
        _expect_products(stubber, "g5.2xlarge", "eu-central-1", [[], second_page])
        price = live("g5.2xlarge", "eu-central-1", "ON_DEMAND")
        again = live("g5.2xlarge", "eu-central-1", "ON_DEMAND")  # cached: no second request
        stubber.assert_no_pending_responses()
    assert price == again
    assert price is not None and price.usd_per_hour == pytest.approx(1.466)
    assert not price.variable
    assert "Price List API" in price.source and "2026-11-22 09:30 UTC" in price.source
    assert cost.recorded_price("g5.2xlarge", "eu-central-1", "ON_DEMAND") is None


def test_the_price_list_filters_select_linux_shared_used_capacity(aws):
    fields = {f["Field"]: f["Value"] for f in pricing.on_demand_filters("g4dn.xlarge", "ap-south-1")}
    assert fields == {"instanceType": "g4dn.xlarge", "regionCode": "ap-south-1", "operatingSystem": "Linux",
                      "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
    assert aws.pricing().meta.region_name == "us-east-1"


def test_spot_price_is_the_mean_of_the_latest_price_per_zone(aws):
    history_1 = [
        {"AvailabilityZone": "us-west-2a", "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "0.5000", "Timestamp": NOW - timedelta(hours=3)},
        {"AvailabilityZone": "us-west-2b", "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "0.4000", "Timestamp": NOW - timedelta(hours=1)},
    ]
    history_2 = [  # a newer price for 2a on the next page replaces the older one
        {"AvailabilityZone": "us-west-2a", "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "0.3000", "Timestamp": NOW - timedelta(minutes=5)},
    ]
    params = {"InstanceTypes": ["g5.xlarge"], "ProductDescriptions": ["Linux/UNIX"], "StartTime": NOW, "EndTime": NOW}
    live = pricing.LivePrices(aws, now=lambda: NOW)
    with Stubber(aws.ec2("us-west-2")) as stubber:
        stubber.add_response("describe_spot_price_history", {"SpotPriceHistory": history_1, "NextToken": "t2"}, params)
        stubber.add_response("describe_spot_price_history", {"SpotPriceHistory": history_2},
                             {**params, "NextToken": "t2"})
        price = live("g5.xlarge", "us-west-2", "SPOT")
        stubber.assert_no_pending_responses()
    assert price is not None
    assert price.usd_per_hour == pytest.approx((0.3 + 0.4) / 2)
    assert price.variable
    assert "2 zone(s) of us-west-2" in price.source and "varies" in price.source


def test_spot_price_from_moto_covers_every_zone_offering_the_type(aws):
    price = pricing.LivePrices(aws, now=lambda: NOW)("g5.12xlarge", "us-west-2", "SPOT")
    offered = aws.ec2().describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["g5.12xlarge"]}])
    zones = {o["Location"] for o in offered["InstanceTypeOfferings"]}
    history = aws.ec2().describe_spot_price_history(InstanceTypes=["g5.12xlarge"])["SpotPriceHistory"]
    assert price is not None and price.variable
    assert price.usd_per_hour == pytest.approx(sum(float(h["SpotPrice"]) for h in history) / len(history))
    assert f"{len(zones)} zone(s) of us-west-2" in price.source


SPOT_STACK = {
    "aws:region": "eu-central-1",
    "hami-eks:nodeGroups": {"t4": {"instanceTypes": ["g4dn.xlarge"], "desiredSize": 2, "maxSize": 2,
                                   "capacityType": "SPOT"}},
    "hami-eks:services": [{"name": "a", "model": "Qwen/Qwen2.5-1.5B-Instruct", "gpuType": "T4", "gpumem": 7000}],
    "hami-eks:systemInstanceType": "t3.large",
}


def test_a_stack_in_an_unrecorded_region_is_priced_live_with_spot_marked_variable(aws):
    settings = load_settings(SPOT_STACK)
    assert cost.estimate_cost(settings) is None  # the recorded table knows nothing of eu-central-1
    live = pricing.LivePrices(aws, now=lambda: NOW)
    spot = [{"AvailabilityZone": "eu-central-1a", "InstanceType": "g4dn.xlarge", "ProductDescription": "Linux/UNIX",
             "SpotPrice": "0.2000", "Timestamp": NOW}]
    with Stubber(aws.pricing()) as prices, Stubber(aws.ec2("eu-central-1")) as ec2:
        ec2.add_response("describe_spot_price_history", {"SpotPriceHistory": spot},
                         {"InstanceTypes": ["g4dn.xlarge"], "ProductDescriptions": ["Linux/UNIX"],
                          "StartTime": NOW, "EndTime": NOW})
        _expect_products(prices, "t3.large", "eu-central-1", [[_product("t3.large", "eu-central-1", "0.0960000000")]])
        estimate = cost.estimate_cost(settings, live)
    assert estimate is not None and estimate.variable
    nodes = {line.item: line for line in estimate.lines}
    assert nodes["t4 nodes (g4dn.xlarge)"].usd_per_hour == pytest.approx(2 * 0.2)
    assert nodes["system nodes (t3.large)"].usd_per_hour == pytest.approx(settings.system_node_count * 0.096)


def test_auto_falls_back_to_recorded_prices_when_aws_refuses_and_says_so(aws):
    lookup = pricing.LiveOrRecorded(pricing.LivePrices(aws, now=lambda: NOW))
    with Stubber(aws.pricing()) as stubber:
        stubber.add_client_error("get_products", "AccessDeniedException", "not allowed: pricing:GetProducts")
        price = lookup("g5.xlarge", "us-west-2", "ON_DEMAND")
        # After one failure AWS is not asked again (no further stubbed response is needed).
        second = lookup("g4dn.xlarge", "us-west-2", "ON_DEMAND")
    recorded = cost.recorded_price("g5.xlarge", "us-west-2", "ON_DEMAND")
    assert price is not None and recorded is not None and price.usd_per_hour == recorded.usd_per_hour
    assert "live price failed" in price.source and "AccessDeniedException" in price.source
    assert second is not None and "live price failed" in second.source


def test_auto_uses_recorded_when_aws_has_no_product(aws):
    lookup = pricing.LiveOrRecorded(pricing.LivePrices(aws, now=lambda: NOW))
    with Stubber(aws.pricing()) as stubber:
        _expect_products(stubber, "g5.xlarge", "us-west-2", [[]])
        price = lookup("g5.xlarge", "us-west-2", "ON_DEMAND")
    assert price is not None and "AWS has no live price" in price.source


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_price_lookup_modes_without_credentials(no_credentials):
    lookup, note = pricing.price_lookup("recorded", "us-west-2")
    assert lookup is cost.recorded_price and "as of" in note
    lookup, note = pricing.price_lookup("auto", "us-west-2")
    assert lookup is cost.recorded_price and "no AWS credentials" in note
    with pytest.raises(AwsCredentialsError, match="--prices live needs AWS credentials"):
        pricing.price_lookup("live", "us-west-2")
    with pytest.raises(HamiEksError, match="--prices 'cheap': use one of recorded, live, auto"):
        pricing.price_lookup("cheap", "us-west-2")


def test_price_lookup_modes_with_credentials():
    with mock_aws():  # moto provides fake credentials in the environment
        live, note = pricing.price_lookup("live", "eu-west-1")
        auto, auto_note = pricing.price_lookup("auto", "eu-west-1")
    assert isinstance(live, pricing.LivePrices) and "live from AWS in eu-west-1" in note
    assert isinstance(auto, pricing.LiveOrRecorded) and "else the recorded" in auto_note
