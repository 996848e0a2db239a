"""data_tools.config_io.read_yaml_mapping: the one reader of experiment / sweep / preset YAML files."""
from __future__ import annotations

import pytest

from data_tools import sim_config
from data_tools.config_io import read_yaml_mapping
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


def test_simulate_preset_that_is_not_a_mapping(tmp_path, monkeypatch):
    (tmp_path / "simulate").mkdir()
    (tmp_path / "simulate" / "mine.yaml").write_text("- spokes: 41\n")
    monkeypatch.setattr(sim_config, "CONFIG_DIR", tmp_path)
    with pytest.raises(PipelineInputError, match=r"mine\.yaml: the file holds a list \(expected a mapping of SimConfig"):
        sim_config.load_preset("mine")
