"""Presets, time units, quick mode, device and seeding.

Chapter 1 ("The streaming accompaniment problem") explains the two design variables t_f and k;
this module is the one place where seconds become frames (50 Hz inside the library), where the
quick-mode switch is read and where the compute device is chosen.

Presets:
    ``paper``  the paper's numbers (32 kHz codec, 10 RVQ levels of which 4 are modelled,
               16 layers / 16 heads / d 1024, batch 64, 10 s windows): for a GPU box.
    ``book``   what the book trains and ships on a 2-core CPU.
    ``debug``  tiny, for unit tests (seconds on a CPU).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import re
from dataclasses import dataclass

import numpy as np
import torch

FRAME_RATE = 50  # codec frames per second, every preset
QUICK_ENV = "STREAMLIB_QUICK"


# ----------------------------------------------------------------------------- quick mode, device, seed


def quick_mode() -> bool:
    """True when the environment variable ``STREAMLIB_QUICK`` is set to 1/true/yes.

    The only place the switch is read. Quick mode shrinks steps and data so that every notebook
    runs in a few minutes on a CPU (CI sets it; so can a student on a slow laptop).
    """
    return os.environ.get(QUICK_ENV, "0").strip().lower() in {"1", "true", "yes", "on"}


def pick(full, quick):
    """Return ``quick`` in quick mode, else ``full`` (for step counts and data sizes)."""
    return quick if quick_mode() else full


def get_device(prefer: str | None = None) -> torch.device:
    """The compute device: ``prefer`` if given, else cuda -> mps -> cpu (the only place this is decided)."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- time units


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and why."""


_DURATION = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(s|ms|f|frames?)?\s*$")


def to_frames(value: float | int | str, frame_rate: int = FRAME_RATE, *, name: str = "duration") -> int:
    """Convert a duration to an integer number of codec frames.

    Accepted forms: a float or int is **seconds**; a string may carry a unit:
    ``"1s"``, ``"-0.4s"``, ``"200ms"``, ``"50f"`` / ``"50 frames"``. Seconds must land on a frame
    boundary (a multiple of 1/frame_rate, to 1e-6 s) or a ``ConfigError`` says which value would.

    >>> to_frames(1.0), to_frames("-0.4s"), to_frames("20ms"), to_frames("3f")
    (50, -20, 1, 3)
    """
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ConfigError(f"{name}={value!r}: expected seconds ('1s', '-0.4s', '200ms') or frames ('50f')")
        number, unit = float(m.group(1)), (m.group(2) or "s")
        if unit.startswith("f"):
            if number != int(number):
                raise ConfigError(f"{name}={value!r}: a frame count must be an integer")
            return int(number)
        seconds = number / 1000.0 if unit == "ms" else number
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(f"{name}={value!r}: expected a number of seconds or a string like '1s' or '50f'")
    if not math.isfinite(seconds):
        raise ConfigError(f"{name}={value!r} is not finite")
    frames = seconds * frame_rate
    rounded = round(frames)
    if abs(frames - rounded) > 1e-6 * frame_rate:
        raise ConfigError(
            f"{name}={seconds} s is not a whole number of {frame_rate} Hz frames "
            f"(nearest: {rounded / frame_rate} s = {rounded} frames)"
        )
    return int(rounded)


def to_seconds(frames: int, frame_rate: int = FRAME_RATE) -> float:
    """Frames -> seconds."""
    return frames / frame_rate


@dataclass(frozen=True)
class StreamSpec:
    """The two design variables of Eq. (1), in frames: future visibility ``tf`` and chunk ``k``.

    ``tf`` may be negative (predict ahead), zero (synchronous) or positive (lookahead), with
    |tf| < window; ``k`` is at least one frame and at most the window.
    """

    tf: int
    k: int
    window: int = 500

    def __post_init__(self) -> None:
        if not isinstance(self.tf, int) or not isinstance(self.k, int):
            raise ConfigError(f"tf and k must be integer frames, got tf={self.tf!r}, k={self.k!r}")
        if self.window < 1:
            raise ConfigError(f"window must be >= 1 frame, got {self.window}")
        if self.k < 1:
            raise ConfigError(f"k must be at least 1 frame (1/{FRAME_RATE} s), got {self.k}")
        if self.k > self.window:
            raise ConfigError(f"k={self.k} frames exceeds the window of {self.window} frames")
        if abs(self.tf) >= self.window:
            raise ConfigError(f"|tf|={abs(self.tf)} frames must be smaller than the window ({self.window} frames)")

    @classmethod
    def from_seconds(cls, tf, k, window=10.0, frame_rate: int = FRAME_RATE) -> "StreamSpec":
        """Build from seconds (or unit strings, see ``to_frames``)."""
        return cls(
            tf=to_frames(tf, frame_rate, name="tf"),
            k=to_frames(k, frame_rate, name="k"),
            window=to_frames(window, frame_rate, name="window"),
        )

    @property
    def tf_seconds(self) -> float:
        return to_seconds(self.tf)

    @property
    def k_seconds(self) -> float:
        return to_seconds(self.k)

    @property
    def tag(self) -> str:
        """A file-name-safe label, e.g. ``tf+50_k1``."""
        return f"tf{self.tf:+d}_k{self.k}"


# ----------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class CodecConfig:
    """Causal DAC-style codec (chapter 3). hop = prod(encoder_rates) = sample_rate / 50.

    The defaults are the ``book`` preset, chosen by measurement on a 2-core CPU (benchmarks/RESULTS.md):
    a narrow encoder with its down-sampling early (rates 4,4,4,5: few channels at the full rate,
    which is what costs on a CPU), DAC's decoder shape at width 128, two residual units (dilations
    1 and 9) instead of three, 8 levels of 1024 codes. 0.68 M parameters; ~3 training steps/s of
    8 x 0.5 s on one core; streams at ~11x real time in 100 ms chunks.
    """

    sample_rate: int = 16_000
    encoder_dim: int = 8
    encoder_rates: tuple[int, ...] = (4, 4, 4, 5)
    decoder_dim: int = 128
    decoder_rates: tuple[int, ...] = (8, 5, 4, 2)
    n_codebooks: int = 8
    codebook_size: int = 1024
    codebook_dim: int = 8
    quantizer_dropout: float = 0.5
    dilations: tuple[int, ...] = (1, 9)  # one residual unit per dilation in every block
    # "dac": the waveform causal DAC (model.py); "spectral": frame-rate networks, STFT in and out
    # (spectral.py). The fields below apply to "spectral" only.
    arch: str = "dac"
    width: int = 256  # channels of the frame-rate networks
    encoder_blocks: int = 4
    decoder_blocks: int = 6
    analysis_fft: int = 2048  # the long causal analysis window, in samples
    # > analysis_fft: a still longer window whose bins below 500 Hz also feed the encoder (8192 at 16 kHz:
    # 512 ms, 2 Hz bins, enough to tell low bass notes apart; no latency: it ends at the frame's last sample)
    analysis_low_fft: int = 0
    latent: int = 0  # latent width; 0 keeps the DAC rule encoder_dim * 2 ** len(encoder_rates)
    pitch_bins: int = 0  # > 0: a head on the first RVQ level predicts the frame's semitone spectrum
    # synthesis window of the spectral decoder in hops: 2 = 50 % overlap (40 ms windows, 25 Hz bins),
    # 4 = Vocos's 75 % (80 ms, 12.5 Hz bins: finer low notes). The latency is one hop either way.
    decoder_overlap: int = 2
    # "absolute": the decoder states each frame's phase; "integrated": it states a per-bin phase advance
    # that is summed over frames (a phase vocoder), so a steady code can hold any frequency, not only
    # multiples of the 50 Hz frame rate (docs/codec_experiments.md)
    decoder_phase: str = "absolute"
    # > 0: the spectral decoder adds this many sine oscillators on the semitones from C1 (MIDI 24), their
    # amplitudes stated per frame by a small frame network, their phase running on (codec/oscillators.py)
    oscillators: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ("dac", "spectral"):
            raise ConfigError(f"codec arch must be 'dac' or 'spectral', got {self.arch!r}")
        hop = math.prod(self.encoder_rates)
        if hop * FRAME_RATE != self.sample_rate:
            raise ConfigError(
                f"encoder_rates {self.encoder_rates} give hop {hop}, i.e. {self.sample_rate / hop:g} Hz frames "
                f"at {self.sample_rate} Hz; the library needs {FRAME_RATE} Hz"
            )
        if math.prod(self.decoder_rates) != hop:
            raise ConfigError(f"decoder_rates {self.decoder_rates} must multiply to the hop {hop}")
        if self.decoder_phase not in ("absolute", "integrated"):
            raise ConfigError(f"decoder_phase must be 'absolute' or 'integrated', got {self.decoder_phase!r}")
        if self.analysis_low_fft and self.analysis_low_fft <= self.analysis_fft:
            raise ConfigError(f"analysis_low_fft must be 0 or longer than analysis_fft ({self.analysis_fft}), "
                              f"got {self.analysis_low_fft}")
        if not 0 <= self.oscillators <= 84:
            raise ConfigError(f"oscillators must be 0-84 (semitones from C1 to at most B7), got {self.oscillators}")
        if self.decoder_overlap < 2:
            raise ConfigError(f"decoder_overlap must be >= 2 (hops per synthesis window), got {self.decoder_overlap}")

    @property
    def hop(self) -> int:
        return math.prod(self.encoder_rates)

    @property
    def latent_dim(self) -> int:
        return self.latent or self.encoder_dim * 2 ** len(self.encoder_rates)


@dataclass(frozen=True)
class ModelConfig:
    """Decoder-only accompanist (chapter 6). ``n_q`` codec levels are modelled."""

    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int = 4
    d_model: int = 256
    ffn_hidden: int = 688  # SwiGLU hidden width (~8/3 d, rounded to a multiple of 16)
    n_q: int = 4
    max_frames: int = 512  # trained context in frames (window + padding + BOS)
    dropout: float = 0.0
    cross_attention: bool = False
    input_chroma: bool = False  # also read the input's causal chroma (streamlib.input_chroma; beyond the paper)
    present_input: bool = False  # t_f > 0: also read the input frame sounding with the prediction (beyond the paper)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError("the head dimension must be even for rotary embeddings")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and data settings for the accompanist (chapter 7)."""

    batch_size: int = 8
    window_seconds: float = 10.0
    steps: int = 2000
    peak_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    betas: tuple[float, float] = (0.9, 0.95)
    bf16: bool = True  # autocast; on CPU only where the processor supports it

    @property
    def window_frames(self) -> int:
        return to_frames(self.window_seconds, name="window_seconds")


@dataclass(frozen=True)
class Preset:
    name: str
    codec: CodecConfig
    model: ModelConfig
    train: TrainConfig
    description: str = ""

    def replace(self, **sections) -> "Preset":
        """Copy with some sections replaced, e.g. ``preset.replace(train=...)``."""
        return dataclasses.replace(self, **sections)


# The shipped book codec (issue 15, docs/codec_experiments.md): frame-rate networks, a pitch head on
# the first level. CodecConfig()'s own defaults stay the first book codec (a waveform DAC), so that
# its card, and the accompanists trained on it, still load.
BOOK_CODEC = CodecConfig(arch="spectral", latent=256, pitch_bins=84, oscillators=48, analysis_low_fft=8192)

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        description="The paper's setting (GPU): 32 kHz causal DAC, 10 levels (4 modelled), 16x1024 LLaMA-style decoder.",
        codec=CodecConfig(
            sample_rate=32_000,
            encoder_dim=64,
            encoder_rates=(2, 4, 8, 10),
            decoder_dim=1536,
            decoder_rates=(10, 8, 4, 2),
            n_codebooks=10,
            codebook_size=1024,  # DAC's; the paper does not state it
            codebook_dim=8,
            quantizer_dropout=0.5,
            dilations=(1, 3, 9),  # DAC's residual units
        ),
        model=ModelConfig(n_layers=16, n_heads=16, n_kv_heads=8, d_model=1024, ffn_hidden=2816, max_frames=512),
        train=TrainConfig(
            batch_size=64,
            window_seconds=10.0,
            steps=100_000,
            peak_lr=1e-4,
            min_lr=1e-5,
            warmup_steps=10_000,
            grad_clip=1.0,
        ),
    ),
    "book": Preset(
        name="book",
        description="Trained and shipped on a 2-core CPU: 16 kHz frame-rate causal codec, 4x256 decoder.",
        codec=BOOK_CODEC,
        model=ModelConfig(),
        train=TrainConfig(),
    ),
    "debug": Preset(
        name="debug",
        description="Tiny, for unit tests.",
        codec=CodecConfig(encoder_dim=4, decoder_dim=16, n_codebooks=4, codebook_size=64, codebook_dim=4),
        model=ModelConfig(n_layers=2, n_heads=4, n_kv_heads=2, d_model=32, ffn_hidden=64, max_frames=128),
        train=TrainConfig(batch_size=2, window_seconds=1.0, steps=10, warmup_steps=2),
    ),
}


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast pays off: CUDA with bf16, or a CPU with native bf16 (AVX-512 BF16 / AMX).

    On an AVX2-only CPU bf16 is emulated and a codec training step runs ~8x slower than in fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def get_preset(name: str) -> Preset:
    """Look up a preset by name with a clear error."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def preset_to_dict(preset: Preset) -> dict:
    """JSON-friendly view (used in checkpoint cards)."""
    return dataclasses.asdict(preset)


def config_from_dict(cls, data: dict):
    """Rebuild a config dataclass from a card's dict, rejecting unknown keys clearly."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown fields {sorted(unknown)} (checkpoint from another version?)")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


__all__ = [
    "FRAME_RATE",
    "bf16_supported",
    "QUICK_ENV",
    "ConfigError",
    "CodecConfig",
    "ModelConfig",
    "TrainConfig",
    "Preset",
    "PRESETS",
    "StreamSpec",
    "quick_mode",
    "pick",
    "get_device",
    "seed_everything",
    "to_frames",
    "to_seconds",
    "get_preset",
    "preset_to_dict",
    "config_from_dict",
]
