"""Comparing models on the same targets: common frames, per-window losses, input reliance, paired
differences over tracks, the per-window CSV."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamlib.codec import CausalCodec
from streamlib.compare import (
    FRAME_TYPES, common_frame_losses, compare_models, frame_labels, input_reliance, paired_difference,
    read_window_losses, reliance_by_frame_type, swap_inputs, window_losses, write_window_losses,
)
from streamlib.config import ConfigError, StreamSpec, get_preset
from streamlib.model import Accompanist
from streamlib.tokens.visibility import align
from streamlib.train import batch_loss, score_windows

DEBUG = get_preset("debug")  # window 1 s = 50 frames
SIZE = DEBUG.codec.codebook_size


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return CausalCodec(DEBUG.codec)


def _windows(n: int) -> dict[str, torch.Tensor]:
    return {"input": torch.randint(0, SIZE, (n, 4, 50)), "target": torch.randint(0, SIZE, (n, 4, 50)),
            "category": torch.arange(n) % 16}


def test_window_losses_equal_scoring_each_window_alone(codec):
    torch.manual_seed(0)
    models = {tf: Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=tf, k=1, window=50)).eval()
              for tf in (-3, 4)}
    windows = _windows(5)
    batched = window_losses(models, windows, 50, batch_size=2)   # batches of 2, 2 and 1
    frames = 50 - 3 - 3
    for tf, m in models.items():
        alone = [score_windows(m, {k: v[i : i + 1] for k, v in windows.items()}, 50, frames) for i in range(5)]
        assert batched[tf] == pytest.approx(alone, abs=1e-5)
    k5 = Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=0, k=5, window=50))
    with pytest.raises(ConfigError, match="k = 1"):
        window_losses({"k5": k5}, windows, 50)


def test_swap_inputs_takes_another_window_half_the_set_away():
    windows = _windows(6)
    swapped = swap_inputs(windows)
    assert torch.equal(swapped["input"][3], windows["input"][0]) and torch.equal(swapped["target"], windows["target"])
    assert torch.equal(swap_inputs(windows, 1)["input"][1], windows["input"][0])
    with pytest.raises(ValueError, match="at least 2"):
        swap_inputs(_windows(1))
    with pytest.raises(ValueError, match="its own input"):
        swap_inputs(windows, 6)


def test_paired_difference_counts_tracks_not_windows():
    a = np.array([1.0, 1.2, 1.0, 1.4, 2.0, 2.2])
    b = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 2.0])
    by_window = paired_difference(a, b)
    assert by_window["mean"] == pytest.approx(0.8 / 6) and by_window["n"] == 6 and by_window["higher"] == 3
    assert by_window["se"] == pytest.approx(np.std(a - b, ddof=1) / np.sqrt(6))
    by_track = paired_difference(a, b, ["A", "A", "B", "B", "C", "C"])   # track means 0.1, 0.2, 0.1
    assert by_track["mean"] == pytest.approx(by_window["mean"]) and by_track["n"] == 3 and by_track["higher"] == 3
    assert by_track["se"] == pytest.approx(np.std([0.1, 0.2, 0.1], ddof=1) / np.sqrt(3))
    with pytest.raises(ValueError, match="2 groups"):
        paired_difference(a, b, ["A"] * 6)
    with pytest.raises(ValueError, match="groups for"):
        paired_difference(a, b, ["A", "B"])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([1.0, np.nan], [1.0, 1.0])


def test_window_losses_csv_round_trip(tmp_path, codec):
    torch.manual_seed(0)
    models = {f"tf{tf}": Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=tf, k=1, window=50)).eval()
              for tf in (0, 2)}
    models["k5"] = Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=0, k=5, window=50)).eval()
    rows = compare_models(models, _windows(4), 50)
    info = [{"row": i, "track": f"Track{i // 2:05d}", "start": 7 * i} for i in range(4)]
    path = write_window_losses(tmp_path / "w.csv", info, rows)
    back_info, own, swapped = read_window_losses(path)
    assert back_info == info and set(own) == {"tf0", "tf2"}   # k > 1 models have no per-window column
    by_name = {r["model"]: r for r in rows}
    for name in own:
        assert own[name] == pytest.approx(by_name[name]["per_window"])
        assert swapped[name] == pytest.approx(by_name[name]["per_window_swapped"])
        assert own[name].mean() == pytest.approx(by_name[name]["common_loss"])


# ----------------------------------------------------------------------------- reliance by frame type


@pytest.fixture(scope="module")
def quick_windows():
    """Windows of the quick token cache (made on first use) with where they come from."""
    from streamlib.codec.tokenize import book_tokens
    from streamlib.train import split_windows

    tokens = book_tokens(quick=True, progress=False)
    windows, info = split_windows(tokens, 250, 4, 8)
    return tokens, windows, info


def test_frame_labels_follow_the_songs(quick_windows):
    import json
    from pathlib import Path

    tokens, windows, info = quick_windows
    labels = frame_labels(info, tokens, 250)
    assert set(labels) == set(FRAME_TYPES) and all(v.shape == (8, 250) for v in labels.values())
    assert not (labels["silent"] & labels["sustained"]).any()
    assert 0.01 < labels["onset"].mean() < 0.5 and 0 < labels["chord change"].mean() < 0.2
    # silent is the token cache's own activity of the window's target stem
    w = info[0]
    with np.load(Path(tokens) / "validation" / f"{w['track']}.npz") as z:
        active = z["active"][w["target_stem"], w["start"] : w["start"] + 250]
    assert np.array_equal(labels["silent"][0], ~active)
    # chord changes sit at the song's chord starts
    meta = json.loads((Path(tokens) / "meta.json").read_text())
    assert Path(meta["dataset"]).is_dir()


def test_a_model_that_ignores_its_input_relies_on_nothing(quick_windows, codec):
    from streamlib.train import codec_tables

    tokens, windows, info = quick_windows
    tables, _ = codec_tables(tokens, 4)
    torch.manual_seed(0)
    cfg = DEBUG.model.__class__(**{**DEBUG.model.__dict__, "max_frames": 512})
    deaf = Accompanist(cfg, tables, StreamSpec(tf=0, k=1, window=250)).eval()
    with torch.no_grad():
        deaf.gate.fill_(1.0)
        deaf.in_proj.weight.zero_()
        deaf.in_proj.bias.zero_()
        deaf.in_out_norm.weight.zero_()  # the input term is exactly zero: swapping inputs changes nothing
        deaf.in_out_norm.bias.zero_()
    rows = reliance_by_frame_type(deaf, windows, info, tokens, 250)
    assert {r["type"] for r in rows} == {"all", *FRAME_TYPES}
    assert all(abs(r["reliance"]) < 1e-5 for r in rows if r["tokens"])
    listening = Accompanist(cfg, tables, StreamSpec(tf=0, k=1, window=250)).eval()
    with torch.no_grad():
        listening.gate.fill_(1.0)
    overall = next(r for r in reliance_by_frame_type(listening, windows, info, tokens, 250)
                   if r["type"] == "all" and r["level"] == "all")
    assert abs(overall["reliance"]) > 1e-4 and overall["share"] == pytest.approx(1.0)


@pytest.mark.parametrize("flag", ["--guidance", "--temperature", "--play-along-prompt"])
def test_sampling_flags_without_play_along_are_a_one_line_error(flag):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", "checkpoints/models/book_tf+0_k1.safetensors",
                             flag, "2"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --guidance, --temperature and --play-along-prompt apply to --play-along generation"]


def test_a_prompt_as_long_as_the_clip_is_a_one_line_error():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "streamlib", "compare", "checkpoints/models/book_tf+0_k1.safetensors",
                             "--play-along", "4", "--play-along-seconds", "3", "--play-along-prompt", "3"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --play-along-prompt (3 s) must be shorter than --play-along-seconds (3 s)"]


def test_a_play_along_codec_must_make_the_models_codes():
    """``--codec`` decodes play-along stems with another decoder of the same codes; a codec of other codes
    (the shipped codec for a model of the previous one, ``book_v3``) is a one-line error before any work, and so is
    ``--codec`` without ``--play-along``."""
    import subprocess
    import sys

    model = "checkpoints/models/book_tf+50_k1.safetensors"  # trained on book_v3's codes
    other = subprocess.run([sys.executable, "-m", "streamlib", "compare", model, "--play-along", "2", "--codec",
                            "checkpoints/codec/book.safetensors"], capture_output=True, text=True)
    alone = subprocess.run([sys.executable, "-m", "streamlib", "compare", model, "--codec",
                            "checkpoints/codec/book.safetensors"], capture_output=True, text=True)
    for result in (other, alone):
        assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "another codec's tokens" in other.stderr
    assert alone.stderr.strip().splitlines() == ["error: --codec applies to --play-along generation"]
