"""data_tools.config_io.read_yaml_mapping: the one reader of experiment / sweep / preset YAML files."""
from __future__ import annotations

import pytest

from data_tools import sim_config
from data_tools.config_io import load_yaml, read_json_file, read_yaml_mapping, require_count, require_file_name
from data_tools.errors import PipelineInputError


def test_mapping_and_empty_file(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("spokes: 41\ngrid: {a: [1, 2]}\n")
    assert read_yaml_mapping(p) == {"spokes": 41, "grid": {"a": [1, 2]}}
    p.write_text("# only a comment\n")
    assert read_yaml_mapping(p) == {}


@pytest.mark.parametrize("text,needle", [
    ("- 1\n- 2\n", "holds a list (expected a thing)"),
    ("41\n", "holds a int (expected a thing)"),
    ("a: 1\nb: [2\n", "invalid YAML (ParserError at line 3, column 1)"),
    ("a: 1\n  b: 2\n", "invalid YAML (ScannerError at line 2, column 4)"),
])
def test_bad_files_name_the_file(tmp_path, text, needle):
    p = tmp_path / "a.yaml"
    p.write_text(text)
    with pytest.raises(PipelineInputError) as exc:
        read_yaml_mapping(p, expected="a thing")
    assert str(exc.value).startswith(f"{p}: ") and needle in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(PipelineInputError, match=r"missing\.yaml: cannot read the file \(No such file"):
        read_yaml_mapping(tmp_path / "missing.yaml")


def test_binary_file_is_named_not_a_decode_traceback(tmp_path):
    """A gzip (a .nii.gz passed where a YAML or JSON file belongs) raised UnicodeDecodeError."""
    p = tmp_path / "img.nii.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00garbage")
    for read in (read_yaml_mapping, read_json_file):
        with pytest.raises(PipelineInputError) as exc:
            read(p, expected="a thing")
        assert str(exc.value) == f"{p}: not a text file (byte 0x8b at offset 1 is not UTF-8) (expected a thing)"


def test_json_file(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"digest": "ab", "n": [1, 2]}')
    assert read_json_file(p) == {"digest": "ab", "n": [1, 2]}
    p.write_text('{"digest": "ab",\n')
    with pytest.raises(PipelineInputError) as exc:
        read_json_file(p, expected="a result", hint="delete it")
    assert str(exc.value).startswith(f"{p}: invalid JSON (Expecting property name enclosed in double quotes at line 2")
    assert str(exc.value).endswith("(expected a result); delete it")
    with pytest.raises(PipelineInputError, match=r"nope\.json: cannot read the file \(No such file"):
        read_json_file(tmp_path / "nope.json")


def test_simulate_preset_that_is_not_a_mapping(tmp_path, monkeypatch):
    (tmp_path / "simulate").mkdir()
    (tmp_path / "simulate" / "mine.yaml").write_text("- spokes: 41\n")
    monkeypatch.setattr(sim_config, "CONFIG_DIR", tmp_path)
    with pytest.raises(PipelineInputError, match=r"mine\.yaml: the file holds a list \(expected a mapping of SimConfig"):
        sim_config.load_preset("mine")


@pytest.mark.parametrize("name", ["rad_41", "coil_pois", "unet_ssim_v2", "pois-R8.94", "a+b", "7T"])
def test_file_names_accepted(name):
    assert require_file_name(name, "name") == name


@pytest.mark.parametrize("name", ["../evil", "a/b", "/abs", ".hidden", "..", "", "a b", "a\\b", "x:y"])
def test_names_that_would_escape_the_output_folder_are_refused(tmp_path, name):
    with pytest.raises(PipelineInputError, match=r"\[name\]: name .* cannot be a file name"):
        require_file_name(name, "name", path=tmp_path / "spec.yaml")


def test_experiment_and_sweep_names_are_checked(tmp_path):
    from pipeline.runs import resolve_run_dir
    from pipeline.sweep.spec import load_spec

    with pytest.raises(PipelineInputError, match=r"\[experiment\]: name '\.\./up'"):
        resolve_run_dir({"experiment": "../up", "seed": 0, "net": {}}, tmp_path)
    spec = tmp_path / "grid.yaml"
    spec.write_text("name: ../../elsewhere\nexperiment: dncnn_l1\ngrid: {seed: [0, 1]}\n")
    with pytest.raises(PipelineInputError, match=r"grid\.yaml \[name\]: name '\.\./\.\./elsewhere'"):
        load_spec(str(spec))


@pytest.mark.parametrize("field", ["mask_seed", "split_seed"])
def test_simulate_seeds_are_checked(field):
    with pytest.raises(PipelineInputError, match=rf"\[{field}\]: seed -3 \(expected an integer in 0\.\.4294967295\)"):
        sim_config.resolve(pattern="poisson", **{field: -3})
    assert getattr(sim_config.resolve(pattern="poisson", **{field: 2**32 - 1}), field) == 2**32 - 1


def test_require_count():
    assert require_count(3, "steps") == 3 and require_count(0, "warmup", least=0) == 0
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(PipelineInputError, match=r"\[--batch\]: batch = .* \(expected an integer >= 1\)"):
            require_count(bad, "--batch", name="batch")


def test_require_dir_says_what_is_there(tmp_path):
    from data_tools.errors import require_dir

    (tmp_path / "f.h5").write_text("x")
    require_dir(tmp_path)
    with pytest.raises(PipelineInputError) as exc:
        require_dir(tmp_path / "nope", "data folder", hint="run it")
    assert str(exc.value) == f"{tmp_path / 'nope'}: data folder not found; run it"
    with pytest.raises(PipelineInputError) as exc:
        require_dir(tmp_path / "f.h5", field="data", expected="a folder of subject .h5 files")
    assert str(exc.value) == (f"{tmp_path / 'f.h5'} [data]: a file, not a folder "
                              "(expected a folder of subject .h5 files)")


@pytest.mark.parametrize("demo", [True, False])
def test_simulate_name_only_names_the_file(demo):
    """--name renames the output; the settings (the rad_41/pois preset and, on the demo phantom, its
    slice stride) are those of the pattern, as without --name (a named dataset took 25x longer)."""
    for kw, preset in (({"pattern": "radial", "spokes": 41}, "rad_41"), ({"pattern": "poisson"}, "pois")):
        plain = sim_config.resolve(demo=demo, **kw)
        named = sim_config.resolve(demo=demo, name="smoke", **kw)
        assert named.name == "smoke" and plain.name == preset
        assert {**vars(named), "name": preset} == vars(plain) == vars(sim_config.resolve(preset, demo=demo))
    assert sim_config.resolve(demo=True, pattern="radial", spokes=41, name="smoke").slice_stride == 25


def test_yaml_floats_as_yaml_1_2_reads_them(tmp_path):
    """PyYAML (YAML 1.1) read 1e-3, 1e3 and 1.0e3 as strings: `lr: 1e-3` reached torch as text."""
    doc = load_yaml("a: 1e-3\nb: 1e3\nc: 1.0e3\nd: -2.5E-4\ne: 0.5\nf: 12\ng: [1e-4, 3e-4]\nh: '1e-3'\n"
                    "i: .inf\nj: lr1e3\nk: 1e\nl: yes\n")
    assert doc["a"] == 1e-3 and doc["b"] == 1e3 and doc["c"] == 1e3 and doc["d"] == -2.5e-4
    assert all(isinstance(doc[k], float) for k in "abcde") and doc["f"] == 12 and isinstance(doc["f"], int)
    assert doc["g"] == [1e-4, 3e-4] and doc["h"] == "1e-3"       # quoted: still text
    assert doc["i"] == float("inf") and doc["j"] == "lr1e3" and doc["k"] == "1e" and doc["l"] is True
    p = tmp_path / "x.yaml"
    p.write_text("task:\n  optimizer: {lr: 1e-3}\n")
    assert read_yaml_mapping(p) == {"task": {"optimizer": {"lr": 0.001}}}
