"""Training: the k > 1 loss touches only the chunk, the schedule, exact resume, DDP == one process,
export and re-scoring."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import numpy as np
import pytest
import torch

from streamlib.checkpoint import CheckpointError, load_training_state, save_training_state
from streamlib.codec import CausalCodec
from streamlib.config import ConfigError, StreamSpec, get_preset
from streamlib.model import Accompanist, load_accompanist
from streamlib.train import (
    Run, batch_loss, bf16_supported, chunk_present, contrast_loss, corrupt_history, draw_phase, draw_prefix, drop_inputs, export_model,
    check_levers, history_noise_at, load_val_fixture, lr_at, own_history, padded_inputs,
    roll_inputs, score_windows, split_windows, total_training, train, validation_windows, with_rolled_inputs,
)
from streamlib.tokens.categories import CODE_OFFSET
from streamlib.tokens.visibility import AlignmentError, align, all_chunks, chunk_masks, chunk_starts

DEBUG = get_preset("debug")  # window 1 s = 50 frames, batch 2
PRESET = DEBUG.replace(train=dataclasses.replace(DEBUG.train, batch_size=4, steps=6, warmup_steps=2))
PRESET_FP32 = PRESET.replace(train=dataclasses.replace(PRESET.train, bf16=False))
SIZE = DEBUG.codec.codebook_size


def fake_cache(root, tracks: int = 3, frames: int = 120, seed: int = 0) -> str:
    """A token cache in the layout of ``streamlib.codec.tokenize`` with random codes."""
    rng = np.random.default_rng(seed)
    for split in ("train", "validation"):
        for t in range(tracks):
            stems = rng.integers(0, SIZE, (3, 4, frames)).astype(np.int16)
            mix = rng.integers(0, SIZE, (2, 4, frames)).astype(np.int16)
            (root / split).mkdir(parents=True, exist_ok=True)
            np.savez(root / split / f"Track{t:05d}.npz", stems=stems, categories=np.array([0, 4, 14], np.int8),
                     active=np.ones((3, frames), bool), mix_codes=mix, mix_members=np.array([[0, 1, 1], [1, 0, 1]], bool),
                     mix_target=np.array([0, 1], np.int16), mix_active=np.ones((2, frames), bool),
                     mix_policy=np.array([0, 0], np.int8))
    (root / "meta.json").write_text(json.dumps({"codec_sha256": "test", "seed": 0}))
    return str(root)


def resumed_after_a_crash(run: Run, codec, at_step: int) -> dict:
    """Train ``run`` until it is killed after ``at_step``, then run it again: the resumed run's result."""
    def crash(row):
        if row["step"] == at_step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(run, PRESET, codec=codec, device="cpu", progress=False, on_step=crash)
    return train(run, PRESET, codec=codec, device="cpu", progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return CausalCodec(DEBUG.codec)


def test_prefix_loss_touches_only_the_chunk(codec):
    torch.manual_seed(0)
    acc = Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=-2, k=5, window=50))
    with torch.no_grad():
        acc.gate.fill_(1.0)
    x, y = torch.randint(0, SIZE, (1, 4, 40)), torch.randint(0, SIZE, (1, 4, 40))
    a = align(x, y, 3, -2)
    loss, count = batch_loss(acc, a, 5, prefix=10)
    assert int(count) == 5 * 4  # k steps x 4 levels
    keep, mask = chunk_masks(a, 10, 5)
    logits = acc(a.input_codes, a.input_pad_mask, a.output_tokens, keep)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, SIZE), (a.targets - CODE_OFFSET).clamp(min=0).reshape(-1),
                                           reduction="none").view(mask.shape)
    assert torch.allclose(loss, ce[mask].sum())  # exactly the chunk's targets
    assert mask[..., 10:15].all() and not mask[..., :10].any() and not mask[..., 15:].any()
    assert keep[:11].all() and not keep[11:].any()  # no input term inside the chunk after its first step
    prefixes = {draw_prefix(0, s, 50, 5) for s in range(200)}
    assert prefixes == set(range(0, 50, 5))


@pytest.mark.parametrize("tf,present_input,phase", [(-2, False, 0), (-2, False, 3), (0, False, 1), (3, True, 2),
                                                   (6, True, 1)])
def test_all_chunks_give_every_chunks_logits_in_one_pass(codec, tf, present_input, phase):
    """The all-chunks layout is the one-chunk prefix decoder's pass for every chunk at once: each target's
    logits equal those of ``chunk_masks`` at its chunk's start, and every target of the window is trained."""
    torch.manual_seed(1)
    cfg = dataclasses.replace(DEBUG.model, present_input=present_input)
    acc = Accompanist(cfg, codec.codebook_tables(4), StreamSpec(tf=tf, k=5, window=50)).eval()
    with torch.no_grad():
        acc.gate.fill_(1.0)
    x, y = torch.randint(0, SIZE, (2, 4, 40)), torch.randint(0, SIZE, (2, 4, 40))
    a = align(x, y, 3, tf)
    layout = all_chunks(a, 5, phase)
    n = a.length
    present = one_present = None
    if present_input:
        codes, (with_input, in_chunk) = chunk_present(acc, a, layout.starts)
        present = (torch.cat([codes, codes], dim=-1), torch.cat([with_input, in_chunk], dim=-1))
    with torch.no_grad():
        logits = acc(layout.aligned.input_codes, layout.aligned.input_pad_mask, layout.aligned.output_tokens,
                     layout.input_keep, present=present, positions=layout.positions, attention=layout.attention)
        starts = chunk_starts(n, 5, phase)
        for start in sorted(set(starts.tolist())):
            keep, _ = chunk_masks(a, start, 5)
            if present_input:
                codes, (with_input, in_chunk) = chunk_present(acc, a, torch.full((n,), start))
                one_present = (codes, torch.where(keep, with_input, in_chunk))
            ref = acc(a.input_codes, a.input_pad_mask, a.output_tokens, keep, present=one_present)
            for j in (starts == start).nonzero()[:, 0].tolist():
                got = logits[:, :, j] if j == start else logits[:, :, n + j]
                assert torch.allclose(got, ref[:, :, j], atol=1e-5), (start, j)
    # one loss per target of the window: the context copy at chunk starts, the chunk copy elsewhere
    assert torch.equal(layout.aligned.loss_mask[..., :n] | layout.aligned.loss_mask[..., n:], a.loss_mask)
    assert not (layout.aligned.loss_mask[..., :n] & layout.aligned.loss_mask[..., n:]).any()
    loss, count = batch_loss(acc, a, 5, None, phase=phase)
    assert int(count) == int(a.loss_mask.sum())
    targets = (layout.aligned.targets - CODE_OFFSET).clamp(min=0)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, SIZE), targets.reshape(-1), reduction="none")
    assert torch.allclose(loss, ce.view(targets.shape)[layout.aligned.loss_mask].sum(), rtol=1e-5)
    for start in (0, 10, 25):  # and the one-chunk loss reads the same present input
        keep, mask = chunk_masks(a, start, 5)
        one, _ = batch_loss(acc, a, 5, prefix=start)
        if present_input:
            codes, (with_input, in_chunk) = chunk_present(acc, a, torch.full((n,), start))
            one_present = (codes, torch.where(keep, with_input, in_chunk))
        ref = acc(a.input_codes, a.input_pad_mask, a.output_tokens, keep, present=one_present)
        ce = torch.nn.functional.cross_entropy(ref.reshape(-1, SIZE), (a.targets - CODE_OFFSET).clamp(min=0).reshape(-1),
                                               reduction="none").view(mask.shape)
        assert torch.allclose(one, ce[mask].sum(), rtol=1e-5)
    with pytest.raises(ConfigError, match="not both"):
        batch_loss(acc, a, 5, prefix=10, phase=phase)


def test_chunk_starts_and_phase_draws():
    assert chunk_starts(12, 5, 0).tolist() == [0] * 5 + [5] * 5 + [10] * 2
    assert chunk_starts(12, 5, 2).tolist() == [0, 0] + [2] * 5 + [7] * 5
    assert {draw_phase(0, s, 5) for s in range(100)} == set(range(5))
    for bad in (dict(k=0, phase=0), dict(k=5, phase=5), dict(k=5, phase=-1)):
        with pytest.raises(AlignmentError):
            chunk_starts(12, **bad)


def test_all_chunks_is_a_k_above_1_option_that_resumes_exactly(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok")
    with pytest.raises(ConfigError, match="k > 1"):
        check_levers(Run(tokens, "o", k=1, all_chunks=True))
    with pytest.raises(ConfigError, match="k > 1"):
        check_levers(Run(tokens, "o", offline=True, all_chunks=True))
    whole = train(Run(tokens, str(tmp_path / "a"), tf=2, k=5, all_chunks=True, val_every=3, val_windows=4),
                  PRESET, codec=codec, device="cpu", progress=False)
    one = train(Run(tokens, str(tmp_path / "o"), tf=2, k=5, val_every=3, val_windows=4),
                PRESET, codec=codec, device="cpu", progress=False)
    # every target of each window carries a loss, not the k steps of one chunk
    assert min(r["tokens"] for r in whole["history"]) > 4 * max(r["tokens"] for r in one["history"])
    part = Run(tokens, str(tmp_path / "b"), tf=2, k=5, all_chunks=True, val_every=3, val_windows=4)
    resumed = resumed_after_a_crash(part, codec, at_step=4)
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in whole["history"]]


def test_learning_rate_schedule():
    cfg = DEBUG.train
    total = 100
    lrs = [lr_at(s, cfg, total) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(cfg.peak_lr / cfg.warmup_steps)
    assert max(lrs) == pytest.approx(cfg.peak_lr)
    assert lrs[-1] == pytest.approx(cfg.min_lr)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[cfg.warmup_steps:], lrs[cfg.warmup_steps + 1:]))


@pytest.mark.parametrize("k,offline", [(1, False), (5, False), (1, True)])
def test_resume_is_exact(tmp_path, codec, k, offline):
    tokens = fake_cache(tmp_path / "tok")
    whole = train(Run(tokens, str(tmp_path / "a"), tf=-3, k=k, offline=offline, val_every=3, val_windows=4),
                  PRESET, codec=codec, device="cpu", progress=False)
    part = Run(tokens, str(tmp_path / "b"), tf=-3, k=k, offline=offline, val_every=3, val_windows=4)

    def crash(row):
        if row["step"] == 4:
            raise KeyboardInterrupt  # killed mid-run: the state of step 4 is on disk

    with pytest.raises(KeyboardInterrupt):
        train(part, PRESET, codec=codec, device="cpu", progress=False, on_step=crash, command="first")
    resumed = train(part, PRESET, codec=codec, device="cpu", progress=False, log=lambda msg: None, command="again")
    state = load_training_state(tmp_path / "b" / "train_state.pt")
    assert state["commands"] == ["first  # sitting from step 0", "again  # sitting from step 4"]
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in whole["history"]]
    for key, value in whole["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key


def test_resume_refuses_another_run(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok")
    train(Run(tokens, str(tmp_path / "a"), tf=0, steps=1), PRESET, codec=codec, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="another run"):
        train(Run(tokens, str(tmp_path / "a"), tf=5, steps=2), PRESET, codec=codec, device="cpu", progress=False)
    with pytest.raises(ConfigError):
        train(Run(tokens, str(tmp_path / "c"), tf=0, k=7), PRESET, codec=codec, device="cpu", progress=False)


def test_a_one_instrument_run_trains_and_validates_on_its_targets_only(tmp_path, codec):
    """``train --targets Bass``: the run (and its resume) keeps to the bass; a category absent from the cache
    is refused before any step."""
    tokens = fake_cache(tmp_path / "tok")
    run = Run(tokens, str(tmp_path / "bass"), tf=0, steps=2, val_every=2, val_windows=2, targets=[4])
    assert run.targets == (4,)
    train(run, PRESET, codec=codec, device="cpu", progress=False)
    state = load_training_state(tmp_path / "bass" / "train_state.pt")
    assert tuple(state["run"]["targets"]) == (4,)
    assert set(validation_windows(tokens, 50, 2, None, targets=run.targets)["category"].tolist()) == {4}
    assert len(set(validation_windows(tokens, 50, 2, None)["category"].tolist())) > 1
    longer = dataclasses.replace(run, steps=3)
    assert train(longer, PRESET, codec=codec, device="cpu", progress=False, log=lambda msg: None)["step"] == 3
    with pytest.raises(ConfigError, match="no training windows"):
        train(Run(tokens, str(tmp_path / "none"), tf=0, steps=1, targets=(5,)), PRESET, codec=codec, device="cpu",
              progress=False)


def test_resume_a_state_written_before_a_run_field_existed(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok")
    run = Run(tokens, str(tmp_path / "a"), tf=0, steps=2, val_every=2, val_windows=2)
    train(run, PRESET, codec=codec, device="cpu", progress=False)
    path = tmp_path / "a" / "train_state.pt"
    state = load_training_state(path)
    del state["run"]["init_from"]  # as written by an older streamlib
    save_training_state(path, state)
    longer = dataclasses.replace(run, steps=3)
    assert train(longer, PRESET, codec=codec, device="cpu", progress=False, log=lambda msg: None)["step"] == 3


def test_training_lowers_the_loss_and_exports(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok", tracks=1, frames=60)
    preset = PRESET.replace(train=dataclasses.replace(PRESET.train, steps=40, peak_lr=3e-3))
    res = train(Run(tokens, str(tmp_path / "r"), tf=0, val_every=40, val_windows=2), preset, codec=codec,
                device="cpu", progress=False)
    losses = [r["train_loss"] for r in res["history"]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3  # it memorises the few windows
    out = tmp_path / "m.safetensors"
    card = export_model(tmp_path / "r" / "train_state.pt", out, fixture=tmp_path / "fx.npz", commands=["test"])
    acc = load_accompanist(out)
    assert card["steps"] == 40 and card["reproduce"] == ["test"]
    assert card["hardware"]["bf16_autocast"] == bf16_supported(torch.device("cpu"))   # the card says how it trained
    assert score_windows(acc, load_val_fixture(tmp_path / "fx.npz"), card["window_frames"]) == pytest.approx(
        card["fixture"]["loss"], abs=2e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, tokens: str, out: str, codec_state: dict, result: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    torch.set_num_threads(1)
    codec = CausalCodec(DEBUG.codec)
    codec.load_state_dict(codec_state)
    res = train(Run(tokens, out, tf=-2, val_every=100), PRESET_FP32, codec=codec, device="cpu", progress=False)
    if rank == 0:
        result["state"] = {k: v.clone() for k, v in res["model"].state_dict().items()}
    import torch.distributed as dist

    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path, codec):
    """In fp32 (``PRESET_FP32``): under bf16 autocast the two halves of a batch round differently from the
    whole, so the runs drift apart by bf16 precision, which says nothing about DDP."""
    import torch.multiprocessing as mp

    tokens = fake_cache(tmp_path / "tok")
    single = train(Run(tokens, str(tmp_path / "one"), tf=-2, val_every=100), PRESET_FP32, codec=codec, device="cpu",
                   progress=False)
    manager = mp.Manager()
    result = manager.dict()
    mp.spawn(_ddp_worker, args=(2, _free_port(), tokens, str(tmp_path / "two"), codec.state_dict(), result), nprocs=2)
    for key, value in single["model"].state_dict().items():
        assert torch.allclose(value, result["state"][key], atol=1e-5), key


def test_split_windows_say_where_each_window_comes_from(tmp_path):
    tokens = fake_cache(tmp_path / "tok", tracks=3)
    windows, info = split_windows(tokens, 50, 4)
    assert windows["input"].shape == (6, 4, 50) and [w["row"] for w in info] == list(range(6))   # 2 mixes per track
    assert [w["track"] for w in info] == ["Track00000"] * 2 + ["Track00001"] * 2 + ["Track00002"] * 2
    some = validation_windows(tokens, 50, 4, 3)
    assert torch.equal(some["input"], windows["input"][[0, 2, 5]])   # n windows spread over the split
    for w, row in zip(info, windows["input"]):
        mix = np.load(f"{tokens}/validation/{w['track']}.npz")["mix_codes"][w["row"] % 2]
        assert np.array_equal(mix[:, w["start"] : w["start"] + 50], row.numpy())


def test_init_from_a_shipped_model(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok")
    train(Run(tokens, str(tmp_path / "a"), tf=-3, steps=3), PRESET, codec=codec, device="cpu", progress=False)
    ship = tmp_path / "m.safetensors"
    export_model(tmp_path / "a" / "train_state.pt", ship, commands=[])
    frozen = PRESET.replace(train=dataclasses.replace(PRESET.train, peak_lr=0.0, min_lr=0.0))  # lr 0: weights stay
    res = train(Run(tokens, str(tmp_path / "b"), tf=-3, steps=1, init_from=str(ship)), frozen, codec=codec,
                device="cpu", progress=False, log=lambda msg: None)
    shipped = load_accompanist(ship).state_dict()
    for key, value in res["model"].state_dict().items():
        assert torch.equal(value, shipped[key]), key
    # a warm start at another t_f takes the same weights (they do not depend on t_f) ...
    moved = train(Run(tokens, str(tmp_path / "c"), tf=2, steps=1, init_from=str(ship)), frozen, codec=codec,
                  device="cpu", progress=False, log=lambda msg: None)
    assert moved["model"].spec.tf == 2
    assert all(torch.equal(v, shipped[key]) for key, v in moved["model"].state_dict().items())
    # ... and a k = 1 model may seed a prefix decoder (each chunk's first frame is the k = 1 task) ...
    chunked = train(Run(tokens, str(tmp_path / "d"), tf=-3, k=2, steps=1, init_from=str(ship)), frozen, codec=codec,
                    device="cpu", progress=False, log=lambda msg: None)
    assert chunked["model"].spec.k == 2
    assert all(torch.equal(v, shipped[key]) for key, v in chunked["model"].state_dict().items())
    export_model(tmp_path / "d" / "train_state.pt", tmp_path / "k2.safetensors", commands=[])
    # ... but not back (a prefix decoder to another k), nor another architecture
    with pytest.raises(CheckpointError, match="another model"):
        train(Run(tokens, str(tmp_path / "d2"), tf=-3, k=1, steps=1, init_from=str(tmp_path / "k2.safetensors")),
              frozen, codec=codec, device="cpu", progress=False)
    wider = frozen.replace(model=dataclasses.replace(frozen.model, n_layers=frozen.model.n_layers + 1))
    with pytest.raises(CheckpointError, match="another model"):
        train(Run(tokens, str(tmp_path / "e"), tf=-3, steps=1, init_from=str(ship)), wider, codec=codec,
              device="cpu", progress=False)


def test_a_warm_started_card_counts_the_sittings_it_builds_on(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok")
    train(Run(tokens, str(tmp_path / "a"), tf=-3, steps=3), PRESET, codec=codec, device="cpu", progress=False)
    first = export_model(tmp_path / "a" / "train_state.pt", tmp_path / "a.safetensors", commands=["sitting one"])
    assert first["lineage"] == [] and first["total"]["steps"] == 3
    train(Run(tokens, str(tmp_path / "b"), tf=2, steps=2, init_from=str(tmp_path / "a.safetensors")), PRESET,
          codec=codec, device="cpu", progress=False, log=lambda msg: None)
    second = export_model(tmp_path / "b" / "train_state.pt", tmp_path / "b.safetensors")
    assert [s["steps"] for s in second["lineage"]] == [3] and second["lineage"][0]["reproduce"] == ["sitting one"]
    assert second["total"]["steps"] == 5
    hours = (first["wall_seconds"] + second["wall_seconds"]) / 3600
    assert second["total"]["wall_hours"] == pytest.approx(hours, abs=1e-3)
    assert second["total"]["cpu_hours"] >= second["total"]["wall_hours"] - 1e-3   # >= one thread per sitting
    # and a third sitting carries both
    train(Run(tokens, str(tmp_path / "c"), tf=0, steps=1, init_from=str(tmp_path / "b.safetensors")), PRESET,
          codec=codec, device="cpu", progress=False, log=lambda msg: None)
    third = export_model(tmp_path / "c" / "train_state.pt", tmp_path / "c.safetensors")
    assert [s["steps"] for s in third["lineage"]] == [2, 3] and third["total"]["steps"] == 6


def test_total_training_counts_threads():
    hw = {"torch_threads": 2}
    total = total_training(10, 3600.0, hw, [{"steps": 5, "wall_seconds": 1800.0, "hardware": {"torch_threads": 1}}])
    assert total == {"steps": 15, "wall_hours": 1.5, "cpu_hours": 2.5}


# ----------------------------------------------------------------------------- listening levers (chapter 7)


def _aligned(batch: int = 4, frames: int = 40, tf: int = 0):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, SIZE, (batch, 4, frames), generator=g)
    y = torch.randint(0, SIZE, (batch, 4, frames), generator=g)
    return align(x, y, torch.tensor([0, 4, 3, 5][:batch]), tf)


def test_history_noise_replaces_only_codes_at_the_rate():
    a = _aligned(batch=4, frames=400)
    noisy = corrupt_history(a, 0.3, SIZE, seed=1, step=5)
    codes = a.output_tokens >= CODE_OFFSET
    changed = noisy.output_tokens != a.output_tokens
    assert not changed[~codes].any()  # PAD and instrument tokens stay
    assert (noisy.output_tokens[codes] >= CODE_OFFSET).all() and (noisy.output_tokens < CODE_OFFSET + SIZE).all()
    rate = changed[codes].float().mean().item()
    assert 0.3 * (1 - 1 / SIZE) - 0.03 < rate < 0.3 + 0.03  # a random code may equal the true one
    assert torch.equal(noisy.targets, a.targets) and torch.equal(noisy.input_codes, a.input_codes)
    again = corrupt_history(a, 0.3, SIZE, seed=1, step=5)
    assert torch.equal(again.output_tokens, noisy.output_tokens)  # drawn from (seed, step): resumable
    assert not torch.equal(corrupt_history(a, 0.3, SIZE, seed=1, step=6).output_tokens, noisy.output_tokens)
    assert corrupt_history(a, 0.0, SIZE, 1, 5) is a
    every = corrupt_history(a, 1.0, SIZE, 1, 5)  # the curriculum's start: no true history code survives but by chance
    assert (every.output_tokens != a.output_tokens)[codes].float().mean() > 1 - 2 / SIZE
    with pytest.raises(ConfigError):
        corrupt_history(a, 1.5, SIZE, 1, 5)


class _Confident(torch.nn.Module):
    """A stand-in model that always predicts code 5 with certainty."""

    def forward(self, codes, pad, tokens, keep=None, cache=None, input_features=None):
        logits = torch.full((*tokens.shape, SIZE), -1e4)
        logits[..., 5] = 1e4
        return logits


def test_own_history_feeds_the_models_samples_one_step_later():
    a = _aligned(batch=4, frames=300)
    codes = a.output_tokens >= CODE_OFFSET
    every = own_history(_Confident(), a, 1.0, seed=1, step=3)
    assert (every.output_tokens[codes] == 5 + CODE_OFFSET).all()  # every code of the history is the model's sample
    assert torch.equal(every.output_tokens[~codes], a.output_tokens[~codes]) and torch.equal(every.targets, a.targets)
    some = own_history(_Confident(), a, 0.3, seed=1, step=3)
    changed = (some.output_tokens != a.output_tokens)[codes].float().mean().item()
    assert 0.25 < changed < 0.33  # (a true code equal to 5 is no change)
    assert torch.equal(own_history(_Confident(), a, 0.3, seed=1, step=3).output_tokens, some.output_tokens)
    assert own_history(_Confident(), a, 0.0, 1, 3) is a
    with pytest.raises(ConfigError):
        own_history(_Confident(), a, 1.5, 1, 3)


def test_own_history_samples_follow_the_teacher_forced_logits(codec):
    """With a real model: the sample fed at j + 1 is drawn from the logits at j (greedy-like when sharp)."""
    torch.manual_seed(0)
    acc = Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=0, k=1, window=50)).eval()
    with torch.no_grad():
        acc.heads.weight.mul_(1e3)  # sharp logits: the Gumbel draw is the argmax
    a = _aligned(batch=2, frames=40)
    out = own_history(acc, a, 1.0, seed=0, step=0)
    with torch.no_grad():
        greedy = acc(a.input_codes, a.input_pad_mask, a.output_tokens).argmax(-1) + CODE_OFFSET
    codes = a.output_tokens[..., 1:] >= CODE_OFFSET
    assert (out.output_tokens[..., 1:][codes] == greedy[..., :-1][codes]).float().mean() > 0.95


def test_history_noise_curriculum_falls_to_the_rate_at_half_the_steps():
    run = Run("t", "o", history_noise=0.3, history_noise_from=1.0)
    assert [round(history_noise_at(run, s, 1000), 3) for s in (0, 250, 500, 900)] == [1.0, 0.65, 0.3, 0.3]
    assert history_noise_at(Run("t", "o", history_noise=0.3), 0, 1000) == 0.3  # no curriculum: constant


def test_contrast_loss_is_the_hinge_of_own_against_rolled_input(codec):
    torch.manual_seed(0)
    acc = Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=0, k=1, window=50))
    with torch.no_grad():
        acc.gate.fill_(1.0)
    a = _aligned()
    both = with_rolled_inputs(a)
    sums, counts = batch_loss(acc, both, 1, None, per_window=True)
    own, own_n = batch_loss(acc, a, 1, None, per_window=True)
    rolled, rolled_n = batch_loss(acc, roll_inputs(a), 1, None, per_window=True)
    assert torch.allclose(sums, torch.cat([own, rolled]), atol=1e-4) and torch.equal(counts, torch.cat([own_n, rolled_n]))
    gap = 0.1 + own / own_n - rolled / rolled_n
    expected = (torch.relu(gap) * own_n).sum()
    assert torch.allclose(contrast_loss(sums, counts, 0.1), expected, atol=1e-4)
    # a huge margin makes every window count; a hugely negative one none
    assert torch.allclose(contrast_loss(sums, counts, 100.0), ((100 + own / own_n - rolled / rolled_n) * own_n).sum(),
                          rtol=1e-5)


def test_input_dropout_drops_whole_windows_at_the_rate(codec):
    drops = torch.stack([drop_inputs(8, 0.25, seed=3, step=s, device=torch.device("cpu")) for s in range(400)])
    assert drops.dtype == torch.bool and 0.22 < drops.float().mean().item() < 0.28
    assert torch.equal(drop_inputs(8, 0.25, 3, 7, torch.device("cpu")), drops[7])  # from (seed, step): resumable
    assert drop_inputs(8, 0.0, 3, 7, torch.device("cpu")) is None
    with pytest.raises(ConfigError):
        drop_inputs(8, 1.0, 3, 7, torch.device("cpu"))
    # a dropped window's loss does not depend on its input; a kept one's does
    torch.manual_seed(0)
    acc = Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=0, k=1, window=50))
    with torch.no_grad():
        acc.gate.fill_(1.0)
    a = _aligned()
    dropped = torch.tensor([True] + [False] * (a.input_codes.shape[0] - 1))
    own, _ = batch_loss(acc, a, 1, None, per_window=True, dropped=dropped)
    other, _ = batch_loss(acc, roll_inputs(a), 1, None, per_window=True, dropped=dropped)
    assert torch.allclose(own[0], other[0], atol=1e-5) and not torch.allclose(own[1:], other[1:], atol=1e-3)
    plain, _ = batch_loss(acc, a, 1, None, per_window=True)
    assert torch.allclose(plain[1:], own[1:], atol=1e-5)
    # on a prefix chunk (k > 1) the chunk's own input mask still applies to the kept windows
    k_own, _ = batch_loss(acc, a, 4, 20, per_window=True, dropped=dropped)
    k_plain, _ = batch_loss(acc, a, 4, 20, per_window=True)
    assert torch.allclose(k_own[1:], k_plain[1:], atol=1e-5)


def test_a_padded_window_reads_the_no_input_embedding_not_nothing(codec):
    """``null_input`` "pad": a dropped window's input positions all read PAD, the others are untouched. At
    initialisation (output gate 0) a window with no input term fuses to exactly zero at every position, the
    stall the "pad" default avoids; with PAD it carries the learned no-input vector."""
    torch.manual_seed(0)
    acc = Accompanist(DEBUG.model, codec.codebook_tables(4), StreamSpec(tf=0, k=1, window=50))
    a = _aligned()
    dropped = torch.tensor([True] + [False] * (a.input_codes.shape[0] - 1))
    padded = padded_inputs(a, dropped)
    assert padded.input_pad_mask[0].all() and torch.equal(padded.input_pad_mask[1:], a.input_pad_mask[1:])
    assert torch.equal(padded.input_codes, a.input_codes) and torch.equal(padded.targets, a.targets)
    with torch.no_grad():
        zero = acc.embed(a.input_codes, a.input_pad_mask, a.output_tokens, ~dropped[:, None])
        pad = acc.embed(padded.input_codes, padded.input_pad_mask, padded.output_tokens)
    assert acc.gate.abs().max() == 0.0 and zero[0].abs().max() == 0.0
    assert (pad[0].norm(dim=-1) > 1.0).all() and torch.equal(pad[1:], zero[1:])
    with pytest.raises(ConfigError, match="null_input"):
        check_levers(Run(tokens="t", out="o", input_dropout=0.2, null_input="nothing"))


def test_levers_train_and_resume_exactly(tmp_path, codec):
    tokens = fake_cache(tmp_path / "tok")
    levers = dict(history_noise=0.3, contrast_weight=0.5, contrast_margin=0.2, input_dropout=0.5, own_history=0.5,
                  history_noise_from=0.9)
    whole = train(Run(tokens, str(tmp_path / "a"), tf=0, val_every=3, val_windows=4, **levers), PRESET,
                  codec=codec, device="cpu", progress=False)
    plain = train(Run(tokens, str(tmp_path / "p"), tf=0, val_every=3, val_windows=4), PRESET,
                  codec=codec, device="cpu", progress=False)
    assert [r["train_loss"] for r in whole["history"]] != [r["train_loss"] for r in plain["history"]]
    part = Run(tokens, str(tmp_path / "b"), tf=0, val_every=3, val_windows=4, **levers)
    resumed = resumed_after_a_crash(part, codec, at_step=3)
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in whole["history"]]
    # another lever value is another run: refused on resume
    with pytest.raises(Exception, match="another run"):
        train(dataclasses.replace(part, history_noise=0.1), PRESET, codec=codec, device="cpu", progress=False)


@pytest.mark.parametrize("bad", [dict(history_noise=1.0), dict(history_noise=-0.1), dict(history_noise_from=1.2),
                                 dict(own_history=1.5),
                                 dict(contrast_weight=-1.0),
                                 dict(contrast_margin=-0.5), dict(input_dropout=1.0), dict(input_dropout=-0.2)])
def test_bad_levers_are_refused(tmp_path, codec, bad):
    with pytest.raises(ConfigError):
        train(Run(fake_cache(tmp_path / "tok"), str(tmp_path / "x"), tf=0, **bad), PRESET, codec=codec,
              device="cpu", progress=False)



def test_the_train_command_stops_with_one_line(tmp_path, monkeypatch, capsys):
    """Ctrl-C or a scheduler's SIGTERM (train() turns both into KeyboardInterrupt after saving): the CLI
    says where the state is and exits 130, without a traceback."""
    import streamlib.train as train_module
    from streamlib.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(train_module, "train", interrupted)
    assert main(["train", "--out", str(tmp_path / "run"), "--steps", "5"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == (f"stopped: the state is saved in {tmp_path / 'run'}/train_state.pt; "
                           "run the same command to resume")
