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


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_names_the_tool_commit_and_libraries(flag, capsys):
    """`pipeline --version` (it was "unrecognized arguments") prints one line: the tool's version,
    the git commit a bug report needs, Python and the versions of the libraries behind the results."""
    import importlib.metadata as md
    import platform

    from pipeline import runs

    with pytest.raises(SystemExit) as exc:
        cli.main([flag])
    out = capsys.readouterr().out.splitlines()
    assert exc.value.code == 0 and len(out) == 1
    assert out[0].startswith(f"pipeline (knee-pipeline {md.version('knee-pipeline')}), ")
    sha = runs._git()["sha"]
    assert (f"git {sha[:12]}" if sha else "no git checkout") in out[0]
    assert f"python {platform.python_version()}" in out[0] and f"torch {md.version('torch')}" in out[0]
    assert f"pytorch-lightning {md.version('pytorch-lightning')}" in out[0]


@pytest.mark.parametrize("argv, needle", [
    (["n4", "a.nii", "b.nii", "--levels", "20", "1.5"], "invalid iteration count value: '1.5'"),
    (["n4", "a.nii", "b.nii", "--levels", "true"], "invalid iteration count value: 'true'"),
    (["data", "convert", "k", "--out", "o.h5", "--voxel_size_mm", "0.5", "x", "1"], "invalid mm value: 'x'"),
])
def test_list_options_refuse_other_types(root, argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        root.parse_args(argv)
    assert exc.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("argv, line", [
    # jsonargparse's eight-line type report, after the usage
    (["evaluate", "--data-range", "foo"],
     "pipeline evaluate: [data_range] --data-range 'foo': expected a number or 'max'"),
    (["evaluate", "--ssim", "pl"], "pipeline evaluate: [ssim] --ssim 'pl': expected 'gaussian' | 'fastmri' | 'pil'"),
    (["simulate", "--spokes", "abc"], "pipeline simulate: [spokes] --spokes 'abc': expected an integer"),
    (["simulate", "--cg-iters", "1.5"], "pipeline simulate: [cg_iters] --cg_iters '1.5': expected an integer"),
    (["train", "unet_l2", "--max_steps", "x"], "pipeline train: [max_steps] --max-steps 'x': expected an integer"),
    (["bench", "simulate", "--size", "x"], "pipeline bench simulate: [size] --size 'x': expected an integer"),
    # argparse's own, after the usage
    (["evaluate", "--foo", "1"], "pipeline evaluate: unrecognized arguments: --foo 1"),
    (["n4", "a.nii", "b.nii", "--levels", "20", "1.5"],
     "pipeline n4: argument --levels: invalid iteration count value: '1.5'"),
    (["data", "export", "x.h5"], "pipeline data export: missing --out"),
    (["train"], "pipeline train: missing EXPERIMENT"),
    ([], "pipeline: name what to run: one of bench, data, demo, denoise, evaluate, n4, segment, simulate, sweep, train"),
    (["data"], "pipeline data: name what to run: one of convert, export, phantom, show"),
])
def test_parser_refusals_are_one_line(argv, line, capsys, tmp_path, monkeypatch):
    """Refusals of the parser itself read like the tool's other bad-input errors: one line naming
    the verb, the option as typed, the value and what was expected, exit 2 (they were the usage
    text plus up to eight lines of jsonargparse's report, and a SystemExit from cli.main)."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    prog = line.split(":")[0]
    assert capsys.readouterr().err.splitlines() == [f"error: {line} (see `{prog} --help`)"]
    assert list(tmp_path.iterdir()) == []


def test_parser_refusals_from_the_api_raise(tmp_path):
    """cli.run (the API under main) raises the same one line as a PipelineInputError."""
    from data_tools.errors import PipelineInputError

    with pytest.raises(PipelineInputError, match=r"^pipeline segment: \[checkpoint\] --checkpoint 'bset': "
                                                 r"expected 'best' \| 'last' \(see `pipeline segment --help`\)$"):
        cli.run(["segment", "a.nii", "--model", str(tmp_path), "--out", "b.nii", "--checkpoint", "bset"])


def test_config_file_refusals_are_one_line(tmp_path, capsys):
    (tmp_path / "typed.yaml").write_text("spokes: abc\n")
    (tmp_path / "typo.yaml").write_text("spoke: 3\n")
    for name, line in (("typed.yaml", "[spokes] --spokes 'abc': expected an integer"),
                       ("typo.yaml", "Subcommand 'simulate' does not accept option 'spoke'"),
                       ("missing.yaml", f"[config] --config: File does not exist: '{tmp_path / 'missing.yaml'}'")):
        assert cli.main(["simulate", "--config", str(tmp_path / name)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: pipeline simulate: {line} (see `pipeline simulate --help`)"]


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal width


def test_help_describes_every_option_in_place(capsys):
    """simulate's on/off flags say what they do (they said "see `coil` above", with nothing above),
    a verb's description is its docstring's whole first paragraph (data show's stopped mid-sentence
    at "and the coil"), and no escaped percent shows through."""
    sim = _help(["simulate"], capsys)
    assert "--coil, --no_coil 16-channel coil set (every third slice" in sim
    assert "--golden, --no_golden golden-angle spokes instead of the BART interleave rotation" in sim
    assert "neither: the preset's value" in sim and "above" not in sim
    show = _help(["data", "show"], capsys)
    assert "and the coil maps), of a simulated dataset" in show and "a summary of each is printed." in show
    assert "a label map in colour)" in show   # the paragraph's last sentences, after the image files
    assert "%%" not in _help(["sweep"], capsys)
    # a function's docstring line was a section heading, cut mid-sentence ("... SEED+i) and:")
    assert "and:" not in _help(["data", "phantom"], capsys) and "and:" not in _help(["bench", "simulate"], capsys)


def test_help_names_what_each_verb_takes_now(capsys):
    """The verb list said n4 and segment take one image and evaluate only scores denoising runs
    against the benchmark, after folders (n4, segment), segmentation runs and label-map folders
    (evaluate) had been added."""
    top = _help([], capsys)
    assert "n4 N4 bias-field correction (SimpleITK) of a NIfTI/MHD image or a folder of them" in top
    assert "segment Segment knee bones in a NIfTI/MHD image (or a folder of them)" in top
    assert "Dice/HD95/ASSD of segmenters) or label-map folders" in top
    ev = _help(["evaluate"], capsys)
    assert "A segmentation run (--run DIR) gets Dice / IoU / HD95 / ASSD" in ev
    assert "--pred DIR --ref DIR scores label maps made by any tool" in ev


def test_every_verb_takes_a_config_file_and_prints_its_options(tmp_path, capsys):
    """The README's promise "`--config file.yaml`, `--print_config`" holds for every verb: evaluate,
    bench train, sweep and demo had neither ("unrecognized arguments"). `train` keeps its own
    --print_config (the resolved experiment config)."""
    import yaml

    parser, by_path = cli.build_parser()
    from pipeline.arg_errors import parser_chain

    for path in by_path:
        leaf = parser_chain(parser, list(path))[-1][1]
        # train's config is the experiment YAML (EXPERIMENT, --set); its --print_config prints it resolved
        assert ("--config" in leaf._option_string_actions) == (path != ("train",)), path
        assert "--print_config" in leaf._option_string_actions, path
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "--run", "r/x", "--split", "val", "--no-figures", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert exc.value.code == 0 and printed["run"] == "r/x" and printed["split"] == "val" and printed["no_figures"]
    cfg = tmp_path / "ev.yaml"
    cfg.write_text(yaml.safe_dump({**printed, "ssim": "fastmri", "batch_size": 4}))
    ns = parser.parse_args(["evaluate", "--config", str(cfg), "--batch-size", "2"])["evaluate"]
    assert (ns.run, ns.split, ns.ssim, ns.no_figures, ns.batch_size) == ("r/x", "val", "fastmri", True, 2)
    ns = parser.parse_args(["sweep", "--config", str(_yaml(tmp_path, {"spec": "smoke_grid", "status": True}))])["sweep"]
    assert ns.spec == "smoke_grid" and ns.status


def _yaml(tmp_path, doc):
    import yaml

    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p
