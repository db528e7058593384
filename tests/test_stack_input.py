"""Nothing deploys unless the user meant it: stack files and flags that would deploy something else
than what was written are refused by every command with exit 2 and one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, group, svc

from hamieks.config import stackfiles
from hamieks.errors import StackFileError


def hami_eks(*args: str, cwd: Path = REPO, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hamieks", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, **kwargs)


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# ---- stack files that say nothing deploy nothing -------------------------------------------------

@pytest.mark.parametrize("body, words", [
    ("", "sets none of hami-eks:clusterName"),
    ("# only a comment\n", "sets none of hami-eks:clusterName"),
    ("encryptionsalt: v1:AAAAAAAAAAA=:v1:BBBB:CCCC\n", "sets none of hami-eks:clusterName"),  # `pulumi stack init`
    ("config: {}\n", "sets none of hami-eks:clusterName"),
    ("config:\n  aws:region: us-east-1\n  hami-eks:namespace: serving\n", "sets none of hami-eks:clusterName"),
    ("hami-eks:clusterName: mine\n", "top-level key 'hami-eks:clusterName' belongs under `config:`"),
    ("confg:\n  hami-eks:clusterName: mine\n", "did you mean 'config'"),
])
def test_a_stack_file_that_sets_no_cluster_nodes_or_services_is_refused(project, body, words):
    path = project("mine", body)
    for command in (["plan", "--stack", "mine"], ["rightsize", "--stack", "mine"], ["render", "--stack", "mine"]):
        refused(hami_eks(*command, "--project-dir", str(path)), "Pulumi.mine.yaml", words)


@pytest.mark.parametrize("body", [
    "config:\n  hami-eks:clusterName: mine\n",
    "config:\n  hami-eks:nodeGroups: {t4: {instanceTypes: [g4dn.xlarge], desiredSize: 1}}\n"
    "  hami-eks:services: []\n",
])
def test_a_stack_file_that_names_its_cluster_or_nodes_is_read(project, body):
    assert "hami-eks:clusterName" in stackfiles.load_stack_config(project("mine", body), "mine")


def test_a_misspelt_identity_key_is_named_as_a_typo_not_as_an_empty_stack(project):
    result = hami_eks("plan", "--stack", "mine", "--project-dir", str(project("mine", "config:\n  hami-eks:clustername: x\n")))
    refused(result, "hami-eks:clustername: unknown config key; did you mean 'hami-eks:clusterName'")


def test_a_stack_file_that_is_not_utf8_is_refused_by_every_reader(project):
    path = project("good", "config:\n  hami-eks:clusterName: good\n")
    (path / "Pulumi.latin.yaml").write_bytes(b"config:\n  hami-eks:clusterName: caf\xe9\n")
    refused(hami_eks("plan", "--stack", "latin", "--project-dir", str(path)), "Pulumi.latin.yaml:2: not UTF-8")
    refused(hami_eks("render", "--all", "--project-dir", str(path)), "Pulumi.latin.yaml:2: not UTF-8")
    listed = hami_eks("stacks", "--project-dir", str(path))
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert "not UTF-8" in listed.stdout and "good" in listed.stdout


@pytest.mark.parametrize("body, words", [
    # "billion laughs": nine aliases of nine, six deep, would be 531441 values
    ("config:\n  hami-eks:clusterName: x\n  hami-eks:a: &a [x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"  hami-eks:{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcde", "bcdef", strict=True)),
     "YAML aliases expand this document past 100000 values"),
    ("config:\n  hami-eks:clusterName: x\n  hami-eks:loop: &l [*l]\n", "a YAML alias refers to itself"),
])
def test_yaml_alias_bombs_are_refused_before_they_expand(project, body, words):
    result = hami_eks("plan", "--stack", "bomb", "--project-dir", str(project("bomb", body)))
    refused(result, "Pulumi.bomb.yaml:", words)


def test_yaml_nested_thousands_deep_is_refused_without_a_traceback(project):
    body = "config:\n  hami-eks:clusterName: x\n  hami-eks:deep: " + "[" * 5000 + "]" * 5000 + "\n"
    refused(hami_eks("plan", "--stack", "deep", "--project-dir", str(project("deep", body))), "nested too deeply")


def test_aliases_of_normal_size_still_work(project):
    body = ("config:\n  hami-eks:clusterName: x\n  hami-eks:nodeGroups:\n    t4: &t4 {instanceTypes: [g4dn.xlarge]}\n"
            "    t4b: *t4\n")
    config = stackfiles.load_stack_config(project("alias", body), "alias")
    assert config["hami-eks:nodeGroups"]["t4b"] == {"instanceTypes": ["g4dn.xlarge"]}


# ---- stack names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    ("Pulumi.demo.yaml", "--stack takes the stack's name, not its file: use --stack demo"),
    ("./Pulumi.lean.yaml", "use --stack lean"),
    ("../../etc/x", "is not a stack name"),
    ("demo typo", "is not a stack name"),
    ("demo;touch x", "is not a stack name"),
    ("", "is not a stack name"),
])
def test_a_stack_name_is_a_name(name, words):
    for command in (["plan", "--stack", name], ["render", "--stack", name, "--check"], ["rightsize", "--stack", name]):
        refused(hami_eks(*command), words)
    with pytest.raises(StackFileError):
        stackfiles.check_stack_name(name)


def test_render_never_writes_outside_the_project(tmp_path):
    refused(hami_eks("render", "--stack", "../../x", "--project-dir", str(REPO)), "is not a stack name")
    assert not (REPO.parent / "x").exists()


# ---- flags --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, flag", [
    (["plan", "--stack", "demo", "--stack", "lean"], "--stack"),
    (["plan", "--stack=demo", "--stack", "lean"], "--stack"),
    (["plan", "--stack", "demo", "--json", "--json"], "--json"),
    (["plan", "--stack", "demo", "--prices", "recorded", "--prices", "auto"], "--prices"),
    (["rightsize", "--stack", "demo", "--write", "a", "--write", "b"], "--write"),
])
def test_a_flag_given_twice_is_refused(args, flag):
    refused(hami_eks(*args), f"{flag} is given twice; give it once")


def test_repeatable_flags_stay_repeatable():
    result = hami_eks("plan", "--stack", "demo", "--service", "vllm-t4-qwen25-1-5b", "--service", "vllm-a10g-mistral7b-awq")
    assert result.returncode == 0, result.stderr


def test_a_closed_stdout_is_one_clear_line():
    result = subprocess.run(f"{sys.executable} -m hamieks plan --stack demo >&-", shell=True, cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    refused(result, "standard output is closed")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unwritable_manifests_directory_exits_2(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.lean.yaml"):
        (project / name).write_text((REPO / name).read_text())
    (project / "manifests").write_text("a file where the directory should be")
    refused(hami_eks("render", "--stack", "lean", "--project-dir", str(project)), "render: cannot write manifests/lean/")


# ---- rightsize --write keeps a live stack's identity ------------------------------------------------

def _stack_with_secret(project, name: str) -> Path:
    text = (REPO / "Pulumi.lean.yaml").read_text()
    body = "encryptionsalt: v1:SALT\n" + text + "  hami-eks:hfToken:\n    secure: v1:CIPHER\n"
    return project(name, body)


def test_rightsize_over_the_stack_it_reads_keeps_cluster_salt_and_secrets(project):
    path = _stack_with_secret(project, "lean")
    result = hami_eks("rightsize", "--stack", "lean", "--write", "lean", "--force", "--project-dir", str(path))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load((path / "Pulumi.lean.yaml").read_text())
    assert doc["encryptionsalt"] == "v1:SALT"
    assert doc["config"]["hami-eks:clusterName"] == "hami-lean-aws"  # renaming would replace the cluster
    assert doc["config"]["hami-eks:hfToken"] == {"secure": "v1:CIPHER"}
    assert stackfiles.load_stack_config(path, "lean")["hami-eks:clusterName"] == "hami-lean-aws"


def test_rightsize_over_another_stack_keeps_that_stacks_identity(project):
    path = _stack_with_secret(project, "lean")
    project("other", "encryptionsalt: v1:OTHER\nconfig:\n  hami-eks:clusterName: other-cluster\n"
                     "  hami-eks:hfToken:\n    secure: v1:OTHERCIPHER\n")
    result = hami_eks("rightsize", "--stack", "lean", "--write", "other", "--force", "--project-dir", str(path))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load((path / "Pulumi.other.yaml").read_text())
    assert doc["encryptionsalt"] == "v1:OTHER"
    assert doc["config"]["hami-eks:clusterName"] == "other-cluster"
    assert doc["config"]["hami-eks:hfToken"] == {"secure": "v1:OTHERCIPHER"}  # its own, not lean's


def test_rightsize_to_a_new_stack_derives_a_cluster_name_and_drops_foreign_secrets(project):
    path = _stack_with_secret(project, "lean")
    result = hami_eks("rightsize", "--stack", "lean", "--write", "cheap", "--project-dir", str(path))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load((path / "Pulumi.cheap.yaml").read_text())
    assert doc["config"]["hami-eks:clusterName"] == "hami-lean-aws-cheap"
    assert "hami-eks:hfToken" not in doc["config"] and "encryptionsalt" not in doc


def test_rightsize_will_not_overwrite_without_force(project):
    path = _stack_with_secret(project, "lean")
    before = (path / "Pulumi.lean.yaml").read_text()
    refused(hami_eks("rightsize", "--stack", "lean", "--write", "lean", "--project-dir", str(path)), "--force")
    assert (path / "Pulumi.lean.yaml").read_text() == before


# ---- a copied stack that kept its source's cluster name ----------------------------------------------

def test_a_copied_stack_sharing_a_cluster_name_is_warned_about(project):
    body = yaml.safe_dump({"config": {"hami-eks:clusterName": "same", "hami-eks:nodeGroups": {"t4": group("g4dn.xlarge")},
                                      "hami-eks:services": [svc("a", cpu="1", memory="6Gi")]}})
    path = project("first", body)
    project("copy", body)
    result = hami_eks("plan", "--stack", "copy", "--summary", "--project-dir", str(path))
    assert result.returncode == 0, result.stderr
    assert "hami-eks:clusterName 'same' is also the cluster of stack(s) first" in result.stdout
    project("first", body.replace("same", "different"))
    assert "is also the cluster" not in hami_eks("plan", "--stack", "copy", "--summary", "--project-dir", str(path)).stdout


# ---- the program itself refuses a stack file that says nothing -------------------------------------

def test_pulumi_up_on_a_stack_file_pulumi_stack_init_wrote_registers_nothing(tmp_path, monkeypatch):
    from pulumi_harness import run_program

    # The engine hands the program the demo's config (as `pulumi config set` could have), but the
    # stack file in the directory `pulumi up` runs in holds only what `pulumi stack init` writes.
    (tmp_path / "Pulumi.demo.yaml").write_text("encryptionsalt: v1:AAAAAAAAAAA=:v1:BBBB:CCCC\n")
    monkeypatch.chdir(tmp_path)
    run = run_program("demo", expect_error=True)
    assert "Pulumi.demo.yaml sets none of hami-eks:clusterName" in str(run.error)
    assert run.resources == []


def test_the_program_reads_a_stack_file_only_when_there_is_one(tmp_path, monkeypatch):
    from pulumi_harness import run_program

    monkeypatch.chdir(tmp_path)  # no Pulumi.demo.yaml here: config from the engine alone
    assert run_program("demo").resources


@pytest.mark.parametrize("new, cluster", [
    ("lean-cheaper-copy", "hami-lean-aws-lean-cheaper-copy"),  # fits as it is
    ("a-long-name-for-a-rightsized-copy", "hami-a-long-name-for-a-rightsized-copy"),  # the source's part gives way
    ("a-far-too-long-name-for-the-rightsized-copy-of-it", "hami-a-far-too-long-name-for-the-rights"),  # both
])
def test_a_derived_cluster_name_fits_the_names_aws_derives_from_it(project, new, cluster):
    path = project("lean", (REPO / "Pulumi.lean.yaml").read_text())
    result = hami_eks("rightsize", "--stack", "lean", "--write", new, "--project-dir", str(path))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((path / f"Pulumi.{new}.yaml").read_text())["config"]["hami-eks:clusterName"] == cluster
    assert hami_eks("plan", "--stack", new, "--summary", "--project-dir", str(path)).returncode == 0


def test_a_system_type_too_small_for_the_system_pods_is_warned_about(monkeypatch, capsys):
    from hamieks import cli
    from hamieks.sizing import system_nodes

    # Every catalog CPU type holds today's system pods; a heavier set shows what a smaller type would.
    heavy = (system_nodes.SystemPod("prometheus", 4000, 30000, "test"),)
    monkeypatch.setattr(system_nodes, "SYSTEM_PODS", heavy)
    assert cli.main(["plan", "--stack", "lean", "--summary", "--project-dir", str(REPO)]) == 0
    out = capsys.readouterr().out
    assert "hami-eks:systemInstanceType: one t3.large node allocates" in out and "prometheus" in out
    monkeypatch.undo()
    assert cli.main(["plan", "--stack", "lean", "--summary", "--project-dir", str(REPO)]) == 0
    assert "systemInstanceType: one" not in capsys.readouterr().out
