"""Kubernetes quantities as kube-scheduler and HAMi count them (apimachinery resource.Quantity)."""

from __future__ import annotations

import pytest

from hamieks.config import quantity


@pytest.mark.parametrize("value, millis", [("2", 2000), ("500m", 500), ("1.5", 1500), (1, 1000), ("0.0001", 1)])
def test_cpu_is_counted_in_millicores_rounded_up(value, millis):
    assert quantity.cpu_millis(value) == millis


@pytest.mark.parametrize("value, mib", [("16Gi", 16384), ("512Mi", 512), ("1G", 10**9 / 2**20), ("1.5Gi", 1536)])
def test_memory_in_mebibytes_binary_and_decimal_suffixes(value, mib):
    assert quantity.mebibytes(value) == pytest.approx(mib)


@pytest.mark.parametrize("value, number", [("7500", 7500), (45, 45), ("1k", 1000)])
def test_hami_resources_are_whole_numbers(value, number):
    assert quantity.whole_number(value) == number


@pytest.mark.parametrize("value", ["7500.5", "500m"])
def test_a_fractional_hami_resource_is_refused(value):
    with pytest.raises(ValueError, match="whole numbers"):
        quantity.whole_number(value)


@pytest.mark.parametrize("value", ["16 GB", "", "Gi", "-1", "1e3"])
def test_garbage_is_not_a_quantity(value):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity.parse(value)
