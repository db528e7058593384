"""Dependencies install from hash-locked files that agree with the ranges they were made from.

`make venv` installs requirements-dev.lock with `pip --require-hashes` (and checkov's virtualenv
requirements-checkov.lock); requirements.lock is the runtime set. `make lock` regenerates them
from requirements*.txt; these tests fail while a range and its lock disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
PAIRS = [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock"),
         ("requirements-checkov.txt", "requirements-checkov.lock")]


def ranges(path: Path) -> list[Requirement]:
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            found += ranges(path.parent / line[3:].strip())
        else:
            found.append(Requirement(line))
    return found


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of every package the lock pins."""
    text = path.read_text()
    found = {}
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if match:
            found[canonicalize_name(match.group(1))] = (match.group(2), block.count("--hash=sha256:"))
    return found


@pytest.mark.parametrize("source, lock", PAIRS, ids=[lock for _, lock in PAIRS])
def test_every_range_is_locked_within_it_with_hashes(source, lock):
    locked = pins(REPO / lock)
    assert locked, f"{lock} pins nothing"
    for requirement in ranges(REPO / source):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{lock} lacks {requirement.name}: run `make lock`"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside {source}'s {requirement.specifier}: run `make lock`")
    unhashed = [name for name, (_, hashes) in locked.items() if hashes == 0]
    assert not unhashed, f"{lock}: no hash for {unhashed}"


def test_the_makefile_installs_only_from_the_locks():
    makefile = (REPO / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -r " in line]
    assert installs and all("--require-hashes" in line and ".lock" in line for line in installs), installs


def test_a_range_outside_its_lock_is_caught(tmp_path):
    (tmp_path / "r.txt").write_text("PyYAML>=99\n")
    (tmp_path / "r.lock").write_text("pyyaml==6.0.2 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    (requirement,) = ranges(tmp_path / "r.txt")
    version, hashes = pins(tmp_path / "r.lock")["pyyaml"]
    assert hashes == 1 and not requirement.specifier.contains(version)
