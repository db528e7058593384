"""Pulumi.<new-stack>.yaml from a rightsizing: the source stack's keys with the proposal's node
groups and system nodes, a cluster name of its own, and a header saying how it was derived."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from hamieks import cost
from hamieks.config import names, stackfiles
from hamieks.config.node_groups import NodeGroupSettings
from hamieks.config.values import config_key
from hamieks.errors import RightsizeInputError
from hamieks.sizing.rightsize import Rightsizing

CLUSTER_NAME_MAX = 100
HEADER_WIDTH = 100


def check_stack_name(name: str) -> str:
    if not stackfiles.STACK_NAME.fullmatch(name):
        raise RightsizeInputError(f"--write: {name!r} is not a stack name (letters, digits, '-', '_', '.', "
                                  f"starting with a letter or digit), e.g. lean-rightsized")
    return name


def derived_cluster_name(cluster_name: str, new_stack: str, groups: Iterable[str] = ()) -> str:
    """`<old>-<new stack>`: EKS cluster names (and the IAM, log-group and VPC names prefixed with
    them) are unique per account and region, so the derived stack must not reuse its source's.
    The source's part is shortened until the names AWS derives from it fit (config.names)."""
    source, suffix = cluster_name, re.sub(r"[^A-Za-z0-9_-]", "-", new_stack)
    name = f"{source}-{suffix}"[:CLUSTER_NAME_MAX].rstrip("-_")
    # The source's part goes first (down to a recognisable 4 characters), then the stack's.
    while names.derived_name_problem(name, groups) is not None and len(source) + len(suffix) > 2:
        if len(source) > 4 or len(suffix) <= 1:
            source = source[:-1]
        else:
            suffix = suffix[:-1]
        name = f"{source.rstrip('-_')}-{suffix.rstrip('-_')}"
    return name


def stack_file_text(result: Rightsizing, *, raw_config: Mapping[str, Any], project: str, new_stack: str,
                    command: str, existing: Mapping[str, Any] | None = None) -> str:
    """Pulumi.<new_stack>.yaml: the source stack file's keys, with the proposal's node groups,
    system nodes, the services (pinned where needed), and a header saying how it was derived (no
    date: the same inputs give the same file).

    A new stack gets a cluster name of its own. Over an `existing` stack file (the whole document
    of Pulumi.<new_stack>.yaml, which may be the source itself) the stack keeps its identity: its
    cluster name (renaming replaces the live cluster), its `encryptionsalt`/secrets-provider keys
    and its own `secure:` values (ciphertext only that stack's key opens)."""
    def full(key: str) -> str:
        return key if ":" in key else f"{project}:{key}"

    settings = result.proposal.settings
    replaced: dict[str, Any] = {
        config_key("systemInstanceType"): settings.system_instance_type,
        config_key("systemNodeCount"): settings.system_node_count,
        config_key("nodeGroups"): result.config[config_key("nodeGroups")],
        config_key("services"): result.config[config_key("services")],
    }
    in_place = new_stack == result.stack
    kept: dict[str, Any] = {}
    if existing is None:
        cluster = derived_cluster_name(result.current.settings.cluster_name, new_stack,
                                       [group.name for group in settings.node_groups])
        replaced[config_key("clusterName")] = cluster
    else:
        kept = {full(str(k)): v for k, v in (existing.get("config") or {}).items()}
        cluster = str(kept.get(config_key("clusterName"), "the project default"))
        if config_key("clusterName") in kept:
            replaced[config_key("clusterName")] = kept[config_key("clusterName")]
    config: dict[str, Any] = {}
    dropped = []
    for key, value in raw_config.items():
        name = full(str(key))
        if isinstance(value, Mapping) and set(value) == {"secure"} and not in_place:
            dropped.append(name)  # ciphertext is bound to the source stack's key: it cannot move
            continue
        config[name] = replaced.pop(name, value)
    config.update(replaced)
    for name, value in kept.items():  # the target's own secrets stay, encrypted for it
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            config[name] = value
    document = {k: v for k, v in (existing or {}).items() if k != "config"}
    document["config"] = config
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=130)
    return "\n".join(_header(result, command, cluster, new_stack, dropped, existing is not None)) + "\n" + body


def _money(usd: float | None) -> str:
    if usd is None:
        return "unknown"
    return f"${usd:.4f}/h (~${usd * cost.HOURS_PER_MONTH:,.0f}/month)"


def describe_group(group: NodeGroupSettings) -> str:
    spot = ", SPOT" if group.capacity_type == "SPOT" else ""
    return f"{group.desired_size} x {group.instance.name} ({group.instance.gpu_count}x {group.gpu.short}{spot})"


def _header(result: Rightsizing, command: str, cluster: str, new_stack: str, dropped: list[str],
            kept_identity: bool) -> list[str]:
    current, proposal = result.current.settings, result.proposal.settings
    estimate = result.proposal.plan.cost
    prices = "; ".join(estimate.sources) if estimate is not None else "unknown prices"
    rows = [("cost", f"{_money(result.current.usd_per_hour)} -> {_money(result.proposal.usd_per_hour)}")]
    rows += [(new.name, f"{describe_group(current.node_group(new.name))} -> {describe_group(new)}")
             for new in proposal.node_groups]
    rows.append(("system", f"{current.system_node_count} x {current.system_instance_type} -> "
                           f"{proposal.system_node_count} x {proposal.system_instance_type}"))
    width = max(len(label) for label, _ in rows)
    prose = [
        f"The cheapest node groups from the hami-eks catalog ({prices}) on which the planner places every replica "
        f"in every arrival order it tries and every model fits its slice. Services unchanged.",
    ]
    tail = [f"clusterName {cluster}: kept, with this stack's encryption salt and secrets (renaming a live cluster "
            f"replaces it)." if kept_identity else
            f"clusterName {cluster}: {result.stack}'s name plus this stack's, since two stacks with one cluster name "
            f"in one account and region would collide (EKS cluster, IAM role and log group names)."]
    if dropped:
        tail.append(f"Not carried over (encrypted for stack {result.stack} only): {', '.join(dropped)}; set again with "
                    f"`pulumi config set --secret <key> <value> --stack {new_stack}`.")
    tail += [f"Note: {note}" for note in result.notes if not note.startswith("system nodes:")]
    tail.append(f"Check it with `hami-eks plan --stack {new_stack}`.")
    lines = [f"# Derived from Pulumi.{result.stack}.yaml by:", f"#   {command}"]
    lines += [f"# {line}" for text in prose for line in textwrap.wrap(text, HEADER_WIDTH, break_on_hyphens=False)]
    lines += [f"#   {label.ljust(width)}  {text}" for label, text in rows]
    lines += [f"# {line}" for text in tail for line in textwrap.wrap(text, HEADER_WIDTH, break_on_hyphens=False)]
    return lines
