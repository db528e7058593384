"""The public address this machine reaches AWS from, and whether the EKS public endpoint's
`publicAccessCidrs` lets it in.

The lookup asks an HTTP endpoint that echoes the caller's address (AWS's checkip service by
default; HAMI_EKS_EGRESS_URL overrides it, tests point it at a loopback server). It is
time-bounded and may fail: behind a proxy, offline, or in a sandbox the address is unknown and
the check says so instead of guessing. CI runners (GitHub-hosted) have no fixed address at all.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.error
import urllib.request
from collections.abc import Callable

from hamieks.check import Check

DEFAULT_URL = "https://checkip.amazonaws.com"
TIMEOUT_SECONDS = 3.0
OPEN_TO_ALL = ("0.0.0.0/0", "::/0")

EgressLookup = Callable[[], "str | None"]


def lookup_egress_address(url: str | None = None, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """The address the echo service saw, or None when it cannot be learnt within `timeout`."""
    target = url or os.environ.get("HAMI_EKS_EGRESS_URL") or DEFAULT_URL
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            text = response.read(64).decode("ascii", "replace").strip()
        return str(ipaddress.ip_address(text))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def check_public_access(cidrs: tuple[str, ...], lookup: EgressLookup = lookup_egress_address) -> Check | None:
    """None when the endpoint is open to every address (nothing to check); else whether this
    machine's egress address is inside one of the CIDRs, or that it cannot tell."""
    if not cidrs or any(c in OPEN_TO_ALL for c in cidrs):
        return None
    target = ", ".join(cidrs)
    address = lookup()
    if address is None:
        return Check("public-access", target, True,
                     "could not learn this machine's egress address (no answer within "
                     f"{TIMEOUT_SECONDS:g} s), so whether hami-eks:publicAccessCidrs lets it reach the API "
                     "endpoint is unknown; `up` needs it for Helm and Kubernetes calls. CI runners have no "
                     "fixed address: run CI from a self-hosted runner with a fixed egress, or widen the CIDRs")
    ip = ipaddress.ip_address(address)
    inside = [c for c in cidrs if ip in ipaddress.ip_network(c, strict=False)]
    if inside:
        return Check("public-access", target, True, f"this machine's egress address {address} is inside {inside[0]}")
    return Check("public-access", target, False,
                 f"this machine's egress address {address} is outside hami-eks:publicAccessCidrs: `up` would "
                 f"create the cluster, then fail on the first Helm/Kubernetes call. Add {address}/32 (or your "
                 f"network's CIDR) to it; CI runners have no fixed address, use a self-hosted runner with a "
                 f"fixed egress")
