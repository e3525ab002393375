"""A causal codec whose networks run at the 50 Hz frame rate: STFT in, STFT out (the book preset).

Chapter 3 ("Causal codec tokenisation") teaches it next to the waveform DAC (``model.py``, the
paper preset). Why a second design: on a 2-core CPU a waveform codec spends its compute at 16,000
samples a second and, in the hours the book can afford, learnt rhythm but not pitch (chapter 3
shows its reconstructions). Here every network runs on frames (50 a second), so a training step is
cheap, and the input is a long-window spectrum in which notes are resolved.

* **Encoder.** Frame ``n`` is the log-magnitude of two windows that both *end* at the last sample of
  the frame, ``(n + 1) * hop``: a long one (``analysis_fft`` samples, 128 ms at 16 kHz: 7.8 Hz bins,
  enough to tell a bass note from its neighbour) and a short one (``2 * hop``: onsets). A linear
  layer, then causal ConvNeXt-style blocks over frames (depth-wise kernel 3, dilations 1, 2, 4, ...),
  then the latent, layer-normalised over channels (without it the latents, and with them the
  commitment loss, grew without bound in the first hundred steps). Codes of frame ``n`` depend on
  samples ``< (n + 1) * hop`` only. With ``analysis_low_fft`` (8192: 512 ms, 2 Hz bins) a third window,
  ending at the same sample, adds its bins below 500 Hz, where a semitone of the bass is 2-6 Hz, through
  a second input layer that starts at zero (``FrameStack.extra``).
* **Quantiser.** descript-audio-codec's ``ResidualVectorQuantize`` (factorised, l2-normalised codes),
  exactly as in the waveform codec; ``level_latents`` exposes each level's contribution so the
  first level can be taught pitch (``pitch_head``: it predicts the frame's semitone spectrum).
* **Decoder.** Causal blocks over frames, then per frame a complex spectrum of ``m * hop`` samples
  (log-magnitude and phase, as in Vocos; ``m = decoder_overlap``, 2 by default), inverse FFT, a periodic
  Hann window scaled so that the overlapping windows sum to one, overlap-add. Frame ``n``'s window starts
  at the first sample of frame ``n`` and reaches ``m - 1`` hops into the frames after it: the audio of
  frame ``n`` is the sum of the ``j``-th hop of frames ``n - j``'s windows, ``j < m``, so decoded audio up
  to ``(n + 1) * hop`` depends on codes ``<= n`` only. No lookahead: the tails that reach into later
  frames are state, like a convolution's left context. A longer window (``m = 4``) resolves low notes
  more finely (12.5 Hz bins instead of 25) at the same latency.
* **Phase.** With ``decoder_phase="absolute"`` the head states each frame's phase. A frame network is
  blind to absolute time, so a steady code gives the same frame again and again: audio periodic at the
  frame rate, whose spectrum holds only multiples of 50 Hz (a bass note comes out as a buzz at G1/G2/D3,
  the 50/100/150 Hz partials: chapter 3 shows it). With ``"integrated"`` the head states each bin's phase
  *advance* beyond the bin's centre frequency, and the decoder sums the advances over frames (a phase
  vocoder; the running phase is state), so a steady code holds a steady tone of any frequency.
* **Oscillators.** With ``oscillators = n > 0`` a second frame network states the amplitudes of ``n`` sine
  oscillators on the equal-tempered semitones from C1 (``oscillators.py``), whose phase runs on across
  frames; their sum is added to the overlap-added audio, whose bins below the crossover (half a semitone
  above the top oscillator) are muted, so there the oscillators alone sound (added to a full-band spectral
  branch, training switched them off). The frequencies are fixed, not learnt, so a steady code holds an
  in-tune note whatever the frame rate (docs/codec_experiments.md measures what it buys).

Streaming keeps every state explicit (``State`` lists in and out); ``step`` over any chunking
performs the arithmetic of the batch pass, so streamed codes equal batch codes and streamed audio
equals batch audio to float tolerance (tests/test_codec.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from streamlib.codec.model import RVQCodec
from streamlib.codec.oscillators import AMP_INIT, SemitoneOscillators, crossover_hz
from streamlib.config import CodecConfig

State = list[Tensor]
LOG_FLOOR = 1e-5
LOW_BAND_HZ = 500.0  # the low-band window (analysis_low_fft) keeps its bins below this
OSC_BLOCKS = 3  # frame blocks of the oscillators' amplitude network


class FrameConv(nn.Module):
    """Causal depth-wise convolution over frames (kernel ``k``, dilation ``d``: ``(k-1)d`` frames of context)."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=channels)
        self.context = (kernel - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.pad(x, (self.context, 0)))

    def init_state(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.conv.in_channels, self.context)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        buf = torch.cat([state, x], dim=-1)
        y = self.taps(buf) if torch.compiler.is_compiling() else self.conv(buf)
        return y, buf[..., buf.shape[-1] - self.context:]

    def taps(self, buf: Tensor) -> Tensor:
        """``self.conv(buf)`` written out as its weighted sum of ``k`` shifted slices (equal up to float
        rounding). The compiled streaming steps (``streamlib.fastcodec``) trace this: inductor fuses it into
        the graph, where a depth-wise convolution stays a oneDNN call of ~50 us for a frame's 3 x 256
        multiply-adds (10 such calls per frame in the book codec)."""
        n = buf.shape[-1] - self.context
        d = self.conv.dilation[0]
        weight = self.conv.weight[:, 0]  # [channels, k]
        y = sum(weight[:, j, None] * buf[..., j * d : j * d + n] for j in range(self.conv.kernel_size[0]))
        return y if self.conv.bias is None else y + self.conv.bias[:, None]


class Block(nn.Module):
    """ConvNeXt-style residual block over frames: causal depth-wise conv, norm, 1x1 expand, GELU, 1x1."""

    def __init__(self, channels: int, dilation: int, expansion: int = 3):
        super().__init__()
        self.dw = FrameConv(channels, 3, dilation)
        self.norm = nn.LayerNorm(channels)
        self.up = nn.Linear(channels, expansion * channels)
        self.down = nn.Linear(expansion * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 0.1))

    def _mix(self, h: Tensor) -> Tensor:
        h = self.down(nn.functional.gelu(self.up(self.norm(h.transpose(1, 2)))))
        return (h * self.scale).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self._mix(self.dw(x))

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, state = self.dw.step(x, state)
        return x + self._mix(h), state


class FrameStack(nn.Module):
    """``cin`` -> ``width`` (1x1) -> blocks -> ``cout`` (1x1), all at the frame rate."""

    def __init__(self, cin: int, width: int, cout: int, n_blocks: int, extra_in: int = 0):
        super().__init__()
        self.inp = nn.Conv1d(cin, width, 1)
        # a second input added after the first 1x1 layer, zero at the start (a warm start begins unchanged)
        self.extra = nn.Conv1d(extra_in, width, 1, bias=False) if extra_in else None
        if self.extra is not None:
            nn.init.zeros_(self.extra.weight)
        self.blocks = nn.ModuleList(Block(width, 2 ** (i % 3)) for i in range(n_blocks))
        self.out = nn.Conv1d(width, cout, 1)

    def _inp(self, x: Tensor, extra: Tensor | None) -> Tensor:
        return self.inp(x) if self.extra is None else self.inp(x) + self.extra(extra)

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        h = self._inp(x, extra)
        for b in self.blocks:
            h = b(h)
        return self.out(h)

    def init_state(self, x: Tensor) -> State:
        h = x.new_zeros(x.shape[0], self.inp.out_channels, 0)
        return [b.dw.init_state(h) for b in self.blocks]

    def step(self, x: Tensor, states: State, extra: Tensor | None = None) -> tuple[Tensor, State]:
        h = self._inp(x, extra)
        out = []
        for b, s in zip(self.blocks, states):
            h, s = b.step(h, s)
            out.append(s)
        return self.out(h), out


class SpectralEncoder(nn.Module):
    """Audio ``[B, 1, N]`` (N a multiple of the hop) -> latents ``[B, D, N / hop]``, causally."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.hop, self.long, self.short = cfg.hop, cfg.analysis_fft, 2 * cfg.hop
        self.low = cfg.analysis_low_fft  # 0: no low-band window
        self.span = max(self.long, self.low)  # samples each frame reads, ending at its last sample
        self.register_buffer("long_window", torch.hann_window(self.long), persistent=False)
        self.register_buffer("short_window", torch.hann_window(self.short), persistent=False)
        self.low_bins = int(LOW_BAND_HZ * self.low / cfg.sample_rate) if self.low else 0
        if self.low:
            self.register_buffer("low_window", torch.hann_window(self.low), persistent=False)
        n_in = self.long // 2 + 1 + self.short // 2 + 1
        self.net = FrameStack(n_in, cfg.width, cfg.latent_dim, cfg.encoder_blocks, extra_in=self.low_bins)
        self.norm = nn.LayerNorm(cfg.latent_dim)

    def _latent(self, h: Tensor) -> Tensor:
        return self.norm(h.transpose(1, 2)).transpose(1, 2)

    def features(self, frames: Tensor) -> tuple[Tensor, Tensor | None]:
        """Windows ``[B, T, span]`` ending at each frame's last sample -> log magnitudes ``[B, F, T]`` of the
        long and short windows and, with ``analysis_low_fft``, of the low band of the longest window."""
        long = torch.fft.rfft(frames[..., -self.long:] * self.long_window).abs()
        short = torch.fft.rfft(frames[..., -self.short:] * self.short_window).abs()
        feats = torch.log(torch.cat([long, short], dim=-1) + LOG_FLOOR).transpose(1, 2)
        if not self.low:
            return feats, None
        low = torch.fft.rfft(frames[..., -self.low:] * self.low_window)[..., : self.low_bins].abs()
        return feats, torch.log(low + LOG_FLOOR).transpose(1, 2)

    def forward(self, audio: Tensor) -> Tensor:
        x = nn.functional.pad(audio[:, 0], (self.span - self.hop, 0))
        return self._latent(self.net(*self.features(x.unfold(-1, self.span, self.hop))))

    def init_state(self, audio: Tensor) -> State:
        b = audio.shape[0]
        return [audio.new_zeros(b, self.span - self.hop)] + self.net.init_state(audio.new_zeros(b, 1, 0))

    def step(self, audio: Tensor, states: State) -> tuple[Tensor, State]:
        buf = torch.cat([states[0], audio[:, 0]], dim=-1)
        n = (buf.shape[-1] - (self.span - self.hop)) // self.hop
        if n <= 0:
            return audio.new_zeros(audio.shape[0], self.net.out.out_channels, 0), [buf] + states[1:]
        frames = buf[:, : (n - 1) * self.hop + self.span].unfold(-1, self.span, self.hop)
        feats, low = self.features(frames)
        z, net_states = self.net.step(feats, states[1:], low)
        return self._latent(z), [buf[:, n * self.hop:]] + net_states


class SpectralDecoder(nn.Module):
    """Latents ``[B, D, T]`` -> audio ``[B, 1, T * hop]``: per-frame spectra, inverse FFT, overlap-add."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.hop, self.overlap = cfg.hop, cfg.decoder_overlap
        self.n_fft = self.overlap * cfg.hop
        self.bins = self.n_fft // 2 + 1
        self.integrated = cfg.decoder_phase == "integrated"
        # a periodic Hann window at hop n_fft / m sums to m / 2: scaled, the windows sum to one
        window = torch.hann_window(self.n_fft, periodic=True) * (2.0 / self.overlap)
        self.register_buffer("window", window, persistent=False)
        # phase advance of each bin's centre frequency over one hop (float64: the running phase is summed)
        advance = 2 * torch.pi * torch.arange(self.bins, dtype=torch.float64) * self.hop / self.n_fft
        self.register_buffer("advance", advance, persistent=False)
        self.net = FrameStack(cfg.latent_dim, cfg.width, 2 * self.bins, cfg.decoder_blocks)
        self.osc = SemitoneOscillators(cfg.oscillators, cfg.hop, cfg.sample_rate) if cfg.oscillators else None
        if self.osc is not None:  # the oscillators' amplitudes, from the latents
            self.osc_net = FrameStack(cfg.latent_dim, cfg.width, cfg.oscillators, OSC_BLOCKS)
            nn.init.zeros_(self.osc_net.out.weight)
            nn.init.constant_(self.osc_net.out.bias, AMP_INIT)
            # below the crossover (half a semitone above the top oscillator) the oscillators alone sound
            centres = torch.arange(self.bins) * cfg.sample_rate / self.n_fft
            self.register_buffer("band", (centres >= crossover_hz(cfg.oscillators)).float(), persistent=False)

    def frames(self, spec: Tensor, phase0: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Head output ``[B, 2F, T]`` -> windowed frames ``[B, T, m * hop]`` and, with integrated phase, the
        running phase after the last frame (``phase0``: before the first; ``[B, F]`` float64)."""
        log_mag, phase = spec.float().transpose(1, 2).chunk(2, dim=-1)
        last = None
        if self.integrated:
            run = phase0[:, None] + torch.cumsum(self.advance + phase.double(), dim=1)
            run = torch.remainder(run, 2 * torch.pi)
            phase, last = run.float(), run[:, -1]
        mag = torch.exp(log_mag.clamp(max=6.0))
        if self.osc is not None:
            mag = mag * self.band
        frames = torch.fft.irfft(torch.polar(mag, phase), n=self.n_fft)
        return frames * self.window, last

    def overlap_add(self, f: Tensor, pending: Tensor) -> tuple[Tensor, Tensor]:
        """Windowed frames ``[B, T, m * hop]`` + the tails of earlier frames ``[B, m - 1, hop]`` -> audio
        ``[B, 1, T * hop]`` and the tails that reach past the last frame."""
        b, t = f.shape[:2]
        parts = f.reshape(b, t, self.overlap, self.hop)
        acc = torch.cat([pending, f.new_zeros(b, t, self.hop)], dim=1)
        for j in range(self.overlap):  # hop j of frame n lands on frame n + j
            acc = acc + nn.functional.pad(parts[:, :, j], (0, 0, j, self.overlap - 1 - j))
        return acc[:, :t].reshape(b, 1, -1), acc[:, t:]

    def _own_state(self, z: Tensor) -> State:
        """The overlap-add tails, with integrated phase the running phase, with oscillators theirs (zero at the
        start)."""
        own = [z.new_zeros(z.shape[0], self.overlap - 1, self.hop, dtype=torch.float32)]
        if self.integrated:
            own.append(torch.zeros(z.shape[0], self.bins, dtype=torch.float64, device=z.device))
        if self.osc is not None:
            own += self.osc.init_state(z.shape[0], z.device)
        return own

    def _n_own(self) -> int:
        return 1 + self.integrated + 2 * (self.osc is not None)

    def synthesize(self, spec: Tensor) -> Tensor:
        """Head output ``[B, 2F, T]`` -> audio ``[B, 1, T * hop]``, from the zero state of a clip's start."""
        own = self._own_state(spec)
        f, _ = self.frames(spec, own[1] if self.integrated else None)
        return self.overlap_add(f, own[0])[0]

    def forward(self, z: Tensor) -> Tensor:
        audio = self.synthesize(self.net(z))
        if self.osc is not None:
            tones, _ = self.osc(self.osc_net(z), self.osc.init_state(z.shape[0], z.device))
            audio = audio + tones.reshape(audio.shape)
        return audio

    def init_state(self, z: Tensor) -> State:
        own = self._own_state(z) + self.net.init_state(z)
        return own + (self.osc_net.init_state(z) if self.osc is not None else [])

    def step(self, z: Tensor, states: State) -> tuple[Tensor, State]:
        n_own, n_net = self._n_own(), len(self.net.blocks)
        own, net_states, osc_states = states[:n_own], states[n_own:n_own + n_net], states[n_own + n_net:]
        spec, net_states = self.net.step(z, net_states)
        f, phase = self.frames(spec, own[1] if self.integrated else None)
        audio, pending = self.overlap_add(f, own[0])
        new_own = [pending] + ([phase] if self.integrated else [])
        if self.osc is not None:
            log_amp, osc_states = self.osc_net.step(z, osc_states)
            tones, osc_own = self.osc(log_amp, own[-2:])
            audio = audio + tones.reshape(audio.shape)
            new_own += osc_own
        return audio, new_own + net_states + osc_states


def steady_frames(decoder: SpectralDecoder, f0: float, frames: int, sample_rate: int) -> Tensor:
    """The frame-rate trap, by hand (chapter 3): the audio ``[frames * hop]`` a decoder makes when its head
    states the same frame ``frames`` times: all magnitude on the bin nearest ``f0`` Hz, and the phase advance
    that lands on ``f0`` (read as an advance with integrated phase, as a fixed phase with absolute phase)."""
    k = round(f0 * decoder.n_fft / sample_rate)
    log_mag = torch.full((decoder.bins,), -12.0)
    log_mag[k] = 3.0
    phase = torch.zeros(decoder.bins)
    phase[k] = 2 * torch.pi * (f0 - k * sample_rate / decoder.n_fft) * decoder.hop / sample_rate
    return decoder.synthesize(torch.cat([log_mag, phase])[None, :, None].expand(1, -1, frames)).reshape(-1)


class SpectralCodec(RVQCodec):
    """Spectral encoder, dac's RVQ, spectral decoder; optional pitch head on the first level."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = SpectralEncoder(cfg)
        self.quantizer = self._quantizer(cfg)
        self.decoder = SpectralDecoder(cfg)
        self.pitch_head = nn.Conv1d(cfg.latent_dim, cfg.pitch_bins, 1) if cfg.pitch_bins else None

    def forward(self, audio: Tensor, n_quantizers: int | None = None) -> dict[str, Tensor]:
        out = super().forward(audio, n_quantizers)
        if self.pitch_head is not None:  # level 0 alone (straight-through to the encoder) predicts the notes
            with torch.autocast(device_type=audio.device.type, enabled=False):
                z_q0 = self.quantizer.quantizers[0](out["latents"].float())[0]
            out["level0"] = z_q0
            out["pitch_logits"] = self.pitch_head(z_q0)
        return out
