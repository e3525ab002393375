"""The command line: ``--help`` answers and lists subcommands; ``compare`` scores models side by side."""

import csv
import json
import subprocess
import sys

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
