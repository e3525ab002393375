"""Solutions to ``book/exercises/05_future_visibility.ipynb`` (chapter 5, "Future visibility": padding,
the visibility rule and positions of ``streamlib.tokens.visibility``)."""

from __future__ import annotations

from streamlib.solutions import Exercise, same_function


def offsets(tf: int) -> tuple[int, int]:
    """05.2: (PAD embeddings before the input stream, PAD tokens before the output stream) for ``tf`` frames."""
    return max(1 - tf, 0), max(tf - 1, 0)


def last_visible_input(f: int, q: int, tf: int) -> int:
    """05.3: the last input frame output frame f at level q may see: f + q + t_f - 1."""
    return f + q + tf - 1


def ex1() -> int:
    # window 500, t_f = +50 frames, 4 levels: output padding t_f - 1 = 49 and the delay pattern 3
    return 500 - 49 - 3


def _expected1() -> int:
    from streamlib.tokens.visibility import predicted_frames

    return predicted_frames(500, 50, 4)


def _tfs():
    for tf in range(-60, 61, 7):
        yield (tf,)


def _lib_offsets(tf: int) -> tuple[int, int]:
    from streamlib.tokens.visibility import input_offset, output_offset

    return input_offset(tf), output_offset(tf)


def _fqt():
    for f in (0, 1, 10, 249):
        for q in range(4):
            for tf in (-50, -10, -1, 0, 1, 4, 50):
                yield f, q, tf


def _lib_last(f, q, tf):
    from streamlib.tokens.visibility import last_visible_input as lib

    return lib(f, q, tf)


def ex4() -> int:
    # token 0 is PAD; the instrument tokens follow it: category c opens with token 1 + c (Bass is 4)
    from streamlib.tokens.categories import category_id

    return 1 + category_id("Bass")


def _expected4() -> int:
    from streamlib.tokens.categories import category_id, instrument_token

    return instrument_token(category_id("Bass"))


EXERCISES = [
    Exercise("05.1", "compute", "how many output frames a +1 s window trains", ex1, _expected1),
    Exercise("05.2", "implement", "the two paddings", lambda: offsets, lambda: _lib_offsets, same_function(_tfs)),
    Exercise("05.3", "implement", "the visibility rule", lambda: last_visible_input, lambda: _lib_last,
             same_function(_fqt)),
    Exercise("05.4", "explore", "the token that opens a Bass stem's output stream", ex4, _expected4),
]
