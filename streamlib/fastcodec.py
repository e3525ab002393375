"""The codec's streaming steps compiled for the engine (chapter 8, "The fast path").

At k = 1 frame the streaming encoder and decoder are called once per 20 ms frame each, and every
call is a few hundred small operations: per-call overhead, not arithmetic, is what they cost on a
CPU (two thirds of a frame's compute on the plain path). The codec's steps are pure -- state in,
state out (``model.encode_step`` / ``decode_step``, ``streamlib.codec.stream``) -- so they compile:
``FrameEncoder`` and ``FrameDecoder`` keep the ``push`` API of ``StreamEncoder`` / ``StreamDecoder``
and call the compiled steps one frame at a time (one shape, one graph per codec; any chunking gives
the same result, that is what streaming means). A compiler failure falls back to the eager steps,
with a note (``CompiledStep``). Codes equal the eager streams' (tests/test_fastcodec.py).
"""

from __future__ import annotations

import weakref
from typing import Callable

import torch
from torch import Tensor

from streamlib.model.fast import CompiledStep

_STEPS: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()
READY: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()  # codec models whose compiled steps have run


def compiled_steps(codec) -> tuple[Callable, Callable]:
    """``torch.compile`` of ``codec.model``'s ``encode_step`` and ``decode_step``, built once per codec
    (compiling happens at the first call, in the engine's warm-up)."""
    model = codec.model
    if model not in _STEPS:
        _STEPS[model] = (torch.compile(model.encode_step, fullgraph=True, dynamic=False),
                         torch.compile(model.decode_step, fullgraph=True, dynamic=False))
    return _STEPS[model]


def _packed(x: Tensor) -> Tensor:
    """A contiguous copy of ``x`` with the canonical strides of its shape. ``contiguous()`` is not enough:
    it returns a slice as it is when only size-1 dimensions are strided (a frame of a longer push), and
    dynamo guards on every stride, so each push length would compile the step again (``dynamic=False``)."""
    return x.clone(memory_format=torch.contiguous_format)


class FrameEncoder:
    """``push(samples) -> codes [1, n_q, frames]`` of the frames completed, one compiled step per frame;
    samples short of a whole frame wait for the next push."""

    @torch.inference_mode()
    def __init__(self, codec, n_q: int, compile: bool = True, notify: Callable[[str], None] | None = None):
        self.codec, self.n_q, self.hop = codec, int(n_q), codec.hop
        self.step = CompiledStep(codec.model.encode_step, compiled_steps(codec)[0] if compile else None,
                                 "the codec's encoder step", notify)
        self.state = codec.model.encoder_state(1)
        self.pending = torch.zeros(1, 1, 0, device=codec.device)

    @torch.inference_mode()
    def push(self, audio: Tensor) -> Tensor:
        x = torch.cat([self.pending, self.codec.prepare(audio)], dim=-1)
        frames = x.shape[-1] // self.hop
        codes = [torch.zeros(1, self.n_q, 0, dtype=torch.long, device=x.device)]
        for f in range(frames):
            frame = _packed(x[..., f * self.hop : (f + 1) * self.hop])  # one stride: one graph
            c, self.state = self.step(frame, self.state, self.n_q)
            codes.append(c)
        self.pending = x[..., frames * self.hop :]
        return torch.cat(codes, dim=-1)


class FrameDecoder:
    """``push(codes [1, q, k]) -> audio [1, 1, k * hop]``, one compiled step per frame."""

    @torch.inference_mode()
    def __init__(self, codec, compile: bool = True, notify: Callable[[str], None] | None = None):
        self.codec = codec
        self.step = CompiledStep(codec.model.decode_step, compiled_steps(codec)[1] if compile else None,
                                 "the codec's decoder step", notify)
        self.state = codec.model.decoder_state(1)

    @torch.inference_mode()
    def push(self, codes: Tensor) -> Tensor:
        codes = self.codec.check_codes(codes if codes.dim() == 3 else codes[None])
        audio = [torch.zeros(1, 1, 0, device=codes.device)]
        for f in range(codes.shape[-1]):
            a, self.state = self.step(_packed(codes[..., f : f + 1]), self.state)
            audio.append(a)
        return torch.cat(audio, dim=-1)


__all__ = ["READY", "FrameDecoder", "FrameEncoder", "compiled_steps"]
