"""The rendered book: ``python -m streamlib book build`` executes the chapters and writes a static HTML site.

Which tool, and why. Issue 18 asks for a site that builds offline: nothing fetched at build or view time.

* jupyter-book 2 (mystmd) downloads its HTML theme from the network at build time; jupyter-book 1.x
  (Sphinx + sphinx-book-theme) loads MathJax and require.js from CDNs by default and needs extra
  packages and configuration to render plotly's mimetype; neither is installed here.
* nbconvert's ``lab`` template (installed with JupyterLab) is close: it only links MathJax, require.js,
  mermaid and the widget manager from CDNs. This module extends it with a template
  (``streamlib/site_template/book``) that drops those four, and fills in what they did offline:
  plotly figures are drawn by ``plotly.min.js`` copied from the installed ``plotly`` package, and maths
  is turned into MathML at build time by ``latex2mathml`` (browsers render MathML natively: no script).

Chapters run under ``nbclient`` with a per-cell timeout (never ``nbconvert --execute`` on the widget
chapters: a known deadlock); quick mode is ``STREAMLIB_QUICK=1`` in the kernel's environment. The
static page keeps audio players (IPython's ``Audio`` writes an ``<audio>`` element with the data
inline), tables and figures; a widget view becomes a note that the sliders work when the notebook runs
(every slider has a default whose figure is in the page). ``build.json`` in the output folder records
what ran, in which mode, and how long each chapter took.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from streamlib.paths import REPO_ROOT

BOOK = REPO_ROOT / "book"
TEMPLATE_DIR = Path(__file__).with_name("site_template")
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
CDN = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)
WIDGET_NOTE = ('<p class="widget-note"><em>Interactive controls (sliders) appear here when the notebook runs in '
               'Jupyter; the output below shows their default values.</em></p>')


class SiteError(RuntimeError):
    """The site cannot be built; the message says why."""


@dataclass
class ChapterBuild:
    """One chapter of a build: source, page, whether it was executed, seconds and mode."""

    chapter: str
    source: str
    page: str
    executed: bool
    seconds: float
    quick: bool


def chapters(selected: list[str] | None = None, book: Path = BOOK) -> list[Path]:
    """The chapter notebooks ``book/NN_*.ipynb`` (``selected``: two-digit numbers, e.g. ["01", "04"])."""
    found = sorted(book.glob("[0-9][0-9]_*.ipynb"))
    if selected:
        want = {s.zfill(2) for s in selected}
        unknown = want - {p.name[:2] for p in found}
        if unknown:
            raise SiteError(f"no chapter {', '.join(sorted(unknown))} in {book} (have {found[0].name[:2]}..{found[-1].name[:2]})")
        found = [p for p in found if p.name[:2] in want]
    return found


def execute(path: Path, *, quick: bool, timeout: int = 600, kernel: str = "python3", attempts: int = 2,
            log=print):
    """Run a notebook top to bottom with nbclient in its own folder; returns the executed notebook.

    ``timeout`` is per cell (seconds). ``quick`` sets ``STREAMLIB_QUICK=1`` in the kernel's environment.
    A cell that times out, or a kernel that dies, gets the notebook run again from the top in a fresh kernel,
    up to ``attempts`` runs in all: under load a kernel has been seen to go silent with both it and the client
    idle, waiting on each other (no CPU used; a second run passes), and a build should not hang on that.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    saved = os.environ.get("STREAMLIB_QUICK")
    os.environ["STREAMLIB_QUICK"] = "1" if quick else "0"
    try:
        for attempt in range(1, attempts + 1):
            nb = nbformat.read(path, as_version=4)
            try:
                NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=False,
                               resources={"metadata": {"path": str(path.parent)}}).execute()
                return nb
            except (CellTimeoutError, DeadKernelError) as error:
                if attempt == attempts:
                    raise
                log(f"{path.name}: {type(error).__name__} (no answer within {timeout} s per cell); running it again "
                    f"in a fresh kernel ({attempt + 1} of {attempts})")
    finally:
        if saved is None:
            os.environ.pop("STREAMLIB_QUICK", None)
        else:
            os.environ["STREAMLIB_QUICK"] = saved


# ----------------------------------------------------------------------------- maths and outputs

_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])")


def _mathml(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    try:
        out = convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 -- a formula latex2mathml cannot parse stays as TeX, visibly
        return f'<code class="tex">{html.escape(tex)}</code>'
    return out.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "")


def render_maths(markdown: str) -> str:
    """Replace ``$$...$$`` and ``$...$`` outside code spans by MathML (rendered by the browser, offline)."""
    parts = _CODE.split(markdown)
    for i in range(0, len(parts), 2):  # even parts are outside code
        text = _DISPLAY.sub(lambda m: _mathml(m.group(1), True), parts[i])
        parts[i] = _INLINE.sub(lambda m: _mathml(m.group(1), False), text)
    return "".join(parts)


def plotly_html(figure: dict) -> str:
    """A div and a script that draw a plotly figure (its JSON) with the page's local plotly.js."""
    div = f"fig-{uuid.uuid4().hex[:12]}"
    spec = json.dumps({"data": figure.get("data", []), "layout": figure.get("layout", {}),
                       "config": {"responsive": True, **figure.get("config", {})}}).replace("</", "<\\/")
    height = figure.get("layout", {}).get("height") or 450
    return (f'<div id="{div}" class="plotly-graph-div" style="width:100%;height:{int(height)}px"></div>\n'
            f'<script>(function(){{var f={spec};Plotly.newPlot("{div}",f.data,f.layout,f.config);}})();</script>')


def static_outputs(nb):
    """A copy of ``nb`` ready for static HTML: plotly outputs as local-plotly.js HTML, widget views as a
    note, markdown maths as MathML, links to chapters and exercises pointing at their pages."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = render_maths(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            if PLOTLY in data:
                out["data"] = {"text/html": plotly_html(data[PLOTLY])}  # (any PNG fallback dropped)
            elif WIDGET in data:
                out["data"] = {"text/html": WIDGET_NOTE}
    nb.metadata.pop("widgets", None)
    return nb


def add_png_fallbacks(nb, width: int = 900, log=print) -> int:
    """Give every plotly output of ``nb`` a static PNG beside its JSON (in place), for readers whose viewer
    cannot run plotly (a forge's notebook preview). Uses kaleido with the system's Chromium; returns how
    many figures got one (0, with a note, when kaleido or a browser is missing)."""
    import base64

    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError:
        log("note: kaleido is not installed: no PNG fallbacks")
        return 0
    if "BROWSER_PATH" not in os.environ and shutil.which("chromium"):
        os.environ["BROWSER_PATH"] = shutil.which("chromium")
    done = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            fig = out.get("data", {}).get(PLOTLY)
            if fig is None or "image/png" in out["data"]:
                continue
            try:
                png = pio.to_image(fig, format="png", width=width, height=fig.get("layout", {}).get("height") or 450)
            except Exception as error:  # noqa: BLE001 -- no browser, or kaleido failing: say so once and stop
                log(f"note: no PNG fallbacks ({type(error).__name__}: {error})")
                return done
            out["data"]["image/png"] = base64.b64encode(png).decode()
            done += 1
    return done


AUDIO_NOTE = ("<p><em>An audio player stood here (its sound is left out of this copy to keep the repository small): "
              "listen in the rendered book (<code>python -m streamlib book build</code>) or run the notebook.</em></p>")


def drop_inline_audio(nb) -> int:
    """Replace every output holding an inline ``<audio>`` (a base64 WAV) by a short note, in place; returns how
    many. The executed copies are for reading on the forge, whose notebook preview does not play audio."""
    done = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            page = out.get("data", {}).get("text/html", "")
            page = "".join(page) if isinstance(page, list) else page
            if "<audio" in page and "base64," in page:
                out["data"] = {"text/html": AUDIO_NOTE, "text/plain": "[audio player: run the notebook to listen]"}
                done += 1
    return done


def to_html(nb, title: str, nav: str) -> str:
    """The page of one executed notebook (the book template: the lab look, nothing from a CDN)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="book", extra_template_basedirs=[str(TEMPLATE_DIR)])
    body, _ = exporter.from_notebook_node(static_outputs(nb), resources={"metadata": {"name": title}, "nav": nav})
    body = re.sub(r'href="((?:\.\./)?(?:exercises/)?\d\d_\w+)\.ipynb', r'href="\1.html', body)
    return body


def check_offline(page: str, name: str) -> None:
    """Refuse a page that would load a script, style, image or frame from the network."""
    m = CDN.search(page)
    if m:
        raise SiteError(f"{name} loads something from the network: {page[m.start():m.start() + 120]!r}")


def _nav(pages: list[tuple[str, str]]) -> str:
    links = " · ".join(f'<a href="{href}">{html.escape(label)}</a>' for href, label in pages)
    return f'<nav class="book-nav"><a href="index.html">Course guide</a> · {links}</nav>'


def index_page(guide: Path, nav: str, builds: list[ChapterBuild]) -> str:
    """The index: the course guide (``book/README.md``) and what this build ran."""
    import mistune

    text = guide.read_text() if guide.exists() else "# streamlib\n"
    text = re.sub(r"\]\((?:\./)?((?:exercises/)?\d\d_\w+)\.ipynb\)", r"](\1.html)", text)
    body = mistune.html(render_maths(text))
    rows = "".join(f"<tr><td><a href='{b.page}'>{html.escape(b.chapter)}</a></td><td>{'quick' if b.quick else 'full'}</td>"
                   f"<td>{b.seconds:.0f} s</td></tr>" for b in builds)
    ran = (f"<h2>This build</h2><table><tr><th>chapter</th><th>mode</th><th>executed in</th></tr>{rows}</table>"
           if builds else "")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>streamlib: the book</title>"
            f"<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.5}}"
            f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em}}"
            f"nav.book-nav{{font-size:90%;margin-bottom:1em}}</style></head><body>{nav}{body}{ran}</body></html>")


def build(out: str | Path, *, selected: list[str] | None = None, quick: bool = False, timeout: int = 600,
          executed_dir: str | Path | None = None, exercises: bool = True, book: Path = BOOK,
          log=print) -> list[ChapterBuild]:
    """Execute the chapters (and their exercise notebooks) and write the site to ``out``; returns what ran.

    ``executed_dir``: also save each executed notebook there (same file name), for reading on the forge.
    ``book``: the folder holding ``NN_*.ipynb``, ``exercises/`` and the course guide ``README.md``.
    """
    import nbformat

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    book = Path(book)
    sources = chapters(selected, book)
    if exercises:
        sources += [p for s in sources for p in sorted((book / "exercises").glob(f"{s.name[:2]}_*.ipynb"))]
    pages = [(("exercises/" if p.parent.name == "exercises" else "") + p.stem + ".html", p.stem) for p in sources
             if p.parent.name != "exercises"]
    nav = _nav(pages)
    plotly_js = Path(__import__("plotly").__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(plotly_js, out / "plotly.min.js")
    builds: list[ChapterBuild] = []
    for path in sources:
        sub = "exercises/" if path.parent.name == "exercises" else ""
        page = f"{sub}{path.stem}.html"
        log(f"executing {sub}{path.name} ({'quick' if quick else 'full'} mode) ...")
        start = time.perf_counter()
        try:
            nb = execute(path, quick=quick, timeout=timeout, log=log)
        except Exception as error:  # nbclient's CellExecutionError / CellTimeoutError / DeadKernelError
            first = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            raise SiteError(f"{sub}{path.name} did not run: {type(error).__name__}: {first}") from error
        seconds = time.perf_counter() - start
        if executed_dir is not None:
            target = Path(executed_dir) / sub / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            saved = copy.deepcopy(nb)
            figures, players = add_png_fallbacks(saved, log=log), drop_inline_audio(saved)
            nbformat.write(saved, target)
            log(f"  {target}: {figures} PNG fallbacks, {players} audio players left out, "
                f"{target.stat().st_size / 1e6:.1f} MB")
        body = to_html(nb, path.stem, nav.replace('href="', f'href="{"../" if sub else ""}'))
        if sub:
            body = body.replace('src="plotly.min.js"', 'src="../plotly.min.js"')
        check_offline(body, page)
        (out / page).parent.mkdir(parents=True, exist_ok=True)
        (out / page).write_text(body)
        builds.append(ChapterBuild(chapter=f"{sub}{path.stem}", source=str(path), page=page,
                                   executed=True, seconds=seconds, quick=quick))
        log(f"  {page}: {seconds:.0f} s, {len(body) / 1e6:.1f} MB")
    (out / "index.html").write_text(index_page(book / "README.md", nav, builds))
    (out / "build.json").write_text(json.dumps({"quick": quick, "timeout_per_cell_s": timeout,
                                                "chapters": [asdict(b) for b in builds]}, indent=2))
    return builds
