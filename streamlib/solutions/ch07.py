"""Solutions to ``book/exercises/07_training.ipynb`` (chapter 7, "Training": loss targets and the
learning-rate schedule of ``streamlib.train``, and how much history noise makes a model listen)."""

from __future__ import annotations

import math

from streamlib.solutions import Exercise, close, same_function


def lr_at(step: int, peak_lr: float, min_lr: float, warmup_steps: int, total: int) -> float:
    """07.3: linear warm-up to ``peak_lr`` over ``warmup_steps`` (step 0 already has one share), then a
    cosine from ``peak_lr`` down to ``min_lr`` at ``total``, flat after it."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
    return min_lr + (peak_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def ex1() -> int:
    # t_f = 0, 4 levels, T = 500: every frame of every level is a target except the delay pattern's
    # tail: level q loses q frames -> 4 * 500 - 6
    return 4 * 500 - 6


def ex2() -> int:
    # book schedule: peak 1e-3, floor 1e-4, 100 warm-up steps, 2000 steps. Half the peak (5e-4):
    # 1e-4 + 9e-4 (1 + cos(pi p)) / 2 = 5e-4  ->  cos(pi p) = -1/9  ->  p = 0.5354
    # step = 100 + 1900 p = 1117.3 -> the first step below is 1118
    p = math.acos(-1 / 9) / math.pi
    return math.floor(100 + 1900 * p) + 1


def ex4() -> float:
    # docs/listening_experiments.md (section 7.7's table), reliance at note onsets in nats per token:
    # noise30 0.0233 and 0.0205, paper 0.0047 and 0.0070 -> 0.0438 / 0.0117
    return (0.0233 + 0.0205) / (0.0047 + 0.0070)


def _expected1() -> int:
    import torch

    from streamlib.tokens.visibility import align

    a = align(torch.zeros(1, 1, 500, dtype=torch.long), torch.zeros(1, 4, 500, dtype=torch.long), 0, tf=0)
    return int(a.loss_mask.sum())


def _book_lr(step: int) -> float:
    from streamlib.config import get_preset
    from streamlib.train import lr_at as lib

    return lib(step, get_preset("book").train, 2000)


def _expected2() -> int:
    from streamlib.config import get_preset

    peak = get_preset("book").train.peak_lr
    return next(s for s in range(100, 2000) if _book_lr(s) < peak / 2)


def _expected4() -> float:
    from streamlib.listening_figures import listening_runs

    onset = {arm: sum(r["reliance"]["onset"] for r in listening_runs((arm,))) for arm in ("noise30", "paper")}
    return onset["noise30"] / onset["paper"]


def _cases():
    from streamlib.config import get_preset

    for name, total in (("book", 2000), ("paper", 100_000), ("debug", 50)):
        cfg = get_preset(name).train
        for step in sorted({0, 1, cfg.warmup_steps - 1, cfg.warmup_steps, total // 3, total // 2, total - 1, total,
                            total + 10}):
            yield step, cfg.peak_lr, cfg.min_lr, cfg.warmup_steps, total


def _lib_lr(step, peak_lr, min_lr, warmup_steps, total) -> float:
    import dataclasses

    from streamlib.config import get_preset
    from streamlib.train import lr_at as lib

    cfg = dataclasses.replace(get_preset("book").train, peak_lr=peak_lr, min_lr=min_lr, warmup_steps=warmup_steps)
    return lib(step, cfg, total)


EXERCISES = [
    Exercise("07.1", "compute", "how many targets a t_f = 0 window of 10 s carries", ex1, _expected1),
    Exercise("07.2", "explore", "when the book schedule falls below half its peak", ex2, _expected2),
    Exercise("07.3", "implement", "the learning-rate schedule", lambda: lr_at, lambda: _lib_lr,
             same_function(_cases, lambda a, b: math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15))),
    Exercise("07.4", "compute", "how much history noise raises the input reliance at onsets", ex4, _expected4,
             close(rel=0.01)),
]
