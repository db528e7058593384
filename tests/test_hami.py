"""HAMi's rules as hamieks.hami states them, each checked against HAMi 2.10's own behaviour.

Sources (HAMi v2.10.0): pkg/device-plugin/nvidiadevice/nvinternal/plugin/register.go
(getAPIDevices: the registered type), pkg/device/devices.go (CheckType: use/nouse-gputype),
pkg/device/nvidia/device.go (memory requests), pkg/util/types.go (names and policies).
"""

from __future__ import annotations

import pytest

from hamieks import catalog, hami


@pytest.mark.parametrize("nvidia_smi_name, registered", [
    ("Tesla T4", "NVIDIA-Tesla T4"),           # no NVIDIA prefix: register.go adds "NVIDIA-"
    ("Tesla V100-SXM2-32GB", "NVIDIA-Tesla V100-SXM2-32GB"),
    ("NVIDIA A10G", "NVIDIA A10G"),            # already "NVIDIA...": kept as nvidia-smi prints it
    ("NVIDIA L4", "NVIDIA L4"),
    ("NVIDIA L40S", "NVIDIA L40S"),
])
def test_registered_type_follows_register_go(nvidia_smi_name, registered):
    assert hami.registered_type(nvidia_smi_name) == registered


def test_t4_registration_matches_the_reference_blogs_node_annotation(shared_dir):
    """The blog's T4 record (`...,15360,100,NVIDIA-Tesla T4,...`) is the same under 2.10's rule.
    Its A10G record shows the pre-2.8 `NVIDIA-NVIDIA A10G`, which 2.10 no longer writes; only
    its memory is compared."""
    blog = (shared_dir / "reference/seed-blog-en.md").read_text()
    assert f",{catalog.T4.memory_mib},100,{catalog.T4.registered_type}," in blog
    assert f",{catalog.A10G.memory_mib},100,NVIDIA-{catalog.A10G.name}," in blog
    assert catalog.A10G.registered_type == "NVIDIA A10G"


@pytest.mark.parametrize("wanted, registered, matches", [
    ("T4", "NVIDIA-Tesla T4", True),
    ("t4", "NVIDIA-Tesla T4", True),
    ("A10G", "NVIDIA A10G", True),
    ("A10", "NVIDIA A100-SXM4-40GB", True),   # HAMi's substring trap, reproduced on purpose
    ("L4", "NVIDIA L40S", True),              # likewise
    ("A10G", "NVIDIA A100-SXM4-40GB", False),
    ("H100,A100", "NVIDIA A100-SXM4-80GB", True),
    ("H100, L4", "NVIDIA L4", True),
    ("V100", "NVIDIA-Tesla T4", False),
    ("NVIDIA-NVIDIA", "NVIDIA A10G", False),  # the pre-2.8 spelling no longer matches
    # devices.go CheckType: a blank use-gputype is no constraint; a list of only commas matches none
    ("", "NVIDIA-Tesla T4", True),
    ("  ", "NVIDIA-Tesla T4", True),
    (",", "NVIDIA-Tesla T4", False),
])
def test_use_gputype_matching(wanted, registered, matches):
    assert hami.gpu_type_matches(wanted, registered) is matches


@pytest.mark.parametrize("gpumem, pct, total, granted", [
    (7500, None, 15360, 7500),
    (7500, 90, 15360, 7500),       # gpumem wins over the percentage
    (None, 45, 23028, 10362),      # floor(23028 * 45 / 100)
    (None, 33, 15360, 5068),       # floor, not round (5068.8)
    (None, None, 23028, 23028),    # neither: the whole GPU
])
def test_granted_memory(gpumem, pct, total, granted):
    assert hami.granted_memory_mib(gpumem, pct, total) == granted
