"""The causal codec (chapter 3, "Causal codec tokenisation").

``load_codec(path=None, device=None)`` gives a ``CausalCodec`` with ``encode``, ``decode``,
``embed_codes``, ``codebook_tables``, ``stream_encoder`` and ``stream_decoder``; ``codec_for(model)``
gives the codec an accompanist was trained with; the networks are in
``streamlib.codec.model`` (waveform DAC) and ``streamlib.codec.spectral`` (frame rate), training in ``streamlib.codec.train``, export and cards in
``streamlib.codec.export``, quality metrics in ``streamlib.codec.quality`` and the token cache in
``streamlib.codec.tokenize``.
"""

from streamlib.codec.codec import (CausalCodec, SampleRateError, codec_for, codes_id, default_checkpoint, find_codec,
                                   load_codec)
from streamlib.codec.model import CausalDAC

__all__ = ["CausalCodec", "CausalDAC", "SampleRateError", "codec_for", "codes_id", "default_checkpoint", "find_codec", "load_codec"]
