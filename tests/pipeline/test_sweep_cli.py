"""`pipeline sweep SPEC --status | --run | --analyse` through the command line (the functions
behind them are tested in test_sweep_runner / test_sweep_analysis / test_sweep_e2e)."""
from __future__ import annotations

import pytest

from pipeline import cli
from pipeline.sweep.plan import read_plan, read_result


@pytest.mark.parametrize("args,needle", [
    (["--plan", "--status"], "exactly one of"),
    ([], "exactly one of"),
    (["--run"], "--index I, --part K or --all"),
    (["--run", "--index", "0", "--backend", "slurm"], "local or submitit"),
    (["--run", "--part", "0"], "parts_max_len"),
    (["--plan", "--parts_max_len", "0"], "--parts_max_len 0 (expected an integer >= 1)"),
    (["--run", "--all", "--max_steps", "0"], "--max_steps 0 (expected an integer >= 1)"),
    (["--emit-slurm", "--max_concurrent", "0"], "--max_concurrent 0"),
    (["--plan", "--index", "0"], "--index does not apply to --plan (expected with --run)"),
    (["--analyse", "--all"], "--all does not apply to --analyse"),
    (["--run", "--all", "--time", "01:00:00"], "--time does not apply to --run (expected with --emit-slurm)"),
])
def test_cli_actions_bad_input_exit_2_one_line(smoke_env, capsys, args, needle):
    out = smoke_env / "sweep"
    assert cli.main(["sweep", "smoke_grid", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (out / "results").exists()          # nothing ran


def test_cli_spec_that_is_not_yaml_exit_2_one_line(tmp_path, capsys):
    spec = tmp_path / "img.nii.gz"
    spec.write_bytes(b"\x1f\x8b\x08\x00")
    assert cli.main(["sweep", str(spec), "--plan", "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "img.nii.gz: not a text file" in err[0], err
    assert not (tmp_path / "sw").exists()


def test_analyse_before_any_row_names_the_command_to_run_with_out_and_spec(smoke_env, capsys):
    """The hint of `--analyse` on a sweep without finished rows is a command that runs this sweep:
    it dropped --out (the rows would go to runs/sweeps/<name>, and --analyse would still find
    none) and named a spec given as a path by its `name` (not found as a sweep name)."""
    import shutil

    from data_tools.paths import CONFIG_DIR

    out = smoke_env / "sw out"
    assert cli.main(["sweep", "smoke_grid", "--analyse", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"run rows first: pipeline sweep smoke_grid --run --all --out '{out}'"), err
    spec = shutil.copy(CONFIG_DIR / "sweep" / "smoke_grid.yaml", smoke_env / "mine.yaml")
    assert cli.main(["sweep", str(spec), "--analyse", "--out", str(smoke_env / "sw2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].endswith(f"pipeline sweep {spec} --run --all --out {smoke_env / 'sw2'}"), err


def test_cli_status_run_index_then_status(smoke_env, capsys):
    out = smoke_env / "sweep"
    assert cli.main(["sweep", "smoke_grid", "--status", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == ["not_run=4", "running=0", "done=0", "failed=0"]

    assert cli.main(["sweep", "smoke_grid", "--run", "--index", "1", "--max_steps", "2", "--out", str(out)]) == 0
    assert "rows: 1  done: 1  model_failed: 0/1  raised: 0" in capsys.readouterr().out
    rec = read_result(out, 1)
    assert rec["status"] == "done" and rec["steps"] == 2 and 0.0 <= rec["m_ssim"] <= 1.0
    assert [read_result(out, i) for i in (0, 2, 3)] == [None, None, None]
    assert [p["status"] for p in read_plan(out / "plan.csv")] == ["not_run", "done", "not_run", "not_run"]

    assert cli.main(["sweep", "smoke_grid", "--status", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == ["not_run=3", "running=0", "done=1", "failed=0"]

    # a finished row is not trained again: same record, nothing new
    assert cli.main(["sweep", "smoke_grid", "--run", "--index", "1", "--max_steps", "2", "--out", str(out)]) == 0
    assert read_result(out, 1) == rec
    capsys.readouterr()

    assert cli.main(["sweep", "smoke_grid", "--analyse", "--out", str(out)]) == 0
    report = out / "analysis" / "report.md"
    assert capsys.readouterr().out.strip() == f"analysis: {report}"
    text = report.read_text()
    assert "Rows: 4; finished: 1; raised: 0; not run: 3." in text and "Top 15" in text
    assert "(a) Average SSIM: not estimated (1 observation for" in text   # one row cannot fit a regression


def test_cli_rows_that_raised_are_named_and_bad_input_everywhere_exits_2(smoke_env, capsys, monkeypatch):
    """Rows that raised used to end in a bare 'raised: 4' (the reason only in results/<i>.json)
    and exit 0, also when the dataset did not exist at all."""
    out = smoke_env / "sweep"
    monkeypatch.setenv("KNEE_PIPELINE_DATA", str(smoke_env / "nowhere"))
    assert cli.main(["sweep", "smoke_grid", "--run", "--all", "--max_steps", "1", "--out", str(out)]) == 2
    std = capsys.readouterr()
    lines = std.out.strip().splitlines()
    assert lines[0] == "rows: 4  done: 0  model_failed: 0/0  raised: 4"
    assert lines[2].startswith("  rows 0-3: PipelineInputError: ") and "smoke.h5: dataset file not found" in lines[2]
    err = std.err.strip().splitlines()
    assert len(err) == 1 and "every row run (4) stopped on bad input, first: " in err[0]
    assert "smoke.h5: dataset file not found" in err[0] and "--retry_failed" in err[0]
    assert [read_result(out, i)["error_type"] for i in range(4)] == ["PipelineInputError"] * 4

    # run again: the recorded failures are not re-run, and the summary says how to re-run them
    assert cli.main(["sweep", "smoke_grid", "--run", "--index", "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "  row 2 failed in an earlier run and was not run again: --retry_failed runs them")

    # the data fixed: --retry_failed trains the row
    monkeypatch.setenv("KNEE_PIPELINE_DATA", str(smoke_env / "data"))
    assert cli.main(["sweep", "smoke_grid", "--run", "--index", "2", "--max_steps", "1", "--retry_failed",
                     "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "rows: 1  done: 1  model_failed: 0/1  raised: 0"
    rec = read_result(out, 2)
    assert rec["status"] == "done" and rec["error"] is None and rec["error_type"] is None


def test_index_ranges():
    from pipeline.sweep.runner import index_ranges

    assert index_ranges([9, 0, 1, 2, 3, 7, 10]) == "0-3, 7, 9-10"
    assert index_ranges([5]) == "5" and index_ranges([]) == ""
