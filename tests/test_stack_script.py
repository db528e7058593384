"""`make up|preview|destroy|plan` and scripts/stack.sh: stack names, consent, the secrets
passphrase and the policy pack, tried with a fake `pulumi` on PATH that records its argv."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

HAMI_EKS = Path(sys.executable).parent / "hami-eks"


def _fake_pulumi(tmp_path: Path, logged_in: bool, backend: str = "https://api.pulumi.com") -> tuple[dict[str, str], Path]:
    log = tmp_path / "pulumi.log"
    script = tmp_path / "bin" / "pulumi"
    script.parent.mkdir(exist_ok=True)
    whoami = (f'if [ "$1" = whoami ]; then printf "User: me\\nBackend URL: {backend}\\n"; fi\n' if logged_in
              else 'if [ "$1" = whoami ]; then exit 1; fi\n')
    script.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n{whoami}')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "YES", "STACK") and not k.startswith(("AWS_", "PULUMI_"))}
    env.update(PATH=f"{script.parent}:{env['PATH']}", HAMI_EKS=str(HAMI_EKS), PREFLIGHT="0",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    return env, log


@pytest.fixture
def fake_pulumi(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A logged-in `pulumi` (whoami succeeds)."""
    return _fake_pulumi(tmp_path, logged_in=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project, so the local backend's .pulumi-state and stray files stay out of REPO."""
    copy = tmp_path / "proj"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv*", ".git", "manifests", "tests", ".pulumi-state"))
    return copy


def stack_sh(action: str, stack: str, env: dict[str, str], project_dir: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(project_dir / "scripts" / "stack.sh"), action, stack], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# ---- stack names ------------------------------------------------------------------------------

BAD_NAMES = ["demo; touch INJECTED", "demo typo", "$(touch INJECTED)", "../../x", "demo`touch INJECTED`", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_stack_sh_refuses_a_name_outside_pulumis_charset(fake_pulumi, project, name):
    env, log = fake_pulumi
    result = stack_sh("up", name, {**env, "YES": "1"}, project)
    assert result.returncode == 2
    assert "is not one Pulumi stack name" in result.stderr
    assert calls(log) == [] and not (project / "INJECTED").exists()


@pytest.mark.parametrize("target", ["plan", "render", "preflight", "leaks", "up", "preview", "destroy"])
@pytest.mark.parametrize("name", ["demo; touch INJECTED", "demo typo", "$(shell touch INJECTED)"])
def test_make_refuses_a_bad_stack_before_running_anything(fake_pulumi, project, target, name):
    env, log = fake_pulumi
    (project / ".venv").symlink_to(REPO / ".venv")
    result = subprocess.run(["make", "-s", target, f"STACK={name}", "YES=1"], cwd=project, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "STACK must be one Pulumi stack name" in result.stderr
    assert calls(log) == [] and not (project / "INJECTED").exists()


def test_make_passes_a_valid_stack_name_through(project):
    (project / ".venv").symlink_to(REPO / ".venv")
    result = subprocess.run(["make", "-s", "plan", "STACK=lean"], cwd=project, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "lean" in result.stdout


# ---- consent ----------------------------------------------------------------------------------

@pytest.mark.parametrize("consent", [{"YES": "no"}, {"YES": "false"}, {"YES": "0"}, {"CI": "false"},
                                     {"YES": "nope"}, {"CI": "0"}])
def test_a_non_yes_value_does_not_skip_the_question(fake_pulumi, consent):
    env, log = fake_pulumi
    result = stack_sh("up", "lean", {**env, **consent})
    assert result.returncode == 3, result.stderr
    assert "Not confirmed" in result.stderr
    assert not any(c.startswith("up") for c in calls(log))


@pytest.mark.parametrize("consent", [{"YES": "1"}, {"YES": "YES"}, {"YES": "True"}, {"YES": "y"}, {"CI": "true"}])
def test_an_explicit_yes_deploys_with_the_policy_pack(fake_pulumi, consent):
    env, log = fake_pulumi
    result = stack_sh("up", "lean", {**env, **consent})
    assert result.returncode == 0, result.stderr
    assert "up --yes --stack lean --policy-pack policies" in calls(log)


def test_preview_runs_the_policy_pack(fake_pulumi):
    env, log = fake_pulumi
    assert stack_sh("preview", "lean", env).returncode == 0
    assert "preview --stack lean --policy-pack policies" in calls(log)


# ---- the local backend's secrets passphrase ---------------------------------------------------

@pytest.mark.parametrize("action", ["up", "preview"])
@pytest.mark.parametrize("passphrase", [None, ""])
def test_the_local_backend_refuses_an_empty_passphrase(tmp_path, project, action, passphrase):
    env, log = _fake_pulumi(tmp_path, logged_in=False)
    if passphrase is not None:
        env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
    result = stack_sh(action, "lean", {**env, "YES": "1"}, project)
    assert result.returncode == 2
    assert "empty secrets passphrase" in result.stderr
    assert "PULUMI_CONFIG_PASSPHRASE" in result.stderr and "awskms://" in result.stderr
    assert calls(log) == ["whoami --verbose"]


@pytest.mark.parametrize("backend,refused", [("s3://state-bucket?region=us-west-2", True),
                                             ("file:///home/me/.pulumi", True),
                                             ("https://api.pulumi.com", False)])
def test_a_logged_in_self_managed_backend_needs_a_passphrase_too(tmp_path, project, backend, refused):
    env, log = _fake_pulumi(tmp_path, logged_in=True, backend=backend)
    result = stack_sh("up", "lean", {**env, "YES": "1"}, project)
    assert (result.returncode == 2 and "empty secrets passphrase" in result.stderr) is refused, result.stderr
    assert any(c.startswith("up ") for c in calls(log)) is not refused


def test_the_local_backend_accepts_a_passphrase(tmp_path, project):
    env, log = _fake_pulumi(tmp_path, logged_in=False)
    result = stack_sh("up", "lean", {**env, "YES": "1", "PULUMI_CONFIG_PASSPHRASE": "correct horse"}, project)
    assert result.returncode == 0, result.stderr
    assert "up --yes --stack lean --policy-pack policies" in calls(log)


def test_a_kms_secrets_provider_needs_no_passphrase(tmp_path, project):
    env, log = _fake_pulumi(tmp_path, logged_in=False)
    stack_file = project / "Pulumi.lean.yaml"
    stack_file.write_text("secretsprovider: awskms://alias/hami?region=us-west-2\n" + stack_file.read_text())
    result = stack_sh("up", "lean", {**env, "YES": "1"}, project)
    assert result.returncode == 0, result.stderr
    assert "up --yes --stack lean --policy-pack policies" in calls(log)


def test_destroy_of_an_old_empty_passphrase_stack_is_not_refused(tmp_path, project):
    env, log = _fake_pulumi(tmp_path, logged_in=False)
    result = stack_sh("destroy", "lean", {**env, "YES": "1", "PULUMI_CONFIG_PASSPHRASE": ""}, project)
    assert "destroy --yes --stack lean" in calls(log), result.stderr
