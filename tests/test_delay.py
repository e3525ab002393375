"""Delay pattern: build / revert / logits-revert against a plain-loop reference."""

import pytest
import torch

from streamlib.tokens.categories import code_to_token, instrument_token
from streamlib.tokens.delay import (
    DelayPatternError,
    added_latency_frames,
    apply_delay,
    code_step_mask,
    complete_frames,
    revert_delay,
    revert_logits,
    valid_mask,
)

N_Q = [1, 4, 8]
T = [1, 3, 16, 72]
BOS = [instrument_token(0), instrument_token(14), 0, -5]


def ref_apply(codes, bos):
    b, q_levels, t = codes.shape
    seq = torch.empty(b, q_levels, t + 1, dtype=codes.dtype)
    for i in range(b):
        for q in range(q_levels):
            for s in range(t + 1):
                f = s - 1 - q
                seq[i, q, s] = codes[i, q, f] if 0 <= f < t else bos
    return seq


def ref_revert(seq, fill):
    b, q_levels, s_len = seq.shape
    out = torch.empty(b, q_levels, s_len - 1, dtype=seq.dtype)
    for i in range(b):
        for q in range(q_levels):
            for f in range(s_len - 1):
                s = f + 1 + q
                out[i, q, f] = seq[i, q, s] if s < s_len else fill
    return out


def ref_revert_logits(logits):
    b, q_levels, s_len, v = logits.shape
    out = torch.full((b, q_levels, s_len - 1, v), float("nan"))
    for i in range(b):
        for q in range(q_levels):
            for f in range(s_len - 1):
                step = f + 1 + q  # the step holding frame f of level q ...
                pos = step - 1  # ... is predicted at the position before it
                if step < s_len:
                    out[i, q, f] = logits[i, q, pos]
    return out


def codes_for(n_q, t, seed=0, batch=2):
    g = torch.Generator().manual_seed(seed + 97 * n_q + t)
    return code_to_token(torch.randint(0, 64, (batch, n_q, t), generator=g))


@pytest.mark.parametrize("n_q", N_Q)
@pytest.mark.parametrize("t", T)
@pytest.mark.parametrize("bos", BOS)
def test_apply_matches_reference(n_q, t, bos):
    codes = codes_for(n_q, t)
    seq = apply_delay(codes, bos)
    assert seq.shape == (2, n_q, t + 1)  # layout length T + 1
    assert torch.equal(seq, ref_apply(codes, bos))


@pytest.mark.parametrize("n_q", N_Q)
@pytest.mark.parametrize("t", T)
@pytest.mark.parametrize("fill", [-1, 0])
def test_revert_matches_reference_and_inverts_on_valid(n_q, t, fill):
    codes = codes_for(n_q, t, seed=1)
    seq = apply_delay(codes, instrument_token(3))
    back = revert_delay(seq, fill=fill)
    assert torch.equal(back, ref_revert(seq, fill))
    mask = valid_mask(n_q, t)
    assert torch.equal(back[:, mask], codes[:, mask])
    assert (back[:, ~mask] == fill).all()


@pytest.mark.parametrize("n_q", N_Q)
@pytest.mark.parametrize("s_len", [2, 5, 20])
def test_revert_any_length_matches_reference(n_q, s_len):
    seq = torch.randint(0, 100, (3, n_q, s_len))
    assert torch.equal(revert_delay(seq), ref_revert(seq, -1))


@pytest.mark.parametrize("n_q", N_Q)
@pytest.mark.parametrize("t", [1, 3, 16])
def test_revert_logits_matches_reference(n_q, t):
    logits = torch.randn(2, n_q, t + 1, 7)
    out = revert_logits(logits)
    assert out.shape == (2, n_q, t, 7)
    ref = ref_revert_logits(logits)
    assert torch.equal(torch.isnan(out), torch.isnan(ref))
    assert torch.equal(torch.nan_to_num(out), torch.nan_to_num(ref))
    assert torch.isnan(out[:, ~valid_mask(n_q, t)]).all()
    assert not torch.isnan(out[:, valid_mask(n_q, t)]).any()


@pytest.mark.parametrize("n_q", [1, 4])
def test_logits_revert_gives_the_same_loss_as_next_step_prediction(n_q):
    """Loss in frame space (reverted) == loss in step space (position s vs step s+1, code steps)."""
    t, v = 12, 90
    seq = apply_delay(codes_for(n_q, t, seed=5, batch=1), instrument_token(2))
    logits = torch.randn(1, n_q, t + 1, v)
    mask = valid_mask(n_q, t)
    frame_loss = torch.nn.functional.cross_entropy(revert_logits(logits)[0][mask], revert_delay(seq)[0][mask])
    step_mask = code_step_mask(n_q, t + 1)[:, 1:]
    step_loss = torch.nn.functional.cross_entropy(logits[0, :, :-1][step_mask], seq[0, :, 1:][step_mask])
    assert torch.allclose(frame_loss, step_loss)


def test_an_oracle_model_predicts_the_next_step():
    """A one-hot 'model' that puts mass on seq[s+1] at position s is exactly right after revert."""
    n_q, t, v = 4, 10, 100
    seq = apply_delay(codes_for(n_q, t, seed=2, batch=1), instrument_token(0))
    logits = torch.full((1, n_q, t + 1, v), -1e4)
    for s in range(t):
        logits[0, torch.arange(n_q), s, seq[0, :, s + 1]] = 0.0
    pred = revert_logits(logits).argmax(-1)
    mask = valid_mask(n_q, t)
    assert torch.equal(pred[:, mask], revert_delay(seq)[:, mask])


def test_valid_mask_counts_and_helpers():
    m = valid_mask(4, 10)
    assert m.sum(1).tolist() == [10, 9, 8, 7]
    assert complete_frames(n_steps=11, n_q=4) == 7 == int(m.all(0).sum())
    assert added_latency_frames(4) == 3  # (N_q - 1) frames = 0.06 s at 50 Hz
    assert code_step_mask(3, 4).int().tolist() == [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(4, 5, dtype=torch.long), torch.zeros(1, 2, 3, 4, dtype=torch.long), torch.zeros(1, 2, 3),
     torch.zeros(1, 0, 3, dtype=torch.long), torch.zeros(1, 2, 0, dtype=torch.long), [[1, 2]]],
)
def test_apply_rejects_wrong_shapes_and_types(bad):
    with pytest.raises(DelayPatternError):
        apply_delay(bad, 1)


def test_other_wrong_inputs_raise():
    with pytest.raises(DelayPatternError):
        apply_delay(torch.zeros(1, 2, 3, dtype=torch.long), bos=1.5)
    with pytest.raises(DelayPatternError):
        revert_delay(torch.zeros(1, 2, 1, dtype=torch.long))  # no frame to revert
    with pytest.raises(DelayPatternError):
        revert_logits(torch.zeros(1, 2, 5))  # missing vocabulary axis
    with pytest.raises(DelayPatternError):
        revert_logits(torch.zeros(1, 2, 5, 3, dtype=torch.long))
    with pytest.raises(DelayPatternError):
        valid_mask(0, 5)


def test_grid_figures_show_the_layout():
    from streamlib.tokens.figures import delay_grid_figure

    z = delay_grid_figure(n_q=3, n_frames=4).data[1].z
    for q in range(3):
        for s in range(5):
            f = s - 1 - q
            assert z[q][s] == (f if f >= 0 else None)
    flat = delay_grid_figure(n_q=3, n_frames=4, layout="flat").data[1].z
    assert len(flat[0]) == 12 and flat[2][3 * 1 + 2] == 1
    with pytest.raises(ValueError):
        delay_grid_figure(layout="spiral")
