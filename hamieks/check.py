"""One check of a live system (the AWS account before `up`, the cluster after it): its record
and the machine-readable verdict CI consumes, `{"ok": bool, "checks": [...]}`, shared by
`preflight` and `verify`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "vcpu-quota", "scheduled-by-hami"
    target: str  # what it was checked on, e.g. a quota or a pod
    ok: bool
    detail: str  # the finding, and when it failed what to do

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "ok": self.ok, "detail": self.detail}


def all_ok(checks: Iterable[Check]) -> bool:
    return all(check.ok for check in checks)


def verdict(checks: Sequence[Check]) -> dict[str, Any]:
    """The `--json` document: exactly {"ok": bool, "checks": [{"name", "target", "ok", "detail"}]}."""
    return {"ok": all_ok(checks), "checks": [check.to_dict() for check in checks]}
