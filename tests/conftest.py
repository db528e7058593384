import os
import shutil
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
# The program imports `components` and `hamieks` from the project root, as under `pulumi up`.
sys.path.insert(0, str(REPO))
# Tests never reach the Hugging Face Hub: model facts come from the recorded table or from the
# fake endpoint tests/fake_hf.py serves (those tests lift this for themselves).
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (design doc, reference demo, HAMi chart): beside CI's clone, not a user's."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (a user's clone): reference data for this check is unavailable")
    return SHARED


@pytest.fixture
def project(tmp_path: Path) -> Callable[[str, str], Path]:
    """A scratch project with the real Pulumi.yaml; `project(name, body)` writes Pulumi.<name>.yaml
    (dedented) and returns the directory, for commands run with --project-dir."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")

    def write(name: str, body: str) -> Path:
        (tmp_path / f"Pulumi.{name}.yaml").write_text(textwrap.dedent(body))
        return tmp_path

    return write
