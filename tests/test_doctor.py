"""``python -m streamlib doctor``: the report's parts, the verdicts, the advice, and the CLI with a short run."""

import json

import pytest

from streamlib import doctor
from streamlib.cli import main


def _speed(plain: float, fast: float, p99: float = 10.0) -> dict:
    row = lambda x: {"x_real_time": x, "p99_ms": p99, "ms_per_frame": 20 / x,  # noqa: E731
                     "share": {"encode": 0.3, "generate": 0.4, "decode": 0.3}}
    return {"seconds": 1.0, "threads": 1, "model": "m", "codec": "c", "paths": {"plain": row(plain), "fast": row(fast)}}


@pytest.mark.parametrize("x, p99, verdict", [(2.0, 10.0, "real time"), (2.0, 25.0, "borderline"),
                                             (1.1, 10.0, "borderline"), (0.9, 10.0, "too slow")])
def test_predict(x, p99, verdict):
    assert doctor.predict(x, p99) == verdict


def test_versions_and_libraries_report_what_is_installed():
    found = doctor.versions()
    assert found["python"].count(".") == 2
    assert found["torch"] and found["plotly"]
    assert set(doctor.libraries()) == {"fluidsynth", "portaudio"}


def test_disk_walks_up_to_an_existing_folder(tmp_path):
    got = doctor.disk(tmp_path / "not" / "yet")
    assert got["path"].endswith("yet") and got["free_gb"] > 0


def _report(speed: dict | None, **torch_info) -> dict:
    rep = {"versions": {"python": "3", "torch": "2", "plotly": None}, "libraries": {"fluidsynth": False, "portaudio": True},
           "torch": {"threads": 1, "cores": 2, "load_1min": 0.0, "device": "cpu", "bf16": False, "cuda": False,
                     **torch_info}, "disk": {"path": "/d", "free_gb": 0.5}, "executable": "py"}
    if speed:
        rep["speed"] = speed
        speed["verdict"] = {k: doctor.predict(v["x_real_time"], v["p99_ms"]) for k, v in speed["paths"].items()}
    return rep


@pytest.mark.parametrize("plain, fast, words", [(3.0, 4.0, "even on the plain path"), (0.8, 2.0, "not --plain"),
                                                (1.1, 1.1, "borderline"), (0.5, 0.7, "underrun")])
def test_advice_follows_the_speed(plain, fast, words):
    lines = doctor.advice(_report(_speed(plain, fast)))
    assert any(words in line for line in lines), lines
    assert any("plotly" in line for line in lines)  # missing package
    assert any("FluidSynth" in line for line in lines)
    assert any("STREAMLIB_DATA" in line for line in lines)  # 0.5 GB free


def test_format_report_names_each_path():
    text = doctor.format_report({**_report(_speed(0.8, 2.0)), "advice": ["x"]})
    assert "plotly               NOT INSTALLED" in text and "FluidSynth library   NOT FOUND" in text
    assert "plain  0.80x real time" in text and "fast   2.00x real time" in text


def test_cli_json_without_speed_check(capsys):
    assert main(["doctor", "--seconds", "0", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert "speed" not in rep and rep["torch"]["device"] and rep["advice"]


def test_cli_short_speed_check(capsys):
    """A real (short) measurement: both paths stream and get a verdict."""
    assert main(["doctor", "--seconds", "0.2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for path in ("plain", "fast"):
        got = rep["speed"]["paths"][path]
        assert got["x_real_time"] > 0 and got["p99_ms"] > 0
        assert rep["speed"]["verdict"][path] in ("real time", "borderline", "too slow")


def test_cli_rejects_negative_seconds(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["doctor", "--seconds", "-1"])
    assert exit_.value.code == 2 and "at least 0" in capsys.readouterr().err
