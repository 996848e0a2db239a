"""`pipeline bench n4`: shrunk-fit N4 against SimpleITK's default on the same phantom crop."""
from __future__ import annotations

import json

import pytest

from data_tools.machine import cpu_model
from pipeline import cli


@pytest.mark.slow
def test_bench_n4_small_crop_json_and_figure(tmp_path, capsys):
    out = tmp_path / "reports" / "bench_n4.json"
    assert cli.main(["bench", "n4", "--size", "48", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["image"]["shape_xyz"] == [48, 48, 24]          # the seed's z rule keeps 24 slices
    assert doc["image"]["mask"] == "auto"
    assert doc["machine"]["cpu"] == cpu_model() and doc["machine"]["threads"] >= 1
    ours, ref = doc["ours"], doc["simpleitk_default"]
    assert ours["shrink"] == 4 and ref["shrink"] == 1
    assert ours["cov_bone_before"] == ref["cov_bone_before"]   # both corrected the same image
    assert doc["speedup"] == pytest.approx(ref["seconds"] / ours["seconds"])
    assert doc["error_ratio"] == pytest.approx(ours["bias_field_error"] / ref["bias_field_error"])
    # fitting on a 4x shrunk image does less work than the full-resolution default fit
    assert ours["seconds"] < ref["seconds"]
    for r in (ours, ref):
        assert 0 < r["bias_field_error"] < 5 and 0 < r["cov_bone_after"] < 1
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = json.loads(capsys.readouterr().out.split(" -> ")[0])
    assert printed == {k: doc[k] for k in ("speedup", "error_ratio")}


@pytest.mark.parametrize("args,needle", [(["--mask", "otsu"], "[mask]"), (["--size", "0"], "[size]"),
                                         (["--shrink", "0"], "[shrink]"), (["--preset", "huge"], "[preset]")])
def test_bench_n4_bad_input_one_line_exit_2_no_file(tmp_path, capsys, args, needle):
    out = tmp_path / "b.json"
    assert cli.main(["bench", "n4", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert list(tmp_path.iterdir()) == []
