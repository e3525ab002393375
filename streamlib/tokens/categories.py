"""The 18 instrument categories and the shared token vocabulary.

Chapter 5 ("Future visibility") teaches the instrument token that opens every output stream;
chapter 2 ("Multitrack data") uses ``program_to_category`` to label Slakh stems.

Categories are the 16 General MIDI program families (program // 8) plus Vocal and Unknown; drum
stems (``is_drum``) are Percussive (14). Vocal and Unknown are never generation targets.

One vocabulary is shared by every token stream (REFERENCE section 2)::

    0            PAD
    1 .. 18      instrument token = 1 + category id   (acts as BOS of the output stream)
    19 ..        codec code c     -> token c + 19

>>> instrument_token(3), code_to_token(0), token_to_code(19), category_of_token(4)
(4, 19, 0, 3)
"""

from __future__ import annotations

import torch

CATEGORIES: tuple[str, ...] = (
    "Piano",
    "Chromatic Percussion",
    "Organ",
    "Guitar",
    "Bass",
    "Strings",
    "Ensemble",
    "Brass",
    "Reed",
    "Pipe",
    "Synth Lead",
    "Synth Pad",
    "Synth Effects",
    "Ethnic",
    "Percussive",
    "Sound Effects",
    "Vocal",
    "Unknown",
)
N_CATEGORIES = len(CATEGORIES)  # 18
PERCUSSIVE = 14
VOCAL = 16
UNKNOWN = 17
TARGET_CATEGORIES: tuple[int, ...] = tuple(c for c in range(N_CATEGORIES) if c not in (VOCAL, UNKNOWN))

PAD = 0
FIRST_INSTRUMENT_TOKEN = 1
N_SPECIAL = 1 + N_CATEGORIES  # 19: PAD + 18 instrument tokens; codes start here
CODE_OFFSET = N_SPECIAL


class TokenError(ValueError):
    """A token, code or category id is out of range."""


def category_id(name: str) -> int:
    """Category id from its name (case-insensitive)."""
    lowered = {n.lower(): i for i, n in enumerate(CATEGORIES)}
    try:
        return lowered[name.strip().lower()]
    except KeyError:
        raise TokenError(f"unknown category {name!r}; choose one of {list(CATEGORIES)}") from None


def category_name(cat: int) -> str:
    """Category name from its id."""
    _check_category(cat)
    return CATEGORIES[cat]


def program_to_category(program: int | None, is_drum: bool = False) -> int:
    """GM program (0-based, 0..127) -> category id; drums -> Percussive (14); None -> Unknown (17)."""
    if is_drum:
        return PERCUSSIVE
    if program is None:
        return UNKNOWN
    if not 0 <= int(program) <= 127:
        raise TokenError(f"GM program must be in 0..127 (0-based), got {program}")
    return int(program) // 8


def is_target_category(cat: int) -> bool:
    """True when the category may be generated (everything but Vocal and Unknown)."""
    _check_category(cat)
    return cat in TARGET_CATEGORIES


def instrument_token(cat: int) -> int:
    """Token id of the instrument token for category ``cat`` (1 + cat)."""
    _check_category(cat)
    return FIRST_INSTRUMENT_TOKEN + int(cat)


def category_of_token(token: int) -> int:
    """Inverse of ``instrument_token``."""
    if not FIRST_INSTRUMENT_TOKEN <= int(token) < N_SPECIAL:
        raise TokenError(f"token {token} is not an instrument token (1..{N_SPECIAL - 1})")
    return int(token) - FIRST_INSTRUMENT_TOKEN


def vocab_size(codebook_size: int) -> int:
    """Size of the shared vocabulary for a codec with ``codebook_size`` codes per level."""
    if codebook_size < 1:
        raise TokenError(f"codebook_size must be positive, got {codebook_size}")
    return N_SPECIAL + codebook_size


def code_to_token(codes):
    """Codec code(s) -> token id(s): ``code + 19``. Accepts an int or an integer tensor."""
    if isinstance(codes, torch.Tensor):
        if codes.is_floating_point():
            raise TokenError(f"codes must be an integer tensor, got {codes.dtype}")
        if codes.numel() and int(codes.min()) < 0:
            raise TokenError(f"codes must be >= 0, got min {int(codes.min())}")
        return codes.long() + CODE_OFFSET
    if int(codes) < 0:
        raise TokenError(f"codes must be >= 0, got {codes}")
    return int(codes) + CODE_OFFSET


def token_to_code(tokens):
    """Token id(s) -> codec code(s): ``token - 19``; raises on special tokens (PAD / instrument)."""
    if isinstance(tokens, torch.Tensor):
        if tokens.numel() and int(tokens.min()) < CODE_OFFSET:
            raise TokenError(
                f"tokens contain special ids (min {int(tokens.min())} < {CODE_OFFSET}); "
                "strip PAD/instrument positions first (e.g. tokens_to_codes(..., fill=...))"
            )
        return tokens.long() - CODE_OFFSET
    if int(tokens) < CODE_OFFSET:
        raise TokenError(f"token {tokens} is special (PAD or instrument), not a code")
    return int(tokens) - CODE_OFFSET


def is_code_token(tokens: torch.Tensor) -> torch.Tensor:
    """Boolean mask of positions holding a code token (>= 19)."""
    return tokens >= CODE_OFFSET


def tokens_to_codes(tokens: torch.Tensor, fill: int | None = None) -> torch.Tensor:
    """Decode a token tensor to codes.

    With ``fill=None`` every entry must be a code token (else ``TokenError``); with an integer
    ``fill`` special tokens (PAD / instrument) become ``fill`` (e.g. -1 to mark them).
    """
    if fill is None:
        return token_to_code(tokens)
    return torch.where(is_code_token(tokens), tokens.long() - CODE_OFFSET, torch.full_like(tokens, fill).long())


def _check_category(cat: int) -> None:
    if not 0 <= int(cat) < N_CATEGORIES:
        raise TokenError(f"category id must be in 0..{N_CATEGORIES - 1}, got {cat}")


__all__ = [
    "CATEGORIES",
    "N_CATEGORIES",
    "PERCUSSIVE",
    "VOCAL",
    "UNKNOWN",
    "TARGET_CATEGORIES",
    "PAD",
    "FIRST_INSTRUMENT_TOKEN",
    "N_SPECIAL",
    "CODE_OFFSET",
    "TokenError",
    "category_id",
    "category_name",
    "program_to_category",
    "is_target_category",
    "instrument_token",
    "category_of_token",
    "vocab_size",
    "code_to_token",
    "token_to_code",
    "is_code_token",
    "tokens_to_codes",
]
