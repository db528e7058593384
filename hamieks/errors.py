"""The one error family of hami-eks: every problem a user can fix is a `HamiEksError`.

The program and every CLI command catch this one type: it means "the input is wrong, here is
which key and how to fix it", never a bug. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class HamiEksError(ValueError):
    """A problem in the user's input or environment, with a message that says how to fix it."""


class ConfigError(HamiEksError):
    """One or more configuration problems, each naming its config key.

    Raised before any resource is registered, so a bad stack never half-creates anything.
    """

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        lines = [f"  - {key}: {message}" for key, message in self.problems]
        super().__init__("invalid configuration:\n" + "\n".join(lines))

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.problems]


class StackFileError(HamiEksError):
    """Pulumi.yaml or Pulumi.<stack>.yaml is missing or cannot be read."""


class PlanError(HamiEksError):
    """The stack cannot be planned at all (not a placement failure), e.g. an unknown service."""


class UnknownInstanceType(HamiEksError):
    """An instance type the catalog does not know."""


class UnpricedRegion(HamiEksError):
    """No recorded price for an instance type in a region."""


class RightsizeInputError(HamiEksError):
    """A flag the search cannot use (unknown GPU model, capacity type, stack name)."""


class NoFeasibleProposal(HamiEksError):
    """No catalog option serves the stack; the message says why, per node group."""

    def __init__(self, stack: str, reasons: Sequence[str]):
        self.reasons = tuple(reasons)
        super().__init__(f"no node groups from the catalog can serve stack {stack!r}:\n"
                         + "\n".join(f"  - {reason}" for reason in self.reasons))
