"""Solutions to ``book/exercises/12_masked_generation.ipynb`` (chapter 12, "Masked generation": the training
mask and the unmasking schedule of ``streamlib.model.masked``)."""

from __future__ import annotations

import math

import numpy as np

from streamlib.solutions import Exercise, close, same_function


def ex1() -> float:
    # level L's positions are masked with probability cos(u pi / 2), u ~ U(0, 1): the mean is
    # integral_0^1 cos(u pi / 2) du = 2 / pi
    return 2 / math.pi


def _masked_share_of_level(draws: int = 4000, frames: int = 250, seed: int = 0) -> float:
    """The library's own answer to 12.1: the share of level L's positions ``draw_mask`` masks, over many draws."""
    from streamlib.model.masked import draw_mask

    masked, level = draw_mask(np.random.default_rng(seed), draws, 4, frames)
    own = masked[np.arange(draws), level.numpy()]  # [draws, frames]: level L of each window
    return float(own.float().mean())


def ex2() -> int:
    # after the first of 8 iterations floor(250 cos(pi / 16)) = floor(245.19) tokens of the level stay masked
    return math.floor(250 * math.cos(math.pi / 2 * 1 / 8))


def still_masked(frames: int, step: int, steps: int) -> int:
    """12.3: how many of a level's ``frames`` stay masked after iteration ``step`` (0-based) of ``steps``."""
    if step + 1 >= steps:
        return 0
    return math.floor(frames * math.cos(math.pi / 2 * (step + 1) / steps))


def _cases():
    for frames in (1, 50, 250, 500):
        for steps in (1, 2, 8, 32):
            for step in sorted({0, steps // 2, steps - 1}):
                yield frames, step, steps


def _library(name: str):
    from streamlib.model import masked

    return lambda: getattr(masked, name)


EXERCISES = [
    Exercise("12.1", "compute", "how much of level L the training mask hides", ex1, _masked_share_of_level,
             lambda a, b: isinstance(a, (int, float)) and abs(float(a) - float(b)) < 0.01),
    Exercise("12.2", "compute", "tokens still masked after the first iteration", ex2,
             lambda: _library("still_masked")()(250, 0, 8), close()),
    Exercise("12.3", "implement", "the unmasking schedule", lambda: still_masked, _library("still_masked"),
             same_function(_cases)),
]
