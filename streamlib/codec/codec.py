"""The codec as the rest of the library sees it: ``CausalCodec`` and ``load_codec``.

Chapter 3 ("Causal codec tokenisation"). ``encode`` turns audio ``[B, 1, N]`` into codes
``[B, Q, T]`` (T = ceil(N / hop), the last partial frame zero-padded on the right); ``decode``
turns codes of the first ``q <= Q`` levels back into ``[B, 1, T * hop]``; ``embed_codes`` is the
input embedding of Eq. (2) (the sum of the projected codebook vectors) and ``codebook_tables``
gives the frozen per-level tables whose sum it is. ``stream_encoder`` / ``stream_decoder`` return
objects with ``push`` that give exactly what the batch calls give (see ``streamlib.codec.stream``).

Input rules: audio must be float at ``codec.sample_rate`` (pass ``sample_rate=`` to have a
mismatch named in the error; ``streamlib.audio.load_audio`` resamples files); NaN/Inf raise
``AudioError``; stereo ``[B, 2, N]`` is **downmixed by averaging the channels** (as
``streamlib.audio`` does for files); ``[N]`` and ``[B, N]`` are read as mono.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from streamlib.audio import AudioError, validate
from streamlib.checkpoint import CheckpointError, load_card, load_into, load_weights
from streamlib.codec.model import RVQCodec, build_codec_model
from streamlib.config import CodecConfig, config_from_dict
from streamlib.paths import checkpoint_dir


class SampleRateError(AudioError):
    """Audio at another sample rate than the codec's (resample with ``streamlib.audio.resample``)."""


def default_checkpoint() -> Path:
    return checkpoint_dir() / "codec" / "book.safetensors"


class CausalCodec(nn.Module):
    """A trained (or fresh) causal DAC with the library's codec API."""

    def __init__(self, cfg: CodecConfig, model: RVQCodec | None = None, card: dict | None = None):
        super().__init__()
        self.cfg = cfg
        self.model = model if model is not None else build_codec_model(cfg)
        self.card = card or {}
        self.eval()

    # -------------------------------------------------------------- attributes
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def hop(self) -> int:
        return self.cfg.hop

    @property
    def n_codebooks(self) -> int:
        return self.cfg.n_codebooks

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -------------------------------------------------------------- checks
    def prepare(self, audio: Tensor, sample_rate: int | None = None) -> Tensor:
        """Validate and shape audio to ``[B, 1, N]`` float32 on the codec's device."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise SampleRateError(
                f"audio at {sample_rate} Hz, but this codec runs at {self.sample_rate} Hz: resample first "
                f"(streamlib.audio.resample or load_audio(path, {self.sample_rate}))"
            )
        if not isinstance(audio, Tensor):
            audio = torch.as_tensor(audio)
        if not audio.is_floating_point():
            raise AudioError(f"audio must be a float tensor in [-1, 1], got {audio.dtype}")
        if audio.dim() == 1:
            audio = audio[None, None]
        elif audio.dim() == 2:
            audio = audio[:, None]
        elif audio.dim() != 3:
            raise AudioError(f"audio must be [N], [B, N] or [B, C, N], got shape {tuple(audio.shape)}")
        validate(audio, name="codec input")
        if audio.shape[1] > 1:
            audio = audio.mean(dim=1, keepdim=True)  # documented downmix
        return audio.to(self.device, torch.float32)

    def check_codes(self, codes: Tensor) -> Tensor:
        if codes.dim() != 3:
            raise ValueError(f"codes must be [B, q, T], got shape {tuple(codes.shape)}")
        if codes.shape[1] < 1 or codes.shape[1] > self.n_codebooks:
            raise ValueError(f"codes have {codes.shape[1]} levels; this codec has 1..{self.n_codebooks}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in 0..{self.codebook_size - 1}, got {int(codes.min())}..{int(codes.max())}")
        return codes.to(self.device, torch.long)

    # -------------------------------------------------------------- batch API
    @torch.inference_mode()
    def encode(self, audio: Tensor, n_q: int | None = None, sample_rate: int | None = None,
               chunk_seconds: float = 1.0) -> Tensor:
        """Audio ``[B, 1, N]`` -> codes ``LongTensor[B, n_q, ceil(N / hop)]`` (default all levels).

        Clips longer than two chunks run through the streaming encoder ``chunk_seconds`` at a time:
        the codes are identical to one pass (the encoder is causal and streams exactly), and long
        activations no longer fall out of the CPU cache (3-5x faster on long clips here).
        ``chunk_seconds=0`` forces a single pass.
        """
        x = self.prepare(audio, sample_rate)
        n_q = self.n_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_codebooks:
            raise ValueError(f"n_q={n_q} outside 1..{self.n_codebooks}")
        chunk = int(chunk_seconds * self.sample_rate)
        if chunk > 0 and x.shape[-1] > 2 * chunk:
            enc = self.stream_encoder(batch=x.shape[0], n_q=n_q)
            parts = [enc.push(x[..., i : i + chunk]) for i in range(0, x.shape[-1], chunk)]
            return torch.cat(parts + [enc.flush()], dim=-1)
        rest = (-x.shape[-1]) % self.hop
        if rest:
            x = nn.functional.pad(x, (0, rest))
        return self.model.quantize(self.model.encoder(x), n_q)

    @torch.inference_mode()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, q <= Q, T]`` -> audio ``[B, 1, T * hop]``."""
        return self.model.decoder(self.model.dequantize(self.check_codes(codes)))

    @torch.inference_mode()
    def embed_codes(self, codes: Tensor) -> Tensor:
        """Eq. (2): sum over levels of the projected codebook vectors, ``[B, latent_dim, T]``."""
        return self.model.dequantize(self.check_codes(codes))

    @torch.inference_mode()
    def codebook_tables(self, n_q: int | None = None) -> list[Tensor]:
        """Per-level tables ``[codebook_size, latent_dim]`` with ``sum_l table_l[codes[l]] == embed_codes``."""
        n_q = self.n_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_codebooks:
            raise ValueError(f"n_q={n_q} outside 1..{self.n_codebooks}")
        tables = []
        for q in self.model.quantizer.quantizers[:n_q]:
            vectors = q.codebook.weight.t()[None]  # [1, codebook_dim, codebook_size]
            tables.append(q.out_proj(vectors)[0].t().contiguous().clone())
        return tables

    # -------------------------------------------------------------- streaming
    def stream_encoder(self, batch: int = 1, n_q: int | None = None):
        """A ``StreamEncoder``: ``push(samples) -> new codes``, ``flush() -> the last partial frame``."""
        from streamlib.codec.stream import StreamEncoder

        return StreamEncoder(self, batch=batch, n_q=n_q)

    def stream_decoder(self, batch: int = 1):
        """A ``StreamDecoder``: ``push(codes[B, q, k]) -> audio[B, 1, k * hop]``."""
        from streamlib.codec.stream import StreamDecoder

        return StreamDecoder(self, batch=batch)


def _strip_weight_norm(module: nn.Module) -> None:
    """Fold dac's weight normalisation into plain weights (identical outputs, fewer ops per call)."""
    from torch.nn.utils import remove_weight_norm

    for m in module.modules():
        if hasattr(m, "weight_g"):
            remove_weight_norm(m)


def load_codec(path: str | Path | None = None, device: str | torch.device | None = None,
               fold_weight_norm: bool = True) -> CausalCodec:
    """Load a codec checkpoint (default: the shipped ``checkpoints/codec/book.safetensors``)."""
    path = Path(path) if path is not None else default_checkpoint()
    if not path.exists():
        raise CheckpointError(
            f"codec checkpoint {path} does not exist (train one: python -m streamlib codec train, then codec export)"
        )
    card = load_card(path)
    try:
        cfg = config_from_dict(CodecConfig, card["config"])
    except KeyError:
        raise CheckpointError(f"card of {path} has no 'config'") from None
    model = build_codec_model(cfg)
    load_into(model, load_weights(path), what=str(path))
    if fold_weight_norm:
        _strip_weight_norm(model)
    codec = CausalCodec(cfg, model, card)
    if device is not None:
        codec = codec.to(device)
    return codec.eval()


def codes_id(card: dict) -> str | None:
    """The identity of the codes a codec makes: the weights hash of the codec that first made them.

    A codec whose decoder alone was retrained (``codec train --train-option decoder_only=true``) makes the
    same codes as its parent and carries the parent's identity in ``codes_sha256``; every other codec's codes
    are its own (``weights_sha256``). Token caches and accompanists record this identity, so a better decoder
    replaces the shipped one without invalidating them.
    """
    return card.get("codes_sha256") or card.get("weights_sha256")


def find_codec(sha256: str, folder: str | Path | None = None) -> Path | None:
    """The shipped codec checkpoint that makes the codes ``sha256`` names (``codes_id``; or None).

    The weights of that hash if they are shipped, else a codec that decodes the same codes."""
    folder = Path(folder) if folder is not None else default_checkpoint().parent
    same_codes = None
    for path in sorted(folder.glob("*.safetensors")):
        try:
            card = load_card(path)
        except CheckpointError:
            continue
        if card.get("weights_sha256") == sha256:
            return path
        if same_codes is None and codes_id(card) == sha256:
            same_codes = path
    return same_codes


def codec_for(model, path: str | Path | None = None, device: str | torch.device | None = None) -> CausalCodec:
    """The codec an accompanist was trained with: ``path`` if given, else the shipped codec whose
    weights hash the model's card records (``codec_sha256``), else the default codec.

    When the book's codec is retrained, models trained on the previous one keep working with the
    codec they learnt (kept beside it), until they are retrained too. A codec whose codebooks are not
    the model's (``path`` of another codec) is refused here (``check_codec``: ``CheckpointError``).
    """
    if path is not None:
        codec = load_codec(path, device)
    else:
        sha = (getattr(model, "card", None) or {}).get("codec_sha256")
        codec = load_codec(find_codec(sha) if sha else None, device)
    if hasattr(model, "check_codec"):
        model.check_codec(codec)
    return codec
