"""Sweep specs: the chapter's grids expand to exactly 504 / 120 / 80 rows; keys are validated."""
from __future__ import annotations

import pytest

from data_tools.errors import PipelineInputError
from pipeline import cli
from pipeline.sweep.plan import read_plan, split_parts, write_plan
from pipeline.sweep.spec import expand, load_spec, run_name

from sweep_helpers import BASE, write_spec


@pytest.mark.parametrize("name,n", [("dncnn_grid", 504), ("unet_grid_shallow", 120), ("unet_grid_deep", 80),
                                    ("unet_grid_deep_typo", 80), ("smoke_grid", 4)])
def test_grids_expand_to_chapter_counts(name, n):
    spec = load_spec(name)
    rows = expand(spec)
    assert len(rows) == n == spec.n_rows
    assert len({r.run_name for r in rows}) == n
    assert [r.index for r in rows] == list(range(n))


def test_dncnn_grid_rows_follow_source_code_4():
    rows = load_spec("dncnn_grid").rows()
    assert rows[0].values == {"net.init_args.depth": 10, "net.init_args.width": 16, "task.loss": "l1",
                              "net.init_args.skip": "dncnn", "net.init_args.kernel": 3}
    assert rows[0].run_name == "d10_w16_l1_dncnn_k3"
    assert all(r.max_steps == 4000 for r in rows)
    assert rows[0].overrides["data.init_args.batch_size"] == 3 and rows[0].overrides["seed"] == 1993
    depth_of = {r.values["net.init_args.depth"] for r in rows}
    assert depth_of == {10, 13, 16, 18, 20, 22, 25}
    assert sum(r.values["task.loss"] == "ssim" for r in rows) == 168


def test_unet_deep_typo_is_selectable():
    intended = {tuple(r.values["net.init_args.filters"]) for r in load_spec("unet_grid_deep").rows()}
    typo = {tuple(r.values["net.init_args.filters"]) for r in load_spec("unet_grid_deep_typo").rows()}
    assert (100, 200, 400, 800, 400, 200, 100) in intended and (100, 200, 400, 200, 400, 200, 100) not in intended
    assert (100, 200, 400, 200, 400, 200, 100) in typo
    shallow = load_spec("unet_grid_shallow").rows()
    assert sorted({r.max_steps for r in shallow}) == [4000, 6000]
    assert sum(r.max_steps == 4000 for r in shallow) == 60      # "half of them fitted with 4000" [L1807]


def test_split_parts_keeps_the_tail_d7():
    parts = split_parts(504, 48)
    assert len(parts) == 11 and sum(len(p) for p in parts) == 504 and len(parts[-1]) == 24
    assert [len(p) for p in split_parts(96, 48)] == [48, 48]      # exact multiple keeps its last chunk
    assert [i for p in split_parts(7, 3) for i in p] == list(range(7))


def test_plan_csv_and_parts(tmp_path):
    spec = load_spec("dncnn_grid")
    path = write_plan(spec, tmp_path / "sw")
    rows = read_plan(path)
    assert len(rows) == 504 and {r["status"] for r in rows} == {"not_run"}
    assert rows[-1]["run_name"] == "d25_w128_ssim_resnet_k7" and rows[-1]["part"] == "10"
    parts = sorted((tmp_path / "sw").glob("plan_part_*.csv"))
    assert len(parts) == 11 and sum(len(read_plan(p)) for p in parts) == 504


def test_run_name_is_stable_and_safe():
    assert run_name({"a.b.loss": "ms_ssim", "x.filters": [1, 2], "f": True, "lr": 0.5}, {"x.filters": "f"}) == \
        "lossms_ssim_f1-2_fT_lr0.5"


def test_key_not_in_config_is_rejected(tmp_path):
    p = write_spec(tmp_path, {"net.init_args.depht": [1, 2]})
    with pytest.raises(PipelineInputError, match="depht"):
        load_spec(p)


def test_constructor_default_keys_are_accepted(tmp_path):
    # `kernel` and `skip` are not in the YAML but are DnCNN constructor arguments; `grad_clip` is TaskModule's.
    p = write_spec(tmp_path, {"net.init_args.kernel": [3, 5], "net.init_args.skip": ["dncnn"],
                              "task.grad_clip": [5.0]})
    assert load_spec(p).n_rows == 2
    p = write_spec(tmp_path, {"trainer.not_a_trainer_arg": [1]})
    with pytest.raises(PipelineInputError, match="not_a_trainer_arg"):
        load_spec(p)
    # keyword mappings: what the optimiser / scheduler takes is accepted, a typo is not
    assert load_spec(write_spec(tmp_path, {"task.optimizer.betas": [[0.8, 0.9]], "task.scheduler.at": [5]})).n_rows == 1
    with pytest.raises(PipelineInputError, match=r"'task.optimizer.lrr' is not a keyword of task.optimizer"):
        load_spec(write_spec(tmp_path, {"task.optimizer.lrr": [0.1]}))


def test_trainer_values_are_type_checked_at_plan_time(tmp_path):
    """A trainer value pl.Trainer cannot take (each grid value, and the fixed section) is refused by
    load_spec (--plan), naming the spec's field; it used to surface row by row at run time."""
    with pytest.raises(PipelineInputError, match=r"t.yaml \[grid.trainer.max_epochs\]: 'x' is not accepted "
                                                 r"\(expected an integer\)$"):
        load_spec(write_spec(tmp_path, {"trainer.max_epochs": [2, "x"]}))
    with pytest.raises(PipelineInputError, match=r"\[fixed.trainer.enable_progress_bar\]: 'maybe' is not accepted"):
        load_spec(write_spec(tmp_path, {"net.init_args.depth": [1]}, fixed={"trainer.enable_progress_bar": "maybe"}))
    # a run length that ends before the first step (each row would train nothing and finish)
    with pytest.raises(PipelineInputError, match=r"\[grid.trainer.max_epochs\]: max_epochs = 0 \(expected an integer >= 1, or -1"):
        load_spec(write_spec(tmp_path, {"trainer.max_epochs": [0, 2]}))
    with pytest.raises(PipelineInputError, match=r"\[fixed.trainer.max_time\]: max_time = '1h' \(expected DD:HH:MM:SS"):
        load_spec(write_spec(tmp_path, {"net.init_args.depth": [1]}, fixed={"trainer.max_time": "1h"}))
    ok = write_spec(tmp_path, {"trainer.max_epochs": [1, 3], "trainer.precision": ["32-true", "bf16-mixed"]},
                    fixed={"trainer.limit_val_batches": 0.5})
    assert load_spec(ok).n_rows == 4


def test_task_values_are_checked_at_plan_time(tmp_path):
    """Each row's optimiser, scheduler and grad_clip as its module will check them: grad_clip 0 (or
    a learning rate of -1) was planned, then its row failed at run time."""
    with pytest.raises(PipelineInputError, match=r"t.yaml \[grid.task.grad_clip\]: grad_clip = 0.0 \(expected a "
                                                 r"gradient norm > 0"):
        load_spec(write_spec(tmp_path, {"task.grad_clip": [5.0, 0.0]}))
    with pytest.raises(PipelineInputError, match=r"\[grid.task.optimizer.lr\]: Adam: Invalid learning rate: -1"):
        load_spec(write_spec(tmp_path, {"task.optimizer.lr": [1e-3, -1]}))
    with pytest.raises(PipelineInputError, match=r"\[fixed.task.grad_clip\]: grad_clip = -2"):
        load_spec(write_spec(tmp_path, {"net.init_args.depth": [1]}, fixed={"task.grad_clip": -2}))
    ok = write_spec(tmp_path, {"task.grad_clip": [1.0, None], "task.optimizer.lr": [1e-3, 1e-4]})
    assert load_spec(ok).n_rows == 4
    # as a user types it: PyYAML read 1e-3 as text, and the plan stopped on a torch comparison error
    typed = tmp_path / "typed.yaml"
    typed.write_text(ok.read_text().replace("- 0.001\n", "- 1e-3\n").replace("- 0.0001\n", "- 1e-4\n"))
    assert "1e-3" in typed.read_text()
    spec = load_spec(typed)
    assert spec.n_rows == 4 and spec.grid["task.optimizer.lr"] == [1e-3, 1e-4]
    # another module's task arguments are its own: not held to TaskModule's optimiser names
    own = write_spec(tmp_path, {"task.optimizer": [{"name": "lion"}, {"name": "sgd"}]},
                     base_cfg={**BASE, "module": "sweep_helpers.OwnModule", "task": {"optimizer": {"name": "lion"}}})
    assert load_spec(own).n_rows == 2


@pytest.mark.parametrize("grid,extra,needle", [
    # the spec's runner fields and grid keys reach pl.Trainer through train_experiment: they were
    # taken by --plan and failed (or trained nothing) row by row at run time
    ({"net.init_args.depth": [1]}, {"steps": 0}, r"t.yaml \[steps\]: max_steps = 0 \(expected an integer >= 1"),
    ({"net.init_args.depth": [1]}, {"steps": "abc"}, r"t.yaml \[steps\]: 'abc' is not accepted \(expected an integer"),
    ({"net.init_args.depth": [1]}, {"max_time": "1h"}, r"t.yaml \[max_time\]: max_time = '1h' \(expected DD:HH:MM:SS"),
    ({"net.init_args.depth": [1]}, {"precision": "foo"}, r"t.yaml \[precision\]: 'foo' is not accepted"),
    ({"max_steps": [4, 0]}, {}, r"t.yaml \[grid.max_steps\]: max_steps = 0 \(expected an integer >= 1"),
    ({"max_time": ["00:01:00:00", "00:00:00:00"]}, {}, r"\[grid.max_time\]: max_time = '00:00:00:00' ends the run"),
])
def test_runner_fields_are_checked_at_plan_time(tmp_path, grid, extra, needle):
    with pytest.raises(PipelineInputError, match=needle):
        load_spec(write_spec(tmp_path, grid, **extra))


def test_runner_fields_accepted(tmp_path):
    spec = load_spec(write_spec(tmp_path, {"max_steps": [2, 4], "max_time": ["00:00:10:00"]}, max_time="00:01:00:00",
                                precision="32-true"))
    assert [(r.max_steps, r.max_time) for r in spec.rows()] == [(2, "00:00:10:00"), (4, "00:00:10:00")]


def test_empty_product_is_rejected(tmp_path):
    with pytest.raises(PipelineInputError, match="empty"):
        load_spec(write_spec(tmp_path, {"net.init_args.depth": []}))
    with pytest.raises(PipelineInputError, match="empty"):
        load_spec(write_spec(tmp_path, {}))


@pytest.mark.parametrize("grid,extra,needle", [
    ({"net.init_args.depht": [1]}, [], "depht"),
    ({"net.init_args.depth": []}, [], "empty"),
    ({"net.init_args.depth": [1, 2]}, ["--index", "7"], "outside the plan"),
])
def test_cli_bad_input_exit_2_one_line(tmp_path, capsys, grid, extra, needle):
    p = write_spec(tmp_path, grid)
    args = ["sweep", str(p), "--run", *extra, "--out", str(tmp_path / "o")] if extra else ["sweep", str(p), "--plan"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_cli_plan_writes_csv(tmp_path, capsys):
    assert cli.main(["sweep", "smoke_grid", "--plan", "--out", str(tmp_path / "s")]) == 0
    assert len(read_plan(tmp_path / "s" / "plan.csv")) == 4


def test_cli_spec_or_base_spec_not_a_mapping_exit_2_one_line(tmp_path, capsys):
    bad = tmp_path / "list.yaml"
    bad.write_text("- experiment: dncnn_l1\n")
    assert cli.main(["sweep", str(bad), "--plan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: the file holds a list (expected a sweep spec mapping (experiment, grid, ...))"]
    p = write_spec(tmp_path, {"net.init_args.depth": [1]}, base=str(bad))   # was a traceback (list.items)
    assert cli.main(["sweep", str(p), "--plan", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: the file holds a list")
    assert not (tmp_path / "o").exists()


def test_sweep_base_chains_deep_ok_and_a_cycle_names_the_chain(tmp_path):
    """Sweep specs inherit by `base` like training configs, with the same cycle check: a chain of
    10 specs resolves (the old depth limit of 8 refused it), a spec that comes back to itself is
    one error naming the chain (was 'too deep (a cycle?)')."""
    first = write_spec(tmp_path, {"net.init_args.depth": [1, 2]}, name="s0")
    for i in range(1, 10):
        (tmp_path / f"s{i}.yaml").write_text(f"name: s{i}\nbase: {tmp_path / f's{i - 1}.yaml'}\n")
    spec = load_spec(tmp_path / "s9.yaml")
    assert spec.name == "s9" and len(expand(spec)) == 2 and first.exists()
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"name: a\nbase: {b}\n")
    b.write_text(f"name: b\nbase: {a}\n")
    with pytest.raises(PipelineInputError, match=r"\[base\]: the base chain comes back to this file: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        load_spec(a)


def test_unquoted_slurm_time_is_refused(tmp_path):
    """YAML 1.1 reads `time: 12:00:00` as the sexagesimal number 43200 (30 days as SLURM minutes)."""
    p = write_spec(tmp_path, {"net.init_args.depth": [1]})
    p.write_text(p.read_text() + "slurm: {time: 12:00:00}\n")
    with pytest.raises(PipelineInputError, match=r'\[slurm.time\]: time limit 43200 is a number .*quoted string'):
        load_spec(p)
    p.write_text(p.read_text().replace("time: 12:00:00", 'time: "12:00:00"'))
    assert load_spec(p).slurm == {"time": "12:00:00"}
