"""The command line: ``--help`` answers and lists subcommands; ``compare`` scores models side by side."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from streamlib.paths import REPO_ROOT


def test_help_answers():
    result = subprocess.run(
        [sys.executable, "-m", "streamlib", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "bench" in result.stdout


def test_compare_scores_shipped_models_side_by_side(tmp_path):
    out = tmp_path / "compare.csv"
    models = ["checkpoints/models/book_tf+0_k1.safetensors", "checkpoints/models/book_tf-10_k10.safetensors"]
    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", *models, "--csv", str(out),
                             "--curves", str(tmp_path / "curves.csv")],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["model"] for r in rows] == ["book_tf+0_k1", "book_tf-10_k10"]
    assert rows[0]["common_loss"] and not rows[1]["common_loss"]   # common targets: k = 1 models only
    card = json.loads((REPO_ROOT / models[0]).with_suffix(".json").read_text())
    assert float(rows[0]["card_val_loss"]) == pytest.approx(card["val_loss"])
    curves = [r for r in csv.DictReader((tmp_path / "curves.csv").open()) if r["model"] == "book_tf+0_k1"]
    assert [(int(r["step"]), float(r["val_loss"])) for r in curves] == [tuple(p) for p in card["val_curve"]]


def test_compare_names_a_missing_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", str(tmp_path / "nope.safetensors")],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode != 0 and "no checkpoint at" in result.stderr


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
    models = ["checkpoints/models/book_tf+0_k1.safetensors", "checkpoints/models/book_tf+5_k1.safetensors"]
    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", *models, "--tokens", tokens, "--window", "50",
                             "--csv", str(tmp_path / "c.csv"), "--windows-csv", str(tmp_path / "w.csv")],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "book_tf+5_k1 minus book_tf+0_k1" in result.stdout and "over 3 tracks" in result.stdout
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    windows = list(csv.DictReader((tmp_path / "w.csv").open()))
    assert [r["windows"] for r in rows] == ["6", "6"] and len(windows) == 6
    assert [w["track"] for w in windows] == ["Track00000"] * 2 + ["Track00001"] * 2 + ["Track00002"] * 2
    mean = np.mean([float(w["book_tf+0_k1"]) for w in windows])
    assert float(rows[0]["common_loss"]) == pytest.approx(mean)


def test_compare_window_csv_needs_a_token_cache(tmp_path):
    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", "checkpoints/models/book_tf+0_k1.safetensors",
                             "--windows-csv", str(tmp_path / "w.csv")], capture_output=True, text=True, timeout=300,
                            cwd=REPO_ROOT)
    assert result.returncode != 0 and "--windows-csv needs --tokens" in result.stderr
