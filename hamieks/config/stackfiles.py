"""Read Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI does.

The CLI gives a program the project's config defaults overlaid with the stack file's values.
The `plan`/`render` commands and the tests need exactly that view without the CLI, so it is
computed here from the same files: one loader, no second copy of the stack's settings.
"""

from __future__ import annotations

import difflib
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
    """The current directory when it holds a Pulumi.yaml (a user's own project or checkout),
    else the checkout this package was installed from (`pip install -e .`)."""
    here = Path.cwd()
    if (here / PROJECT_FILE).is_file():
        return here
    # hamieks/config/stackfiles.py -> the checkout holding hamieks/.
    return Path(__file__).resolve().parents[2]


def available_stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def closest(name: str, known: list[str]) -> str:
    """" (did you mean 'x'?)" when a known name is close to the given one, else ""."""
    match = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# ---- strict YAML: every mistake named with file, line and column ------------------------------

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: YAML keeps the last one silently, so a second
    `services:` block would replace the first without a word."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise StackFileError(_at(loader.name, key_node.start_mark,
                                     f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1}); "
                                     f"YAML would keep only the last one: merge them into one"))
        seen[key] = key_node
    return dict(loader.construct_pairs(node, deep=deep))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _at(path: Any, mark: yaml.Mark | None, message: str) -> str:
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return f"{where}: {message}"


def read_yaml_mapping(path: Path, expected: str) -> dict[str, Any]:
    """A YAML file whose top level must be a mapping; every problem is a StackFileError naming
    the file, line and column and what was expected, never a parser traceback."""
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=_StrictLoader)
        if node is not None and not isinstance(node, yaml.MappingNode):
            found = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            raise StackFileError(_at(path.name, node.start_mark, f"expected {expected}, found {found}"))
        loader = _StrictLoader(text)
        loader.name = path.name
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if "'\\t'" in problem:
            problem += " (YAML indents with spaces, never tabs)"
        raise StackFileError(_at(path.name, exc.problem_mark, f"invalid YAML: {problem}")) from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name}: invalid YAML: {exc}") from None
    return data or {}


def _full_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def load_project(project_dir: Path) -> dict[str, Any]:
    path = project_dir / PROJECT_FILE
    if not path.is_file():
        raise StackFileError(f"{path} not found; run from the hami-eks project directory or pass --project-dir")
    return read_yaml_mapping(path, "a Pulumi project (name:, runtime:, config:)")


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
        stacks = available_stacks(project_dir)
        raise StackFileError(f"no stack file {path.name}{closest(stack, stacks)}; stacks here: "
                             f"{', '.join(stacks) or 'none'} (create Pulumi.{stack}.yaml to add one)")
    stack_doc = read_yaml_mapping(path, "a mapping with a `config:` key")
    config = stack_doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: `config:` must be a mapping of keys to values "
                             f"(e.g. `hami-eks:clusterName: my-cluster`), found {type(config).__name__}")
    values = project_defaults(project_dir)
    for key, value in config.items():
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
