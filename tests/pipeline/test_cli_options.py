"""The CLI accepts both spellings of multi-word options (``--max-steps`` / ``--max_steps``)."""
from __future__ import annotations

import pytest

from pipeline import cli


@pytest.fixture(scope="module")
def root():
    return cli.build_parser()[0]


@pytest.mark.parametrize("argv, expected", [
    # train declares dashes; an underscore spelling is rewritten to them
    (["train", "dncnn_l1", "--max_steps", "5", "--data_dir=/d", "--runs-dir", "r"],
     ["train", "dncnn_l1", "--max-steps", "5", "--data-dir=/d", "--runs-dir", "r"]),
    # simulate's options come from function parameters (underscores); dashes are rewritten to them
    (["simulate", "--slice-stride", "8", "--cg-iters=2", "--pattern", "radial"],
     ["simulate", "--slice_stride", "8", "--cg_iters=2", "--pattern", "radial"]),
    # nested verbs: the leaf's own options decide (sweep has --max_concurrent, bench simulate does not)
    (["sweep", "g", "--max-concurrent", "4", "--emit-slurm"], ["sweep", "g", "--max_concurrent", "4", "--emit-slurm"]),
    (["data", "phantom", "--out", "o", "--no-such-option"], ["data", "phantom", "--out", "o", "--no-such-option"]),
    # values and unknown options are left for the parser to judge
    (["train", "dncnn_l1", "--set", "trainer.max_epochs=2", "--nope_x"],
     ["train", "dncnn_l1", "--set", "trainer.max_epochs=2", "--nope_x"]),
])
def test_both_spellings_map_to_the_declared_one(root, argv, expected):
    assert cli.canonical_argv(argv, cli._leaf_options(root, argv)) == expected


def test_underscore_spelling_of_a_dashed_option_parses(tmp_path, capsys):
    """`--max_steps` and `--data_dir` reach train: it fails later, on the missing dataset."""
    rc = cli.main(["train", "dncnn_l1", "--max_steps", "1", "--data_dir", str(tmp_path / "none"),
                   "--runs_dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "dataset file not found" in err[0] and str(tmp_path / "none") in err[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("seed", ["-1", "abc", "1.5", "4294967296"])
def test_train_refuses_a_seed_numpy_cannot_take(tmp_path, capsys, seed):
    rc = cli.main(["train", "dncnn_l1", "--set", f"seed={seed}", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: [seed]: seed ") and "0..4294967295" in err[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, key, expected", [
    # several values as typed at a shell, one YAML/JSON list, or a mix: the same list
    (["n4", "a.nii", "b.nii", "--levels", "20", "10"], ("n4", "levels"), [20, 10]),
    (["n4", "a.nii", "b.nii", "--levels", "[20,10]"], ("n4", "levels"), [20, 10]),
    (["n4", "a.nii", "b.nii"], ("n4", "levels"), [50, 50, 50, 50]),
    (["demo", "--skip", "train", "segment"], ("demo", "skip"), ["train", "segment"]),
    (["demo", "--skip", "[train, segment]"], ("demo", "skip"), ["train", "segment"]),
    (["demo", "--skip", "no"], ("demo", "skip"), ["no"]),          # a word stays a word (YAML: False)
    (["demo"], ("demo", "skip"), None),
    (["evaluate", "--datasets", "rad_41", "pois"], ("evaluate", "datasets"), ["rad_41", "pois"]),
    (["evaluate", "--datasets", "[rad_41, pois]"], ("evaluate", "datasets"), ["rad_41", "pois"]),
    (["data", "convert", "k", "--out", "o.h5", "--voxel_size_mm", "0.5", "0.5", "0.6"],
     ("data", "convert", "voxel_size_mm"), [0.5, 0.5, 0.6]),
    (["data", "convert", "k", "--out", "o.h5", "--voxel_size_mm", "[0.5, 0.5, 0.6]"],
     ("data", "convert", "voxel_size_mm"), [0.5, 0.5, 0.6]),
])
def test_list_options_take_values_or_a_list(root, argv, key, expected):
    from pipeline.commands import join_items

    ns = root.parse_args(argv)
    for k in key:
        ns = ns[k]
    assert join_items(ns) == expected


@pytest.mark.parametrize("argv, needle", [
    (["n4", "a.nii", "b.nii", "--levels", "20", "1.5"], "invalid iteration count value: '1.5'"),
    (["n4", "a.nii", "b.nii", "--levels", "true"], "invalid iteration count value: 'true'"),
    (["data", "convert", "k", "--out", "o.h5", "--voxel_size_mm", "0.5", "x", "1"], "invalid mm value: 'x'"),
])
def test_list_options_refuse_other_types(root, argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        root.parse_args(argv)
    assert exc.value.code == 2 and needle in capsys.readouterr().err
