"""Read Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI does.

The CLI gives a program the project's config defaults overlaid with the stack file's values.
The `plan`/`render` commands and the tests need exactly that view without the CLI, so it is
computed here from the same files: one loader, no second copy of the stack's settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hamieks.errors import StackFileError

PROJECT_FILE = "Pulumi.yaml"


@dataclass(frozen=True)
class SecretValue:
    """A `secure:` value from a stack file: encrypted, so only its presence is known offline."""

    ciphertext: str

    def __repr__(self) -> str:
        return "SecretValue(<redacted>)"


def project_dir_default() -> Path:
    return Path(__file__).resolve().parent.parent


def available_stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def _full_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def load_project(project_dir: Path) -> dict[str, Any]:
    path = project_dir / PROJECT_FILE
    if not path.is_file():
        raise StackFileError(f"{path} not found; run from the hami-eks project directory")
    return yaml.safe_load(path.read_text()) or {}


def project_defaults(project_dir: Path) -> dict[str, Any]:
    """Config values Pulumi.yaml supplies: `default:` of project keys, `value:` of others."""
    project = load_project(project_dir)
    name = project["name"]
    values: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict):
            if "value" in spec:
                values[_full_key(name, key)] = spec["value"]
            elif "default" in spec:
                values[_full_key(name, key)] = spec["default"]
        else:
            values[_full_key(name, key)] = spec
    return values


def load_stack_config(project_dir: Path, stack: str) -> dict[str, Any]:
    """The stack's full config: Pulumi.yaml defaults overlaid with Pulumi.<stack>.yaml."""
    project = load_project(project_dir)
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise StackFileError(f"no stack file {path.name} (stacks here: {known})")
    stack_doc = yaml.safe_load(path.read_text()) or {}
    values = project_defaults(project_dir)
    for key, value in (stack_doc.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            value = SecretValue(value["secure"])
        values[_full_key(project["name"], key)] = value
    return values


def to_pulumi_config(values: dict[str, Any], secret_placeholder: str) -> tuple[dict[str, str], list[str]]:
    """Encode config as the engine passes it to a program: strings, structured values as JSON.

    Secrets cannot be decrypted offline; they get `secret_placeholder` and are listed as secret
    keys, which is how the engine marks them.
    """
    encoded: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in values.items():
        if isinstance(value, SecretValue):
            encoded[key] = secret_placeholder
            secret_keys.append(key)
        elif isinstance(value, str):
            encoded[key] = value
        elif isinstance(value, bool):
            encoded[key] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            encoded[key] = str(value)
        else:
            encoded[key] = json.dumps(value)
    return encoded, secret_keys
