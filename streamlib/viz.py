"""Plotly and ipywidgets helpers shared by the book's chapters.

``setup_notebook()`` is the first call in every chapter: it fixes plotly's renderer to the
in-kernel ``plotly_mimetype`` (stable output under nbval) and returns the quick-mode flag.
``interactive(fn, **sliders)`` shows widgets when a front end is present and otherwise just calls
``fn`` with the sliders' default values, so a headless run (nbval, CI) still executes the figure.
``markdown_table(header, rows)`` renders a small results table for ``display``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import plotly.io as pio

from streamlib.config import quick_mode


def setup_notebook(seed: int = 0) -> bool:
    """Stable plotly renderer, seeded RNGs; returns ``quick_mode()``."""
    from streamlib.config import seed_everything

    pio.renderers.default = "plotly_mimetype"
    seed_everything(seed)
    return quick_mode()


def _default(widget: Any) -> Any:
    return widget.value if hasattr(widget, "value") else widget


def interactive(fn: Callable[..., Any], **controls: Any) -> Any:
    """Run ``fn`` once with the controls' default values; attach live widgets when possible.

    ``controls`` are ipywidgets (their ``.value`` is the default) or plain values (fixed).
    Returns ``fn``'s result for the defaults, so notebooks can assert on it.
    """
    result = fn(**{k: _default(w) for k, w in controls.items()})
    try:
        import ipywidgets as widgets
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None and any(isinstance(w, widgets.Widget) for w in controls.values()):
            out = widgets.interactive_output(
                lambda **kw: _show(fn(**kw)),
                {k: w for k, w in controls.items() if isinstance(w, widgets.Widget)},
            )
            display(widgets.VBox([w for w in controls.values() if isinstance(w, widgets.Widget)] + [out]))
    except ImportError:
        pass
    return result


def _show(obj: Any) -> None:
    if obj is None:
        return
    if hasattr(obj, "show"):
        obj.show()
    else:
        from IPython.display import display

        display(obj)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]):
    """An ``IPython.display.Markdown`` table: one row per item of ``rows``, cells shown with ``str``."""
    from IPython.display import Markdown

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return Markdown("\n".join(lines))
