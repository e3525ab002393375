"""Chapter 9 (Evaluation): reference points and confidence intervals for the sweep.

- random-pairing floor (REFERENCE §8): pair each input with the target stem of *another* example of the
  same instrument category — what a metric gives for music that is plausible but not coherent;
- ground-truth ceiling: pair each input with its own true target stem;
- ``bootstrap_ci``: percentile bootstrap 95 % interval of the mean (numpy, seeded).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class PairingError(ValueError):
    """No valid random pairing exists (e.g. a category with a single example)."""


def random_pairing(categories: Sequence[int], seed: int = 0) -> np.ndarray:
    """For each example i, the index j != i of another example of the same category (uniform, seeded)."""
    cats = np.asarray(categories)
    rng = np.random.default_rng(seed)
    out = np.empty(len(cats), dtype=np.int64)
    for i, c in enumerate(cats):
        others = np.flatnonzero((cats == c) & (np.arange(len(cats)) != i))
        if len(others) == 0:
            raise PairingError(f"example {i} is the only one of category {int(c)}; no random pairing possible")
        out[i] = rng.choice(others)
    return out


def floor_and_ceiling(
    metric: Callable[[np.ndarray, np.ndarray], float],
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    categories: Sequence[int],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per-example ``metric(input, stem)`` for the true target (ceiling) and a same-category random target (floor)."""
    if not (len(inputs) == len(targets) == len(categories)):
        raise ValueError("inputs, targets and categories must have the same length")
    partner = random_pairing(categories, seed)
    ceiling = np.array([metric(x, y) for x, y in zip(inputs, targets)], dtype=np.float64)
    floor = []
    for i, j in enumerate(partner):
        n = min(len(inputs[i]), len(targets[j]))
        floor.append(metric(inputs[i][:n], targets[j][:n]))
    return {"ceiling": ceiling, "floor": np.array(floor, dtype=np.float64), "partner": partner}


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 groups: Sequence | None = None) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of the mean of ``values``.

    ``groups`` (one label per value, e.g. the song a clip comes from): resample whole groups, so that
    clips of one song, which are not independent, move together (a cluster bootstrap)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("bootstrap_ci needs a non-empty array of finite values")
    rng = np.random.default_rng(seed)
    if groups is None:
        means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    else:
        if len(groups) != len(v):
            raise ValueError(f"need one group per value, got {len(groups)} for {len(v)}")
        _, label = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
        sums, counts = np.bincount(label, weights=v), np.bincount(label).astype(np.float64)
        pick = rng.integers(0, len(sums), size=(n_boot, len(sums)))
        means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))
