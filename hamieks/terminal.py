"""The one way commands print for people: a rich Console (colour only on a terminal) whose
closed pipe (`hami-eks plan | head`) ends like every other command's, in hamieks.cli."""

from __future__ import annotations

from contextlib import AbstractContextManager

from rich.console import Console


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 here, which `plan` documents as "a replica cannot be placed";
        # hamieks.cli turns the BrokenPipeError into the shell's SIGPIPE status instead.
        raise BrokenPipeError


def console(stderr: bool = False) -> Console:
    return _Console(stderr=stderr, highlight=False)


def waiting(what: str) -> AbstractContextManager[object]:
    """A spinner on stderr while the network is asked (`preflight: asking AWS: ...`), so a slow
    answer is never silence; on a pipe or in CI nothing is printed (rich draws only on a terminal)."""
    return console(stderr=True).status(what)
