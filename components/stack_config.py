"""Read the stack's configuration from the Pulumi engine into the flat mapping that
hamieks.config.settings.load_settings validates (the same mapping the offline CLI builds from files)."""

from __future__ import annotations

from typing import Any

import pulumi

from hamieks.config.settings import CONFIG_KEYS, STRUCTURED_KEYS
from hamieks.config.values import PROJECT, SECRET_PRESENT, config_key


def read() -> tuple[dict[str, Any], dict[str, pulumi.Output[str]]]:
    """Returns the config mapping and the secrets that are set (hfToken, vllmApiKey) as secret
    Outputs by key name.

    A secret never enters the mapping: only its presence does, so it cannot leak into an error
    message or a plan.
    """
    cfg = pulumi.Config(PROJECT)
    values: dict[str, Any] = {}
    secrets: dict[str, pulumi.Output[str]] = {}
    for spec in CONFIG_KEYS:
        if spec.secret:
            # Only presence (and whether the stack file encrypts it) reaches the settings; the
            # value travels as a secret Output and never enters the mapping.
            key = config_key(spec.name)
            if pulumi.runtime.get_config(key):
                values[key] = SECRET_PRESENT if pulumi.runtime.is_config_secret(key) else "<plaintext>"
                secrets[spec.name] = cfg.get_secret(spec.name)
        elif (raw := cfg.get(spec.name)) is not None:
            values[config_key(spec.name)] = raw
    for name in STRUCTURED_KEYS:
        values[config_key(name)] = cfg.require_object(name)
    for aws_key in ("region", "profile"):  # profile: pricing's boto3 session and the kubeconfig
        if value := pulumi.Config("aws").get(aws_key):
            values[f"aws:{aws_key}"] = value
    # Keys nobody reads are typos; pass them on so validation can name them.
    for key in _all_keys():
        if key.startswith(PROJECT + ":") and key not in values:
            values[key] = pulumi.runtime.get_config(key)
    return values, secrets


def _all_keys() -> set[str]:
    keys = set(pulumi.runtime.get_config_env())
    explicit = getattr(pulumi.runtime.config, "CONFIG", None)  # set_all_config (tests, automation API)
    if explicit is not None:
        keys |= set(explicit.get())
    return keys
