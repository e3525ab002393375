"""Solutions to ``book/exercises/04_delay_pattern.ipynb`` (chapter 4, "The delay pattern":
``streamlib.tokens.delay``)."""

from __future__ import annotations

import torch

from streamlib.solutions import Exercise, close, same_function


def apply_delay(codes: torch.Tensor, bos: int) -> torch.Tensor:
    """04.3: [B, Q, T] -> [B, Q, T + 1]; step s of level q holds frame s - 1 - q, else ``bos`` (a plain loop)."""
    b, q_levels, t = codes.shape
    seq = torch.full((b, q_levels, t + 1), bos, dtype=codes.dtype)
    for q in range(q_levels):
        for s in range(t + 1):
            f = s - 1 - q
            if 0 <= f < t:
                seq[:, q, s] = codes[:, q, f]
    return seq


def revert_delay(seq: torch.Tensor, fill: int = -1) -> torch.Tensor:
    """04.4: [B, Q, S] -> [B, Q, S - 1]: frame f of level q is step f + 1 + q (``fill`` past the end)."""
    b, q_levels, s = seq.shape
    out = torch.full((b, q_levels, s - 1), fill, dtype=seq.dtype)
    for q in range(q_levels):
        for f in range(s - 1):
            if f + 1 + q < s:
                out[:, q, f] = seq[:, q, f + 1 + q]
    return out


def ex1() -> float:
    # Q levels: the finest is Q - 1 frames late; 10 levels -> 9 frames = 0.18 s
    return 9 / 50


def ex2() -> int:
    # level q has T - q valid frames: 4 * 500 - (0 + 1 + 2 + 3)
    return 4 * 500 - 6


def _expected1() -> float:
    from streamlib.tokens.delay import added_latency_frames

    return added_latency_frames(10) / 50


def _expected2() -> int:
    from streamlib.tokens.delay import valid_mask

    return int(valid_mask(4, 500).sum())


def _codes():
    g = torch.Generator().manual_seed(0)
    for b, q, t in ((1, 1, 1), (1, 4, 3), (2, 4, 10), (1, 8, 5), (3, 2, 7)):
        yield torch.randint(0, 1024, (b, q, t), generator=g), 2048


def _seqs():
    for codes, bos in _codes():
        from streamlib.tokens.delay import apply_delay as lib

        yield lib(codes, bos), -1


def _lib_apply(codes, bos):
    from streamlib.tokens.delay import apply_delay as lib

    return lib(codes, bos)


def _lib_revert(seq, fill):
    from streamlib.tokens.delay import revert_delay as lib

    return lib(seq, fill)


EXERCISES = [
    Exercise("04.1", "explore", "the delay of ten levels, in seconds", ex1, _expected1, close()),
    Exercise("04.2", "compute", "valid entries of a 4 x 500 window", ex2, _expected2),
    Exercise("04.3", "implement", "apply_delay as a loop", lambda: apply_delay, lambda: _lib_apply,
             same_function(_codes)),
    Exercise("04.4", "implement", "revert_delay as a loop", lambda: revert_delay, lambda: _lib_revert,
             same_function(_seqs)),
]
