"""Worked solutions of the exercise notebooks ``book/exercises/NN_*.ipynb``, one module per chapter.

Every exercise is an ``Exercise``: its ``solution`` is the worked answer (by hand, from the chapter's
reasoning), its ``expected`` the library's own answer (or a known one), and ``compare`` decides whether an
answer is right. For "implement this function" exercises the answer *is* a function, and ``compare``
runs it against the library's implementation on many cases. ``tests/test_solutions.py`` grades every
``solution`` against ``expected``, so a solution cannot rot when the library changes.

In a notebook: ``from streamlib.solutions import grade`` then ``grade("04.1", my_answer)``; an
unanswered exercise (``None``) is not an error, so the notebooks run top to bottom unanswered.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

LEVELS = {"explore": "★ explore", "compute": "★★ compute", "implement": "★★★ implement"}
CHAPTERS = tuple(f"{n:02d}" for n in range(1, 13))


class ExerciseError(KeyError):
    """No such exercise."""


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: ``id`` "CC.N" (chapter, number), ``level`` (explore / compute / implement),
    ``title``, the worked ``solution``, the library's ``expected`` answer and how to ``compare`` them."""

    id: str
    level: str
    title: str
    solution: Callable[[], Any]
    expected: Callable[[], Any]
    compare: Callable[[Any, Any], bool] = field(default=lambda a, b: a == b)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"{self.id}: level must be one of {sorted(LEVELS)}, got {self.level!r}")


def close(rel: float = 1e-9, abs_: float = 1e-12) -> Callable[[Any, Any], bool]:
    """``compare`` for numbers: equal within ``rel`` (relative) or ``abs_``."""
    return lambda a, b: isinstance(a, (int, float)) and math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_)


def same_function(cases: Callable[[], Iterable[tuple]], equal: Callable[[Any, Any], bool] | None = None
                  ) -> Callable[[Any, Any], bool]:
    """``compare`` for implement-this-function exercises: ``answer(*case) == expected(*case)`` for every
    case ``cases()`` yields (``equal`` decides; default ``==``, or ``torch.equal`` / ``np.array_equal``
    when the result is a tensor / array)."""

    def eq(a, b) -> bool:
        if equal is not None:
            return bool(equal(a, b))
        import numpy as np
        import torch

        if isinstance(b, torch.Tensor):
            return isinstance(a, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
        if isinstance(b, np.ndarray):
            return np.array_equal(np.asarray(a), b)
        return a == b

    def compare(answer, expected) -> bool:
        if not callable(answer):
            return False
        for case in cases():
            want = expected(*case)
            try:
                if not eq(answer(*case), want):
                    return False
            except Exception:  # a student's function that raises, or returns the wrong type, is simply wrong
                return False
        return True

    return compare


def chapter(number: str) -> list[Exercise]:
    """The exercises of chapter ``number`` ("01" ... "11")."""
    if number not in CHAPTERS:
        raise ExerciseError(f"no chapter {number!r}; chapters are {CHAPTERS[0]}..{CHAPTERS[-1]}")
    return list(importlib.import_module(f"streamlib.solutions.ch{number}").EXERCISES)


def exercise(exercise_id: str) -> Exercise:
    """The exercise with id "CC.N"."""
    for ex in chapter(exercise_id.split(".")[0]):
        if ex.id == exercise_id:
            return ex
    raise ExerciseError(f"no exercise {exercise_id!r}")


def check(exercise_id: str, answer: Any) -> bool:
    """True when ``answer`` is right (no printing; the tests use it)."""
    ex = exercise(exercise_id)
    expected = ex.expected()
    try:  # implement exercises compare against the library function itself
        return bool(ex.compare(answer, expected))
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):  # an answer of the wrong shape
        return False


def grade(exercise_id: str, answer: Any) -> bool | None:
    """Grade ``answer`` in a notebook: prints a one-line verdict; None when not answered yet."""
    ex = exercise(exercise_id)
    where = f"streamlib.solutions.ch{exercise_id.split('.')[0]}"
    if answer is None:
        print(f"{ex.id} not answered yet (a worked solution: {where}, exercise {ex.id})")
        return None
    ok = check(exercise_id, answer)
    print(f"{ex.id} {'correct' if ok else 'not yet -- try again'}")
    return ok
