"""The CLI layer: discovery, dispatch, and the bad-input contract (one line, exit 2)."""
from __future__ import annotations

import subprocess
import sys


from data_tools.errors import PipelineInputError
from pipeline import cli
from pipeline.commands import Command


def _fail(path: str) -> None:
    raise PipelineInputError("file not found", path=path, expected="an HDF5 file")


def _add(a: int, b: int = 2) -> int:
    return a + b


def test_dispatch_typed_options(monkeypatch):
    cmds = [Command(("math", "add"), _add, "add"), Command(("fail",), _fail, "fail")]
    monkeypatch.setattr(cli, "discover", lambda: cmds)
    assert cli.run(["math", "add", "--a", "3"]) == 5
    assert cli.run(["math", "add", "--a", "3", "--b", "4"]) == 7


def test_bad_input_is_one_line_exit_2(monkeypatch, capsys):
    cmds = [Command(("fail",), _fail, "fail")]
    monkeypatch.setattr(cli, "discover", lambda: cmds)
    assert cli.main(["fail", "--path", "/nope.h5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/nope.h5" in err[0] and "expected an HDF5 file" in err[0]


def test_unknown_verb_exits_2():
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "no-such-verb"], capture_output=True, text=True)
    assert r.returncode == 2


def test_python_dash_m_pipeline_is_the_command(tmp_path):
    """`python -m pipeline` runs the CLI (where the console script is not on PATH): its output,
    its one-line error and exit 2 on bad input."""
    ok = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("pipeline (knee-pipeline "), ok.stderr
    bad = subprocess.run([sys.executable, "-m", "pipeline", "train", "no_such_experiment"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "unknown experiment 'no_such_experiment'" in bad.stderr
