"""The MusicGen delay pattern: Q parallel codebook levels in one autoregressive sequence.

Chapter 4 ("The delay pattern") teaches this module.

Level q is delayed by q steps, so one model step emits one token per level and the coarse level
of frame f is generated q steps before its level-q detail. Layout of ``apply_delay`` for codes
``[B, Q, T]`` -> sequence ``[B, Q, T+1]``: step s of level q holds frame ``s - 1 - q``; step 0 and
the triangle ``s <= q`` hold ``bos`` (the instrument token). Example Q=3, T=5, bos=B, ``a_f``
level-0 value of frame f, ``b_f`` level 1, ``c_f`` level 2::

    step s     0    1    2    3    4    5
    level 0    B    a0   a1   a2   a3   a4
    level 1    B    B    b0   b1   b2   b3        (b4 never fits: the "delay tail")
    level 2    B    B    B    c0   c1   c2        (c3, c4 never fit)

The last q frames of level q are not in the layout (audiocraft's "keep only valid steps"): they
are never trained on, and after generation the last Q-1 frames are dropped. ``revert_delay``
maps a sequence of any length S back to S-1 frames and fills those tail entries with ``fill``;
``valid_mask(Q, T)`` says which (level, frame) entries are real.

Values are moved, never interpreted: the library calls these functions on **token ids**
(``code + 19``, see ``categories``) with ``bos = instrument_token(cat)``, but they work on any
integer tensor (e.g. raw codes with a sentinel ``bos``).

Logits. A causal model that has read steps 0..s outputs, at position s, its distribution over
step s+1. Level q of step s+1 holds frame ``s - q``, so
``revert_logits(logits)[:, q, f] = logits[:, q, f + q]``. The last position (s = S-1) predicts a
step beyond the layout and is dropped; entries outside ``valid_mask`` get ``fill`` (NaN). With
this, ``cross_entropy(revert_logits(L)[valid], revert_delay(seq)[valid])`` is the loss on
``L[:, :, :-1]`` against ``seq[:, :, 1:]`` at code positions.
"""

from __future__ import annotations

import torch


class DelayPatternError(ValueError):
    """A tensor given to the delay pattern has the wrong shape or type."""


def _check_int3(x: torch.Tensor, name: str, min_len: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise DelayPatternError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise DelayPatternError(f"{name} must have shape [B, Q, T], got {tuple(x.shape)}")
    if x.is_floating_point() or x.dtype == torch.bool:
        raise DelayPatternError(f"{name} must be an integer tensor, got {x.dtype}")
    if x.shape[1] < 1 or x.shape[2] < min_len:
        raise DelayPatternError(f"{name} needs Q >= 1 and length >= {min_len}, got {tuple(x.shape)}")


def apply_delay(codes: torch.Tensor, bos: int) -> torch.Tensor:
    """``[B, Q, T]`` -> ``[B, Q, T+1]``: step s of level q holds frame s-1-q, else ``bos``.

    >>> apply_delay(torch.tensor([[[1, 2, 3], [4, 5, 6]]]), bos=9).tolist()
    [[[9, 1, 2, 3], [9, 9, 4, 5]]]
    """
    _check_int3(codes, "codes", 1)
    if isinstance(bos, bool) or not isinstance(bos, int):
        raise DelayPatternError(f"bos must be an int token, got {bos!r}")
    b, q_levels, t = codes.shape
    seq = torch.full((b, q_levels, t + 1), bos, dtype=codes.dtype, device=codes.device)
    for q in range(min(q_levels, t)):
        seq[:, q, q + 1 :] = codes[:, q, : t - q]
    return seq


def revert_delay(seq: torch.Tensor, fill: int = -1) -> torch.Tensor:
    """``[B, Q, S]`` -> ``[B, Q, S-1]`` frames; frame f of level q is step f+1+q.

    Entries whose step lies beyond the sequence (the delay tail, ``~valid_mask(Q, S-1)``) are
    ``fill``. Inverse of ``apply_delay`` on ``valid_mask``.

    >>> revert_delay(torch.tensor([[[9, 1, 2, 3], [9, 9, 4, 5]]])).tolist()
    [[[1, 2, 3], [4, 5, -1]]]
    """
    _check_int3(seq, "seq", 2)
    b, q_levels, s = seq.shape
    t = s - 1
    out = torch.full((b, q_levels, t), fill, dtype=seq.dtype, device=seq.device)
    for q in range(min(q_levels, t)):
        out[:, q, : t - q] = seq[:, q, q + 1 :]
    return out


def revert_logits(logits: torch.Tensor, fill: float = float("nan")) -> torch.Tensor:
    """``[B, Q, S, V]`` -> ``[B, Q, S-1, V]``: position s predicts step s+1, so frame f of level q
    comes from position f+q. Entries outside ``valid_mask(Q, S-1)`` are ``fill``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise DelayPatternError(f"logits must have shape [B, Q, S, V], got {shape}")
    if not logits.is_floating_point():
        raise DelayPatternError(f"logits must be floating point, got {logits.dtype}")
    b, q_levels, s, v = logits.shape
    if q_levels < 1 or s < 2 or v < 1:
        raise DelayPatternError(f"logits need Q >= 1, S >= 2, V >= 1, got {tuple(logits.shape)}")
    t = s - 1
    out = torch.full((b, q_levels, t, v), fill, dtype=logits.dtype, device=logits.device)
    for q in range(min(q_levels, t)):
        out[:, q, : t - q] = logits[:, q, q:t]
    return out


def valid_mask(n_q: int, n_frames: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[Q, T]``: True where frame f of level q is in a ``[Q, T+1]`` layout (f <= T-1-q).

    >>> valid_mask(3, 4).int().tolist()
    [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
    """
    if n_q < 1 or n_frames < 1:
        raise DelayPatternError(f"valid_mask needs n_q >= 1 and n_frames >= 1, got {n_q}, {n_frames}")
    q = torch.arange(n_q, device=device)[:, None]
    f = torch.arange(n_frames, device=device)[None, :]
    return f <= n_frames - 1 - q


def code_step_mask(n_q: int, n_steps: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[Q, S]``: True where step s of level q holds a frame (s >= q+1), False on BOS steps."""
    if n_q < 1 or n_steps < 1:
        raise DelayPatternError(f"code_step_mask needs n_q >= 1 and n_steps >= 1, got {n_q}, {n_steps}")
    q = torch.arange(n_q, device=device)[:, None]
    s = torch.arange(n_steps, device=device)[None, :]
    return s >= q + 1


def frame_of_step(step: int, level: int) -> int:
    """Frame index held by ``step`` at ``level`` (negative: a BOS position)."""
    return step - 1 - level


def complete_frames(n_steps: int, n_q: int) -> int:
    """Frames complete at every level after ``n_steps`` steps (BOS step included): S - Q."""
    return max(0, n_steps - n_q)


def added_latency_frames(n_q: int) -> int:
    """Extra steps before a frame is complete at all levels: Q-1 (0.08 s for Q=4 at 50 Hz)."""
    if n_q < 1:
        raise DelayPatternError(f"n_q must be >= 1, got {n_q}")
    return n_q - 1


__all__ = [
    "DelayPatternError",
    "apply_delay",
    "revert_delay",
    "revert_logits",
    "valid_mask",
    "code_step_mask",
    "frame_of_step",
    "complete_frames",
    "added_latency_frames",
]
