"""A causal DAC built from descript-audio-codec's parts, with an exact streaming path.

Chapter 3 ("Causal codec tokenisation") teaches this module. The layers are dac's own
(``Snake1d``, weight-normalised ``WNConv1d`` / ``WNConvTranspose1d``, ``ResidualVectorQuantize``);
what changes is the padding:

* every convolution is padded on the **left only** (kernel ``k``, dilation ``d``: ``(k-1)*d`` zeros);
  a strided down-sampling convolution (kernel ``2s``, stride ``s``) gets ``s`` zeros, so output frame
  ``j`` sees the input up to the last sample of its own frame;
* every transposed convolution (kernel ``2s``, stride ``s``) drops the last ``s`` output samples, so
  the output keeps the length and the alignment of its input.

Hence the codes of frame ``n`` depend only on samples ``< (n+1)*hop``, and decoded frame ``n``
only on codes ``<= n``.

Streaming: every layer has a pure ``step(x, state) -> (y, state)`` with the state passed in and
out as tensors. The modules keep no streaming attributes, so one model serves many streams and
``torch.compile`` can trace the step functions (same output to 1e-7; for the small book codec on
this CPU eager mode is faster, so the library does not compile).
A convolution's state is the input it still needs on its left; a transposed convolution's state
is the previous input frame. Feeding audio in chunks of any size therefore performs the same
arithmetic as one pass over the whole clip: the codes are identical and the decoded audio
matches to float tolerance.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from dac.nn.layers import Snake1d, WNConv1d, WNConvTranspose1d
from dac.nn.quantize import ResidualVectorQuantize
from torch import Tensor, nn

from streamlib.config import CodecConfig

State = list[Tensor]


class CausalConv1d(nn.Module):
    """``WNConv1d`` padded on the left. Stride ``s`` > 1 uses kernel ``2s`` and ``s`` pad samples."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = WNConv1d(cin, cout, kernel_size=kernel, stride=stride, dilation=dilation)
        self.stride = stride
        self.span = (kernel - 1) * dilation + 1  # input samples one output needs
        self.pad = self.span - stride  # left context (zeros at the start of a clip)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.pad(x, (self.pad, 0)))

    def init_state(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.conv.in_channels, self.pad)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Consume ``x`` after the buffered left context; emit every output that is complete."""
        buf = torch.cat([state, x], dim=-1)
        n = (buf.shape[-1] - self.span) // self.stride + 1 if buf.shape[-1] >= self.span else 0
        if n <= 0:
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0), buf
        y = self.conv(buf[..., : (n - 1) * self.stride + self.span])
        return y, buf[..., n * self.stride :]


class CausalConvTranspose1d(nn.Module):
    """``WNConvTranspose1d`` (kernel ``2s``, stride ``s``) with the last ``s`` outputs cropped."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = WNConvTranspose1d(cin, cout, kernel_size=2 * stride, stride=stride)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)[..., : x.shape[-1] * self.stride]

    def init_state(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.conv.in_channels, 1)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Prepend the previous frame (its tail overlaps ours), keep the outputs that are final."""
        if x.shape[-1] == 0:
            return x.new_zeros(x.shape[0], self.conv.out_channels, 0), state
        y = self.conv(torch.cat([state, x], dim=-1))
        s = self.stride
        return y[..., s : (x.shape[-1] + 1) * s], x[..., -1:]


class ResidualUnit(nn.Module):
    """dac's residual unit (snake, dilated kernel-7 conv, snake, 1x1 conv, skip), made causal."""

    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.snake1 = Snake1d(dim)
        self.conv1 = CausalConv1d(dim, dim, 7, dilation=dilation)
        self.snake2 = Snake1d(dim)
        self.conv2 = WNConv1d(dim, dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.snake2(self.conv1(self.snake1(x))))

    def init_state(self, x: Tensor) -> State:
        return [self.conv1.init_state(x)]

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        y, s = self.conv1.step(self.snake1(x), state[0])
        return x + self.conv2(self.snake2(y)), [s]


class _Chain(nn.Module):
    """A sequence of layers; stateful ones (with ``step``) thread their states through."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def step(self, x: Tensor, states: State) -> tuple[Tensor, State]:
        out: State = []
        i = 0
        for layer in self.layers:
            if x.shape[-1] == 0:  # nothing new reached this layer: later states stay as they are
                return x.new_zeros(x.shape[0], self.out_channels, 0), out + states[i:]
            if isinstance(layer, _Chain):
                n = layer.n_states
                x, s = layer.step(x, states[i : i + n])
                out.extend(s)
                i += n
            elif isinstance(layer, ResidualUnit):
                x, s = layer.step(x, states[i : i + 1])
                out.extend(s)
                i += 1
            elif isinstance(layer, (CausalConv1d, CausalConvTranspose1d)):
                x, s = layer.step(x, states[i])
                out.append(s)
                i += 1
            else:
                x = layer(x)
        return x, out

    def init_state(self, x: Tensor) -> State:
        """Zero streaming states for a batch like ``x`` (shape ``[B, C_in, *]``)."""
        return _flatten_init(self, x)

    @property
    def n_states(self) -> int:
        return sum(layer.n_states if isinstance(layer, _Chain) else 1 for layer in self.layers if _stateful(layer))

    @property
    def out_channels(self) -> int:
        for layer in reversed(self.layers):
            if isinstance(layer, _Chain):
                return layer.out_channels
            if isinstance(layer, ResidualUnit):
                return layer.conv2.out_channels
            if isinstance(layer, (CausalConv1d, CausalConvTranspose1d)):
                return layer.conv.out_channels
        raise ValueError("a chain needs at least one convolution")


def _stateful(layer: nn.Module) -> bool:
    return isinstance(layer, (_Chain, ResidualUnit, CausalConv1d, CausalConvTranspose1d))


def _empty_out(layer: nn.Module, x: Tensor) -> Tensor:
    """A zero-length output of ``layer`` for an input like ``x`` (to probe channel widths)."""
    if isinstance(layer, _Chain):
        ch = layer.out_channels
    elif isinstance(layer, (CausalConv1d, CausalConvTranspose1d)):
        ch = layer.conv.out_channels
    else:
        ch = x.shape[1]
    return x.new_zeros(x.shape[0], ch, 0)


def _flatten_init(chain: _Chain, x: Tensor) -> State:
    """Zero streaming states of ``chain`` for a batch like ``x`` (shape ``[B, C_in, *]``)."""
    states: State = []
    for layer in chain.layers:
        if isinstance(layer, _Chain):
            states.extend(_flatten_init(layer, x))
        elif hasattr(layer, "init_state"):
            st = layer.init_state(x)
            states.extend(st if isinstance(st, list) else [st])
        x = _empty_out(layer, x)
    return states


def encoder_chain(cfg: CodecConfig) -> _Chain:
    """Conv(1 -> d) | blocks [residual units at d, snake, strided conv d -> 2d] | snake, conv -> latent."""
    d = cfg.encoder_dim
    layers: list[nn.Module] = [CausalConv1d(1, d, 7)]
    for stride in cfg.encoder_rates:
        block = [ResidualUnit(d, dil) for dil in cfg.dilations]
        block += [Snake1d(d), CausalConv1d(d, 2 * d, 2 * stride, stride=stride)]
        layers.append(_Chain(block))
        d *= 2
    layers += [Snake1d(d), CausalConv1d(d, cfg.latent_dim, 3)]
    return _Chain(layers)


def decoder_chain(cfg: CodecConfig) -> _Chain:
    """Conv(latent -> D) | blocks [snake, transposed conv D -> D/2, residual units] | snake, conv -> 1, tanh."""
    d = cfg.decoder_dim
    layers: list[nn.Module] = [CausalConv1d(cfg.latent_dim, d, 7)]
    for stride in cfg.decoder_rates:
        block: list[nn.Module] = [Snake1d(d), CausalConvTranspose1d(d, d // 2, stride)]
        block += [ResidualUnit(d // 2, dil) for dil in cfg.dilations]
        layers.append(_Chain(block))
        d //= 2
    layers += [Snake1d(d), CausalConv1d(d, 1, 7), nn.Tanh()]
    return _Chain(layers)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Conv1d):  # dac's initialisation
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.constant_(m.bias, 0)


class RVQCodec(nn.Module):
    """What every codec of the book shares: ``encoder``, dac's residual vector quantiser, ``decoder``.

    Subclasses build ``self.encoder`` (audio -> latents, with ``step``) and ``self.decoder``
    (latents -> audio, with ``step``) and say how to make their zero streaming states.
    """

    cfg: CodecConfig
    encoder: nn.Module
    decoder: nn.Module

    def _quantizer(self, cfg: CodecConfig) -> ResidualVectorQuantize:
        return ResidualVectorQuantize(
            input_dim=cfg.latent_dim,
            n_codebooks=cfg.n_codebooks,
            codebook_size=cfg.codebook_size,
            codebook_dim=cfg.codebook_dim,
            quantizer_dropout=cfg.quantizer_dropout,
        )

    def forward(self, audio: Tensor, n_quantizers: int | None = None) -> dict[str, Tensor]:
        """``audio [B,1,N]`` (N a multiple of the hop) -> reconstruction, codes and VQ losses.

        Under bf16 autocast the quantiser still runs in fp32 (nearest-codeword search and the VQ
        losses are precision-sensitive); encoder and decoder follow the autocast.
        """
        z = self.encoder(audio)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            z_q, codes, level_latents, commitment, codebook = self.quantizer(z.float(), n_quantizers)
        return {
            "audio": self.decoder(z_q),
            "codes": codes,
            "latents": z,
            "level_latents": level_latents,  # [B, n_q * codebook_dim, T]: each level's projected input
            "vq/commitment_loss": commitment,
            "vq/codebook_loss": codebook,
        }

    def quantize(self, z: Tensor, n_q: int) -> Tensor:
        """Latents ``[B, D, T]`` -> codes ``[B, n_q, T]`` (per frame: streaming needs no state here)."""
        codes = []
        residual = z
        for q in self.quantizer.quantizers[:n_q]:
            z_e = q.in_proj(residual)
            z_p, idx = q.decode_latents(z_e)
            residual = residual - q.out_proj(z_p)
            codes.append(idx)
        return torch.stack(codes, dim=1)

    def dequantize(self, codes: Tensor) -> Tensor:
        """Codes ``[B, q, T]`` -> the summed projected codebook vectors ``[B, D, T]`` (Eq. 2)."""
        z, _, _ = self.quantizer.from_codes(codes)
        return z

    def encoder_state(self, batch: int = 1) -> State:
        """Zero streaming state of the encoder (the left context at the start of a clip)."""
        return self.encoder.init_state(next(self.parameters()).new_zeros(batch, 1, 0))

    def decoder_state(self, batch: int = 1) -> State:
        return self.decoder.init_state(next(self.parameters()).new_zeros(batch, self.cfg.latent_dim, 0))

    def encode_step(self, audio: Tensor, state: State, n_q: int) -> tuple[Tensor, State]:
        """Pure streaming encode: new samples + state -> codes of the frames now complete + state."""
        z, state = self.encoder.step(audio, state)
        if z.shape[-1] == 0:
            return torch.zeros(audio.shape[0], n_q, 0, dtype=torch.long, device=audio.device), state
        return self.quantize(z, n_q), state

    def decode_step(self, codes: Tensor, state: State) -> tuple[Tensor, State]:
        """Pure streaming decode: new frames of codes + state -> their audio + state."""
        return self.decoder.step(self.dequantize(codes), state)


class CausalDAC(RVQCodec):
    """Encoder, residual vector quantiser (dac's), decoder, all on the waveform (the paper preset)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder_chain(cfg)
        self.quantizer = self._quantizer(cfg)
        self.decoder = decoder_chain(cfg)
        self.apply(_init_weights)


@contextlib.contextmanager
def dac_weight_norm_quiet() -> Iterator[None]:
    """Silence, inside the block only, torch's FutureWarning that ``torch.nn.utils.weight_norm`` is deprecated.
    dac's layers (``WNConv1d``, the quantiser's projections, its GAN ``Discriminator``) call it on every
    construction: the warning is about dac's code, not ours, and a loaded codec folds weight norm away
    (``load_codec``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
        yield


def build_codec_model(cfg: CodecConfig) -> RVQCodec:
    """The codec network a config describes: ``arch`` "dac" (waveform) or "spectral" (frame rate), built
    without dac's weight_norm warning (``dac_weight_norm_quiet``)."""
    with dac_weight_norm_quiet():
        if cfg.arch == "spectral":
            from streamlib.codec.spectral import SpectralCodec

            return SpectralCodec(cfg)
        return CausalDAC(cfg)
