"""Figure-26 regression tables from a synthetic grid with known effects (statsmodels OLS/LPM)."""
from __future__ import annotations

import numpy as np

from pipeline.sweep.analysis import _num, analyse, duration, stars
from pipeline.sweep.runner import run_rows
from pipeline.sweep.spec import load_spec

from sweep_helpers import write_spec
from test_sweep_runner import FakeTrain


def test_number_and_star_format_like_figure_26():
    assert _num(-0.0092) == "\u22120.009" and _num(0.00021) == "0.0002" and _num(0.757) == "0.757"
    assert [stars(p) for p in (0.2, 0.09, 0.04, 0.001)] == ["", "*", "**", "***"]


def test_durations_in_a_unit_that_shows_them():
    """A 4-step smoke row takes seconds: the report said "median 0.0 min"."""
    assert [duration(s) for s in (0.004, 2.04, 59.9, 61.0, 204.0, 3600.0, 4500.0)] == [
        "0.0 s", "2.0 s", "59.9 s", "1.0 min", "3.4 min", "1.00 h", "1.25 h"]
    assert duration(float("nan")) == "NA"


def test_regressions_recover_known_effects(tmp_path):
    grid = {"net.init_args.depth": [10, 13, 16, 18], "net.init_args.kernel": [3, 5, 7],
            "task.loss": ["l1", "l2", "ssim"], "net.init_args.skip": ["dncnn", "resnet"]}
    analysis = {"covariates": {"depth": "net.init_args.depth", "filter_size": "net.init_args.kernel"},
                "categorical": {"loss_scheme": {"key": "task.loss", "reference": "l1"},
                                "skipped_scheme": {"key": "net.init_args.skip", "reference": "dncnn"}},
                "group_by": "loss_scheme"}
    spec = load_spec(write_spec(tmp_path, grid, analysis=analysis))
    rng = np.random.default_rng(1993)

    def evaluate(run_dir, spec, row):
        v = row.values
        failed = v["task.loss"] == "ssim" and v["net.init_args.skip"] == "resnet"     # an interaction, like 50/79
        ssim = 0.2 if failed else 0.80 - 0.01 * v["net.init_args.kernel"] + 0.02 * (v["net.init_args.skip"] == "resnet")
        return {"m_mae": 0.05, "m_mse": 0.01, "m_ssim": ssim + rng.normal(0, 0.002), "model_failed": failed,
                "bench_m_ssim": 0.7}

    run_rows(spec, range(spec.n_rows), tmp_path / "sw", progress=False, train_fn=FakeTrain(), eval_fn=evaluate)
    report = analyse(spec, tmp_path / "sw").read_text()
    table = (tmp_path / "sw" / "analysis" / "regressions.md").read_text().splitlines()
    assert table[0] == "| Covariate | (a) Average SSIM | (b) Failed_model |"
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in table[2:]}
    assert list(rows) == ["depth", "filter_size", "loss_scheme_l2", "loss_scheme_ssim", "skipped_scheme_resnet",
                          "Constant", "Observations", "R²", "Adjusted R²", "Residual Std. Error", "F Statistic"]
    assert rows["filter_size"][0].startswith("\u22120.010***")                       # known slope -0.01
    assert rows["skipped_scheme_resnet"][0].startswith("0.020***")
    assert rows["Observations"] == ["60", "72 |"]                                    # successful vs all
    assert rows["loss_scheme_ssim"][1].startswith("0.500***")                        # LPM: +0.5 failure probability
    assert "(df = 54)" in rows["Residual Std. Error"][0] and "(df = 5; 54)" in rows["F Statistic"][0]
    assert "12/72" in report and "| ssim | 24 | 12 | 50.0 |" in report
    top = (tmp_path / "sw" / "analysis" / "top15.md").read_text().splitlines()
    assert len(top) == 2 + 15 and all("kernel3_" in line and "skipresnet" in line for line in top[2:10])
    assert (tmp_path / "sw" / "analysis" / "regressions.png").exists()


def test_failure_regression_without_variation_is_not_estimated(tmp_path):
    """Every model failed (a 4-step smoke grid on real data): OLS of a constant reported the constant
    as 1.000*** with a standard error of 0 and an F statistic of -0.5; now 'not estimated'."""
    grid = {"task.loss": ["l1", "ssim"], "net.init_args.skip": ["dncnn", "resnet"], "net.init_args.depth": [2, 3]}
    spec = load_spec(write_spec(tmp_path, grid))
    rng = np.random.default_rng(0)

    def evaluate(run_dir, spec, row):
        return {"m_mae": 0.2, "m_mse": 0.04, "m_ssim": 0.18 + rng.normal(0, 0.01), "model_failed": True,
                "bench_m_ssim": 0.77}

    run_rows(spec, range(spec.n_rows), tmp_path / "sw", progress=False, train_fn=FakeTrain(), eval_fn=evaluate)
    report = analyse(spec, tmp_path / "sw").read_text()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:]
            for line in (tmp_path / "sw" / "analysis" / "regressions.md").read_text().splitlines()[2:]}
    assert rows["Constant"] == ["", " |"] and rows["Observations"] == ["0", "8 |"]
    assert rows["F Statistic"] == ["NA", "NA |"] and rows["R²"] == ["NA", "NA |"]
    assert "(b) Failed_model: not estimated (all 8 observations are 1: no variation to explain)." in report
    # the table (and its PNG) says why its cells are empty; it showed blanks and NA only
    assert rows["Not estimated"] == ["no observations", "all 8 observations are 1: no variation to explain |"]
    assert "8/8 = 100.0 %" in report
    assert "(a) Average SSIM: not estimated (no observations)." in report and "(a) Average SSIM: dropped" not in report
    # an empty top-15 table says why instead of showing a header alone
    assert "## Top 15 successful models by M-SSIM\n\nNone: no finished model passed the failure rule." in report
    assert "Training time: median 0.0 s, max 0.0 s, total 0.0 s." in report  # FakeTrain takes milliseconds


def test_dropped_covariate_and_estimated_models_in_the_table(tmp_path):
    """Every depth-3 model failed: depth has no variation among the successful models, so (a) drops it.
    Its cell said nothing (an empty cell, like a covariate the spec never had); both models are
    estimated, so no 'Not estimated' row is added to the Figure-26 layout."""
    grid = {"task.loss": ["l1", "ssim"], "net.init_args.depth": [2, 3], "net.init_args.kernel": [3, 5, 7]}
    analysis = {"covariates": {"depth": "net.init_args.depth", "filter_size": "net.init_args.kernel"},
                "categorical": {"loss_scheme": {"key": "task.loss", "reference": "l1"}}}
    spec = load_spec(write_spec(tmp_path, grid, analysis=analysis))
    rng = np.random.default_rng(5)

    def evaluate(run_dir, spec, row):
        v = row.values
        failed = v["net.init_args.depth"] == 3
        return {"m_mae": 0.05, "m_mse": 0.01, "m_ssim": (0.2 if failed else 0.8 - 0.01 * v["net.init_args.kernel"])
                + rng.normal(0, 0.002), "model_failed": failed, "bench_m_ssim": 0.7}

    run_rows(spec, range(spec.n_rows), tmp_path / "sw", progress=False, train_fn=FakeTrain(), eval_fn=evaluate)
    report = analyse(spec, tmp_path / "sw").read_text()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:]
            for line in (tmp_path / "sw" / "analysis" / "regressions.md").read_text().splitlines()[2:]}
    assert rows["depth"][0] == "dropped (no variation)" and rows["depth"][1].startswith("1.000***")
    assert rows["filter_size"][0].startswith("\u22120.010***")
    assert "Not estimated" not in rows and "not estimated" not in report
    assert "(a) Average SSIM: dropped (no variation): depth." in report
