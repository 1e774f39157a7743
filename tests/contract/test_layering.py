"""The layering contracts of pyproject.toml ([tool.importlinter]) hold, and they catch a break: a
service importing another, a shared library importing a service, an application reaching into a
service's internals."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")  # installed beside this Python


def _lint(pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_the_code_keeps_its_layers():
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("package", "folder", "bad_import", "contract"),
    [
        ("lfr_detect", "services/detect", "import lfr_match.settings", "No service imports another service"),
        ("lfr_platform", "libs/platform", "import lfr_alert.settings", "Shared libraries import no service"),
        ("lfr_bench", "apps/bench", "import lfr_match.watchlists", "Applications reach a service only through"),
        ("lfr_testing", "apps/testing", "import lfr_deployments.store", "Applications reach a service only through"),
    ],
)
def test_a_broken_layer_fails_the_lint(tmp_path, package, folder, bad_import, contract):
    # A copy of one package with one bad import, found before the installed one on the path.
    copy = tmp_path / package
    shutil.copytree(ROOT / folder / package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    module = copy / "layering_probe.py"
    module.write_text(f'"""A deliberate break of the layering."""\n\n{bad_import}\n')
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout
    assert f"{package}.layering_probe" in result.stdout
