"""`python -m hamieks render`, run as a user runs it, against the repo and against scratch copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import SHIPPED_STACKS

from hamieks.config import stackfiles
from hamieks.config.settings import load_settings
from hamieks.kube import hami_values, workloads

REPO = Path(__file__).resolve().parent.parent
STACKS = SHIPPED_STACKS  # a user's own stack need not be rendered into manifests/
CIPHERTEXT = "v1:SECRETCIPHERTEXTthatmustneverleak=="


def render(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "hamieks", "render", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def manifest_files(directory: Path) -> list[Path]:
    """What `kubectl apply -f <directory>` applies: its own .yaml files, in name order."""
    return sorted(directory.glob("*.yaml"))


def load_objects(directory: Path) -> list[dict]:
    return [doc for path in manifest_files(directory) for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch project: the demo stack, plus one that sets hfToken, as `pulumi config set --secret` writes it."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path)
    shutil.copy(REPO / "Pulumi.demo.yaml", tmp_path)
    doc = yaml.safe_load((REPO / "Pulumi.demo.yaml").read_text())
    doc["config"]["hami-eks:hfToken"] = {"secure": CIPHERTEXT}
    (tmp_path / "Pulumi.gated.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def test_committed_renderings_are_fresh():
    result = render(*(arg for stack in STACKS for arg in ("--stack", stack)), "--check")
    assert result.returncode == 0, f"stale manifests; run `make render` for each stack:\n{result.stderr}"
    for stack in STACKS:
        assert manifest_files(REPO / "manifests" / stack), f"manifests/{stack}/ was never rendered"


@pytest.mark.parametrize("stack", STACKS)
def test_rendering_is_exactly_what_pulumi_creates(stack):
    """Same builders: the files hold stack_objects(settings) and nothing else, namespace-wide
    objects first (kubectl applies files in name order), then one file per service."""
    settings = load_settings(stackfiles.load_stack_config(REPO, stack))
    out = REPO / "manifests" / stack
    objects = load_objects(out)
    shared = workloads.namespace_objects(settings)
    assert objects[:len(shared)] == shared
    for svc in settings.services:
        assert list(yaml.safe_load_all((out / f"{svc.name}.yaml").read_text())) == \
            workloads.service_objects(settings, svc)
    expected = workloads.stack_objects(settings)
    assert len(objects) == len(expected) and all(o in expected for o in objects)
    values_file = REPO / "manifests" / stack / "helm" / "hami-values.yaml"
    assert yaml.safe_load(values_file.read_text()) == hami_values.release_values(settings)


@pytest.mark.parametrize("stack", STACKS)
def test_every_file_says_it_is_generated_and_how(stack):
    for path in (REPO / "manifests" / stack).rglob("*"):
        if path.is_file():
            first = path.read_text().splitlines()[0]
            assert "Generated" in first and f"hami-eks render --stack {stack}" in first, path


def test_render_then_check_then_edit_is_caught(project):
    first = render("--stack", "demo", "--project-dir", str(project))
    assert first.returncode == 0, first.stderr
    out = project / "manifests" / "demo"
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert render("--stack", "demo", "--check", "--project-dir", str(project)).returncode == 0

    again = render("--stack", "demo", "--project-dir", str(project))
    assert again.returncode == 0 and "up to date" in again.stdout
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot, "output is not deterministic"

    edited = manifest_files(out)[-1]
    edited.write_text(edited.read_text().replace("replicas: 1", "replicas: 5").replace("replicas: 2", "replicas: 5"))
    stale = render("--stack", "demo", "--check", "--project-dir", str(project))
    assert stale.returncode == 1
    assert edited.name in stale.stderr and "render --stack demo" in stale.stderr
    assert edited.read_text() != snapshot[edited], "--check must not write"


def test_a_removed_service_leaves_no_stale_file(project):
    assert render("--stack", "demo", "--project-dir", str(project)).returncode == 0
    doc = yaml.safe_load((project / "Pulumi.demo.yaml").read_text())
    dropped = doc["config"]["hami-eks:services"].pop()["name"]
    (project / "Pulumi.demo.yaml").write_text(yaml.safe_dump(doc))

    stale = render("--stack", "demo", "--check", "--project-dir", str(project))
    assert stale.returncode == 1 and f"{dropped}.yaml" in stale.stderr
    assert render("--stack", "demo", "--project-dir", str(project)).returncode == 0
    assert not (project / "manifests" / "demo" / f"{dropped}.yaml").exists()
    names = {o["metadata"]["name"] for o in load_objects(project / "manifests" / "demo")}
    assert dropped not in names


def test_the_hf_token_is_referenced_but_never_written(project):
    result = render("--stack", "gated", "--project-dir", str(project))
    assert result.returncode == 0, result.stderr
    out = project / "manifests" / "gated"
    texts = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    assert not any(CIPHERTEXT in t or "SECRETCIPHERTEXT" in t for t in texts.values())
    assert "SECRETCIPHERTEXT" not in result.stdout + result.stderr
    objects = load_objects(out)
    assert not [o for o in objects if o["kind"] == "Secret"]
    refs = [e["valueFrom"]["secretKeyRef"] for o in objects if o["kind"] == "Deployment"
            for e in o["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "HF_TOKEN"]
    assert len(refs) == sum(o["kind"] == "Deployment" for o in objects) > 0
    # A kubectl user is told how to create the Secret the pods reference.
    create = f"create secret generic {refs[0]['name']} --from-literal={refs[0]['key']}="
    assert create in (out / "00-namespace.yaml").read_text()
    assert create in (out / "README.md").read_text()


def test_unknown_stack_and_bad_config_fail_with_a_message(project):
    missing = render("--stack", "nope", "--project-dir", str(project))
    assert missing.returncode == 2 and "Pulumi.nope.yaml" in missing.stderr and "demo" in missing.stderr
    doc = yaml.safe_load((project / "Pulumi.demo.yaml").read_text())
    doc["config"]["hami-eks:services"][0]["gpumemPercentage"] = 45  # now both memory keys
    (project / "Pulumi.bad.yaml").write_text(yaml.safe_dump(doc))
    bad = render("--stack", "bad", "--project-dir", str(project))
    assert bad.returncode == 2 and "hami-eks:services" in bad.stderr
    assert not (project / "manifests" / "bad").exists()
