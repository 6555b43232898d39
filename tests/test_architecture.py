"""The layering of STYLE.md section 2, checked with import-linter (contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency; run .ci/setup"
    proc = subprocess.run([exe, "--no-logo", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every contract was checked, none skipped
    assert "Contracts: 3 kept, 0 broken." in proc.stdout, proc.stdout


def test_the_decision_core_really_is_checked(tmp_path):
    """A module of controller.decide that imports aiohttp breaks the first contract."""
    bad = ROOT / "controller" / "decide" / "_contract_probe.py"
    bad.write_text("import aiohttp  # noqa: F401\n")
    try:
        exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
        proc = subprocess.run([exe, "--no-logo", "--no-cache", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    finally:
        bad.unlink()
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout
