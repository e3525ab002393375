"""Future visibility: the rule f + q + tf - 1 holds in the aligned streams for every tf in [-T, T]."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlib.tokens.categories import PAD, N_SPECIAL, TARGET_CATEGORIES, instrument_token, token_to_code
from streamlib.tokens.visibility import (
    AlignmentError,
    align,
    align_offline_prefix,
    input_frame_at,
    input_frames_needed,
    input_offset,
    last_visible_input,
    output_offset,
    output_step_at,
    predicted_frames,
    predicting_position,
    visibility_matrix,
)


def marked_streams(n_q, t, batch=1):
    """Input code = its frame index; output code at (q, f) = 100*q + f, so every token names its frame."""
    x = torch.arange(t).repeat(batch, 2, 1)
    y = (torch.arange(n_q)[:, None] * 100 + torch.arange(t)[None, :]).repeat(batch, 1, 1)
    return x, y


def visible_inputs(a, j):
    """Input frame indices present at positions 0..j (read from the aligned input stream)."""
    codes, pad = a.input_codes[0, 0, : j + 1], a.input_pad_mask[0, : j + 1]
    return codes[~pad].tolist()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_visibility_rule_holds_in_the_streams(data):
    t = data.draw(st.integers(1, 12), label="T")
    n_q = data.draw(st.integers(1, 4), label="n_q")
    tf = data.draw(st.integers(-t, t), label="tf")
    check_rule(t, n_q, tf)


@pytest.mark.parametrize("t, n_q", [(1, 1), (5, 3), (9, 4)])
def test_visibility_rule_for_every_tf_exhaustively(t, n_q):
    for tf in range(-t, t + 1):
        check_rule(t, n_q, tf)


def check_rule(t, n_q, tf):
    x, y = marked_streams(n_q, t)
    a = align(x, y, 3, tf)
    assert a.output_tokens.shape == a.targets.shape == (1, n_q, t) and a.input_codes.shape == (1, 2, t)
    seen_targets = set()
    for q in range(n_q):
        for j in range(t):
            if not a.loss_mask[0, q, j]:
                assert a.targets[0, q, j] < N_SPECIAL and a.target_frames[q, j] == -1
                continue
            code = token_to_code(int(a.targets[0, q, j]))
            assert code // 100 == q
            f = code % 100
            assert a.target_frames[q, j] == f and predicting_position(f, q, tf) == j
            seen_targets.add((q, f))
            vis = visible_inputs(a, j)
            # the visible input frames are exactly 0..last_visible (clipped to the window)
            assert vis == list(range(min(last_visible_input(f, q, tf), t - 1) + 1))
            # the model never sees its own target: fed output tokens of level q hold earlier frames only
            fed = a.output_tokens[0, q, : j + 1]
            fed_codes = fed[fed >= N_SPECIAL] - N_SPECIAL
            assert bool((fed_codes % 100 < f).all())
    # every trained (level, frame) is trained once, and those are exactly the ones that fit the window
    expected = {(q, f) for q in range(n_q) for f in range(t) if predicting_position(f, q, tf) <= t - 1}
    assert seen_targets == expected


@settings(max_examples=30, deadline=None)
@given(t=st.integers(2, 10), tf_frac=st.floats(-1, 1), n_q=st.integers(1, 3))
def test_visibility_by_perturbation(t, tf_frac, n_q):
    """A causal toy model (prefix sums of the fused input): changing input frame i changes the
    prediction for (f, q) exactly when i <= f + q + tf - 1."""
    tf = round(tf_frac * t)
    x, y = marked_streams(n_q, t)
    base = align(x, y, 0, tf)

    def predictions(a):
        fused = torch.where(a.input_pad_mask[0], -1.0, a.input_codes[0, 0].double() * 1.0)
        return torch.cumsum(fused, 0)  # position j depends on inputs 0..j only

    before = predictions(base)
    for i in range(t):
        x2 = x.clone()
        x2[:, :, i] += 1000
        after = predictions(align(x2, y, 0, tf))
        for q in range(n_q):
            for j in range(t):
                f = int(base.target_frames[q, j])
                if f < 0:
                    continue
                changed = bool(after[j] != before[j])
                assert changed == (i <= last_visible_input(f, q, tf)), (i, f, q, tf)


@pytest.mark.parametrize("tf", [-7, -3, -1, 0])
def test_pad_rules_nonpositive_tf(tf):
    t = 10
    x, y = marked_streams(2, t)
    a = align(x, y, 5, tf)
    n_pad = 1 - tf
    assert a.input_pad_mask[0].tolist() == [True] * n_pad + [False] * (t - n_pad)
    assert a.input_codes[0, 0, n_pad:].tolist() == list(range(t - n_pad))  # end trimmed
    assert (a.input_codes[0, :, :n_pad] == 0).all()
    # output stream is not padded: it opens with the instrument token
    assert (a.output_tokens[0, :, 0] == instrument_token(5)).all()
    assert input_offset(tf) == n_pad and output_offset(tf) == 0


@pytest.mark.parametrize("tf", [1, 2, 5, 9])
def test_pad_rules_positive_tf(tf):
    t = 10
    x, y = marked_streams(2, t)
    a = align(x, y, 5, tf)
    n_pad = tf - 1
    assert not a.input_pad_mask.any() and a.input_codes[0, 0].tolist() == list(range(t))
    assert (a.output_tokens[0, :, :n_pad] == PAD).all()
    assert (a.output_tokens[0, :, n_pad] == instrument_token(5)).all()
    assert (a.targets[0, :, : max(n_pad - 1, 0)] == PAD).all()
    assert output_offset(tf) == n_pad and input_offset(tf) == 0


@pytest.mark.parametrize("cat", [0, 3, 14, 15])
def test_instrument_token_is_bos_and_fills_the_delay_triangle(cat):
    x, y = marked_streams(4, 8)
    a = align(x, y, cat, tf=0)
    tok = instrument_token(cat)
    for q in range(4):
        assert a.output_tokens[0, q, : q + 1].tolist() == [tok] * (q + 1)
        assert a.output_tokens[0, q, q + 1] >= N_SPECIAL
    assert not a.loss_mask[0][a.targets[0] == tok].any()


def test_per_example_categories():
    x, y = marked_streams(2, 6, batch=3)
    a = align(x, y, torch.tensor([0, 4, 13]), tf=-2)
    assert a.output_tokens[:, 0, 0].tolist() == [1, 5, 14]
    assert len(TARGET_CATEGORIES) == 16


def test_offline_prefix_layout_sees_everything():
    t = 6
    x, y = marked_streams(2, t)
    a = align_offline_prefix(x, y, 2)
    assert a.length == 2 * t
    assert a.input_pad_mask[0].tolist() == [False] * t + [True] * t
    assert (a.output_tokens[0, :, :t] == PAD).all() and (a.output_tokens[0, :, t] == instrument_token(2)).all()
    frames = a.target_frames
    for q in range(2):
        trained = frames[q][frames[q] >= 0].tolist()
        assert trained == list(range(t - q))
        for j in (frames[q] >= 0).nonzero().flatten().tolist():
            assert visible_inputs(a, j) == list(range(t))


def test_index_helpers_and_matrix():
    assert [input_frame_at(j, -2) for j in range(5)] == [-3, -2, -1, 0, 1]
    assert [output_step_at(j, 3) for j in range(4)] == [-2, -1, 0, 1]
    assert input_frames_needed(n_out_frames=10, n_q=4, tf=-5) == (10 - 1) + 3 - 5 - 1 + 1
    assert input_frames_needed(n_out_frames=1, n_q=1, tf=-10) == 0
    m = visibility_matrix(4, 6, tf=2)
    assert m.shape == (4, 6) and m.sum(1).tolist() == [2, 3, 4, 5]
    assert visibility_matrix(3, 3, tf=0).sum().item() == 0 + 1 + 2


@pytest.mark.parametrize("tf", [-7, -1, 0, 1, 2, 5, 9])
def test_predicted_frames_are_those_with_a_target_at_every_level(tf):
    n_q, t = 3, 12
    x, y = marked_streams(n_q, t)
    frames = align(x, y, 0, tf).target_frames
    every_level = set.intersection(*(set(frames[q][frames[q] >= 0].tolist()) for q in range(n_q)))
    assert every_level == set(range(predicted_frames(t, tf, n_q)))


def test_bad_inputs_raise():
    x, y = marked_streams(2, 5)
    with pytest.raises(AlignmentError):
        align(x[:, :, :4], y, 0, 0)
    with pytest.raises(AlignmentError):
        align(x.float(), y, 0, 0)
    with pytest.raises(AlignmentError):
        align(x, y, 0, 0.5)
    with pytest.raises(AlignmentError):
        align(x, y, torch.tensor([1, 2]), 0)
    with pytest.raises(ValueError):
        align(x, y, 18, 0)  # no such category


def test_bad_category_tensor_raises():
    x, y = marked_streams(2, 5, batch=2)
    with pytest.raises(AlignmentError):
        align(x, y, torch.tensor([0, 18]), 0)
    with pytest.raises(AlignmentError):
        align(x, y, torch.tensor([0.0, 1.0]), 0)


@pytest.mark.parametrize("tf", [-4, 0, 3])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_chunk_masks_limit_input_to_the_chunk_start(tf, k):
    from streamlib.tokens.visibility import chunk_masks

    t, n_q = 12, 3
    x, y = marked_streams(n_q, t)
    a = align(x, y, 0, tf)
    for prefix in range(0, t - k + 1, k):
        keep, loss = chunk_masks(a, prefix, k)
        assert keep.tolist() == [j <= prefix for j in range(t)]
        positions = loss[0].any(0).nonzero().flatten().tolist()
        assert all(prefix <= j < prefix + k for j in positions)
        assert (loss <= a.loss_mask).all()
        visible = a.input_codes[0, 0][keep & ~a.input_pad_mask[0]].tolist()
        start = prefix - output_offset(tf)  # first level-0 frame of the chunk
        assert visible == list(range(max(0, min(start + tf, t))))  # x(1 : start + tf), Eq. (1)
        if k == 1:  # one step: the per-frame rule
            for q in range(n_q):
                f = int(a.target_frames[q, prefix])
                if f >= 0:
                    assert max(visible, default=-1) == max(-1, min(last_visible_input(f, q, tf), t - 1))
    with pytest.raises(AlignmentError):
        chunk_masks(a, t, 1)


def test_figures_match_the_streams():
    from streamlib.tokens.figures import aligned_streams_figure, visibility_figure

    z = visibility_figure(n_frames=6, tf=-2, q=1).data[0].z
    assert [sum(row) for row in z] == [max(0, min(6, f + 1 - 2)) for f in range(6)]
    fig = aligned_streams_figure(n_frames=5, tf=-1, n_q=1)
    text = [[a or b for a, b in zip(r0, r1)] for r0, r1 in zip(fig.data[0].text, fig.data[1].text)]
    assert text[0] == ["PAD", "PAD", "0", "1", "2"] and text[1] == ["BOS", "0", "1", "2", "3"]
