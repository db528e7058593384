"""Reading config values as the Pulumi CLI hands them over: typed (from YAML) or as strings.

Every problem is collected with the key that causes it, so the user fixes them all in one round,
not one per deploy.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from hamieks.errors import ConfigError

PROJECT = "hami-eks"
# Stands for a secret value the Pulumi engine holds encrypted: its presence is known, never its value.
SECRET_PRESENT = "<secret>"
# RFC 1035 label: names that become Kubernetes object names, node labels and AWS names.
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def config_key(name: str) -> str:
    return f"{PROJECT}:{name}"


class Problems:
    """Collects every problem so the user fixes them in one round, not one per deploy."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


# ---- coercion: config values arrive typed (YAML) or as strings (Pulumi) ----------------------

def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


def as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected structured (YAML/JSON) data: {exc}") from None
        except RecursionError:
            raise ValueError("structured data nested too deeply to read") from None
    return value


def as_str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and not value.lstrip().startswith("["):
        # YAML read `key: a` (no brackets) as one string; the Pulumi CLI hands arrays over as JSON.
        raise ValueError(f"expected a list, got the single value {value!r}: write it as a YAML list, e.g. [{value}]")
    value = as_json(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def as_str(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


COERCE: dict[str, Callable[[Any], Any]] = {
    "string": as_str, "integer": as_int, "boolean": as_bool, "array": as_str_list,
}


def read_field(problems: Problems, key: str, raw: Mapping[str, Any], name: str,
           coerce: Callable[[Any], Any], default: Any = None, required: bool = False) -> Any:
    if name not in raw or raw[name] is None:
        if required:
            problems.add(f"{key}.{name}", "is required")
        return default
    try:
        return coerce(raw[name])
    except ValueError as exc:
        problems.add(f"{key}.{name}", str(exc))
        return default


def unknown_fields(problems: Problems, key: str, raw: Mapping[str, Any], known: set[str]) -> None:
    for name in raw:
        if name not in known:
            hint = difflib.get_close_matches(name, sorted(known), n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else f"known fields: {', '.join(sorted(known))}"
            problems.add(f"{key}.{name}", f"unknown field; {fix}")
