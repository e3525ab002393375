"""The book in a real browser: Debian's Chromium, driven headlessly by Playwright (no browser download).

1. JupyterLab on 127.0.0.1 opens a copy of chapter 2, runs all cells in quick mode, moves the silence
   threshold slider with the keyboard, and checks that the figure changed and that audio players exist.
2. A page of the built site (a tiny book, ``test_site.make_tiny_book``) draws its plotly figure with the
   local plotly.js, shows MathML and an audio element, and requests nothing from the network.

Screenshots go to the test's tmp folder. Skipped, with the reason, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHAPTER = "02_multitrack_data.ipynb"  # audio players and a slider that redraws a figure, ~1 min in quick mode

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture()
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab on the loopback address serving a copy of the chapter (the original stays untouched)."""
    root = tmp_path / "book"
    root.mkdir()
    shutil.copy(ROOT / "book" / CHAPTER, root / CHAPTER)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "STREAMLIB_QUICK": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--ServerApp.open_browser=False", "--allow-root"]
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300  # a loaded 2-core machine takes minutes
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-1500:]}")
                time.sleep(0.5)
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


STATE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.model || !w.sessionContext.session) return null;
  const cells = Array.from({length: w.content.model.cells.length}, (_, i) => w.content.model.cells.get(i));
  const code = cells.filter(c => c.type === 'code');
  const errors = code.flatMap(c => c.outputs.toJSON()).filter(o => o.output_type === 'error')
                     .map(o => o.ename + ': ' + o.evalue);
  const kernel = w.sessionContext.session.kernel;
  return {n: code.length, done: code.filter(c => c.executionCount !== null).length,
          status: kernel ? kernel.status : 'none', errors};
}"""

FIGURE_OF_SLIDER = """(slider) => {
  const box = slider.closest('.widget-vbox');
  const gd = box && box.querySelector('.js-plotly-plot');
  return gd && gd.data ? JSON.stringify(gd.data.map(t => [t.name, t.x && Array.from(t.x).length, t.y && Array.from(t.y)]))
                         + JSON.stringify((gd.layout || {}).shapes || []) : null;
}"""


def test_jupyterlab_runs_a_chapter_moves_a_slider_and_plays_audio(lab, browser, tmp_path):
    url, token = lab
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{url}/lab/tree/{CHAPTER}?token={token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=600_000)  # loading Lab and starting a kernel: minutes on a busy machine
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.time() + 900
    state = None
    while time.time() < deadline:
        state = page.evaluate(STATE)
        if state and state["errors"]:
            break
        if state and state["done"] == state["n"] and state["status"] == "idle":
            break
        time.sleep(2)
    page.screenshot(path=str(tmp_path / "jupyterlab_ran.png"))
    assert state and not state["errors"], state
    assert state["done"] == state["n"], f"cells still running after 15 minutes: {state}"

    slider = page.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle").first
    slider.scroll_into_view_if_needed()
    page.wait_for_function(FIGURE_OF_SLIDER, arg=slider.element_handle(), timeout=60_000)
    before = page.evaluate(FIGURE_OF_SLIDER, slider.element_handle())
    slider.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # -60 dB -> -45 dB, in 5 dB steps
    page.wait_for_function(f"(s) => ({FIGURE_OF_SLIDER})(s) && ({FIGURE_OF_SLIDER})(s) !== {before!r}",
                           arg=slider.element_handle(), timeout=60_000)
    page.screenshot(path=str(tmp_path / "jupyterlab_slider_moved.png"))
    assert page.evaluate(FIGURE_OF_SLIDER, slider.element_handle()) != before

    page.locator("audio").first.scroll_into_view_if_needed()
    assert page.locator("audio").count() >= 1
    assert (tmp_path / "jupyterlab_slider_moved.png").stat().st_size > 10_000


def test_a_built_page_draws_offline(browser, tmp_path):
    from test_site import make_tiny_book

    from streamlib import site

    out = tmp_path / "site"
    site.build(out, quick=True, timeout=120, book=make_tiny_book(tmp_path), exercises=False, log=lambda *_: None)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto((out / "01_tiny.html").as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)  # drawn by the local plotly.js
    assert page.locator("math").count() >= 2 and page.locator("audio").count() == 1
    page.screenshot(path=str(tmp_path / "site_page.png"), full_page=True)
    remote = [u for u in requested if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert not remote, remote
