"""Configuration errors that name the offending key and say how to fix it."""

from __future__ import annotations


class ConfigError(ValueError):
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
