"""The machine description every bench JSON and run provenance carries."""
import os

from data_tools import machine


def test_cpu_model_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n"
                    "flags\t\t: fpu vme\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    monkeypatch.setattr(machine, "CPUINFO", info)
    assert machine.cpu_model() == "Intel(R) Xeon(R) Processor"
    assert machine.cpu_label() == f"cpu (Intel(R) Xeon(R) Processor, {os.cpu_count()} cores)"
    assert machine.cpu_label(3) == f"cpu (Intel(R) Xeon(R) Processor, {os.cpu_count()} cores, 3 threads)"


def test_cpu_model_without_cpuinfo_falls_back(tmp_path, monkeypatch):
    # no /proc/cpuinfo (macOS) or one without a model line (some ARM boards): what platform knows
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "missing")
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    assert machine.cpu_model() == "aarch64"
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd\n")
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "arm")
    assert machine.cpu_model() == "aarch64"
    monkeypatch.setattr(machine.platform, "machine", lambda: "")
    assert machine.cpu_model() == "unknown"


def test_machine_info_fields(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: AMD EPYC 7B13\n")
    monkeypatch.setattr(machine, "CPUINFO", info)
    m = machine.machine_info()
    assert m["cpu"] == "AMD EPYC 7B13" and m["cores"] == os.cpu_count()
    assert 1 <= m["cores_available"] <= m["cores"]
    assert m["load_average"] is None or (len(m["load_average"]) == 3 and min(m["load_average"]) >= 0)
    assert machine.machine_info(load=False) == {k: v for k, v in m.items() if k != "load_average"}
