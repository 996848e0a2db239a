"""`pipeline bench simulate` at a small size: the Poisson calibration box scales with the mask side."""
from __future__ import annotations

import json

from pipeline import cli


def test_bench_simulate_small_size_scales_calib(tmp_path):
    """--size 48 used to stop with "the 32x32 calibration box alone has 1024 (expected R <= 4); lower R
    or the calib size" (the bench has no calib option): the box is now 32 scaled by side/256, as in
    `pipeline simulate`."""
    out = tmp_path / "b.json"
    assert cli.main(["bench", "simulate", "--size", "48", "--radial_size", "16", "--slices", "1",
                     "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    pois = doc["poisson"]
    assert pois["shape"] == [48, 48] and pois["calib"] == 6
    assert pois["ours_exact_count"] == round(48 * 48 / 8.0) and pois["ours_R"] == 8.0
    assert pois["speedup"] > 0
    assert doc["radial"]["size"] == [16, 16] and doc["radial"]["ours_batch_slices"] == 1
