"""Token layout: categories and vocabulary, the delay pattern, future-visibility alignment.

Chapters 4 ("The delay pattern") and 5 ("Future visibility").
"""

from streamlib.tokens.categories import (
    CATEGORIES,
    N_SPECIAL,
    PAD,
    TARGET_CATEGORIES,
    code_to_token,
    instrument_token,
    program_to_category,
    token_to_code,
    tokens_to_codes,
    vocab_size,
)
from streamlib.tokens.delay import apply_delay, revert_delay, revert_logits, valid_mask
from streamlib.tokens.visibility import Aligned, align, align_offline_prefix, chunk_masks, last_visible_input

__all__ = [
    "CATEGORIES",
    "N_SPECIAL",
    "PAD",
    "TARGET_CATEGORIES",
    "code_to_token",
    "instrument_token",
    "program_to_category",
    "token_to_code",
    "tokens_to_codes",
    "vocab_size",
    "apply_delay",
    "revert_delay",
    "revert_logits",
    "valid_mask",
    "Aligned",
    "align",
    "align_offline_prefix",
    "chunk_masks",
    "last_visible_input",
]
