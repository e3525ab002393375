"""The rendered book (``streamlib.site``, ``python -m streamlib book build``): offline pages with interactive
plotly, MathML maths, audio players and a note for widgets."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from streamlib import site

ROOT = Path(__file__).resolve().parents[1]
NETWORK = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)
CDNS = ("cdnjs", "unpkg", "jsdelivr", "googleapis", "mathjax", "require.min.js", "cdn.plot.ly")


def assert_offline(page: str) -> None:
    assert not NETWORK.search(page)
    lowered = page.lower()
    for host in CDNS:
        assert host not in lowered, host


def test_render_maths_outside_code_only():
    out = site.render_maths("Eq. $t_f \\le 0$ and $$x^2$$ but `$HOME` stays, costs 5 $ or $ 3")
    assert out.count("<math") == 2 and 'display="block"' in out
    assert "`$HOME`" in out and "5 $ or $ 3" in out and "xmlns" not in out


def test_static_outputs_turn_plotly_into_local_js_and_widgets_into_a_note():
    nb = new_notebook(cells=[new_code_cell("x")])
    nb.cells[0].outputs = [
        {"output_type": "display_data", "metadata": {},
         "data": {site.PLOTLY: {"data": [{"type": "scatter", "y": [1, 2]}], "layout": {"height": 300}},
                  "text/plain": "Figure"}},
        {"output_type": "display_data", "metadata": {},
         "data": {site.WIDGET: {"model_id": "m"}, "text/plain": "VBox(children=(FloatSlider(...)"}}]
    out = site.static_outputs(nb).cells[0].outputs
    assert "Plotly.newPlot" in out[0]["data"]["text/html"] and "height:300px" in out[0]["data"]["text/html"]
    assert out[1]["data"] == {"text/html": site.WIDGET_NOTE}
    assert site.PLOTLY in nb.cells[0].outputs[0]["data"]  # the original is untouched


def test_check_offline_refuses_a_cdn_script():
    with pytest.raises(site.SiteError, match="network"):
        site.check_offline('<script src="https://cdn.example/x.js"></script>', "page")
    site.check_offline('<a href="https://arxiv.org/abs/1">a link to read is fine</a>', "page")


def test_unknown_chapter_is_a_one_line_error():
    result = subprocess.run([sys.executable, "-m", "streamlib", "book", "build", "--chapters", "42", "--out", "/tmp/x"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.startswith("error: no chapter 42")
    assert "Traceback" not in result.stderr


def make_tiny_book(tmp_path: Path) -> Path:
    """A one-chapter book with every kind of output the chapters produce (audio, plotly, a widget, maths),
    and an exercise notebook; runs in seconds (tests/test_browser.py opens its page too)."""
    book = tmp_path / "book"
    (book / "exercises").mkdir(parents=True)
    nb = new_notebook(cells=[
        new_markdown_cell("# 1. Tiny\n\nFuture visibility $t_f$ and $$t_f + D \\le 0$$; next: [two](02_two.ipynb)"),
        new_code_cell("import numpy as np, plotly.graph_objects as go, plotly.io as pio, ipywidgets as w\n"
                      "from IPython.display import Audio, display\npio.renderers.default = 'plotly_mimetype'\n"
                      "display(Audio(np.sin(np.arange(1600) / 5), rate=16000))\n"
                      "go.Figure(go.Scatter(y=[1, 3, 2])).show()\ndisplay(w.FloatSlider(value=0.5))"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, book / "01_tiny.ipynb")
    nbformat.write(new_notebook(cells=[new_markdown_cell("Back to [the chapter](../01_tiny.ipynb)"),
                                       new_code_cell("print('exercise ran')")],
                                metadata=nb.metadata), book / "exercises" / "01_tiny.ipynb")
    (book / "README.md").write_text("# Guide\n\nStart with [chapter 1](01_tiny.ipynb).\n")
    return book


def test_a_tiny_book_with_audio_plotly_widgets_and_maths(tmp_path):
    """A one-chapter book made here: every kind of output the chapters produce, in seconds."""
    book = make_tiny_book(tmp_path)
    out, executed = tmp_path / "site", tmp_path / "executed"
    builds = site.build(out, quick=True, timeout=120, executed_dir=executed, book=book, log=lambda *_: None)
    assert [b.page for b in builds] == ["01_tiny.html", "exercises/01_tiny.html"]
    page = (out / "01_tiny.html").read_text()
    assert "<audio" in page and "data:audio/wav;base64," in page
    assert 'class="plotly-graph-div"' in page and '<script src="plotly.min.js"></script>' in page
    assert "<math" in page and "$t_f$" not in page
    assert site.WIDGET_NOTE in page and "FloatSlider(" not in page
    assert 'href="02_two.html"' in page
    assert "exercise ran" in (out / "exercises" / "01_tiny.html").read_text()
    assert 'href="../01_tiny.html"' in (out / "exercises" / "01_tiny.html").read_text()
    assert '../plotly.min.js' in (out / "exercises" / "01_tiny.html").read_text()
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert 'href="01_tiny.html"' in (out / "index.html").read_text()
    for p in out.rglob("*.html"):
        assert_offline(p.read_text())
    saved = [o.get("data", {}) for c in nbformat.read(executed / "01_tiny.ipynb", 4).cells for o in c.get("outputs", [])]
    assert any(site.PLOTLY in d for d in saved)  # still interactive in Jupyter
    assert any(site.AUDIO_NOTE == d.get("text/html") for d in saved)  # the WAV is left out of the copy
    assert not any("base64," in str(d.get("text/html", "")) for d in saved)
    if shutil.which("chromium"):  # kaleido draws the PNG fallback with the system's browser
        assert any("image/png" in d for d in saved if site.PLOTLY in d)
    assert json.loads((out / "build.json").read_text())["quick"] is True


def test_a_silent_kernel_gets_the_notebook_run_again(tmp_path, monkeypatch):
    """A cell timeout (a kernel gone silent) runs the notebook again in a fresh kernel, once by default; a second
    timeout is raised."""
    import nbclient
    from nbclient.exceptions import CellTimeoutError

    path = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7\nx")]), path)
    real, calls, said = nbclient.NotebookClient.execute, [], []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise CellTimeoutError("no reply")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(nbclient.NotebookClient, "execute", flaky)
    nb = site.execute(path, quick=True, timeout=60, log=said.append)
    assert len(calls) == 2 and "fresh kernel" in said[0]
    assert nb.cells[0].outputs[0]["data"]["text/plain"] == "42"
    calls.clear()
    with pytest.raises(CellTimeoutError):
        site.execute(path, quick=True, timeout=60, attempts=1, log=said.append)


def test_build_chapter_one_in_quick_mode(tmp_path):
    """The real chapter 1, through the command line (a per-cell timeout that leaves room for one re-run)."""
    result = subprocess.run([sys.executable, "-m", "streamlib", "book", "build", "--quick", "--chapters", "01",
                             "--timeout", "240", "--out", str(tmp_path / "site")], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    page = (tmp_path / "site" / "01_streaming_problem.html").read_text()
    assert page.count('class="plotly-graph-div"') >= 1 and '<script src="plotly.min.js"></script>' in page
    assert page.count("<math") > 10
    assert_offline(page)
    assert (tmp_path / "site" / "exercises" / "01_streaming_problem.html").exists()
