"""A user's own Pulumi.<name>.yaml beside the shipped ones: every stack file is exercised under
mocks, but only the shipped stacks must appear in README and manifests/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import REPO

MINE = textwrap.dedent("""\
    config:
      aws:region: us-east-1
      hami-eks:clusterName: mine
      hami-eks:nodeGroups:
        l4: {instanceTypes: [g6.xlarge], desiredSize: 1, minSize: 1, maxSize: 1, diskSizeGiB: 100}
      hami-eks:services:
        - {name: qwen-small, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: L4, replicas: 2, gpumem: 8000,
           cpu: "1", memory: 6Gi, args: [--max-model-len, "4096", --max-num-seqs, "4"]}
    """)


def test_a_users_stack_plans_renders_and_does_not_disturb_the_shipped_checks(tmp_path: Path):
    project = tmp_path / "checkout"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns(".venv*", ".git", ".pytest_cache", "__pycache__"))
    (project / "Pulumi.mine.yaml").write_text(MINE)
    run = lambda *args: subprocess.run([sys.executable, "-m", "hamieks", *args, "--project-dir", str(project)],  # noqa: E731
                                       cwd=project, capture_output=True, text=True, timeout=120)
    plan = run("plan", "--stack", "mine")
    assert plan.returncode == 0, plan.stderr + plan.stdout
    assert "qwen-small-1 (8000), qwen-small-2 (8000)" in plan.stdout
    # The shipped renderings stay fresh; only the user's own stack would need `render --stack mine`.
    shipped = run("render", "--stack", "demo", "--stack", "lean", "--stack", "policies", "--check")
    assert shipped.returncode == 0, shipped.stderr
    mine = run("render", "--stack", "mine", "--check")
    assert mine.returncode == 1 and "run `hami-eks render --stack mine`" in mine.stderr
    # Under mocks, the program runs for it like for any stack file in the checkout...
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    exercised = subprocess.run([*pytest, "tests/test_program.py", "-k", "test_resource_counts and mine"],
                               cwd=project, capture_output=True, text=True, timeout=600)
    assert "1 passed" in exercised.stdout, exercised.stdout[-3000:]
    # ... while README and manifests/ checks look at the shipped stacks only.
    shipped_only = subprocess.run([*pytest, "tests/test_readme.py::test_every_shipped_stack_is_listed",
                                   "tests/test_render.py::test_committed_renderings_are_fresh"],
                                  cwd=project, capture_output=True, text=True, timeout=600)
    assert shipped_only.returncode == 0, shipped_only.stdout[-3000:]
