"""The command line: ``--help`` answers and lists subcommands; ``compare`` scores models side by side; bad input
is one line on stderr and exit code 2, checked before the work; ``stream`` says what it did."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from streamlib.checkpoint import CheckpointError
from streamlib.cli import is_ours
from streamlib.config import ConfigError
from streamlib.paths import REPO_ROOT, check_output_dir, check_output_file


SHIPPED = "checkpoints/models/book_tf+0_k1.safetensors"
STREAM = ["stream", "--input", "data/examples/test_clip/mix.flac", "--checkpoint", SHIPPED]


def run_cli(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m streamlib ARGS`` in a subprocess, as a user would (warnings as they come: a stray
    one, such as torch's weight_norm FutureWarning, would break the tests that read stderr line by line)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "streamlib", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert text in result.stderr


def test_help_answers():
    result = subprocess.run(
        [sys.executable, "-m", "streamlib", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "bench" in result.stdout


def test_compare_scores_shipped_models_side_by_side(tmp_path):
    out = tmp_path / "compare.csv"
    models = ["checkpoints/models/book_tf+0_k1.safetensors", "checkpoints/models/book_tf-50_k10.safetensors"]
    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", *models, "--csv", str(out),
                             "--curves", str(tmp_path / "curves.csv")],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["model"] for r in rows] == ["book_tf+0_k1", "book_tf-50_k10"]
    assert rows[0]["common_loss"] and not rows[1]["common_loss"]   # common targets: k = 1 models only
    card = json.loads((REPO_ROOT / models[0]).with_suffix(".json").read_text())
    assert float(rows[0]["card_val_loss"]) == pytest.approx(card["val_loss"])
    curves = [r for r in csv.DictReader((tmp_path / "curves.csv").open()) if r["model"] == "book_tf+0_k1"]
    assert [(int(r["step"]), float(r["val_loss"])) for r in curves] == [tuple(p) for p in card["val_curve"]]


def test_compare_refuses_models_of_two_codecs():
    """Tokens of one codec mean nothing to a model trained on another's: no side-by-side score of the two."""
    by_codec = {}
    for card in sorted((REPO_ROOT / "checkpoints" / "models").glob("book_tf*.json")):
        by_codec.setdefault(json.loads(card.read_text())["codec_sha256"], card.with_suffix(".safetensors"))
    if len(by_codec) < 2:
        pytest.skip("the shipped models share one codec")
    result = run_cli("compare", *list(by_codec.values())[:2])
    assert_one_line_error(result, "the models were trained on different codecs")


def test_compare_names_a_missing_checkpoint(tmp_path):
    result = run_cli("compare", tmp_path / "nope.safetensors")
    assert_one_line_error(result, f"accompanist checkpoint {tmp_path / 'nope.safetensors'} does not exist")


def _token_cache(root, tracks: int = 3, frames: int = 120) -> str:
    """A token cache in ``streamlib.codec.tokenize``'s layout with random codes (2 mixtures per track)."""
    rng = np.random.default_rng(0)
    (root / "validation").mkdir(parents=True)
    for t in range(tracks):
        np.savez(root / "validation" / f"Track{t:05d}.npz", stems=rng.integers(0, 1024, (2, 4, frames)).astype(np.int16),
                 categories=np.array([0, 4], np.int8), active=np.ones((2, frames), bool),
                 mix_codes=rng.integers(0, 1024, (2, 4, frames)).astype(np.int16),
                 mix_members=np.array([[0, 1], [1, 0]], bool), mix_target=np.array([0, 1], np.int16),
                 mix_active=np.ones((2, frames), bool), mix_policy=np.array([0, 0], np.int8))
    return str(root)


def test_compare_on_a_token_split_writes_every_window(tmp_path):
    tokens = _token_cache(tmp_path / "tok")
    models = ["checkpoints/models/book_tf+0_k1.safetensors", "checkpoints/models/book_tf-50_k1.safetensors"]
    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", *models, "--tokens", tokens, "--window", "50",
                             "--csv", str(tmp_path / "c.csv"), "--windows-csv", str(tmp_path / "w.csv")],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "book_tf-50_k1 minus book_tf+0_k1" in result.stdout and "over 3 tracks" in result.stdout
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    windows = list(csv.DictReader((tmp_path / "w.csv").open()))
    assert [r["windows"] for r in rows] == ["6", "6"] and len(windows) == 6
    assert [w["track"] for w in windows] == ["Track00000"] * 2 + ["Track00001"] * 2 + ["Track00002"] * 2
    mean = np.mean([float(w["book_tf+0_k1"]) for w in windows])
    assert float(rows[0]["common_loss"]) == pytest.approx(mean)


def test_compare_window_csv_needs_a_token_cache(tmp_path):
    result = run_cli("compare", SHIPPED, "--windows-csv", tmp_path / "w.csv")
    assert_one_line_error(result, "--windows-csv needs --tokens")


# ----------------------------------------------------------------------------- first contact (issue 20)


@pytest.mark.parametrize("args,text", [
    ([*STREAM, "--tau-sys", "-1"], "argument --tau-sys: must be at least 0, got -1"),
    ([*STREAM, "--tau-jitter", "nan"], "argument --tau-jitter: expected a finite number"),
    ([*STREAM, "--jitter-ms", "-5"], "argument --jitter-ms: must be at least 0, got -5"),
    ([*STREAM, "--threads", "0"], "argument --threads: must be at least 1, got 0"),
    ([*STREAM, "--top-k", "two"], "argument --top-k: expected a whole number, got 'two'"),
    ([*STREAM, "--out", "README.md/sub"], "--out README.md/sub: README.md is a file, not a folder"),
    (["stream", "--input", "nope.wav", "--checkpoint", SHIPPED, "--out", "README.md"], "--out README.md: it is a file"),
    (["stream", "--input", "nope.wav", "--checkpoint", "checkpoints/models/nope.safetensors"],
     "accompanist checkpoint checkpoints/models/nope.safetensors does not exist"),
    (["stream", "--input", "nope.wav", "--checkpoint", SHIPPED], "nope.wav: no such file"),
    ([*STREAM, "--category", "Kazoo"], "unknown category 'Kazoo'"),
    (["demo", "--temperature", "0"], "argument --temperature: must be more than 0, got 0"),
    (["demo", "--category", "Kazoo"], "unknown category 'Kazoo'"),
    (["demo", "--example", "nope"], "no example clip"),
    (["stream"], "the following arguments are required: --input, --checkpoint"),
])
def test_bad_stream_and_demo_input_is_one_line_and_exit_2(args, text):
    assert_one_line_error(run_cli(*args), text)


@pytest.mark.parametrize("args,text", [
    (["--tracks", "2", "--min-seconds", "4", "--max-seconds", "5"],
     "--max-seconds must be at least 9 s, got 5: a track is at least two 4-bar phrases"),
    (["--min-seconds", "300", "--max-seconds", "400"], "--min-seconds must be at most 220.4 s, got 300"),
    (["--min-seconds", "20", "--max-seconds", "10"], "--max-seconds 10 is below --min-seconds 20"),
    (["--tracks", "0"], "argument --tracks: must be at least 1, got 0"),
    (["--min-seconds", "nan"], "argument --min-seconds: expected a finite number"),
])
def test_data_synth_refuses_lengths_it_cannot_make(args, text, tmp_path):
    assert_one_line_error(run_cli("data", "synth", *args, "--out", tmp_path / "synth"), text)
    assert not (tmp_path / "synth").exists()  # refused before its folder is made


@pytest.mark.parametrize("args,text", [
    (["bench", "codec", "--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
    (["train", "--out", "{tmp}/run", "--val-every", "0"], "argument --val-every: must be at least 1, got 0"),
    (["train", "--out", "{tmp}/run", "--save-every", "-1"], "argument --save-every: must be more than 0, got -1"),
    (["codec", "train", "--out", "{tmp}/run", "--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (["coherence", "train", "--out", "{tmp}/run", "--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["tokenize", "--dataset", "data/synth", "--out", "{tmp}/run", "--workers", "0"], "argument --workers: must be"),
    (["train", "--out", "{tmp}/run", "--targets", "Drums"], "argument --targets: unknown category 'Drums'"),
    (["train", "--out", "{tmp}/run", "--targets", "Vocal"], "argument --targets: Vocal is never a target"),
    (["compare", "x.safetensors", "--targets", "bas"], "argument --targets: unknown category 'bas'"),
    (["compare", "checkpoints/models/book_tf+0_k1.safetensors", "--targets", "Bass"], "--targets picks windows"),
])
def test_counts_and_durations_are_checked_before_the_work(args, text, tmp_path):
    assert_one_line_error(run_cli(*(a.format(tmp=tmp_path) for a in args)), text)
    assert not (tmp_path / "run").exists()


def test_missing_weights_beside_a_card_are_named(tmp_path):
    """A card whose weights file is missing (a partial copy): the error names the weights, not the card."""
    card = (REPO_ROOT / SHIPPED).with_suffix(".json")
    (tmp_path / card.name).write_text(card.read_text())
    weights = tmp_path / "book_tf+0_k1.safetensors"
    for command in (["stream", "--input", "data/examples/test_clip/mix.flac"], ["demo"]):
        result = run_cli(*command, "--checkpoint", weights, "--out", tmp_path / "out")
        assert_one_line_error(result, f"accompanist checkpoint {weights} does not exist")
        assert "card" not in result.stderr


def test_data_synth_help_states_the_bounds():
    help_text = " ".join(run_cli("data", "synth", "--help").stdout.split())
    assert "at most 220.4" in help_text and "at least 9" in help_text and "always honoured" in help_text
    assert "a range narrower than a phrase gives some shorter tracks" in help_text


def test_speeds_are_x_real_time_everywhere():
    """No "RTF" (or an rtf column) is left: speeds are "x real time", audio seconds per compute second."""
    texts = [*REPO_ROOT.glob("streamlib/**/*.py"), *REPO_ROOT.glob("benchmarks/*.md"), *REPO_ROOT.glob("book/*.ipynb"),
             REPO_ROOT / "README.md"]
    for path in texts:
        assert not re.search(r"\bRTF\b", path.read_text(), flags=re.IGNORECASE), path
    for path in REPO_ROOT.glob("results/*.csv"):
        assert "rtf" not in path.read_text().splitlines()[0].lower().split(","), path


@pytest.mark.parametrize("args", [
    ["train", "--out", "README.md/run"],
    ["train", "--out", "{tmp}/run", "--export", "README.md/model.safetensors"],
    ["tokenize", "--dataset", "data/synth", "--out", "README.md/tokens"],
    ["sweep", "--out", "README.md/sweep.csv"],
    ["compare", SHIPPED, "--csv", "README.md/compare.csv"],
    ["data", "synth", "--out", "README.md/synth"],
    ["codec", "train", "--out", "README.md/codec"],
    ["coherence", "train", "--out", "README.md/coherence"],
])
def test_every_output_location_is_checked_before_the_work(args, tmp_path):
    result = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(result, "README.md is a file, not a folder")
    assert not (tmp_path / "run").exists()


def test_stream_says_what_it_did(tmp_path):
    song = tmp_path / "song.wav"
    t = np.arange(44_100) / 44_100
    sf.write(song, np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3, 44_100)
    result = run_cli("stream", "--input", song, "--checkpoint", SHIPPED, "--out", tmp_path / "out", "--no-compile")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"note: {song}: 2 channels down-mixed to mono" in result.stderr
    assert f"note: {song}: resampled from 44100 Hz to 16000 Hz" in result.stderr
    assert "streaming: 100%" in result.stderr  # the progress bar
    assert f"generated Bass (the default; --category picks another) with {SHIPPED}" in result.stdout
    assert "x real time" in result.stdout and "RTF" not in result.stdout
    # t_f = 0 leaves no time to compute: every chunk is late, and the report says why and what to try
    assert "47 of 47 chunks late" in result.stdout and "which no machine can do" in result.stdout
    assert "book_tf-50_k1.safetensors" in result.stdout
    report = json.loads((tmp_path / "out" / "timing.json").read_text())
    assert report["notes"] == [f"{song}: 2 channels down-mixed to mono", f"{song}: resampled from 44100 Hz to 16000 Hz"]
    assert report["x_real_time"] > 0 and report["category_name"] == "Bass"


def test_stream_notes_a_silent_input_and_quiet_has_no_progress_bar(tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(8_000), 8_000)
    result = run_cli("stream", "--input", silence, "--checkpoint", SHIPPED, "--category", "bass", "--quiet",
                       "--out", tmp_path / "out", "--no-compile")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"note: {silence}: resampled from 8000 Hz to 16000 Hz",
                                          f"note: {silence}: digital silence, nothing to accompany",
                                          "note: classifier-free guidance 4, this model's default: it was trained "
                                          "with input dropout (--guidance 1 turns it off)"]
    assert f"{silence}: generated Bass with" in result.stdout


def test_output_checks(tmp_path):
    (tmp_path / "file").write_text("")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, not created
    assert check_output_file(tmp_path / "new" / "table.csv", "--csv") == tmp_path / "new" / "table.csv"
    with pytest.raises(ConfigError, match="--out .*file: it is a file, not a folder"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="--csv .*: it is a folder, not a file"):
        check_output_file(tmp_path, "--csv")
    with pytest.raises(ConfigError, match=r"--csv .*file/t\.csv: .*file is a file, not a folder"):
        check_output_file(tmp_path / "file" / "t.csv", "--csv")


def test_only_our_errors_lose_their_traceback():
    assert is_ours(ConfigError("bad value")) and is_ours(CheckpointError("missing"))
    assert is_ours(NotADirectoryError(20, "Not a directory", "README.md/x"))
    assert not is_ours(ValueError("a bug")) and not is_ours(KeyError("a bug"))


def test_a_negative_lookahead_needs_no_equals_sign():
    from streamlib.cli import attach_signed_values, build_parser

    assert attach_signed_values(["train", "--tf", "-1s", "--k", "1f"]) == ["train", "--tf=-1s", "--k", "1f"]
    assert attach_signed_values(["stream", "--tf", "-.2"]) == ["stream", "--tf=-.2"]
    assert attach_signed_values(["train", "--tf", "--k", "1f"]) == ["train", "--tf", "--k", "1f"]  # left to argparse
    args = build_parser().parse_args(attach_signed_values(["train", "--tf", "-1s", "--out", "x"]))
    assert args.tf == "-1s"
    with pytest.raises(SystemExit):  # what the fix is for: argparse alone takes "-1s" for an option
        build_parser().parse_args(["train", "--tf", "-1s", "--out", "x"])
