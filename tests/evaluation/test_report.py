"""metrics.json / per_image.csv / report / figures / console table of an evaluation."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from rich.console import Console
from torch import nn

from evaluation import benchmark as B
from evaluation.report import metrics_document, print_table, safe_name, write_report


class Identity(nn.Module):
    def forward(self, x):
        return x


class Nan(nn.Module):
    def forward(self, x):
        return x * float("nan")


@pytest.fixture
def results(tmp_path, make_sim):
    files = [make_sim(tmp_path / "rad_41.h5", seed=0), make_sim(tmp_path / "pois.h5", seed=3, noise=0.02)]
    models = {"exp/identity": Identity(), "exp/broken": Nan()}
    return [B.evaluate_dataset(f, models, batch_size=4, progress=False) for f in files]


def test_write_report(results, tmp_path):
    out = tmp_path / "report"
    doc = write_report(results, out, models={"exp/identity": "runs/exp/identity"})
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == doc and set(doc["datasets"]) == {"rad_41", "pois"}
    rad = doc["datasets"]["rad_41"]
    assert rad["models"]["exp/identity"]["ssim"] == rad["benchmark"]["ssim"]
    assert rad["models"]["exp/identity"]["breaks_benchmark"] == {"mae": False, "mse": False, "ssim": False}
    broken = rad["models"]["exp/broken"]
    assert broken["failed"] is True and broken["nonfinite_images"] == rad["count"] and broken["mae"]["mean"] is None
    assert rad["benchmark"]["failed"] is False
    # model minus benchmark, interval over the two test subjects: the identity model is the benchmark
    same = rad["models"]["exp/identity"]["vs_benchmark"]
    assert set(same) == {"mae", "mse", "ssim"} and same["ssim"]["subjects"] == 2
    assert same["ssim"]["mean"] == same["ssim"]["ci_low"] == same["ssim"]["ci_high"] == 0.0
    assert same["ssim"]["images_better"] == 0.0 and same["ssim"]["images"] == rad["count"]
    assert broken["vs_benchmark"]["ssim"]["mean"] is None
    assert rad["benchmark"]["ssim"]["mean"] == pytest.approx(float(np.mean(results[0].per_image["benchmark"]["ssim"])))
    with open(out / "per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    n = sum(len(r.rows) for r in results)
    assert len(rows) == 3 * n and {r["model"] for r in rows} == {"benchmark", "exp/identity", "exp/broken"}
    assert rows[0]["slice_id"].startswith("s") and float(rows[0]["mae"]) > 0
    md = (out / "report.md").read_text()
    for name in ("bars_mae.png", "bars_mse.png", "bars_ssim.png", "bars_bias.png",
                 f"rad_41__{safe_name('exp/identity')}__slices.png", f"pois__{safe_name('exp/broken')}__scatter.png"):
        assert (out / "figures" / name).stat().st_size > 1000
        assert f"figures/{name}" in md
    assert "FAILED" in md and "<img src='figures/bars_ssim.png'" in (out / "report.html").read_text()
    assert "## Model minus benchmark" in md and "| rad_41 | exp/identity | +0.0000 [+0.0000, +0.0000] |" in md
    assert "| rad_41 | exp/broken | - | - | - | - | - | 2 |" in md
    assert "<h2>Model minus benchmark</h2>" in (out / "report.html").read_text()
    # deterministic: the same evaluation writes the same files
    write_report(results, tmp_path / "again", models={"exp/identity": "runs/exp/identity"}, figures=False)
    assert (tmp_path / "again" / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()
    assert (tmp_path / "again" / "per_image.csv").read_bytes() == (out / "per_image.csv").read_bytes()
    assert not (tmp_path / "again" / "figures").exists()


def test_console_table(results):
    doc = metrics_document(results)
    con = Console(record=True, width=160)
    print_table(doc, console=con)
    text = con.export_text()
    bench = doc["datasets"]["pois"]["benchmark"]
    assert "M-MAE" in text and "M-SSIM" in text and "benchmark" in text and "FAILED" in text
    assert f"{bench['ssim']['mean']:.4f}" in text and f"{bench['mae']['mean']:.4f}" in text
    assert "pois: exp/identity ΔM-SSIM vs benchmark +0.0000 [+0.0000, +0.0000] (2 test subjects," in text
    assert "exp/broken ΔM-SSIM" not in text  # a failed model has no difference to report


def test_skipped_model_is_listed(tmp_path, make_sim):
    f = make_sim(tmp_path / "rad_15.h5")
    res = B.evaluate_dataset(f, {"two_channel": nn.Conv2d(2, 2, 3)}, progress=False)
    doc = metrics_document([res])
    assert "two_channel" in doc["datasets"]["rad_15"]["skipped"]
    con = Console(record=True, width=160)
    print_table(doc, console=con)
    text = con.export_text()
    # one note under the table, not a table row whose reason wraps over several lines
    assert text.strip().splitlines()[-1] == f"rad_15: skipped two_channel ({doc['datasets']['rad_15']['skipped']['two_channel']})"
    assert sum("two_channel" in line for line in text.splitlines()) == 1


def test_console_table_keeps_whole_model_names_at_80_columns(results):
    """Two runs whose names share a prefix were both shown as 'dncnn_ssim…' at 80 columns."""
    doc = metrics_document(results)
    entry = next(iter(doc["datasets"].values()))
    model = next(iter(entry["models"].values()))
    for name in ("dncnn_ssim/seed1993-f067404b", "dncnn_ssim_v2/seed1993-e37fc6a5"):
        entry["models"][name] = model
    con = Console(record=True, width=80)
    print_table(doc, console=con)
    cells = [line.split("│") for line in con.export_text().splitlines()]
    flat = "".join(c[2].strip() for c in cells if len(c) > 2)  # the model column, wrapped parts joined
    assert "dncnn_ssim/seed1993-f067404b" in flat and "dncnn_ssim_v2/seed1993-e37fc6a5" in flat
