"""Streaming encoder and decoder with explicit state (chapter 3, "Streaming the codec").

The state lives in these small objects, never in the modules: each ``push`` calls the model's pure
``encode_step`` / ``decode_step`` (state in, state out), so the modules stay compilable and one
model can serve many streams at once.

* ``StreamEncoder.push(samples)`` takes any number of new samples ``[B, 1, n]`` (or ``[n]``) and
  returns the codes of the frames completed by them, ``[B, Q, k]`` (``k`` may be 0).
  ``flush()`` zero-pads the last partial frame, exactly like ``CausalCodec.encode`` does at the end
  of a clip. Concatenating every output equals ``encode`` of the whole clip, bit for bit.
* ``StreamDecoder.push(codes)`` takes ``[B, q, k]`` new frames and returns their ``k * hop``
  samples; concatenated, they equal ``decode`` of the whole sequence to float tolerance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamlib.audio import AudioError


class StreamEncoder:
    """Feed audio, receive the codes of completed frames."""

    def __init__(self, codec, batch: int = 1, n_q: int | None = None):
        self.codec = codec
        self.batch = batch
        self.n_q = codec.n_codebooks if n_q is None else int(n_q)
        if not 1 <= self.n_q <= codec.n_codebooks:
            raise ValueError(f"n_q={self.n_q} outside 1..{codec.n_codebooks}")
        self.reset()

    def reset(self) -> None:
        """Start a new stream (all left context zero, as at the start of a clip)."""
        self.state = self.codec.model.encoder_state(self.batch)
        self.samples = 0
        self.frames = 0

    @torch.inference_mode()
    def push(self, audio: Tensor) -> Tensor:
        x = self.codec.prepare(audio)
        if x.shape[0] != self.batch:
            raise AudioError(f"this stream has batch {self.batch}, got audio with batch {x.shape[0]}")
        codes, self.state = self.codec.model.encode_step(x, self.state, self.n_q)
        self.samples += x.shape[-1]
        self.frames += codes.shape[-1]
        return codes

    @torch.inference_mode()
    def flush(self) -> Tensor:
        """Complete a partial last frame with zeros (what ``encode`` does); returns its codes or nothing."""
        rest = (-self.samples) % self.codec.hop
        if rest == 0:
            return torch.zeros(self.batch, self.n_q, 0, dtype=torch.long, device=self.codec.device)
        return self.push(torch.zeros(self.batch, 1, rest, device=self.codec.device))


class StreamDecoder:
    """Feed frames of codes, receive their audio."""

    def __init__(self, codec, batch: int = 1):
        self.codec = codec
        self.batch = batch
        self.reset()

    def reset(self) -> None:
        self.state = self.codec.model.decoder_state(self.batch)
        self.frames = 0

    @torch.inference_mode()
    def push(self, codes: Tensor) -> Tensor:
        if codes.dim() == 2:
            codes = codes[None]
        codes = self.codec.check_codes(codes)
        if codes.shape[0] != self.batch:
            raise ValueError(f"this stream has batch {self.batch}, got codes with batch {codes.shape[0]}")
        if codes.shape[-1] == 0:
            return torch.zeros(self.batch, 1, 0, device=self.codec.device)
        audio, self.state = self.codec.model.decode_step(codes, self.state)
        self.frames += codes.shape[-1]
        return audio
