from __future__ import annotations

import pytest
import yaml
from pulumi_harness import REPO

from hamieks.config import settings as s
from hamieks.config import stackfiles
from hamieks.errors import ConfigError

PROJECT = yaml.safe_load((REPO / "Pulumi.yaml").read_text())


def test_pulumi_yaml_declares_every_key_with_type_description_and_default():
    declared = PROJECT["config"]
    assert set(declared) == {k.name for k in s.CONFIG_KEYS} | set(s.STRUCTURED_KEYS)
    for key in s.CONFIG_KEYS:
        spec = declared[key.name]
        assert spec["type"] == key.type, key.name
        assert spec["description"] == key.description, f"Pulumi.yaml and settings.py describe {key.name} differently"
        if key.type == "array":
            assert spec["items"] == {"type": "string"}
        # Every key has a default: Pulumi makes a declared key without one mandatory in every
        # stack. Secrets default to empty (= unset) and are not flagged `secret: true`, which
        # would reject that plaintext default.
        assert spec["default"] == key.default, f"Pulumi.yaml and settings.py disagree on {key.name}"
        assert "secret" not in spec
    for name in s.STRUCTURED_KEYS:
        assert "type" not in declared[name]  # Pulumi.yaml has no object type
        assert declared[name]["default"]
        assert declared[name]["description"] == s.STRUCTURED_KEYS[name], name


def test_project_runtime_is_python_with_dot_venv():
    assert PROJECT["name"] == "hami-eks"
    assert PROJECT["runtime"]["name"] == "python"
    assert PROJECT["runtime"]["options"]["virtualenv"] == ".venv"


def test_project_defaults_alone_are_a_valid_stack():
    loaded = s.load_settings(stackfiles.project_defaults(REPO))
    assert loaded.kubernetes_version == "1.35" and loaded.availability_zone_count == 2
    assert loaded.region == s.DEFAULT_REGION


def test_values_as_pulumi_passes_them_equal_typed_values():
    typed = stackfiles.load_stack_config(REPO, "demo")
    encoded, _ = stackfiles.to_pulumi_config(typed, "x")
    assert s.load_settings(encoded) == s.load_settings(typed)


def _demo(**overrides):
    config = stackfiles.load_stack_config(REPO, "demo")
    config.update(overrides)
    return config


def test_ambiguous_gpu_type_asks_for_node_group():
    groups = {"t4": {"instanceTypes": ["g4dn.xlarge"]}, "t4-big": {"instanceTypes": ["g4dn.12xlarge"]}}
    services = [{"name": "a", "model": "org/m", "gpuType": "T4", "gpumem": 1000}]
    with pytest.raises(ConfigError) as error:
        s.load_settings(_demo(**{"hami-eks:nodeGroups": groups, "hami-eks:services": services}))
    assert error.value.keys == ["hami-eks:services[a].nodeGroup"]
    services[0]["nodeGroup"] = "t4-big"
    loaded = s.load_settings(_demo(**{"hami-eks:nodeGroups": groups, "hami-eks:services": services}))
    assert loaded.services[0].node_group == "t4-big"


@pytest.mark.parametrize("image", ["vllm/vllm-openai:v0.33.0", "vllm/vllm-openai:v0.33.0-cu129"])
def test_volta_is_refused_whatever_the_image(image):
    """No current vLLM image is built for compute 7.0 (DESIGN §3, corrected 2026-11-22)."""
    groups = {"v100": {"instanceTypes": ["p3dn.24xlarge"]}}
    services = [{"name": "a", "model": "org/m", "gpuType": "V100", "gpumem": 1000, "image": image}]
    with pytest.raises(ConfigError, match="no current vLLM image") as error:
        s.load_settings(_demo(**{"hami-eks:nodeGroups": groups, "hami-eks:services": services}))
    assert error.value.keys == ["hami-eks:services[a].gpuType"]
    assert "cu129 variant, e.g." not in str(error.value)


def test_secret_is_never_echoed():
    config = _demo(**{"hami-eks:hfToken": stackfiles.SecretValue("v1:AAAsecretcipher"), "hami-eks:vpcCidr": "bad"})
    with pytest.raises(ConfigError) as error:
        s.load_settings(config)
    assert "AAAsecretcipher" not in str(error.value) and "AAAsecretcipher" not in repr(config)


def test_missing_stack_file_lists_the_stacks():
    with pytest.raises(stackfiles.StackFileError, match="stacks here: .*demo"):
        stackfiles.load_stack_config(REPO, "nope")
