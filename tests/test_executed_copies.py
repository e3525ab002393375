"""The executed copies in ``book/executed/`` (issue 18: readable on the forge without running) are outputs of
``python -m streamlib book build --quick --executed book/executed``. They must not rot: every chapter and
exercise notebook has one, its code is the source notebook's code, and its figures have PNG fallbacks."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
EXECUTED = BOOK / "executed"
SOURCES = sorted(BOOK.glob("[0-9][0-9]_*.ipynb")) + sorted((BOOK / "exercises").glob("[0-9][0-9]_*.ipynb"))
REBUILD = "rebuild the copies: python -m streamlib book build --quick --executed book/executed"


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("source", SOURCES, ids=[str(p.relative_to(BOOK)) for p in SOURCES])
def test_executed_copy_is_current(source: Path):
    copy = EXECUTED / source.relative_to(BOOK)
    assert copy.exists(), f"{copy.relative_to(ROOT)} is missing: {REBUILD}"
    executed, original = nbformat.read(copy, 4), nbformat.read(source, 4)
    assert _code(executed) == _code(original), f"{copy.relative_to(ROOT)} is stale: {REBUILD}"
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert outputs, f"{copy.relative_to(ROOT)} has no outputs"
    for out in outputs:
        data = out.get("data", {})
        if "application/vnd.plotly.v1+json" in data:
            assert "image/png" in data, f"{copy.relative_to(ROOT)}: a plotly figure without its PNG fallback"
