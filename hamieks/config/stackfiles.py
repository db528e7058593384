"""Read Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI does.

The CLI gives a program the project's config defaults overlaid with the stack file's values.
The `plan`/`render` commands and the tests need exactly that view without the CLI, so it is
computed here from the same files: one loader, no second copy of the stack's settings.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hamieks.config.values import PROJECT
from hamieks.errors import StackFileError

PROJECT_FILE = "Pulumi.yaml"
# Pulumi's stack-name rule (pkg/tokens: letters, digits, '-', '_', '.'), which also keeps a name
# from walking out of the project directory (`../../x`) or into a shell command.
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Top-level keys of a Pulumi.<stack>.yaml (pkg/workspace/project.go ProjectStack).
STACK_FILE_KEYS = ("config", "encryptionsalt", "encryptedkey", "secretsprovider", "environment")
# A stack file must set at least one of these itself; without them `pulumi up` deploys the
# project defaults (the reference demo and its $/hour) under the default cluster name.
IDENTITY_KEYS = ("clusterName", "nodeGroups", "services")
# A YAML document expands to at most this many nodes (aliases counted each time they are used):
# a stack file is a few hundred; "billion laughs" alias bombs are refused before they expand.
MAX_YAML_NODES = 100_000


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


def check_stack_name(stack: str) -> str:
    """The stack name, or a StackFileError saying what a stack name is (not a file, not a path)."""
    if (found := re.fullmatch(r"(?:.*/)?Pulumi\.(.+)\.ya?ml", stack)) and STACK_NAME.fullmatch(found.group(1)):
        raise StackFileError(f"--stack takes the stack's name, not its file: use --stack {found.group(1)}")
    if STACK_NAME.fullmatch(stack):
        return stack
    raise StackFileError(f"{stack!r} is not a stack name: use letters, digits, '-', '_' or '.' "
                         f"(the NAME of Pulumi.NAME.yaml), e.g. --stack demo")


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


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StackFileError(f"{path.name}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise StackFileError(f"{path.name}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); Pulumi reads stack "
                             f"files as UTF-8: save it as UTF-8") from None


def _expanded_size(root: yaml.Node, path: Path) -> int:
    """How many nodes the document has once every alias is expanded; refuses alias bombs and
    recursive aliases without expanding them (sizes are memoised per node)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in on_path:
            raise StackFileError(_at(path.name, node.start_mark, "a YAML alias refers to itself; write the value out"))
        on_path.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise StackFileError(_at(path.name, node.start_mark,
                                         f"YAML aliases expand this document past {MAX_YAML_NODES} values; "
                                         f"a stack file needs far fewer: write the values out"))
        on_path.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def read_yaml_mapping(path: Path, expected: str) -> dict[str, Any]:
    """A YAML file whose top level must be a mapping; every problem is a StackFileError naming
    the file, line and column and what was expected, never a parser traceback."""
    text = _read_text(path)
    try:
        node = yaml.compose(text, Loader=_StrictLoader)
        if node is not None:
            _expanded_size(node, path)
        if node is not None and not isinstance(node, yaml.MappingNode):
            found = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            raise StackFileError(_at(path.name, node.start_mark, f"expected {expected}, found {found}"))
        loader = _StrictLoader(text)
        loader.name = path.name
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except RecursionError:
        # PyYAML composes nested collections recursively: a document nested hundreds deep (no
        # stack file is) would otherwise end in a traceback.
        raise StackFileError(f"{path.name}: YAML nested too deeply to read; a stack file needs a few levels") from None
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


def read_stack_file(project_dir: Path, stack: str) -> tuple[Path, dict[str, Any]]:
    """Pulumi.<stack>.yaml's path and its `config:` mapping, refused (StackFileError naming the
    file) unless the file itself says which cluster, nodes or services it is: an empty file, one
    whose keys are not under `config:`, or the `encryptionsalt:` alone that `pulumi stack init`
    writes would otherwise deploy the project defaults."""
    path = project_dir / f"Pulumi.{check_stack_name(stack)}.yaml"
    if not path.is_file():
        stacks = available_stacks(project_dir)
        raise StackFileError(f"no stack file {path.name}{closest(stack, stacks)}; stacks here: "
                             f"{', '.join(stacks) or 'none'} (create Pulumi.{stack}.yaml to add one)")
    stack_doc = read_yaml_mapping(path, "a mapping with a `config:` key")
    for key in stack_doc:
        if key not in STACK_FILE_KEYS:
            where = "belongs under `config:` (indented below a line `config:`)" if ":" in str(key) else (
                f"is not a stack-file key (those are {', '.join(STACK_FILE_KEYS)}){closest(str(key), list(STACK_FILE_KEYS))}")
            raise StackFileError(f"{path.name}: top-level key {key!r} {where}")
    config = stack_doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: `config:` must be a mapping of keys to values "
                             f"(e.g. `hami-eks:clusterName: my-cluster`), found {type(config).__name__}")
    identity = [f"{PROJECT}:{key}" for key in IDENTITY_KEYS]
    given = [str(key) if ":" in str(key) else f"{PROJECT}:{key}" for key in config]
    # A near miss (`hami-eks:clustername`) is left to the settings, which name it as a typo.
    near_miss = any(difflib.get_close_matches(key, identity, n=1, cutoff=0.8) for key in given)
    if not set(identity) & set(given) and not near_miss:
        raise StackFileError(f"{path.name} sets none of {', '.join(f'{PROJECT}:{k}' for k in IDENTITY_KEYS)}: "
                             f"it would deploy the project defaults (the reference demo). Copy a shipped stack "
                             f"(cp Pulumi.lean.yaml {path.name}) and set at least its clusterName")
    return path, config


def check_stack_file_if_present(project_dir: Path, stack: str) -> None:
    """For the Pulumi program: refuse the stack's file as `plan` would (read_stack_file). A stack
    whose config lives elsewhere (no Pulumi.<stack>.yaml here) is left to the settings."""
    if STACK_NAME.fullmatch(stack) and (project_dir / f"Pulumi.{stack}.yaml").is_file():
        read_stack_file(project_dir, stack)


def load_stack_config(project_dir: Path, stack: str) -> dict[str, Any]:
    """The stack's full config: Pulumi.yaml defaults overlaid with Pulumi.<stack>.yaml."""
    project = load_project(project_dir)
    _, config = read_stack_file(project_dir, stack)
    values = project_defaults(project_dir)
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            value = SecretValue(value["secure"])
        values[_full_key(project["name"], key)] = value
    return values


def stacks_sharing_cluster_name(project_dir: Path, stack: str, cluster_name: str) -> list[str]:
    """The other stacks here that would build a cluster of the same name (a copied stack file
    whose clusterName was not changed): in one account and region the second `up` collides on the
    EKS cluster, IAM role and log group names. Unreadable stack files are left to their own plan."""
    key = f"{PROJECT}:clusterName"
    sharing = []
    for other in available_stacks(project_dir):
        if other == stack:
            continue
        try:
            config = load_stack_config(project_dir, other)
        except StackFileError:
            continue
        if str(config.get(key)) == cluster_name:
            sharing.append(other)
    return sharing


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
