"""Kubernetes resource quantities ("2", "500m", "16Gi", 7500), as settings validate them and
as the planner counts them."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")
_SUFFIX = {
    None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50,
}
MIB = _SUFFIX["Mi"]


def parse(value: Any) -> Decimal:
    """The quantity as a number of base units; ValueError when it is not one."""
    match = _QUANTITY.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '2', '500m', '16Gi')")
    return Decimal(match.group(1)) * _SUFFIX[match.group(2)]


def cpu_millis(value: Any) -> int:
    """CPU in millicores, rounded up as kube-scheduler counts a request."""
    return int((parse(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def mebibytes(value: Any) -> float:
    return float(parse(value) / MIB)


def whole_number(value: Any) -> int:
    """HAMi reads its extended resources as integer quantities (gpumem is MiB, not "7500Mi")."""
    number = parse(value)
    if number != number.to_integral_value():
        raise ValueError(f"HAMi resources are whole numbers, got {value!r}")
    return int(number)
