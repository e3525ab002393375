"""The causal codec (chapter 3, "Causal codec tokenisation").

``load_codec(path=None, device=None)`` gives a ``CausalCodec`` with ``encode``, ``decode``,
``embed_codes``, ``codebook_tables``, ``stream_encoder`` and ``stream_decoder``; the model is in
``streamlib.codec.model``, training in ``streamlib.codec.train``, export and cards in
``streamlib.codec.export``, quality metrics in ``streamlib.codec.quality`` and the token cache in
``streamlib.codec.tokenize``.
"""

from streamlib.codec.codec import CausalCodec, SampleRateError, default_checkpoint, load_codec
from streamlib.codec.model import CausalDAC

__all__ = ["CausalCodec", "CausalDAC", "SampleRateError", "default_checkpoint", "load_codec"]
