"""`data_tools.simulate` on tiny multi-coil subjects: layout, normalisation, coil round trip, splits."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml
from sim_helpers import full_ranges, make_subjects

from data_tools.coils import channels_to_rss
from data_tools.errors import PipelineInputError
from data_tools.nufft import fftw_mode, nufft_batch
from data_tools.sim_config import REF_MATRIX, SimConfig, geometry
from data_tools.simdata import open_sim, read_index
from data_tools.simulate import crop_center, normalise, simulate
from data_tools.trajectories import spoke_angles

SHAPE = (24, 32, 28)
COMMON = dict(crop=20, progress=False, **full_ranges(SHAPE))


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    return make_subjects(tmp_path_factory.mktemp("subjects"), n=3, shape=SHAPE, coils=4)


@pytest.fixture(scope="module")
def sets(subjects, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return {
        "rad": simulate("radial", data=subjects, out=out, spokes=5, interleaves=2, slice_stride=3, **COMMON),
        "pois": simulate("poisson", data=subjects, out=out, accel=3.0, **COMMON),
        "coil": simulate("poisson", data=subjects, out=out, accel=3.0, coil=True, **COMMON),
        "pois_u8": simulate("poisson", data=subjects, out=out, accel=3.0, name="pois_u8", normalisation="uint8",
                            axes="z", **COMMON),
    }


def test_geometry_defaults_match_original():
    ranges, crop = geometry(SimConfig(), REF_MATRIX)
    assert [len(ranges[a]) for a in range(3)] == [285, 230, 180]  # 695 slices per knee (reference §1.2)
    assert (ranges[0][0], ranges[0][-1], ranges[2][0], ranges[2][-1]) == (15, 299, 40, 219)
    assert crop == 256
    ranges, crop = geometry(SimConfig(), (160, 160, 128))  # the demo phantom: scaled
    assert (ranges[1][0], ranges[1][-1], crop) == (25, 140, 128)
    c = crop_center(np.arange(320 * 256).reshape(320, 256), 256)  # rows 32:288 (reference §1.2)
    assert c.shape == (256, 256) and c[0, 0] == 32 * 256 and c[-1, -1] == 287 * 256 + 255



def test_geometry_refuses_a_crop_no_metric_can_score():
    """Below the 11x11 M-SSIM window a dataset cannot be evaluated: the default crop of a small
    matrix (0.8 of 12 = 10) is refused as an explicit one is; 11 is the smallest taken."""
    with pytest.raises(PipelineInputError, match=r"\[crop\]: crop 10 \(of matrix \[12, 12, 10\]\) is too small.*>= 11"):
        geometry(SimConfig(), (12, 12, 10))
    assert geometry(SimConfig(crop=11), (12, 12, 12))[1] == 11


def test_full_coverage_refuses_planes_with_different_longest_sides():
    """Full coverage sizes the spokes to each plane's longest side; a 48x40x32 matrix has x-planes
    of longest side 40 and y/z-planes of 48, which one stored trajectory cannot describe."""
    cfg = SimConfig(pattern="radial", full_coverage=True, crop=16)
    with pytest.raises(PipelineInputError, match=r"\[full_coverage\].*x: 40, y: 48, z: 48.*--axes x and --axes yz"):
        geometry(cfg, (48, 40, 32))
    assert len(geometry(SimConfig(pattern="radial", full_coverage=True, crop=16, axes="yz"), (48, 40, 32))[0]) == 2
    assert len(geometry(SimConfig(pattern="radial", crop=16), (48, 40, 32))[0]) == 3  # one trajectory: fine
    assert len(geometry(cfg, (48, 48, 32))[0]) == 3  # the phantom/mridata shape: every plane's longest side is 48


def test_normalise_modes():
    x = np.array([[[0.0, 0.3], [0.5, 2.0]]])
    f = normalise(x)
    assert f.max() == 1.0 and f[0, 0, 1] == pytest.approx(0.15)
    u = normalise(x, "uint8")
    assert u.max() == 1.0 and np.allclose(u * 255, np.round(u * 255)) and u[0, 0, 1] == pytest.approx(38 / 255)
    assert not normalise(np.zeros((1, 2, 2))).any()


def test_radial_dataset_layout(sets):
    path = sets["rad"]
    with open_sim(path) as f:
        n = f["input"].shape[0]
        assert f["input"].shape[1:] == (1, 20, 20)
        assert f["trajectory"].shape == (2, 5, 20, 2)
        assert np.abs(f["trajectory"][()]).max() == pytest.approx(4.75)  # readout = crop, scale 0.5
        cfg = yaml.safe_load(f.attrs["config"])
        assert cfg["spokes"] == 5 and cfg["cg_iters"] == 50 and f.attrs["name"] == "rad_5"
        assert f.attrs["effective_acceleration"] > 0
        assert f.attrs["nufft"] == f"finufft eps=0.0001 upsampfac=1.25 fftw={fftw_mode()} batch={nufft_batch()}"
        target = f["target"][()]
        inp = f["input"][()]
    idx = read_index(path)
    n_slices = sum(len(range(0, s, 3)) for s in SHAPE) * 3
    assert n == 2 * n_slices
    assert np.array_equal(idx["interleave"], np.tile([0, 1], n_slices))
    # both interleaves of a slice share its target and id; they differ in the input (rotated spokes)
    assert np.array_equal(target[0::2], target[1::2]) and (idx["slice_id"][0::2] == idx["slice_id"][1::2]).all()
    assert not np.allclose(inp[0::2], inp[1::2])
    nonempty = target.max(axis=(1, 2, 3)) > 0
    assert np.allclose(target.max(axis=(1, 2, 3))[nonempty], 1.0)
    # interleaves of one slice share one max (bart toimg over the interleave array)
    pair_max = np.maximum(inp[0::2].max(axis=(1, 2, 3)), inp[1::2].max(axis=(1, 2, 3)))
    assert np.allclose(pair_max[nonempty[0::2]], 1.0)


def test_poisson_dataset(sets):
    with open_sim(sets["pois"]) as f:
        masks = f["masks"][()]
        assert masks.shape == (1, SHAPE[1], SHAPE[2])
        assert masks.sum() == round(SHAPE[1] * SHAPE[2] / 3.0)
        assert f.attrs["effective_acceleration"] == pytest.approx(masks[0].size / masks[0].sum())
        x, y = f["input"][()], f["target"][()]
    assert np.allclose(x.max(axis=(1, 2, 3)), 1.0) and np.allclose(y.max(axis=(1, 2, 3)), 1.0)
    assert np.mean(np.abs(x - y)) > 1e-3  # undersampling changed the image
    with open_sim(sets["pois_u8"]) as f:
        u = f["input"][()]
    assert np.allclose(u * 255, np.round(u * 255), atol=1e-4)


def test_coil_round_trip_reproduces_rss_target(sets):
    ic, ip = read_index(sets["coil"]), read_index(sets["pois"])
    with open_sim(sets["coil"]) as f:
        assert f["input"].shape[1] == 8 and f.attrs["channel_order"] == "re0..re3,im0..im3"
        xc, yc = f["input"][()], f["target"][()]
    with open_sim(sets["pois"]) as f:
        yp, xp = f["target"][()], f["input"][()]
    row = {s: i for i, s in enumerate(ip["slice_id"])}
    rows = [row[s] for s in ic["slice_id"]]
    assert np.allclose(channels_to_rss(yc), yp[rows, 0], atol=1e-5)
    assert np.allclose(channels_to_rss(xc), xp[rows, 0], atol=1e-5)
    # every third slice of each axis range
    for a in range(3):
        got = ic["slice_index"][(ic["axis"] == a) & (ic["subject"] == "s0")]
        assert np.array_equal(got, np.arange(0, SHAPE[a], 3))


def _split_map(path):
    idx = read_index(path)
    m = {}
    for s, sp in zip(idx["slice_id"], idx["split"]):
        assert m.setdefault(s, sp) == sp, f"slice {s} in two splits"
    return m, idx


def test_splits_disjoint_and_identical_across_datasets(sets):
    maps = {k: _split_map(p) for k, p in sets.items()}
    ref, idx = maps["pois"]
    for subj in set(idx["subject"]):
        assert len(set(idx["split"][idx["subject"] == subj])) == 1  # subject-level split
    assert set(idx["split"]) == {"train", "val", "test"}
    for name, (m, _) in maps.items():
        assert all(ref[s] == sp for s, sp in m.items()), name


def test_slice_split_mode_is_stride_independent(subjects, tmp_path):
    a = simulate("poisson", data=subjects, out=tmp_path, accel=3.0, split="slice", name="a", **COMMON)
    b = simulate("poisson", data=subjects, out=tmp_path, accel=3.0, split="slice", name="b", coil=True, **COMMON)
    ma, ia = _split_map(a)
    mb, _ = _split_map(b)
    assert all(ma[s] == sp for s, sp in mb.items())
    counts = {s: int((np.asarray(list(ma.values())) == s).sum()) for s in ("train", "val", "test")}
    assert counts["train"] == int(0.6 * len(ma)) and counts["test"] == int(0.2 * len(ma))
    assert len(set(ia["split"][ia["subject"] == "s0"])) == 3  # slice level: one knee in all splits


def test_empty_splits_known_answers():
    from data_tools.splits import assign_splits, empty_splits

    ids = lambda n: [f"k{i}/z{j}" for i in range(n) for j in range(5)]  # noqa: E731
    assert empty_splits(assign_splits(ids(2)), "subject") == (
        "split by subject: 2 subjects give train 2, val 0, test 0; nothing in val and test (`pipeline train` "
        "validates on val, `pipeline evaluate` scores test): simulate from 3 or more subjects, or with --split slice")
    assert empty_splits(assign_splits(ids(1)), "subject").startswith("split by subject: 1 subject gives train 1,")
    for n in (3, 4, 10):  # 60/20/20 with at least one subject in val and in test
        assert empty_splits(assign_splits(ids(n)), "subject") is None
    assert empty_splits(assign_splits(ids(2), "slice"), "slice") is None  # 10 slices: 6/2/2
    assert empty_splits(assign_splits(ids(1)[:4], "slice"), "slice").startswith(
        "split by slice: 4 slices give train 2, val 2, test 0; nothing in test (")  # int(0.6n), int(0.2n), rest
    # a split given no share on purpose: said so, not "simulate more" (which would not fill it)
    assert empty_splits(assign_splits(ids(5), fractions=(0.8, 0.2, 0.0)), "subject", (0.8, 0.2, 0.0)) == (
        "split by subject: 5 subjects give train 4, val 1, test 0; nothing in test (`pipeline evaluate` scores "
        "test): split_fractions [0.8, 0.2, 0.0] gives test no share")
    assert empty_splits(assign_splits(ids(2), fractions=(0.5, 0.5, 0.0)), "subject", (0.5, 0.5, 0.0)) == (
        "split by subject: 2 subjects give train 1, val 1, test 0; nothing in test (`pipeline evaluate` scores "
        "test): split_fractions [0.5, 0.5, 0.0] gives test no share")
    assert empty_splits(assign_splits(ids(2), fractions=(0.9, 0.1, 0.0)), "subject", (0.9, 0.1, 0.0)) == (
        "split by subject: 2 subjects give train 2, val 0, test 0; nothing in val and test (`pipeline train` "
        "validates on val, `pipeline evaluate` scores test): val: simulate from 3 or more subjects, or with "
        "--split slice; split_fractions [0.9, 0.1, 0.0] gives test no share")


def test_two_subjects_warn_at_simulate_and_name_the_cause_at_train(tmp_path, caplog):
    """A subject split of 2 knees is 2/0/0: simulate wrote it without a word, and training then
    stopped on "no samples in split 'val'" with nothing on why or what to do."""
    from data_tools.datasets import SimSliceDataset

    two = make_subjects(tmp_path / "two", n=2, shape=SHAPE, coils=4)
    with caplog.at_level("WARNING", logger="data_tools.simulate"):
        path = simulate("poisson", data=two, out=tmp_path, accel=3.0, **COMMON)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == ["pois: split by subject: 2 subjects give train 2, val 0, test 0; nothing in val and test "
                    "(`pipeline train` validates on val, `pipeline evaluate` scores test): simulate from 3 or more "
                    "subjects, or with --split slice"]
    assert len(SimSliceDataset(path, "train")) == len(read_index(path)["split"])
    with pytest.raises(PipelineInputError, match=r"no samples in split 'val' .*; split by subject: 2 subjects give "
                                                 r"train 2, val 0, test 0; .* or with --split slice$"):
        SimSliceDataset(path, "val")
    caplog.clear()
    with caplog.at_level("WARNING", logger="data_tools.simulate"):
        simulate("poisson", data=two, out=tmp_path, accel=3.0, split="slice", name="sl", **COMMON)
    assert not caplog.records  # the slice split of the same knees fills all three
    # an empty test split asked for: the dataset's error names split_fractions (read from the file)
    caplog.clear()
    with caplog.at_level("WARNING", logger="data_tools.simulate"):
        nt = simulate("poisson", data=two, out=tmp_path, accel=3.0, split_fractions=[0.5, 0.5, 0.0], name="nt",
                      **COMMON)
    assert [r.getMessage() for r in caplog.records] == [
        "nt: split by subject: 2 subjects give train 1, val 1, test 0; nothing in test (`pipeline evaluate` scores "
        "test): split_fractions [0.5, 0.5, 0.0] gives test no share"]
    with pytest.raises(PipelineInputError, match=r"no samples in split 'test' .*; split by subject: .* "
                                                 r"split_fractions \[0\.5, 0\.5, 0\.0\] gives test no share$"):
        SimSliceDataset(nt, "test")


def test_fewer_spokes_worse_mssim(tmp_path_factory):
    from skimage.metrics import structural_similarity

    shape = (6, 48, 48)
    data = make_subjects(tmp_path_factory.mktemp("ssim"), n=1, shape=shape, coils=4)
    out = tmp_path_factory.mktemp("ssim_out")
    kw = dict(data=data, out=out, axes="x", crop=40, progress=False, **full_ranges(shape))
    m = {}
    for spokes, k in ((41, 4), (15, 3)):
        with open_sim(simulate("radial", spokes=spokes, interleaves=k, **kw)) as f:
            x, y = f["input"][:, 0], f["target"][:, 0]
        m[spokes] = np.mean([structural_similarity(a, b, data_range=1.0) for a, b in zip(x, y)])
    assert m[15] < m[41]


def test_bad_inputs_leave_no_file(subjects, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    with h5py.File(bad / "s9.h5", "w") as f:
        f["rss"] = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(PipelineInputError, match="kspace"):
        simulate("poisson", data=bad, out=tmp_path / "o", progress=False)
    with pytest.raises(PipelineInputError, match="crop"):
        simulate("poisson", data=subjects, out=tmp_path / "o", crop=64, progress=False, **full_ranges(SHAPE))
    with pytest.raises(PipelineInputError, match="pattern"):
        simulate("spiral", data=subjects, out=tmp_path / "o")
    with pytest.raises(PipelineInputError, match="accel"):
        simulate("poisson", data=subjects, out=tmp_path / "o", accel=1.0)
    with pytest.raises(PipelineInputError, match="spokes"):
        simulate("radial", data=subjects, out=tmp_path / "o", spokes=0)
    with pytest.raises(PipelineInputError, match=r"\[coil_stride\]: coil_stride = 0 \(expected an integer >= 1\)"):
        simulate("poisson", data=subjects, out=tmp_path / "o", coil=True, coil_stride=0)
    # per-subject masks take mask_seed + i: the last one overflowed after the first subject's work
    with pytest.raises(PipelineInputError, match=r"\[mask_seed\]: mask_seed 4294967295 with mask_per_subject and 3 "
                                                 r"subjects needs seeds up to 4294967297"):
        simulate("poisson", data=subjects, out=tmp_path / "o", accel=3.0, mask_seed=2**32 - 1, mask_per_subject=True,
                 progress=False)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_subject_with_nan_kspace_is_refused_naming_it(subjects, tmp_path):
    """A subject file written by other code with NaN in its k-space used to give datasets of NaN
    (and NaN losses in training); read_subject refuses it, and write_subject never writes one."""
    from data_tools.subject import Subject, read_subject, write_subject

    src = sorted(subjects.glob("*.h5"))[0]
    folder = tmp_path / "nan"
    folder.mkdir()
    bad = folder / src.name
    bad.write_bytes(src.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["kspace"][0, 1, 1, 1] = np.nan
    with pytest.raises(PipelineInputError, match=rf"{bad.name} \[kspace\]: holds NaN or infinite values"):
        simulate("poisson", data=folder, out=tmp_path / "o", accel=3.0, **COMMON)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
    k = read_subject(src, load=("kspace",)).kspace
    k[0, 0, 0, 0] = np.inf
    with pytest.raises(PipelineInputError, match=r"w.h5 \[kspace\]: holds NaN or infinite"):
        write_subject(tmp_path / "w.h5", Subject(kspace=k))
    with pytest.raises(PipelineInputError, match=r"has an empty axis"):
        write_subject(tmp_path / "w.h5", Subject(kspace=k[:, :0]))
    assert not (tmp_path / "w.h5").exists()


def test_simulated_dataset_given_as_subject_data_is_named(tmp_path):
    """`simulate --data data/simulated` said 'simulation needs raw multi-coil k-space'; it now
    says the file is a simulated dataset and where subject files come from."""
    folder = tmp_path / "simulated"
    folder.mkdir()
    with h5py.File(folder / "pois.h5", "w") as f:
        f["input"] = np.zeros((2, 1, 8, 8), np.float32)
        f["target"] = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(PipelineInputError, match=r"pois.h5 \[kspace\]: missing dataset 'kspace'.*this is a simulated "
                                                 r"input/target dataset .*`pipeline data phantom`"):
        simulate("poisson", data=folder, out=tmp_path / "o", accel=3.0, **COMMON)
    assert not (tmp_path / "o").exists()


def test_figures(subjects, tmp_path):
    p = simulate("poisson", data=subjects, out=tmp_path, accel=3.0, figures=True, axes="yz", **COMMON)
    assert sorted(q.name for q in (tmp_path / "figures").iterdir()) == ["pois_pattern.png", "pois_slices.png"]
    assert p.exists()


def _png_height(path) -> int:
    import matplotlib.image

    return matplotlib.image.imread(path).shape[0]


def test_dataset_view_summary_and_figure(sets, subjects, tmp_path):
    """`pipeline data show DATASET`: the summary counts what the file holds; the figure draws the
    samples asked for (one row each) and refuses an index outside the dataset, writing nothing."""
    from data_tools.sim_figures import _mask_of, describe_dataset, plot_dataset

    idx = read_index(sets["rad"])
    n = len(idx["split"])
    lines = describe_dataset(sets["rad"])
    counts = {s: int(np.sum(idx["split"] == s)) for s in ("train", "val", "test")}
    assert lines[0].startswith("rad_5.h5: dataset rad_5, radial, 5 spokes x 2 interleaves, R ")
    assert f"{n} samples (train {counts['train']}, val {counts['val']}, test {counts['test']}; split by subject)" \
        in lines[1] and "of 1 x 20 x 20 (channels x H x W, rss)" in lines[1]
    assert lines[2].startswith("  3 subject(s): ") and f"x {int(np.sum(idx['axis'] == 0))}," in lines[2]
    assert "of 8 x 20 x 20 (channels x H x W, re0..re3,im0..im3)" in describe_dataset(sets["coil"])[1]  # 4 coils

    one = plot_dataset(sets["rad"], tmp_path / "one.png", [n - 1])
    three = plot_dataset(sets["rad"], tmp_path / "three.png", [0, 1, n - 1])
    assert _png_height(three) > 2 * _png_height(one)
    default = plot_dataset(sets["pois"], tmp_path / "pois.png")  # middle slice of each axis of the first knee
    assert _png_height(default) == pytest.approx(_png_height(three), rel=0.05)
    for bad in (-1, n):
        with pytest.raises(PipelineInputError, match=rf"\[index\]: no sample {bad} in a dataset of {n} samples "
                                                     rf"\(expected sample indices 0..{n - 1}\)"):
            plot_dataset(sets["rad"], tmp_path / "bad.png", [0, bad])
    assert not (tmp_path / "bad.png").exists()

    import data_tools.sim_figures as sf  # each sample titled once; "interleave k" for a radial dataset only
    titles = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sf, "_save", lambda fig, path, dpi: titles.setdefault(path.stem, [a.get_title() for a in fig.axes]))
        for name in ("rad", "pois"):
            plot_dataset(sets[name], tmp_path / f"{name}.png", [1])
            i = read_index(sets[name])
            want = f"#1 {i['subject'][1]}/{'xyz'[i['axis'][1]]}{i['slice_index'][1]}"
            want += f", interleave {i['interleave'][1]} ({i['split'][1]})" if name == "rad" else f" ({i['split'][1]})"
            assert titles[name][1:] == [f"{want}\n input", "target", "|input - target|"], titles[name]
    # the pattern panel overlays every interleave; its R is that of one (each image uses one)
    with h5py.File(sets["rad"]) as f:
        k, spokes, eff = f["trajectory"].shape[0], f["trajectory"].shape[1], f.attrs["effective_acceleration"]
    assert k > 1 and titles["rad"][0].endswith(f"{spokes} spokes x {k} interleaves\n"
                                                f"R (Nyquist spokes) = {eff:.2f} per image (one interleave each)")

    per = simulate("poisson", data=subjects, out=tmp_path, accel=3.0, mask_per_subject=True, name="per", **COMMON)
    with h5py.File(per) as f:  # each knee's own mask is drawn for its samples
        masks = f["masks"][()]
        assert masks.shape[0] == 3 and not np.array_equal(masks[0], masks[2])
        assert np.array_equal(_mask_of(f, "s2"), masks[2]) and np.array_equal(_mask_of(f, "s0"), masks[0])


def test_bench_functions_small(tmp_path):
    import json

    from data_tools.sim_bench import bench_poisson, bench_radial

    p = bench_poisson(size=64, accel=4.0, calib=8, repeats=2, sigpy_repeats=1)
    assert p["ours_exact_count"] == 1024 and p["ours_R"] == 4.0 and p["sigpy_ms_per_mask"] > 0
    r = bench_radial(size=24, coils=2, spokes=5, interleaves=2, iters=3, slices=2, repeats=3)
    assert len(r["ours_ms_per_slice_all"]) == len(r["sigpy_ms_per_slice_all"]) == 3
    assert r["ours_ms_per_slice"] == min(r["ours_ms_per_slice_all"]) > 0  # best run, per slice of the batch
    assert r["sigpy_ms_per_slice"] == min(r["sigpy_ms_per_slice_all"]) > 0
    assert r["ours_1_worker_ms_per_slice"] > 0 and r["ours_workers"] >= 1
    # the one-worker figure is one core: no hidden second thread (finufft spreads a batch of 2 on 2)
    assert 0 < r["ours_1_worker_cores_busy"] < 1.3
    assert r["sigpy_cores_busy"] > 0 and r["ours_cores_busy"] > 0
    assert r["speedup"] == pytest.approx(r["sigpy_ms_per_slice"] / r["ours_ms_per_slice"], rel=0.1)  # rounded ms
    json.dumps({"p": p, "r": r})


def test_radial_options_full_coverage_dcf_golden(subjects, tmp_path):
    """Options beyond the original: full k-space coverage recovers the target far better than the
    faithful low-pass (readout = crop, scale 0.5), the density-compensated adjoint nearly as well as
    CG there, and golden-angle spokes are what the file stores."""
    kw = dict(data=subjects, max_subjects=1, out=tmp_path, axes="x", **COMMON)

    def run(name, **extra):
        with open_sim(simulate("radial", name=name, **kw, **extra)) as f:
            x, y, t = f["input"][()], f["target"][()], f["trajectory"][()]
            return float(np.linalg.norm(x - y) / np.linalg.norm(y)), t, yaml.safe_load(f.attrs["config"])

    faithful, t_faithful, _ = run("faithful", spokes=60, interleaves=1)
    full, t_full, cfg = run("full", spokes=60, interleaves=1, full_coverage=True)
    dcf, _, cfg_dcf = run("dcf", spokes=60, interleaves=1, full_coverage=True, recon="dcf")
    assert np.abs(t_faithful).max() == pytest.approx(4.75)  # (20 - 0.5 - 10) * 0.5
    assert np.abs(t_full).max() == pytest.approx(15.75)  # readout 2 x 32 (the uncropped slice), all of k-space
    assert cfg["full_coverage"] and cfg_dcf["recon"] == "dcf"
    assert full < 0.05 < 0.1 < faithful and dcf < 0.06
    _, t_golden, cfg_golden = run("golden", spokes=7, interleaves=2, golden=True)
    angles = np.arctan2(t_golden[..., 1, 1] - t_golden[..., 0, 1], t_golden[..., 1, 0] - t_golden[..., 0, 0]) % np.pi
    assert cfg_golden["golden"] and np.allclose(angles, spoke_angles(7, 2, golden=True), atol=1e-5)


@pytest.mark.parametrize("pattern,name", [("cartesian_random", "cart_rand_4"), ("cartesian_equispaced", "cart_eq_4")])
def test_cartesian_patterns(subjects, tmp_path, pattern, name):
    """fastMRI-style Cartesian masks through `simulate`: whole kz columns (every ky), the centre
    fully sampled, the stored mask is the one applied, and the recorded R is its measured R."""
    path = simulate(pattern, data=subjects, max_subjects=1, out=tmp_path, accel=4.0, axes="x", **COMMON)
    assert path.name == f"{name}.h5"
    with open_sim(path) as f:
        masks = f["masks"][()].astype(bool)
        assert masks.shape == (1, SHAPE[1], SHAPE[2])
        assert f.attrs["effective_acceleration"] == pytest.approx(masks.size / masks.sum())
        x, y = f["input"][()], f["target"][()]
    cols = masks[0, 0]
    assert (masks[0] == cols[None, :]).all()  # lines along ky
    assert cols[SHAPE[2] // 2 - 1:SHAPE[2] // 2 + 1].all() and 1 < masks.size / masks.sum() < SHAPE[2] / 2
    if pattern == "cartesian_equispaced":  # every 4th column from one offset, plus the centre
        off = int(np.flatnonzero(cols)[0])
        assert off < 4 and cols[off::4].all()
    assert np.mean(np.abs(x - y)) > 1e-3


def test_missing_dataset_hint_names_the_command_that_writes_it(tmp_path, monkeypatch):
    """The hint was always the rad_41 command, whatever dataset was missing."""
    from data_tools.simdata import open_sim

    monkeypatch.setenv("KNEE_PIPELINE_DATA", str(tmp_path / "sim"))
    for path, hint in ((tmp_path / "sim" / "pois.h5", "`pipeline simulate --preset pois`"),
                       (tmp_path / "elsewhere" / "rad_15.h5", f"`pipeline simulate --preset rad_15 --out {tmp_path / 'elsewhere'}`"),
                       (tmp_path / "sim" / "rad_99.h5", "`pipeline simulate --pattern radial|poisson ... --name rad_99`")):
        with pytest.raises(PipelineInputError, match="dataset file not found") as exc:
            open_sim(path)
        assert str(exc.value).endswith(f"create it with {hint}")
