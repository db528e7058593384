"""The front door, tried as a new user would: the installed command, stack-file mistakes, typos,
pipes, and `make up`/`destroy` guarding against an accidental deploy. Every case ends in a clear
message with its documented exit code and never a traceback."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, SHIPPED_STACKS

from hamieks import __version__

BIN = Path(sys.executable).parent
HAMI_EKS = BIN / "hami-eks"


def hami_eks(*args: str, cwd: Path = REPO, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hamieks", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, **kwargs)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


# ---- the installed command ----------------------------------------------------------------------

def test_the_console_script_is_installed_and_reports_its_version():
    assert HAMI_EKS.is_file(), "run `make venv` (pip install -e .) to install the hami-eks command"
    result = subprocess.run([str(HAMI_EKS), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == f"hami-eks {__version__}"


def test_the_installed_command_works_outside_the_checkout(tmp_path):
    """From any directory it finds this checkout's stacks (editable install)."""
    result = subprocess.run([str(HAMI_EKS), "stacks"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert {line.split()[0] for line in result.stdout.splitlines()[1:]} >= {"demo", "lean", "policies"}


def test_stacks_lists_region_gpus_and_cost():
    result = hami_eks("stacks")
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert result.returncode == 0
    assert rows["demo"][1] == "us-west-2" and rows["demo"][2] == "8" and "T4," in rows["demo"]
    assert float(rows["lean"][-1]) < float(rows["demo"][-1])


@pytest.mark.parametrize("command", ["plan", "render", "stacks"])
def test_every_command_documents_its_exit_codes(command):
    result = hami_eks(command, "--help")
    assert result.returncode == 0 and "exit codes:" in result.stdout


def test_an_unknown_command_lists_the_commands():
    result = hami_eks("plna")
    assert result.returncode == 2 and "choose from" in result.stderr and "'plan'" in result.stderr
    no_traceback(result)


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "hamieks", "plan", "--stack", "policies"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert proc.returncode in (0, 141)


# ---- stack files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body, where, message", [
    ("config:\n  hami-eks:clusterName: [a\n", "Pulumi.bad.yaml:3:1", "invalid YAML"),
    ("config:\n\thami-eks:clusterName: x\n", "Pulumi.bad.yaml:2:1", "never tabs"),
    ("- config\n- x\n", "Pulumi.bad.yaml:1:1", "expected a mapping with a `config:` key, found a list"),
    ("config:\n  hami-eks:clusterName: x\n  hami-eks:clusterName: y\n", "Pulumi.bad.yaml:3:3",
     "duplicate key 'hami-eks:clusterName' (first at line 2)"),
    ("config: 3\n", "Pulumi.bad.yaml", "`config:` must be a mapping"),
])
def test_yaml_mistakes_name_file_line_and_column(project, body, where, message):
    path = project("bad", body)
    result = hami_eks("plan", "--stack", "bad", "--project-dir", str(path))
    assert result.returncode == 2
    assert f"plan: {where}" in result.stderr and message in result.stderr
    no_traceback(result)


@pytest.mark.parametrize("key, suggestion", [
    ("aws:regoin", "aws:region"),
    ("hami-eks:clustername", "hami-eks:clusterName"),
])
def test_typos_of_known_keys_are_reported(project, key, suggestion):
    path = project("typo", f"config:\n  hami-eks:nodeGroups: {{t4: {{instanceTypes: [g4dn.xlarge]}}}}\n  {key}: x\n")
    result = hami_eks("plan", "--stack", "typo", "--project-dir", str(path))
    assert result.returncode == 2
    assert f"{key}: unknown" in result.stderr and f"did you mean {suggestion!r}" in result.stderr


def test_other_aws_provider_keys_pass(project):
    path = project("ok", "config:\n  hami-eks:clusterName: ok\n  aws:profile: prod\n  aws:skipMetadataApiCheck: false\n")
    assert hami_eks("plan", "--stack", "ok", "--project-dir", str(path)).returncode == 0


def test_an_unknown_stack_suggests_the_closest():
    result = hami_eks("plan", "--stack", "dmeo")
    assert result.returncode == 2
    assert "no stack file Pulumi.dmeo.yaml (did you mean 'demo'?)" in result.stderr


def test_an_unknown_service_suggests_the_closest():
    result = hami_eks("plan", "--stack", "policies", "--service", "demo-x")
    assert result.returncode == 2 and "(did you mean 'demo-d'?)" in result.stderr


# ---- make up / destroy never deploy by accident -----------------------------------------------------

@pytest.fixture
def fake_pulumi(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `pulumi` on PATH that records its arguments (whoami succeeds, like a logged-in CLI)."""
    log = tmp_path / "pulumi.log"
    script = tmp_path / "bin" / "pulumi"
    script.parent.mkdir()
    script.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "YES") and not k.startswith("AWS_")}
    env["PATH"] = f"{script.parent}:{env['PATH']}"
    env["HAMI_EKS"] = str(HAMI_EKS)
    # No AWS account here: the account preflight has its own test below and in test_aws_preflight.
    env["PREFLIGHT"] = "0"
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    return env, log


def stack_sh(action: str, stack: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), action, stack], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("action", ["up", "preview", "destroy"])
def test_a_missing_stack_file_calls_no_pulumi_command(fake_pulumi, action):
    env, log = fake_pulumi
    result = stack_sh(action, "demoo", env)
    assert result.returncode == 2
    assert "No stack file Pulumi.demoo.yaml" in result.stderr
    assert all(f" {stack}" in result.stderr for stack in SHIPPED_STACKS)  # a user's own stacks may stand between
    assert calls(log) == []


def test_up_shows_the_plan_and_asks_before_deploying(fake_pulumi):
    env, log = fake_pulumi
    result = stack_sh("up", "lean", env)
    assert result.returncode == 3, result.stderr
    assert "$2.0494/hour" in result.stdout and "Not confirmed" in result.stderr
    assert not any(c.startswith("up") for c in calls(log))


@pytest.mark.parametrize("consent", [{"YES": "1"}, {"CI": "true"}])
def test_yes_or_ci_deploys_the_named_stack(fake_pulumi, consent):
    env, log = fake_pulumi
    result = stack_sh("up", "lean", {**env, **consent})
    assert result.returncode == 0, result.stderr
    assert "up --yes --stack lean --policy-pack policies" in calls(log)


def test_a_stack_that_cannot_be_placed_never_reaches_pulumi(fake_pulumi, tmp_path):
    env, log = fake_pulumi
    project = tmp_path / "proj"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns(".venv*", ".git", "manifests", "tests"))
    (project / "Pulumi.tight.yaml").write_text(textwrap.dedent("""\
        config:
          hami-eks:nodeGroups:
            t4: {instanceTypes: [g4dn.xlarge], desiredSize: 1, minSize: 1, maxSize: 1}
          hami-eks:services:
            - {name: vllm-x, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 3, gpumem: 7500, cpu: "1", memory: 2Gi}
        """))
    result = subprocess.run(["bash", str(project / "scripts" / "stack.sh"), "up", "tight"],
                            env={**env, "YES": "1"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "HAMi cannot place 1 of 3 replicas" in result.stdout
    assert calls(log) == []


def test_up_runs_the_account_preflight_before_pulumi(fake_pulumi):
    env, log = fake_pulumi
    result = stack_sh("up", "lean", {**env, "PREFLIGHT": "1", "YES": "1"})
    assert result.returncode == 2  # preflight: no credentials
    assert "credentials" in result.stderr.lower()
    assert calls(log) == []


def test_destroy_asks_too(fake_pulumi):
    env, log = fake_pulumi
    assert stack_sh("destroy", "lean", env).returncode == 3
    assert not any(c.startswith("destroy") for c in calls(log))


def test_the_stacks_own_overrides_let_plan_pass_as_pulumi_up_would(project):
    """A stack that sets allowUnschedulable deploys (with a warning) under `pulumi up`, so `plan`
    (and so `make up`) must not refuse it; without the key it exits 1."""
    body = """\
        config:
          hami-eks:nodeGroups:
            t4: {instanceTypes: [g4dn.xlarge], desiredSize: 1, minSize: 1, maxSize: 1}
          hami-eks:services:
            - {name: vllm-x, model: Qwen/Qwen2.5-1.5B-Instruct, gpuType: T4, replicas: 3, gpumem: 7500, cpu: "1", memory: 2Gi,
               args: [--gpu-memory-utilization, "0.65", --max-model-len, "2048"]}
        """
    path = project("tight", body)
    assert hami_eks("plan", "--stack", "tight", "--project-dir", str(path)).returncode == 1
    path = project("tight", body.replace("hami-eks:services:", "hami-eks:allowUnschedulable: true\n          hami-eks:services:"))
    result = hami_eks("plan", "--stack", "tight", "--project-dir", str(path))
    assert result.returncode == 0, result.stdout
    assert "allowUnschedulable is true: pulumi up deploys anyway" in result.stdout


def test_an_unwritable_svg_path_exits_2(tmp_path):
    result = hami_eks("plan", "--stack", "demo", "--svg", str(tmp_path / "missing" / "plan.svg"))
    assert result.returncode == 2 and "plan: --svg" in result.stderr
    no_traceback(result)
