"""EC2 instance types: GPUs as HAMi registers them, size, and on-demand price.

Memory is what HAMi registers, i.e. `nvidia-smi --query-gpu=memory.total` with ECC on, not the
nominal GpuInfo AWS publishes (a T4 is sold as 16 GiB, HAMi sees 15360 MiB). Plans, caps and
percentages are computed against these numbers because that is what the scheduler uses.

Sources:
- T4 15360 and A10G 23028 MiB: the node-nvidia-register annotations in the reference blog;
  L4 23034 MiB: ../shared/docs/DESIGN.md §3. The other models: nvidia-smi memory.total as
  reported on those instances with ECC enabled (L40S 46068, V100 32510, A100 40960/81920,
  H100 81559). Refresh from a live node's `hami.io/node-nvidia-register` annotation if in doubt.
- Registered type: see hamieks.hami.registered_type ("NVIDIA-Tesla T4", "NVIDIA A10G").
- Prices: see PRICE_SOURCE / PRICES_AS_OF below.
- Network interfaces (ENIs on the default network card, IPv4 addresses per ENI): EC2
  DescribeInstanceTypes `NetworkInfo` (NetworkCards[DefaultNetworkCardIndex].MaximumNetworkInterfaces
  and Ipv4AddressesPerInterface), the same figures nodeadm embeds in
  nodeadm/internal/kubelet/instance-info.jsonl (amazon-eks-ami v20260724) to compute max pods;
  tests/test_catalog.py checks every entry against moto's copy of EC2's data.
- NUMA: EC2 does not publish which NUMA node each GPU hangs off, so no entry records a layout
  (`gpu_numa` is empty: every GPU counts as NUMA node 0, as HAMi registers it on single-socket
  hosts). docs/hami-rules.md ("Ties") says what that means on multi-socket types.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from hamieks import hami
from hamieks.errors import UnknownInstanceType, UnpricedRegion

PRICE_SOURCE = (
    "AWS EC2 On-Demand pricing, Linux, shared tenancy "
    "(https://aws.amazon.com/ec2/pricing/on-demand/); P4d/P5 after the June 2025 price cut"
)
PRICES_AS_OF = "2026-11-22"
PRICED_REGIONS = ("us-east-1", "us-west-2")
# Where prices come from: this recorded table (offline, deterministic), live from AWS (Price List
# API and Spot price history, hamieks/aws/pricing.py), or live where AWS answers, else recorded.
PRICE_MODES = ("recorded", "live", "auto")

# Flat per-hour costs that every stack pays besides its nodes, same source and date.
EKS_CONTROL_PLANE_USD_PER_HOUR = 0.10
NAT_GATEWAY_USD_PER_HOUR = 0.045


@dataclass(frozen=True)
class GpuModel:
    """A GPU model as HAMi's NVIDIA device plugin registers it."""

    name: str  # nvidia-smi name, e.g. "Tesla T4"
    short: str  # the name users write in gpuType, e.g. "T4"
    memory_mib: int  # HAMi-visible memory (nvidia-smi memory.total, ECC on)
    compute_capability: str

    @property
    def registered_type(self) -> str:
        """The type string HAMi's device plugin registers, which use-gputype is matched against."""
        return hami.registered_type(self.name)


T4 = GpuModel("Tesla T4", "T4", 15360, "7.5")
A10G = GpuModel("NVIDIA A10G", "A10G", 23028, "8.6")
L4 = GpuModel("NVIDIA L4", "L4", 23034, "8.9")
L40S = GpuModel("NVIDIA L40S", "L40S", 46068, "8.9")
V100_32 = GpuModel("Tesla V100-SXM2-32GB", "V100", 32510, "7.0")
A100_40 = GpuModel("NVIDIA A100-SXM4-40GB", "A100", 40960, "8.0")
A100_80 = GpuModel("NVIDIA A100-SXM4-80GB", "A100", 81920, "8.0")
H100 = GpuModel("NVIDIA H100 80GB HBM3", "H100", 81559, "9.0")


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpu: int
    memory_gib: int
    gpu: GpuModel | None
    gpu_count: int
    usd_per_hour: dict[str, float]
    # ENIs nodeadm counts (those of the default network card) and IPv4 addresses per ENI: the
    # inputs of the max-pods formula (hamieks/scheduling/allocatable.py).
    enis: int
    ipv4_per_eni: int
    # NUMA node of each GPU by index, as the device plugin reads it from sysfs; empty = unknown
    # (all 0). Only the planner's GPU tie-break reads it (HAMi prefers the higher NUMA node).
    gpu_numa: tuple[int, ...] = ()

    def numa_of(self, gpu_index: int) -> int:
        return self.gpu_numa[gpu_index] if self.gpu_numa else 0

    @property
    def is_gpu(self) -> bool:
        return self.gpu is not None and self.gpu_count > 0

    def price(self, region: str) -> float:
        try:
            return self.usd_per_hour[region]
        except KeyError:
            raise UnpricedRegion(
                f"no recorded price for {self.name} in {region}; priced regions: "
                f"{', '.join(PRICED_REGIONS)}"
            ) from None


def _same_price(usd: float) -> dict[str, float]:
    # These families list the same on-demand price in us-east-1 and us-west-2.
    return {region: usd for region in PRICED_REGIONS}


def _family(gpu: GpuModel | None, rows: list[tuple[str, int, int, int, float, int, int]]) -> list[InstanceType]:
    return [
        InstanceType(name, vcpu, mem, gpu if count else None, count, _same_price(usd), enis, ipv4)
        for name, vcpu, mem, count, usd, enis, ipv4 in rows
    ]


# (name, vCPU, memory GiB, GPUs, $/hour, ENIs on the default network card, IPv4 per ENI)
_INSTANCE_TYPES: list[InstanceType] = [
    *_family(T4, [
        ("g4dn.xlarge", 4, 16, 1, 0.526, 3, 10),
        ("g4dn.2xlarge", 8, 32, 1, 0.752, 3, 10),
        ("g4dn.4xlarge", 16, 64, 1, 1.204, 3, 10),
        ("g4dn.8xlarge", 32, 128, 1, 2.176, 4, 15),
        ("g4dn.12xlarge", 48, 192, 4, 3.912, 8, 30),
        ("g4dn.16xlarge", 64, 256, 1, 4.352, 4, 15),
        ("g4dn.metal", 96, 384, 8, 7.824, 15, 50),
    ]),
    *_family(A10G, [
        ("g5.xlarge", 4, 16, 1, 1.006, 4, 15),
        ("g5.2xlarge", 8, 32, 1, 1.212, 4, 15),
        ("g5.4xlarge", 16, 64, 1, 1.624, 8, 30),
        ("g5.8xlarge", 32, 128, 1, 2.448, 8, 30),
        ("g5.12xlarge", 48, 192, 4, 5.672, 15, 50),
        ("g5.16xlarge", 64, 256, 1, 4.096, 8, 30),
        ("g5.24xlarge", 96, 384, 4, 8.144, 15, 50),
        ("g5.48xlarge", 192, 768, 8, 16.288, 7, 50),
    ]),
    *_family(L4, [
        ("g6.xlarge", 4, 16, 1, 0.8048, 4, 15),
        ("g6.2xlarge", 8, 32, 1, 0.9776, 4, 15),
        ("g6.4xlarge", 16, 64, 1, 1.3232, 8, 30),
        ("g6.8xlarge", 32, 128, 1, 2.0144, 8, 30),
        ("g6.12xlarge", 48, 192, 4, 4.6016, 8, 30),
        ("g6.16xlarge", 64, 256, 1, 3.3968, 15, 50),
        ("g6.24xlarge", 96, 384, 4, 6.6752, 15, 50),
        ("g6.48xlarge", 192, 768, 8, 13.3504, 15, 50),
    ]),
    *_family(L40S, [
        ("g6e.xlarge", 4, 32, 1, 1.861, 4, 15),
        ("g6e.2xlarge", 8, 64, 1, 2.24208, 4, 15),
        ("g6e.4xlarge", 16, 128, 1, 3.00424, 8, 30),
        ("g6e.8xlarge", 32, 256, 1, 4.52856, 8, 30),
        ("g6e.12xlarge", 48, 384, 4, 10.49264, 10, 30),
        ("g6e.16xlarge", 64, 512, 1, 7.57719, 15, 50),
        ("g6e.24xlarge", 96, 768, 4, 15.06559, 10, 50),
        ("g6e.48xlarge", 192, 1536, 8, 30.13118, 10, 50),
    ]),
    # p3.2xlarge/8xlarge/16xlarge (V100 16 GB) are no longer in EC2's instance-type list
    # (tests/test_catalog.py checks every entry against it); p3dn is the P3 family's survivor.
    *_family(V100_32, [("p3dn.24xlarge", 96, 768, 8, 31.212, 15, 50)]),
    *_family(A100_40, [("p4d.24xlarge", 96, 1152, 8, 21.96, 15, 50)]),
    *_family(A100_80, [("p4de.24xlarge", 96, 1152, 8, 27.447, 15, 50)]),
    *_family(H100, [("p5.48xlarge", 192, 2048, 8, 55.04, 2, 50)]),
    # CPU types offered for the system node group (coredns, HAMi scheduler, add-on controllers).
    *_family(None, [
        ("t3.large", 2, 8, 0, 0.0832, 3, 12),
        ("t3.xlarge", 4, 16, 0, 0.1664, 4, 15),
        ("m6i.large", 2, 8, 0, 0.096, 3, 10),
        ("m6i.xlarge", 4, 16, 0, 0.192, 4, 15),
        ("m7i.large", 2, 8, 0, 0.1008, 3, 10),
        ("m7i.xlarge", 4, 16, 0, 0.2016, 4, 15),
    ]),
]

INSTANCE_TYPES: dict[str, InstanceType] = {it.name: it for it in _INSTANCE_TYPES}


def instance_type(name: str) -> InstanceType:
    """Look up an instance type; an unknown one is an error that lists what is known."""
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        families = sorted({n.split(".")[0] for n in INSTANCE_TYPES})
        hint = difflib.get_close_matches(str(name), sorted(INSTANCE_TYPES), n=1, cutoff=0.7)
        raise UnknownInstanceType(
            f"instance type {name!r} is not in the hami-eks catalog"
            + (f"; did you mean {hint[0]!r}?" if hint else "") + " (known families: "
            f"{', '.join(families)}); add it to hamieks/catalog.py with its GPU memory as "
            f"HAMi registers it and its price"
        ) from None
