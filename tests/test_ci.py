"""`.ci/run` (= `make test`): a run that collects no test fails and says so; a passing run passes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.paths import REPO_ROOT


def _ci_run(select: str) -> subprocess.CompletedProcess:
    """`.ci/run` with the tests chosen by ``-k select`` (PYTEST_ADDOPTS reaches the pytest that
    `make test` starts), this interpreter's folder as the Makefile's BIN and the install step
    left alone (``-o .venv/.installed``)."""
    env = {**os.environ, "PYTEST_ADDOPTS": f"-p no:cacheprovider -k {select}",
           "MAKEFLAGS": f"-o .venv/.installed BIN={Path(sys.executable).parent}"}
    return subprocess.run([str(REPO_ROOT / ".ci" / "run")], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_no_tests_collected_fails_and_is_named():
    r = _ci_run("zzz_no_such_test_zzz")
    assert r.returncode != 0
    assert "error: no tests collected (pytest exit 5)" in r.stderr
    assert "deselected" in r.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_passing_selection_passes():
    r = _ci_run("test_dispatch_typed_options")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout and "no tests collected" not in r.stderr
