"""Solutions to ``book/exercises/03_causal_codec.ipynb`` (chapter 3, "Causal codec tokenisation": bit rates,
residual vector quantisation, causality of ``streamlib.codec``)."""

from __future__ import annotations

import math

import numpy as np

from streamlib.solutions import Exercise, close, same_function


def bits_per_second(levels: int, codebook_size: int, frame_rate: int = 50) -> float:
    """03.1: each level sends one of ``codebook_size`` codes per frame."""
    return levels * math.log2(codebook_size) * frame_rate


def rvq_encode(z: np.ndarray, codebooks: list[np.ndarray]) -> list[int]:
    """03.2: greedy residual VQ: each level picks the codeword nearest (Euclidean) to what is left."""
    residual = np.asarray(z, dtype=float).copy()
    codes = []
    for book in codebooks:
        i = int(np.argmin(((book - residual) ** 2).sum(axis=1)))
        codes.append(i)
        residual = residual - book[i]
    return codes


def first_changed_frame(codec, audio, start: int) -> int | None:
    """03.4: perturb ``audio`` ([1, 1, samples]) from sample ``start`` on; the first code frame that changes."""
    import torch

    changed = audio.clone()
    changed[..., start:] += 0.1 * torch.randn(changed[..., start:].shape, generator=torch.Generator().manual_seed(0))
    diff = (codec.encode(changed) != codec.encode(audio)).any(dim=1)[0]
    return int(diff.nonzero()[0]) if diff.any() else None


def ex1() -> tuple[float, float]:
    # 10 levels x 10 bits x 50 Hz = 5000 bit/s in all; the model reads 4 of them: 2000 bit/s
    return 5000.0, 2000.0


def _expected1() -> tuple[float, float]:
    from streamlib.config import get_preset

    p = get_preset("paper")
    bits = math.log2(p.codec.codebook_size) * 50
    return p.codec.n_codebooks * bits, p.model.n_q * bits


def _expected3() -> int:
    from streamlib.codec import load_codec

    return load_codec().hop  # 16 kHz / 50 Hz


TOY = [np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]), np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])]


def _toy_cases():
    # (z, known codes): (5, 0.9): level 1 takes (4, 0), leaves (1, 0.9), level 2 takes (1, 0)
    yield (np.array([5.0, 0.9]), TOY), [1, 1]
    yield (np.array([0.2, 4.8]), TOY), [2, 2]
    yield (np.array([0.1, -0.1]), TOY), [0, 0]


def _rvq_compare(answer, _expected) -> bool:
    if not callable(answer):
        return False
    try:
        if any(list(answer(*args)) != codes for args, codes in _toy_cases()):
            return False
        # and on random codebooks: each level may only shrink the residual
        rng = np.random.default_rng(0)
        books = [rng.normal(scale=2.0 ** -q, size=(16, 3)) for q in range(4)]
        books = [np.vstack([np.zeros((1, 3)), b]) for b in books]  # a zero codeword: never worse
        for z in rng.normal(size=(20, 3)):
            codes = list(answer(z, books))
            errors = [np.linalg.norm(z - sum(books[q][codes[q]] for q in range(n))) for n in range(5)]
            if any(b > a + 1e-12 for a, b in zip(errors, errors[1:])):
                return False
        return True
    except Exception:
        return False


def _causal_compare(answer, _expected) -> bool:
    """A causal codec: perturbing from sample s on changes no frame before s // hop."""
    import torch

    from streamlib.codec import load_codec

    if not callable(answer):
        return False
    codec = load_codec()
    audio = 0.1 * torch.randn(1, 1, codec.sample_rate, generator=torch.Generator().manual_seed(1))
    for start in (codec.hop * 10, codec.hop * 30 + 7, codec.hop * 45):
        first = answer(codec, audio, start)
        if first is None or first < start // codec.hop or first > start // codec.hop + 1:
            return False
    return True


EXERCISES = [
    Exercise("03.1", "compute", "bits per second, paper codec and modelled levels", ex1, _expected1,
             lambda a, b: len(a) == 2 and all(math.isclose(x, y) for x, y in zip(a, b))),
    Exercise("03.2", "implement", "residual vector quantisation, by hand", lambda: rvq_encode, lambda: None,
             _rvq_compare),
    Exercise("03.3", "explore", "samples per code frame of the shipped codec",
             lambda: 320, _expected3, close()),
    Exercise("03.4", "implement", "which code frames does a late change reach?", lambda: first_changed_frame,
             lambda: None, _causal_compare),
]
