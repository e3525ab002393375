"""Future visibility t_f realised by padding: the aligned input / output / target streams.

Chapter 5 ("Future visibility") teaches this module.

The model reads, at sequence position j, the sum of an input embedding (frozen codec codebooks of
input frame ``j - input_offset(tf)``, or a learned PAD embedding) and an output-token embedding
(the delayed output stream shifted right by ``output_offset(tf)`` PAD tokens); at position j it
predicts the output stream's next entry. With the delay pattern (``delay.apply_delay``, whose step
0 is the instrument token = BOS) the padding rules of the reference code are::

    tf <= 0: prepend 1 - tf PAD embeddings to the input stream (and trim its end)
    tf >  0: prepend tf - 1 PAD tokens to the output stream and the targets (and trim their end)

so that output frame f at level q is predicted at position ``f + q + output_offset(tf)`` and sees
input frames ``<= f + q + tf - 1`` (``last_visible_input``): Eq. (1) with t = f, x(1 : t + tf)
exclusive of its end, plus the q extra steps the delay pattern gives level q. Example, one level,
T = 4, input frames x0..x3, output frames y0..y3, BOS = instrument token, ``_`` = PAD::

    tf = -1   input   _  _  x0 x1          tf = +2   input   x0 x1 x2 x3
              output  B  y0 y1 y2                    output  _  B  y0 y1
              target  y0 y1 y2 y3                    target  B  y0 y1 y2   (B, PAD: no loss)

Every stream has the window length L = T (the position that would predict beyond the layout is
dropped). Input codes stay raw codec codes plus a PAD mask (padded entries hold code 0; the model
must use its PAD embedding there); output tokens and targets are token ids (``categories``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from streamlib.tokens.categories import (
    FIRST_INSTRUMENT_TOKEN,
    N_CATEGORIES,
    PAD,
    code_to_token,
    instrument_token,
    is_code_token,
)
from streamlib.tokens.delay import apply_delay


class AlignmentError(ValueError):
    """Streams given to the alignment have inconsistent shapes or types."""


def input_offset(tf: int) -> int:
    """PAD embeddings prepended to the input stream: ``max(1 - tf, 0)``."""
    return max(1 - int(tf), 0)


def output_offset(tf: int) -> int:
    """PAD tokens prepended to the output stream and targets: ``max(tf - 1, 0)``."""
    return max(int(tf) - 1, 0)


def last_visible_input(f: int, q: int, tf: int) -> int:
    """Last input frame that output frame ``f`` at level ``q`` may see: ``f + q + tf - 1``
    (negative: none)."""
    return f + q + tf - 1


def predicting_position(f: int, q: int, tf: int) -> int:
    """Sequence position whose logits predict output frame ``f`` at level ``q``."""
    return f + q + output_offset(tf)


def input_frame_at(position: int, tf: int) -> int:
    """Input frame embedded at sequence ``position`` (negative: a PAD embedding)."""
    return position - input_offset(tf)


def output_step_at(position: int, tf: int) -> int:
    """Delay-layout step whose token is embedded at ``position`` (negative: a PAD token)."""
    return position - output_offset(tf)


def predicted_frames(window: int, tf: int, n_q: int) -> int:
    """Output frames predicted at every level in a layout of ``window`` positions (``align``'s default
    length): the output padding of t_f > 1 and the delay pattern each take frames off the end."""
    return max(0, int(window) - output_offset(tf) - (n_q - 1))


def input_frames_needed(n_out_frames: int, n_q: int, tf: int) -> int:
    """Input frames that must have arrived before output frames ``0..n_out_frames-1`` can be
    complete at all ``n_q`` levels (clamped at 0)."""
    return max(0, last_visible_input(n_out_frames - 1, n_q - 1, tf) + 1)


def visibility_matrix(n_out: int, n_in: int, tf: int, q: int = 0) -> torch.Tensor:
    """Bool ``[n_out, n_in]``: entry (f, i) True when output frame f at level q may see input frame i."""
    f = torch.arange(n_out)[:, None]
    i = torch.arange(n_in)[None, :]
    return i <= f + q + tf - 1


@dataclass(frozen=True)
class Aligned:
    """Aligned streams of one batch; every tensor has length L along its last axis.

    input_codes     Long ``[B, Q_in, L]`` raw codec codes (0 where padded)
    input_pad_mask  Bool ``[B, L]`` True where the model must use its learned PAD embedding
    output_tokens   Long ``[B, Q, L]`` token ids fed at each position (PAD / instrument / code+19)
    targets         Long ``[B, Q, L]`` token ids predicted at each position
    loss_mask       Bool ``[B, Q, L]`` True where the target is a code token (no PAD, no BOS,
                    nothing from the never-valid delay tail)
    target_frames   Long ``[Q, L]`` output frame of each target (-1 where there is none); lets a
                    prefix decoder keep the loss on a chunk of frames only
    tf              the future visibility, frames
    input_features  Float ``[B, F, L]`` per-frame features of the input (its causal chroma,
                    ``streamlib.input_chroma``), placed like ``input_codes`` (0 where padded), or None
    """

    input_codes: torch.Tensor
    input_pad_mask: torch.Tensor
    output_tokens: torch.Tensor
    targets: torch.Tensor
    loss_mask: torch.Tensor
    target_frames: torch.Tensor
    tf: int
    input_features: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.output_tokens.shape[-1]


def _shift(x: torch.Tensor, offset: int, length: int, fill: int) -> torch.Tensor:
    """``out[..., j] = x[..., j - offset]`` for j in 0..length-1, ``fill`` outside x."""
    out = torch.full((*x.shape[:-1], length), fill, dtype=x.dtype, device=x.device)
    lo, hi = max(offset, 0), min(length, x.shape[-1] + offset)
    if hi > lo:
        out[..., lo:hi] = x[..., lo - offset : hi - offset]
    return out


def align(
    input_codes: torch.Tensor,
    output_codes: torch.Tensor,
    category: int | torch.Tensor,
    tf: int,
    length: int | None = None,
    input_features: torch.Tensor | None = None,
) -> Aligned:
    """Build the aligned training streams for future visibility ``tf`` (frames, any sign).

    ``input_codes`` ``[B, Q_in, T]`` and ``output_codes`` ``[B, Q, T]`` are raw codes of one window;
    ``category`` an int or Long ``[B]``; ``length`` defaults to T (positions beyond the input are
    PAD-masked, e.g. for the offline prefix layout); ``input_features`` ``[B, F, T]`` (float), if given,
    are placed like the input codes.
    """
    for name, x in (("input_codes", input_codes), ("output_codes", output_codes)):
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.is_floating_point() or x.dtype == torch.bool:
            raise AlignmentError(f"{name} must be an integer tensor [B, Q, T], got {getattr(x, 'shape', x)}")
    b, _, t = input_codes.shape
    if output_codes.shape[0] != b or output_codes.shape[2] != t:
        raise AlignmentError(
            f"input {tuple(input_codes.shape)} and output {tuple(output_codes.shape)} need the same batch and frames"
        )
    if t < 1:
        raise AlignmentError("windows need at least one frame")
    if input_features is not None and (input_features.dim() != 3 or input_features.shape[0] != b
                                       or input_features.shape[2] != t or not input_features.is_floating_point()):
        raise AlignmentError(f"input_features must be a float tensor [{b}, F, {t}], got "
                             f"{tuple(input_features.shape)} {input_features.dtype}")
    if isinstance(tf, bool) or not isinstance(tf, int):
        raise AlignmentError(f"tf must be an integer number of frames, got {tf!r}")
    length = t if length is None else int(length)
    if length < 1:
        raise AlignmentError(f"length must be >= 1, got {length}")
    n_q = output_codes.shape[1]

    bos = _bos_column(category, b, output_codes.device)  # [B]
    delayed = apply_delay(code_to_token(output_codes), bos=PAD)  # [B, Q, T+1], step 0 / triangle = PAD for now
    triangle = ~is_code_token(delayed)
    delayed = torch.where(triangle, bos[:, None, None].expand_as(delayed), delayed)

    in_off, out_off = input_offset(tf), output_offset(tf)
    present = _shift(torch.ones(b, t, dtype=torch.bool, device=input_codes.device), in_off, length, False)
    codes_in = _shift(input_codes.long(), in_off, length, 0)
    # The output stream and targets are one stream read at j and at j + 1.
    stream = _shift(delayed, out_off, length + 1, PAD)
    targets = stream[..., 1:]
    steps = torch.arange(1, length + 1) - out_off  # step predicted at each position
    levels = torch.arange(n_q)[:, None]
    frames = steps[None, :] - 1 - levels
    has_frame = (steps[None, :] >= 1) & (steps[None, :] <= t) & (frames >= 0)
    target_frames = torch.where(has_frame, frames, torch.full_like(frames, -1))
    return Aligned(
        input_codes=codes_in,
        input_pad_mask=~present,
        output_tokens=stream[..., :-1].contiguous(),
        targets=targets.contiguous(),
        loss_mask=is_code_token(targets),
        target_frames=target_frames.to(output_codes.device),
        tf=tf,
        input_features=None if input_features is None else _shift(input_features.float(), in_off, length, 0.0),
    )


def align_offline_prefix(input_codes: torch.Tensor, output_codes: torch.Tensor, category: int | torch.Tensor,
                         input_features: torch.Tensor | None = None) -> Aligned:
    """The offline prefix-decoder layout (paper 4.3): the whole input, then the outputs.

    Positions 0..T-1 carry input frames (with PAD output tokens), positions T.. carry the delayed
    output stream from its BOS on (with the PAD input embedding); length 2T. It is ``align`` with
    tf = T + 1, so every output frame sees all T input frames.
    """
    t = input_codes.shape[-1]
    return align(input_codes, output_codes, category, tf=t + 1, length=2 * t, input_features=input_features)


def chunk_masks(aligned: Aligned, prefix: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks for one prefix-decoder chunk (k > 1, paper A.6): predict the k steps after ``prefix``.

    Positions ``prefix .. prefix+k-1`` are predicted (their targets are steps prefix+1 ..
    prefix+k of the shifted output stream); only positions ``<= prefix`` may carry an input
    embedding, because within a chunk no newer input has arrived. Returns ``(input_keep [L] bool,
    chunk_loss_mask [B, Q, L] bool)``. Every target of the chunk then sees input frames
    ``<= input_frame_at(prefix, tf)``, i.e. ``start + tf - 1`` for the chunk's first level-0
    frame ``start`` (Eq. (1)); with k = 1 this is the per-frame rule.
    """
    length = aligned.length
    if not 0 <= prefix < length:
        raise AlignmentError(f"prefix must be in 0..{length - 1}, got {prefix}")
    if k < 1:
        raise AlignmentError(f"k must be >= 1, got {k}")
    pos = torch.arange(length, device=aligned.loss_mask.device)
    input_keep = pos <= prefix
    in_chunk = (pos >= prefix) & (pos < prefix + k)
    return input_keep, aligned.loss_mask & in_chunk


@dataclass(frozen=True)
class ChunkLayout:
    """Every k-step chunk of a window in one pass (``all_chunks``; beyond the paper, chapter 7).

    aligned      the streams twice along the sequence (length 2L): a *context* copy whose positions carry
                 their input, then a *chunk* copy whose positions carry none
    input_keep   Bool ``[2L]``: True on the context copy
    positions    Long ``[2L]``: the rotary position of each entry (j in both copies)
    attention    Bool ``[2L, 2L]``: True where row i may attend to column j
    starts       Long ``[L]``: the prefix (chunk start) of each position
    """

    aligned: Aligned
    input_keep: torch.Tensor
    positions: torch.Tensor
    attention: torch.Tensor
    starts: torch.Tensor


def chunk_starts(length: int, k: int, phase: int = 0) -> torch.Tensor:
    """The prefix of the chunk holding each of ``length`` positions, for chunks that begin at 0 and at
    ``phase + m k`` (``phase`` in 0..k-1; with phase > 0 the first chunk is the short one before it)."""
    if k < 1:
        raise AlignmentError(f"k must be >= 1, got {k}")
    if not 0 <= phase < k:
        raise AlignmentError(f"phase must be in 0..{k - 1}, got {phase}")
    pos = torch.arange(length)
    start = phase + torch.div(pos - phase, k, rounding_mode="floor") * k
    return torch.where(pos < phase, torch.zeros_like(pos), start)


def all_chunks(aligned: Aligned, k: int, phase: int = 0) -> ChunkLayout:
    """The layout that trains every chunk of a window at once, each exactly as ``chunk_masks`` would.

    ``chunk_masks`` trains one chunk per pass: k of the window's L positions carry a loss. Here the
    streams are laid out twice. Row j of the context copy attends to context positions ``<= j`` (a causal
    pass with every input, as at k = 1). Row j of the chunk copy, in the chunk that starts at s, attends to
    context positions ``<= s`` (the prefix, with its input) and to chunk-copy positions ``s+1 .. j`` (the
    chunk so far, without input). The loss is read at the context row of every chunk start (the position
    that still has its input) and at the chunk row of every other position, so each target's logits equal
    those of ``chunk_masks(aligned, s, k)`` (``tests/test_visibility.py`` checks it), at L targets per pass
    instead of k, for a pass over 2L positions.
    """
    length = aligned.length
    device = aligned.loss_mask.device
    starts = chunk_starts(length, k, phase).to(device)
    pos = torch.arange(length, device=device)
    causal = pos[None, :] <= pos[:, None]
    context_rows = torch.cat([causal, torch.zeros_like(causal)], dim=1)
    chunk_rows = torch.cat([pos[None, :] <= starts[:, None], (pos[None, :] > starts[:, None]) & causal], dim=1)
    is_start = starts == pos

    def twice(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=-1)

    doubled = Aligned(
        input_codes=twice(aligned.input_codes), input_pad_mask=twice(aligned.input_pad_mask),
        output_tokens=twice(aligned.output_tokens), targets=twice(aligned.targets),
        loss_mask=torch.cat([aligned.loss_mask & is_start, aligned.loss_mask & ~is_start], dim=-1),
        target_frames=twice(aligned.target_frames), tf=aligned.tf,
        input_features=None if aligned.input_features is None else twice(aligned.input_features),
    )
    keep = torch.cat([torch.ones(length, dtype=torch.bool, device=device),
                      torch.zeros(length, dtype=torch.bool, device=device)])
    return ChunkLayout(aligned=doubled, input_keep=keep, positions=twice(pos),
                       attention=torch.cat([context_rows, chunk_rows], dim=0), starts=starts)


def _bos_column(category: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    if isinstance(category, torch.Tensor):
        if category.dim() == 0:
            category = int(category)
        else:
            if category.shape != (batch,) or category.is_floating_point():
                raise AlignmentError(f"category must be an integer tensor of shape [{batch}], got {category}")
            if category.numel() and not (0 <= int(category.min()) and int(category.max()) < N_CATEGORIES):
                raise AlignmentError(f"category ids must be in 0..{N_CATEGORIES - 1}, got {category.tolist()}")
            return (category.long() + FIRST_INSTRUMENT_TOKEN).to(device)
    return torch.full((batch,), instrument_token(int(category)), dtype=torch.long, device=device)


__all__ = [
    "AlignmentError",
    "Aligned",
    "align",
    "align_offline_prefix",
    "all_chunks",
    "ChunkLayout",
    "chunk_masks",
    "chunk_starts",
    "input_offset",
    "output_offset",
    "last_visible_input",
    "predicting_position",
    "input_frame_at",
    "output_step_at",
    "input_frames_needed",
    "predicted_frames",
    "visibility_matrix",
]
