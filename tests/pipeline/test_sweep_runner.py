"""The sweep runner with stand-in train/evaluate functions: exception capture, skipping finished
rows, warm start of an interrupted row, plan merging. (test_sweep_e2e.py runs the real ones.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from data_tools.errors import PipelineInputError
from pipeline.sweep.analysis import analyse
from pipeline.sweep.plan import read_plan, read_result, status_counts
from pipeline.sweep.runner import failure_rate, run_row, run_rows, select_indices
from pipeline.sweep.spec import load_spec

from sweep_helpers import write_spec


class FakeTrain:
    """Writes ``checkpoints/last.ckpt`` with a global step like Lightning; can raise on demand."""

    def __init__(self, raise_for: dict[str, BaseException] | None = None, stop_at: int | None = None):
        self.calls: list[dict] = []
        self.raise_for = raise_for or {}
        self.stop_at = stop_at

    def __call__(self, experiment, overrides, *, max_steps, max_time, devices, precision, resume, runs_dir,
                 profile):
        self.calls.append({"overrides": overrides, "resume": resume, "max_steps": max_steps, "runs_dir": runs_dir})
        run = Path(runs_dir) / "run"
        ckpt = run / "checkpoints" / "last.ckpt"
        start = torch.load(ckpt)["global_step"] if resume else 0
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        depth = overrides["net.init_args.depth"]
        if depth in self.raise_for:
            if self.stop_at is not None:
                torch.save({"global_step": self.stop_at}, ckpt)
            raise self.raise_for[depth]
        torch.save({"global_step": max_steps, "start": start}, ckpt)
        return run


def fake_eval(run_dir, spec, row):
    d = row.values["net.init_args.depth"]
    return {"m_mae": 0.01 * d, "m_mse": 0.001, "m_ssim": 0.3 if d == 3 else 0.8, "model_failed": d == 3,
            "bench_m_ssim": 0.7}


@pytest.fixture
def spec(tmp_path):
    return load_spec(write_spec(tmp_path, {"net.init_args.depth": [1, 2, 3, 4]}))


def test_row_that_raises_is_recorded_and_others_complete(spec, tmp_path):
    train = FakeTrain(raise_for={2: RuntimeError("loss is NaN\nat step 7")})
    out = tmp_path / "sw"
    recs = run_rows(spec, range(4), out, progress=False, train_fn=train, eval_fn=fake_eval)
    assert [r["status"] for r in recs] == ["done", "failed", "done", "done"]
    assert recs[1]["error"] == "RuntimeError: loss is NaN at step 7"
    assert (out / "results" / "00001.traceback.txt").read_text().count("RuntimeError") >= 1
    plan = read_plan(out / "plan.csv")
    assert [p["status"] for p in plan] == ["done", "failed", "done", "done"]
    assert plan[1]["error"].startswith("RuntimeError") and plan[0]["m_ssim"] == "0.8" and plan[0]["steps"] == "3"
    assert failure_rate(recs) == (1, 3)                     # depth 3 is flagged model_failed
    assert status_counts(spec, out) == {"not_run": 0, "running": 0, "done": 3, "failed": 1}


def test_finished_rows_are_skipped_and_failed_retried_on_request(spec, tmp_path):
    out = tmp_path / "sw"
    train = FakeTrain(raise_for={2: RuntimeError("boom")})
    run_rows(spec, range(4), out, progress=False, train_fn=train, eval_fn=fake_eval)
    first = json.loads((out / "results" / "00000.json").read_text())
    again = FakeTrain()
    run_rows(spec, range(4), out, progress=False, train_fn=again, eval_fn=fake_eval)
    assert again.calls == []                                # done and failed rows are not redone
    assert json.loads((out / "results" / "00000.json").read_text()) == first
    run_rows(spec, range(4), out, progress=False, train_fn=again, eval_fn=fake_eval, retry_failed=True)
    assert len(again.calls) == 1 and read_result(out, 1)["status"] == "done" and read_result(out, 1)["attempts"] == 2
    # the failed attempt's traceback went with its error: it stayed next to the done record
    assert read_result(out, 1)["error"] is None and not (out / "results" / "00001.traceback.txt").exists()


def test_interrupted_row_warm_starts_from_its_checkpoint(spec, tmp_path):
    out = tmp_path / "sw"
    killer = FakeTrain(raise_for={3: KeyboardInterrupt()}, stop_at=2)
    with pytest.raises(KeyboardInterrupt):                  # a kill is not recorded as a row failure
        run_rows(spec, range(4), out, progress=False, train_fn=killer, eval_fn=fake_eval)
    assert read_result(out, 2)["status"] == "running" and read_result(out, 3) is None
    resumed = FakeTrain()
    run_rows(spec, range(4), out, progress=False, train_fn=resumed, eval_fn=fake_eval)
    assert [c["overrides"]["net.init_args.depth"] for c in resumed.calls] == [3, 4]   # rows 0, 1 not redone
    assert resumed.calls[0]["resume"] is True and resumed.calls[1]["resume"] is False
    rec = read_result(out, 2)
    assert rec["status"] == "done" and rec["resumed_from_step"] == 2 and rec["attempts"] == 2
    assert torch.load(Path(rec["run_dir"]) / "checkpoints" / "last.ckpt")["start"] == 2


def test_max_steps_cap_and_index_checks(spec, tmp_path):
    train = FakeTrain()
    rec = run_row(spec, 0, tmp_path / "sw", train_fn=train, eval_fn=fake_eval, max_steps=2)
    assert train.calls[0]["max_steps"] == 2 and rec["steps"] == 2
    with pytest.raises(PipelineInputError, match="outside the plan"):
        run_row(spec, 4, tmp_path / "sw", train_fn=train, eval_fn=fake_eval)
    with pytest.raises(PipelineInputError, match="outside the plan"):
        select_indices(spec, index=-1)
    assert select_indices(spec, part=1, parts_max_len=3) == [3]
    with pytest.raises(PipelineInputError, match="nothing to run"):
        select_indices(spec)


def test_changed_spec_is_refused_for_an_old_folder(tmp_path):
    out = tmp_path / "sw"
    s1 = load_spec(write_spec(tmp_path, {"net.init_args.depth": [1, 2]}))
    run_row(s1, 0, out, train_fn=FakeTrain(), eval_fn=fake_eval)
    s2 = load_spec(write_spec(tmp_path, {"net.init_args.depth": [5, 1, 2]}))
    with pytest.raises(PipelineInputError, match="different version"):
        run_row(s2, 0, out, train_fn=FakeTrain(), eval_fn=fake_eval)
    # --status and --analyse read results by row index too: row 0 of s1 (depth 1) is not row 0 of
    # s2 (depth 5); they counted it and analysed it under s2's values without a word.
    assert status_counts(s1, out)["done"] == 1
    for read in (status_counts, analyse):
        with pytest.raises(PipelineInputError, match="different version"):
            read(s2, out)
    assert not (out / "analysis").exists()


def test_analyse_of_a_folder_never_planned_writes_nothing(tmp_path):
    out = tmp_path / "sw"
    spec = load_spec(write_spec(tmp_path, {"net.init_args.depth": [1, 2]}))
    with pytest.raises(PipelineInputError, match="never planned or run here"):
        analyse(spec, out)
    assert not out.exists()  # it wrote sweep.json and plan.csv there before finding no rows


def test_damaged_sweep_files_are_named(tmp_path):
    """sweep.json or a row result that is not JSON (hand-edited, a disk filled mid-copy) is one
    error naming the file and what to delete, not a JSONDecodeError traceback."""
    out = tmp_path / "sw"
    spec = load_spec(write_spec(tmp_path, {"net.init_args.depth": [1, 2]}))
    run_row(spec, 0, out, train_fn=FakeTrain(), eval_fn=fake_eval)
    result = next((out / "results").glob("*.json"))
    result.write_text('{"status": "do')
    with pytest.raises(PipelineInputError, match=r"invalid JSON .*; delete it to re-run the row"):
        run_row(spec, 0, out, train_fn=FakeTrain(), eval_fn=fake_eval)
    result.write_text("[]")
    with pytest.raises(PipelineInputError, match=r"holds a list .*; delete it to re-run the row"):
        run_row(spec, 0, out, train_fn=FakeTrain(), eval_fn=fake_eval)
    (out / "sweep.json").write_bytes(b"\x00\xff")
    with pytest.raises(PipelineInputError, match=r"sweep\.json: not a text file .*delete the folder's plan"):
        run_row(spec, 1, out, train_fn=FakeTrain(), eval_fn=fake_eval)
    (out / "sweep.json").write_text("[1, 2]")
    with pytest.raises(PipelineInputError, match=r"sweep\.json: the file holds a list"):
        run_row(spec, 1, out, train_fn=FakeTrain(), eval_fn=fake_eval)


def _task(args):
    spec_path, index, out = args
    run_row(load_spec(spec_path), index, out, train_fn=FakeTrain(), eval_fn=fake_eval)


def test_concurrent_tasks_finishing_at_once_all_land_in_the_plan(tmp_path):
    import multiprocessing as mp

    p = write_spec(tmp_path, {"net.init_args.depth": [1, 2, 3, 4, 5, 6]})
    out = tmp_path / "sw"
    with mp.get_context("fork").Pool(3) as pool:       # like array tasks, each writes its own row
        pool.map(_task, [(str(p), i, str(out)) for i in range(6)])
    assert [r["status"] for r in read_plan(out / "plan.csv")] == ["done"] * 6


def test_dataset_of_takes_one_name_as_a_string():
    from pipeline.sweep.runner import dataset_of

    assert dataset_of({"data": {"init_args": {"datasets": "smoke", "data_dir": "d"}}}) == "d/smoke.h5"
    assert dataset_of({"data": {"init_args": {"datasets": ["pois", "rad_41"], "data_dir": "d"}}}) == "d/pois.h5"
    assert dataset_of({"data": {"init_args": {}}}) is None


def test_rows_of_another_task_are_refused_before_training_unless_scored_another_way(tmp_path, capsys):
    """A sweep of `seg_unet2d` trained every row, then failed each in the default evaluation ("no test
    dataset: set evaluate.dataset"), which scores denoisers; it is now refused before anything trains
    (run_row and the CLI's --plan/--run/--emit-slurm); an eval_fn of one's own still runs it."""
    import yaml

    from pipeline import cli

    p = tmp_path / "seg.yaml"
    p.write_text(yaml.safe_dump({"experiment": "seg_unet2d", "steps": 2, "grid": {"net.init_args.width": [4, 8]}}))
    spec = load_spec(p)
    trained = []

    def train(experiment, overrides, *, runs_dir, **kw):
        trained.append(overrides["net.init_args.width"])
        (Path(runs_dir) / "run").mkdir(parents=True)
        return Path(runs_dir) / "run"

    with pytest.raises(PipelineInputError) as exc:
        run_row(spec, 0, tmp_path / "sw", train_fn=train)
    assert "[experiment]: 'seg_unet2d' trains a segmentation model, but sweep rows are scored as denoisers" in str(exc.value)
    assert trained == [] and not (tmp_path / "sw").exists()
    rec = run_row(spec, 1, tmp_path / "sw", train_fn=train, eval_fn=lambda run, spec, row: {"dice": 0.9})
    assert rec["status"] == "done" and rec["dice"] == 0.9 and trained == [8]
    for action in ("--plan", "--run --all", "--emit-slurm"):
        assert cli.main(["sweep", str(p), *action.split(), "--out", str(tmp_path / "cli")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "trains a segmentation model" in err[0] and "pipeline evaluate --run" in err[0], err
    assert not (tmp_path / "cli").exists() and trained == [8]
