"""The accompanist: causality by perturbation, KV cache == full pass, greedy generation is
consistent with teacher forcing, the k > 1 chunk rule, checkpoint round trip and mismatches."""

from __future__ import annotations

import pytest
import torch

from streamlib.checkpoint import CheckpointError
from streamlib.codec import CausalCodec
from streamlib.config import ConfigError, StreamSpec, get_preset
from streamlib.model import Accompanist, load_accompanist, save_accompanist
from streamlib.model.accompanist import null_input_of
from streamlib.tokens.categories import CODE_OFFSET
from streamlib.tokens.visibility import align, chunk_masks, last_visible_input, predicting_position

PRESET = get_preset("debug")
SIZE = PRESET.codec.codebook_size


@pytest.fixture(scope="module")
def tables():
    torch.manual_seed(0)
    return CausalCodec(PRESET.codec).codebook_tables(PRESET.model.n_q)


def make(tables, tf: int, k: int = 1, seed: int = 0) -> Accompanist:
    torch.manual_seed(seed)
    acc = Accompanist(PRESET.model, tables, StreamSpec(tf=tf, k=k, window=60)).eval()
    with torch.no_grad():
        acc.gate.fill_(1.0)  # trained models have g != 0; at g = 0 the outputs would be ignored
    return acc


def codes(t: int, seed: int) -> torch.Tensor:
    return torch.randint(0, SIZE, (1, 4, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tf", [-5, -1, 0, 1, 3])
def test_causality_by_perturbation(tables, tf):
    acc, t = make(tables, tf), 32
    x, y = codes(t, 1), codes(t, 2)
    base = acc(*_streams(align(x, y, 2, tf)))
    for changed in (8, 20):
        x2 = x.clone()
        x2[..., changed:] = (x2[..., changed:] + 1) % SIZE
        logits = acc(*_streams(align(x2, y, 2, tf)))
        moved = (logits - base).abs().amax(dim=-1)[0] > 0  # [Q, L]
        for q in range(4):
            for f in range(t):
                pos = predicting_position(f, q, tf)
                if pos >= moved.shape[1]:
                    continue
                sees_change = last_visible_input(f, q, tf) >= changed
                assert bool(moved[q, pos]) == sees_change, (q, f, pos)


def _streams(a):
    return a.input_codes, a.input_pad_mask, a.output_tokens


def test_kv_cache_equals_full_pass(tables):
    acc, t = make(tables, 0), 24
    a = align(codes(t, 3), codes(t, 4), 5, 0)
    full = acc(*_streams(a))
    cache = acc.backbone.new_cache()
    parts = []
    for lo, hi in ((0, 5), (5, 6), (6, 15), (15, 24)):  # uneven chunks, as a streaming loop feeds them
        parts.append(acc(a.input_codes[..., lo:hi], a.input_pad_mask[..., lo:hi], a.output_tokens[..., lo:hi], cache=cache))
    assert torch.allclose(torch.cat(parts, dim=2), full, atol=1e-5)


def test_an_explicit_layout_equals_the_causal_pass_and_is_checked(tables):
    """``positions`` and ``attention`` (the all-chunks layout of chapter 7) reproduce the causal pass when they
    say the same thing, and are refused with a cache or in the wrong shape."""
    acc, t = make(tables, 0), 16
    a = align(codes(t, 3), codes(t, 4), 5, 0)
    full = acc(*_streams(a))
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    assert torch.allclose(acc(*_streams(a), positions=torch.arange(t), attention=causal), full, atol=1e-5)
    shifted = acc(*_streams(a), positions=torch.arange(t) + 3, attention=causal)
    assert torch.allclose(shifted, full, atol=1e-4)  # rotary positions are relative: an offset changes nothing
    spread = acc(*_streams(a), positions=2 * torch.arange(t), attention=causal)
    assert not torch.allclose(spread, full, atol=1e-3)  # but the distances between them are read
    with pytest.raises(ConfigError, match="without a KV cache"):
        acc(*_streams(a), cache=acc.backbone.new_cache(), attention=causal)
    with pytest.raises(ConfigError, match="attention must be"):
        acc(*_streams(a), positions=torch.arange(t), attention=causal[:-1])


def test_kv_cache_truncate_and_slide(tables):
    acc = make(tables, 0)
    a = align(codes(20, 5), codes(20, 6), 1, 0)
    cache = acc.backbone.new_cache()
    first = acc(*_streams(a), cache=cache)
    cache.truncate(12)
    again = acc(a.input_codes[..., 12:], a.input_pad_mask[..., 12:], a.output_tokens[..., 12:], cache=cache)
    assert torch.allclose(again, first[:, :, 12:], atol=1e-5)
    small = acc.backbone.new_cache()
    small.max_positions = 8
    acc(*_streams(a), cache=small)
    assert small.length == 8 and small.next_position == 20 and small.dropped == 12


@pytest.mark.parametrize("tf", [-4, 0, 2])
def test_greedy_generation_matches_teacher_forcing(tables, tf):
    """Greedy (top-k 1) decoding with the cache is a fixed point of the full teacher-forced pass."""
    acc, t = make(tables, tf), 16
    x = codes(t + 8, 7)
    gen = acc.generator(4, top_k=1)
    gen.feed_input(x[0])
    out = torch.cat([gen.generate(5), gen.generate(1), gen.generate(10)], dim=1)
    assert out.shape == (4, t)
    a = align(x[..., :t], out[None], 4, tf)
    logits = acc(*_streams(a))
    pred = logits.argmax(-1) + CODE_OFFSET
    assert torch.equal(pred[a.loss_mask], a.targets[a.loss_mask])


@pytest.mark.parametrize("null_input", ["pad", "zero"])
def test_guided_greedy_decoding_matches_the_guided_teacher_forced_pass(tables, null_input):
    """Classifier-free guidance: greedy decoding picks argmax of log p(y) + s (log p(y | x) - log p(y)),
    with log p(y) from the pass without the input, read as the model was trained to read it (its card's
    ``null_input``: the learned PAD embedding everywhere, or no input term); at s = 0 the input no longer matters."""
    acc, t, s = make(tables, 0), 16, 2.5
    acc.card = {"run": {"input_dropout": 0.2, "null_input": null_input}}
    x = codes(t + 8, 11)
    gen = acc.generator(3, top_k=1, guidance=s)
    gen.feed_input(x[0])
    out = torch.cat([gen.generate(4), gen.generate(12)], dim=1)
    a = align(x[..., :t], out[None], 3, 0)
    cond = acc(*_streams(a)).log_softmax(-1)
    if null_input == "pad":
        free = acc(a.input_codes, torch.ones_like(a.input_pad_mask), a.output_tokens).log_softmax(-1)
    else:
        free = acc(*_streams(a), input_keep=torch.zeros(a.length, dtype=torch.bool)).log_softmax(-1)
    pred = (free + s * (cond - free)).argmax(-1) + CODE_OFFSET
    assert torch.equal(pred[a.loss_mask], a.targets[a.loss_mask])
    plain = acc.generator(3, top_k=1)
    plain.feed_input(x[0])
    assert not torch.equal(plain.generate(t), out)  # guidance changed the choice somewhere
    runs = []
    for seed in (11, 12):  # another input, the same output at s = 0
        g = acc.generator(3, top_k=1, guidance=0.0)
        g.feed_input(codes(t + 8, seed)[0])
        runs.append(g.generate(t))
    assert torch.equal(runs[0], runs[1])


def test_null_input_comes_from_the_card(tables):
    acc = make(tables, 0)
    assert null_input_of(acc) == "pad"  # made in this process: the training default
    acc.card = {"run": {"input_dropout": 0.2}}
    assert null_input_of(acc) == "zero"  # a card from before the choice existed
    acc.card = {"run": {"input_dropout": 0.2, "null_input": "pad"}}
    assert null_input_of(acc) == "pad"


def test_a_model_trained_with_input_dropout_plays_guided_by_default(tables):
    """``guidance=None`` is the model's own default: ``DEFAULT_GUIDANCE`` after input dropout, else none; a
    model trained on one target plays it unless told otherwise (``default_category``)."""
    from streamlib.model.accompanist import DEFAULT_GUIDANCE, default_guidance, trained_targets
    from streamlib.stream import default_category, parse_category

    acc = make(tables, 0)
    assert default_guidance(acc) == 1.0 and acc.generator(0, guidance=None).guidance == 1.0  # no card
    acc.card = {"run": {"input_dropout": 0.2, "targets": [4]}}
    assert default_guidance(acc) == DEFAULT_GUIDANCE == acc.generator(0, guidance=None).guidance
    assert acc.generator(0, guidance=None, fast=True, compile=False).guidance == DEFAULT_GUIDANCE
    assert acc.generator(0).guidance == 1.0  # the library's default stays plain sampling
    assert trained_targets(acc) == [4] and default_category(acc) == 4
    acc.card = {"run": {"input_dropout": 0.0, "targets": None}}
    assert default_guidance(acc) == 1.0 and default_category(acc) == parse_category("Piano")


def test_guidance_options_are_checked(tables):
    acc = make(tables, 0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            acc.generator(0, guidance=bad)
        with pytest.raises(ConfigError):
            acc.generator(0, guidance=bad, fast=True, compile=False)


def test_generator_never_needs_unseen_input(tables):
    """A k > 1 chunk fed with input up to t + t_f + D gives the same codes as one fed everything,
    once its chunk positions are re-fed: the generator refreshes them when the input arrives."""
    tf, k = -3, 4
    acc, t = make(tables, tf, k), 12
    x = codes(t + 10, 8)
    torch.manual_seed(1)
    gen = acc.generator(2, top_k=1)
    chunks = []
    for start in range(0, t, k):
        gen.feed_input(x[0, :, gen.n_input : max(start + tf + 3, 0)])
        chunks.append(gen.generate(k))
    assert gen.n_input == t - k + tf + 3
    out = torch.cat(chunks, dim=1)
    a = align(x[..., :t], out[None], 2, tf)
    # the first token of every chunk saw its input; later ones saw no input term (training's chunk rule)
    for prefix in range(3, t, k):
        keep, mask = chunk_masks(a, prefix, k)
        logits = acc(*_streams(a), input_keep=keep)
        pred = logits.argmax(-1) + CODE_OFFSET
        first = torch.zeros_like(mask)
        first[..., prefix] = mask[..., prefix]
        assert torch.equal(pred[first], a.targets[first])


def test_prompt_forces_and_continues(tables):
    acc = make(tables, -2)
    truth = codes(6, 9)[0]
    gen = acc.generator(0, top_k=1)
    gen.feed_input(codes(30, 10)[0])
    gen.feed_output(truth)
    nxt = gen.generate(3)
    assert nxt.shape == (4, 3) and gen.n_output == 9
    assert torch.equal(gen.steps[:, 1:7][0] - CODE_OFFSET, truth[0])


def test_fusion_gate_starts_closed(tables):
    acc = Accompanist(PRESET.model, tables, StreamSpec(tf=0, k=1, window=60)).eval()
    assert acc.gate.shape == (PRESET.model.d_model,) and not acc.gate.detach().any()
    a = align(codes(10, 1), codes(10, 2), 0, 0)
    b = align(codes(10, 1), codes(10, 3), 0, 0)  # other outputs, same input
    assert torch.allclose(acc(*_streams(a)), acc(*_streams(b)))  # g = 0: output tokens not used yet


def test_round_trip_and_mismatch(tables, tmp_path):
    acc = make(tables, -2, 2)
    path = tmp_path / "m.safetensors"
    save_accompanist(path, acc, {"note": "test"})
    back = load_accompanist(path)
    assert back.spec == acc.spec and back.cfg == acc.cfg
    for key, value in acc.state_dict().items():
        assert torch.equal(value, back.state_dict()[key])
    other = CausalCodec(PRESET.codec)  # another (random) codec
    with pytest.raises(CheckpointError, match="another codec"):
        back.check_codec(other)
    card = path.with_suffix(".json")
    card.write_text(card.read_text().replace('"d_model": 32', '"d_model": 48'))
    with pytest.raises(CheckpointError, match="does not match"):
        load_accompanist(path)
    with pytest.raises(CheckpointError):
        load_accompanist(tmp_path / "missing.safetensors")


def test_bad_config(tables):
    with pytest.raises(ConfigError):
        Accompanist(PRESET.model, tables, None)
    with pytest.raises(ConfigError):
        Accompanist(PRESET.model, tables[:2], StreamSpec(tf=0, k=1, window=10))
    with pytest.raises(ConfigError):
        make(tables, 0).generator(0, temperature=0)


def make_present(tables, tf: int, k: int = 1) -> Accompanist:
    import dataclasses

    torch.manual_seed(0)
    cfg = dataclasses.replace(PRESET.model, present_input=True)
    acc = Accompanist(cfg, tables, StreamSpec(tf=tf, k=k, window=60)).eval()
    with torch.no_grad():
        acc.gate.fill_(1.0)
    return acc


@pytest.mark.parametrize("tf", [1, 3])
def test_the_present_input_reads_the_frame_sounding_with_the_prediction(tables, tf):
    """Position j reads input frame j (the newest, t_f ahead) and, with ``present_input``, frame j - t_f: a change
    to one input frame moves the embedding at exactly those two positions, and visibility holds as before."""
    acc, t = make_present(tables, tf), 24
    x, y = codes(t, 1), codes(t, 2)
    a = align(x, y, 2, tf)
    x2 = x.clone()
    x2[..., 10] = (x2[..., 10] + 1) % SIZE
    b = align(x2, y, 2, tf)
    moved = (acc.embed(*_streams(b), present=acc.present_of(b.input_codes, b.input_pad_mask))
             - acc.embed(*_streams(a), present=acc.present_of(a.input_codes, a.input_pad_mask))).abs().amax(-1)[0] > 0
    assert moved.nonzero()[:, 0].tolist() == [10, 10 + tf]
    base = acc(*_streams(a))
    for changed in (8, 20):  # the causality rule of the plain model still holds
        x3 = x.clone()
        x3[..., changed:] = (x3[..., changed:] + 1) % SIZE
        moved = ((acc(*_streams(align(x3, y, 2, tf))) - base).abs().amax(dim=-1)[0] > 0)
        for q in range(4):
            for f in range(t):
                pos = predicting_position(f, q, tf)
                if pos < moved.shape[1]:
                    assert bool(moved[q, pos]) == (last_visible_input(f, q, tf) >= changed), (q, f, pos)


def test_greedy_generation_with_the_present_input_matches_teacher_forcing(tables):
    acc, t = make_present(tables, 3), 16
    x = codes(t + 8, 7)
    gen = acc.generator(4, top_k=1)
    gen.feed_input(x[0])
    out = torch.cat([gen.generate(5), gen.generate(11)], dim=1)
    a = align(x[..., :t], out[None], 4, 3)
    pred = acc(*_streams(a)).argmax(-1) + CODE_OFFSET
    assert torch.equal(pred[a.loss_mask], a.targets[a.loss_mask])
    plain = make(tables, 3).generator(4, top_k=1)
    plain.feed_input(x[0])
    assert not torch.equal(plain.generate(t), out)  # the present term changes what is played


def test_the_present_input_is_for_lookahead_models(tables):
    import dataclasses

    cfg = dataclasses.replace(PRESET.model, present_input=True)
    for spec in (StreamSpec(tf=0, k=1, window=60), StreamSpec(tf=-5, k=1, window=60)):
        with pytest.raises(ConfigError, match="t_f >= 1"):
            Accompanist(cfg, tables, spec)
    with pytest.raises(ConfigError, match="t_f >= 1"):
        Accompanist(cfg, tables, offline=True)
    acc = make_present(tables, 2)
    a = align(codes(8, 1), codes(8, 2), 0, 2)
    with pytest.raises(ConfigError, match="pass present"):
        acc.embed(*_streams(a))


@pytest.mark.parametrize("tf", [2, 3])
def test_k_chunks_with_the_present_input_are_the_training_layout(tables, tf):
    """k > 1 with the present input: every token the generator plays (greedy, input fed chunk by chunk) is the
    argmax of the all-chunks training layout at its position. Inside a chunk the newest input is missing and the
    present frame is read alone where it had arrived by the chunk's start (at t_f = 2 a chunk's last position
    has neither)."""
    from streamlib.tokens.visibility import all_chunks
    from streamlib.train import chunk_present

    k = 4
    acc, t = make_present(tables, tf, k), 16
    x = codes(t + 10, 8)
    gen = acc.generator(2, top_k=1)
    chunks = []
    for start in range(0, t, k):
        gen.feed_input(x[0, :, gen.n_input : max(start + tf + 3, 0)])
        chunks.append(gen.generate(k))
    a = align(x[..., :t], torch.cat(chunks, dim=1)[None], 2, tf)
    first = tf + 2  # the first chunk's prefix: positions before it were fed with their input
    lay = all_chunks(a, k, first % k)
    present_codes, (with_input, in_chunk) = chunk_present(acc, a, lay.starts)
    assert in_chunk.sum() > with_input.sum() if tf == 2 else torch.equal(in_chunk, with_input)
    present = (torch.cat([present_codes] * 2, dim=-1), torch.cat([with_input, in_chunk], dim=-1))
    pred = acc(*_streams(lay.aligned), lay.input_keep, present=present, positions=lay.positions,
               attention=lay.attention).argmax(-1) + CODE_OFFSET
    mask, n = lay.aligned.loss_mask.clone(), a.length
    mask[..., :first] = False
    mask[..., n : n + first] = False
    assert int(mask.sum()) > 30 and torch.equal(pred[mask], lay.aligned.targets[mask])
