"""A bank of sine oscillators on the equal-tempered semitones, next to the spectral decoder (chapter 3).

Why: the spectral decoder's frames are 20 ms apart, and with per-frame phase a steady code repeats the
same frame, so its audio holds only multiples of 50 Hz; a bass line comes out as a buzz near G1/G2
(``spectral.steady_frames`` shows the trap). The phase-vocoder fix (``decoder_phase="integrated"``)
has to *learn* each bin's phase advance, and in the book's runs it did not (docs/codec_experiments.md).
Here the frequencies are not learnt at all: oscillator ``k`` sounds MIDI note ``24 + k`` (C1 upward,
A4 = 440 Hz) with a phase that runs on across frames, and a small frame network states only each
oscillator's amplitude. A steady code then holds a steady, in-tune note of any pitch on the grid.
The decoder mutes its spectral branch below the oscillators' top note (``crossover_hz``): added to a
full-band spectral branch that already made the low band, the oscillators only added interference, and
training switched them off (docs/codec_experiments.md). This is a prior: music tuned to A440 in 12-TET
(the book's data, Slakh2100); below the crossover, detuned or gliding notes land on the nearest semitones.

Causality and streaming: frame ``n``'s samples use the amplitudes of frames ``n - 1`` and ``n``
(linearly interpolated across the hop) and the running phase, so audio up to ``(n + 1) * hop`` depends on
codes ``<= n`` only; the state is the phase at the frame boundary (float64) and the last amplitudes.
Each frame is one matrix product: ``sin(phi + w s) = sin(phi) cos(w s) + cos(phi) sin(w s)``, with the
``cos(w s)``/``sin(w s)`` tables over the hop's samples computed once.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

FIRST_MIDI = 24  # C1, as the semitone spectrum of the codec's pitch terms (streamlib.pitch.SEMITONE_BINS)
AMP_INIT = -4.0  # initial log-amplitude (0.018): audible enough that a log-spectral loss has a gradient


def semitone_frequencies(n: int) -> Tensor:
    """Frequencies in Hz (float64) of MIDI notes ``24 .. 24 + n - 1`` at A4 = 440 Hz."""
    return 440.0 * 2.0 ** ((torch.arange(n, dtype=torch.float64) + FIRST_MIDI - 69) / 12)


def crossover_hz(n: int) -> float:
    """Half a semitone above the top of ``n`` oscillators: below it the spectral decoder is muted."""
    return float(semitone_frequencies(n)[-1]) * 2 ** (1 / 24)


class SemitoneOscillators(nn.Module):
    """Per-frame log-amplitudes ``[B, n, T]`` -> audio ``[B, T, hop]`` of ``n`` oscillators on the semitones."""

    def __init__(self, n: int, hop: int, sample_rate: int):
        super().__init__()
        freqs = semitone_frequencies(n)
        if float(freqs[-1]) >= sample_rate / 2:
            raise ValueError(f"{n} semitone oscillators from C1 reach {float(freqs[-1]):.0f} Hz, above the "
                             f"Nyquist frequency of {sample_rate} Hz audio")
        self.n, self.hop = n, hop
        omega = 2 * torch.pi * freqs / sample_rate  # radians per sample
        self.register_buffer("frame_advance", omega * hop, persistent=False)  # float64: summed over frames
        s = torch.arange(hop, dtype=torch.float64)
        ws = omega[:, None] * s[None]  # [n, hop]
        ramp = (s + 1) / hop  # weight of this frame's amplitude at each sample (1 at the frame's end)
        table = torch.cat([torch.cos(ws) * (1 - ramp), torch.sin(ws) * (1 - ramp), torch.cos(ws) * ramp,
                           torch.sin(ws) * ramp])  # [4n, hop]
        self.register_buffer("table", table.float(), persistent=False)

    def init_state(self, batch: int, device: torch.device) -> list[Tensor]:
        """Phase at the next frame's first sample ``[B, n]`` (float64) and the last amplitudes ``[B, n]``."""
        return [torch.zeros(batch, self.n, dtype=torch.float64, device=device),
                torch.zeros(batch, self.n, device=device)]

    def forward(self, log_amp: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        phase0, last = state
        if log_amp.shape[-1] == 0:
            return log_amp.new_zeros(log_amp.shape[0], 0, self.hop, dtype=torch.float32), state
        amp = torch.exp(log_amp.float().clamp(max=0.0)).transpose(1, 2)  # [B, T, n]
        t = amp.shape[1]
        steps = torch.arange(t + 1, dtype=torch.float64, device=amp.device)
        phase = torch.remainder(phase0[:, None] + steps[None, :, None] * self.frame_advance, 2 * torch.pi)
        start = phase[:, :t].float()  # phase at each frame's first sample
        prev = torch.cat([last[:, None], amp[:, :-1]], dim=1)
        sin, cos = torch.sin(start), torch.cos(start)
        terms = torch.cat([prev * sin, prev * cos, amp * sin, amp * cos], dim=-1)  # [B, T, 4n]
        return terms @ self.table, [phase[:, t], amp[:, -1]]
