"""The masked model of chapter 12: the causal flag leaves the streaming backbone alone, the training mask's
statistics, input dropout, guidance, confidence-ordered unmasking, determinism, exact resume, export, and
clear errors for bad input."""

from __future__ import annotations

import dataclasses
import math
import os
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamlib.checkpoint import CheckpointError, load_training_state
from streamlib.cli import main
from streamlib.codec import CausalCodec
from streamlib.config import ConfigError, get_preset
from streamlib.masked_train import MaskedRun, evaluate_masked, export_masked, train_masked, validation_masks
from streamlib.model.masked import (
    MaskedAccompanist, MaskedConfig, draw_input_keep, draw_mask, generate_masked, guided_logits, load_masked,
    masked_model_loss, masked_preset, sample_masked, still_masked,
)
from streamlib.model.transformer import Transformer
from streamlib.tokens.categories import TokenError
from test_train import fake_cache

DEBUG = masked_preset("debug")  # 2 x 32 backbone, 64 codes, window 1 s = 50 frames
PRESET = dataclasses.replace(DEBUG, train=dataclasses.replace(DEBUG.train, batch_size=4, steps=6, warmup_steps=2))
SIZE = get_preset("debug").codec.codebook_size


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return CausalCodec(get_preset("debug").codec)


@pytest.fixture(scope="module")
def model(codec):
    torch.manual_seed(0)
    return MaskedAccompanist(DEBUG.model, codec.codebook_tables(4)).eval()


def codes(frames: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SIZE, (4, frames), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the causal flag


def test_the_causal_flag_leaves_the_causal_transformer_unchanged():
    cfg = get_preset("debug").model
    torch.manual_seed(0)
    causal = Transformer(cfg).eval()
    torch.manual_seed(0)
    explicit = Transformer(cfg, causal=True).eval()
    both = Transformer(cfg, causal=False).eval()
    both.load_state_dict(causal.state_dict())  # same parameter names and shapes
    x = torch.randn(2, 12, cfg.d_model)
    later = x.clone()
    later[:, 8:] += 1.0
    with torch.no_grad():
        y = causal(x)
        assert causal.causal and torch.equal(explicit(x), y)
        assert torch.equal(causal(later)[:, :8], y[:, :8])  # causal: the past ignores the future
        cache = causal.new_cache()  # the KV cache path still agrees with the full pass
        parts = torch.cat([causal(x[:, :5], cache), causal(x[:, 5:], cache)], dim=1)
        assert torch.allclose(parts, y, atol=1e-5)
        full = both(x)
        assert not torch.allclose(both(later)[:, :8], full[:, :8])  # bidirectional: it does not
    one = dataclasses.replace(cfg, n_layers=1)  # one layer: the last position sees everything either way
    torch.manual_seed(0)
    a, b = Transformer(one).eval(), Transformer(one, causal=False).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert torch.allclose(a(x)[:, -1], b(x)[:, -1], atol=1e-5)
    with pytest.raises(ConfigError, match="no KV cache"):
        both.new_cache()
    with pytest.raises(ConfigError, match="no KV cache"):
        both(x, causal.new_cache())


# ----------------------------------------------------------------------------- training mask and dropout


def test_mask_schedule_statistics():
    n, n_q, frames = 6000, 4, 64
    masked, level = draw_mask(np.random.default_rng(0), n, n_q, frames)
    assert masked.shape == (n, n_q, frames) and masked.dtype == torch.bool
    lv = torch.arange(n_q)[None, :]
    above = (lv > level[:, None])[..., None].expand_as(masked)
    below = (lv < level[:, None])[..., None].expand_as(masked)
    assert masked[above].all()  # every level above L fully masked
    assert not masked[below].any()  # every level below L kept
    share = masked[torch.arange(n), level].float().mean(1)  # masked share of level L, per window
    assert abs(float(share.mean()) - 2 / math.pi) < 0.015  # E[cos(u pi / 2)] = 2 / pi
    assert float(share.min()) < 0.1 and float(share.max()) > 0.9  # u spans the whole schedule
    counts = torch.bincount(level, minlength=n_q).float() / n
    assert torch.allclose(counts, torch.full((n_q,), 0.25), atol=0.03)  # L uniform over the levels


def test_input_dropout_rate_and_what_it_drops(model):
    keep = draw_input_keep(np.random.default_rng(1), 20_000, 0.2)
    assert abs(1 - float(keep.float().mean()) - 0.2) < 0.01
    assert DEBUG.model.input_dropout == 0.2 and masked_preset("book").model.input_dropout == 0.2
    y = torch.full((1, 4, 30), model.mask_id)
    cat = torch.tensor([4])
    off = torch.tensor([False])
    with torch.no_grad():
        a = model(codes(30, 1)[None], y, cat, off)
        b = model(codes(30, 2)[None], y, cat, off)
        assert torch.equal(a, b)  # a dropped window's input does not reach the logits
        assert not torch.allclose(model(codes(30, 1)[None], y, cat), model(codes(30, 2)[None], y, cat))


def test_the_loss_scores_only_masked_positions_of_level_l(model):
    x, y = codes(20, 3)[None].repeat(2, 1, 1), codes(20, 4)[None].repeat(2, 1, 1)
    masked, level = draw_mask(np.random.default_rng(5), 2, 4, 20)
    cat = torch.tensor([0, 4])
    with torch.no_grad():
        total, count = masked_model_loss(model, x, y, cat, masked, level)
        logits = model(x, torch.where(masked, torch.full_like(y, model.mask_id), y), cat)
        sums, counts = masked_model_loss(model, x, y, cat, masked, level, per_window=True)
    scored = masked & (torch.arange(4)[None, :, None] == level[:, None, None])
    ce = F.cross_entropy(logits.reshape(-1, SIZE), y.reshape(-1), reduction="none").view(y.shape)
    assert int(count) == int(scored.sum()) and torch.allclose(total, ce[scored].sum(), atol=1e-4)
    assert torch.allclose(sums.sum(), total, atol=1e-4) and int(counts.sum()) == int(count)


# ----------------------------------------------------------------------------- sampling


def test_cfg_scale_one_is_the_conditional_model(model):
    x, y = codes(30, 5)[None], codes(30, 6)[None]
    y[:, 2:] = model.mask_id
    cat = torch.tensor([3])
    with torch.no_grad():
        cond = model(x, y, cat)
        uncond = model(x, y, cat, torch.tensor([False]))
    assert torch.equal(guided_logits(model, x, y, cat, 1.0), cond)
    assert torch.allclose(guided_logits(model, x, y, cat, 0.0), uncond, atol=1e-5)
    assert torch.allclose(guided_logits(model, x, y, cat, 2.0), 2 * cond - uncond, atol=1e-4)
    assert not torch.allclose(cond, uncond)
    for q in range(4):  # one level's logits are the full pass's slice
        assert torch.allclose(guided_logits(model, x, y, cat, 2.0, level=q), guided_logits(model, x, y, cat, 2.0)[:, q], atol=1e-5)


@pytest.mark.parametrize("frames,steps", [(40, (4, 2, 2, 2)), (7, (3, 1, 5, 2)), (50, (1, 1, 1, 1))])
def test_unmasking_fills_every_position_exactly_once(model, frames, steps):
    s = sample_masked(model, codes(frames), 4, steps=steps, seed=0)
    assert s.codes.shape == (4, frames) and int(s.codes.min()) >= 0 and int(s.codes.max()) < SIZE
    assert int(s.fixed_at.min()) >= 0  # every token fixed
    first = np.cumsum((0,) + steps)
    for q in range(4):
        at = s.fixed_at[q]
        assert int(at.min()) >= first[q] and int(at.max()) < first[q + 1]  # during its own level's iterations
        fixed_per_step = torch.bincount(at - first[q], minlength=steps[q])
        left = [frames] + [still_masked(frames, i, steps[q]) for i in range(steps[q])]
        assert fixed_per_step.tolist() == [a - b for a, b in zip(left, left[1:])]  # the cosine schedule, once each
    assert s.level_of_step == [q for q in range(4) for _ in range(steps[q])]
    assert (s.state_after(first[1] - 1)[1:] == -1).all() and (s.state_after(first[1] - 1)[0] >= 0).all()


def test_the_most_confident_tokens_are_fixed_first(model):
    x, frames, seed = codes(30, 7), 30, 3
    s = sample_masked(model, x, 2, steps=(4, 1, 1, 1), temperatures=(0.0, 0.0, 0.0, 0.0), cfg_scale=2.0, seed=seed)
    gen = torch.Generator().manual_seed(seed)  # replay the first iteration's draws
    empty = torch.full((1, 4, frames), model.mask_id)
    logp = F.log_softmax(guided_logits(model, x[None], empty, torch.tensor([2]), 2.0, level=0)[0], dim=-1)
    sampled = torch.multinomial(logp.exp(), 1, generator=gen)[:, 0]
    confidence = logp.gather(-1, sampled[:, None])[:, 0]
    first = (s.fixed_at[0] == 0).nonzero()[:, 0]
    assert len(first) == frames - still_masked(frames, 0, 4)
    assert float(confidence[first].min()) >= float(confidence[s.fixed_at[0] > 0].max())
    assert torch.equal(s.codes[0, first], sampled[first])


def test_sampling_is_deterministic_given_a_seed(model):
    x = codes(40, 8)
    a = generate_masked(model, x, 4, seed=11)
    assert torch.equal(a, generate_masked(model, x, 4, seed=11))
    assert not torch.equal(a, generate_masked(model, x, 4, seed=12))
    long = codes(300, 9)  # longer than max_frames (128): window by window
    out = generate_masked(model, long, 4, steps=(1, 1, 1, 1), seed=0)
    assert out.shape == (4, 300)


def test_bad_inputs_give_clear_errors(model):
    x = codes(20)
    for steps in ((0, 1, 1, 1), (1.5, 1, 1, 1)):
        with pytest.raises(ConfigError, match="steps must be whole numbers >= 1"):
            generate_masked(model, x, 4, steps=steps)
    with pytest.raises(ConfigError, match="one step count and one temperature per level"):
        generate_masked(model, x, 4, steps=(4, 4))
    with pytest.raises(ConfigError, match="cfg_scale must be a finite number >= 0"):
        generate_masked(model, x, 4, cfg_scale=-1.0)
    with pytest.raises(ConfigError, match="temperatures must be finite and >= 0"):
        generate_masked(model, x, 4, temperatures=(8, 8, -1, 4))
    for bad, what in [(x[0], r"\[levels >= 4"), (x[:2], r"\[levels >= 4"), (x.float(), "integer codes"),
                      (x + SIZE, "must lie in"), (x[:, :0], r"frames >= 1")]:
        with pytest.raises(ConfigError, match=what):
            generate_masked(model, bad, 4)
    with pytest.raises(TokenError):
        generate_masked(model, x, 99)
    with pytest.raises(ConfigError, match="exceed the masked model's window"):
        sample_masked(model, codes(200), 4)
    with pytest.raises(ConfigError):
        MaskedConfig(get_preset("debug").model, steps=(1, 1, 1))


def test_cli_rejects_bad_options_in_one_line(capsys):
    for args in (["masked", "generate", "--input", "x.wav", "--category", "Bass", "--out", "o.wav", "--cfg-scale", "-1"],
                 ["masked", "generate", "--input", "x.wav", "--category", "Bass", "--out", "o.wav", "--steps", "a,b"],
                 ["masked", "train", "--out", "runs/x", "--steps", "0"]):
        with pytest.raises(SystemExit) as err:
            main(args)
        assert err.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1


# ----------------------------------------------------------------------------- training, resume, export


@pytest.mark.parametrize("stop", ["interrupt", "sigterm"])
def test_resume_is_exact(tmp_path, codec, stop):
    tokens = fake_cache(tmp_path / "tok")
    whole = train_masked(MaskedRun(tokens, str(tmp_path / "a"), val_every=3, val_windows=4), PRESET, codec=codec,
                         device="cpu", progress=False)
    part = MaskedRun(tokens, str(tmp_path / "b"), val_every=3, val_windows=4)
    handler = signal.getsignal(signal.SIGTERM)

    def crash(row):
        if row["step"] == 4 and stop == "interrupt":
            raise KeyboardInterrupt  # killed mid-run: the state of step 4 is on disk
        if row["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's kill: the step ends, the state is saved, it stops

    with pytest.raises(KeyboardInterrupt):
        train_masked(part, PRESET, codec=codec, device="cpu", progress=False, on_step=crash, command="first",
                     log=lambda m: None)
    assert load_training_state(tmp_path / "b" / "train_state.pt")["step"] == 4
    assert signal.getsignal(signal.SIGTERM) is handler  # the loop's handler is gone again
    resumed = train_masked(part, PRESET, codec=codec, device="cpu", progress=False, log=lambda m: None, command="again")
    state = load_training_state(tmp_path / "b" / "train_state.pt")
    assert state["commands"] == ["first  # sitting from step 0", "again  # sitting from step 4"]
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in whole["history"]]
    for key, value in whole["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key
    other = dataclasses.replace(part, seed=1)
    with pytest.raises(CheckpointError, match="another run"):
        train_masked(other, PRESET, codec=codec, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="not a masked-model training state"):
        from streamlib.train import Run, train

        train(Run(tokens, str(tmp_path / "acc"), steps=1), get_preset("debug"), codec=codec, device="cpu",
              progress=False)
        train_masked(MaskedRun(tokens, str(tmp_path / "acc")), PRESET, codec=codec, device="cpu", progress=False)


def test_export_load_and_refuse(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok")
    run = MaskedRun(tokens, str(tmp_path / "r"), steps=2, val_windows=4)
    result = train_masked(run, PRESET, codec=codec, device="cpu", progress=False, command="python -m streamlib masked train")
    path = tmp_path / "book_masked.safetensors"
    card = export_masked(tmp_path / "r" / "train_state.pt", path, half="no")
    loaded = load_masked(path)
    assert card["steps"] == 2 and card["reproduce"] == ["python -m streamlib masked train  # sitting from step 0"]
    assert card["val_loss"] == pytest.approx(result["val_loss"], abs=1e-4)
    assert card["generation"]["seconds"] > 0
    for key in ("wall_seconds", "hardware", "data", "codec_sha256", "masked_config", "fp16_check"):
        assert key in card, key
    loaded.check_codec(codec)
    val = {"input": codes(50, 1)[None], "target": codes(50, 2)[None], "category": torch.tensor([4])}
    assert evaluate_masked(loaded, val, torch.device("cpu")) == pytest.approx(
        evaluate_masked(result["model"], val, torch.device("cpu")), abs=1e-6)
    torch.manual_seed(1)
    with pytest.raises(CheckpointError, match="another codec"):
        loaded.check_codec(CausalCodec(get_preset("debug").codec))
    with pytest.raises(CheckpointError, match="not a masked model"):
        load_masked("checkpoints/models/book_tf+0_k1.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_masked(tmp_path / "missing.safetensors")
    from streamlib.train import save_val_fixture

    fixture = tmp_path / "masked_windows.npz"
    save_val_fixture(val, fixture)
    with_fixture = export_masked(tmp_path / "r" / "train_state.pt", tmp_path / "f.safetensors", half="no",
                                 timing=False, fixture=fixture)
    assert with_fixture["fixture"] == {"path": "masked_windows.npz",
                                       "loss": pytest.approx(evaluate_masked(loaded, val, torch.device("cpu")), abs=1e-5)}
    masks, levels = validation_masks(3, 4, 50)
    assert torch.equal(masks, validation_masks(3, 4, 50)[0]) and levels.tolist() == [0, 1, 2, 3] * 3
    assert set(card["val_loss_by_level"]) == {"0", "1", "2", "3"}  # every level scored on every window
