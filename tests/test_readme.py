"""The README's commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = "STREAMLIB_QUICK=1 OMP_NUM_THREADS=1 python -m pytest -n 2 --dist loadfile --nbval-lax"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert TEST_COMMAND in readme
    assert TEST_COMMAND in ci.splitlines()


def test_ci_installs_from_requirements_only():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet --progress-bar off -r requirements.txt" in ci
    assert "pip install -r requirements.txt" in (ROOT / "README.md").read_text()


def test_every_chapter_in_readme_exists():
    readme = (ROOT / "README.md").read_text()
    chapters = sorted(p.name for p in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    assert chapters, "no chapters found"
    for name in chapters:
        assert name in readme, f"{name} is not listed in the README"


def test_readme_says_where_chapter_1_opens():
    readme = (ROOT / "README.md").read_text()
    assert "jupyter lab book/" in readme  # JupyterLab is rooted at book/, so the chapter's path has no book/
    assert "http://localhost:8888/lab/tree/01_streaming_problem.ipynb" in readme
    assert (ROOT / "book" / "01_streaming_problem.ipynb").exists()


def test_readme_cpu_only_install_pins_the_required_torch():
    readme = (ROOT / "README.md").read_text()
    pins = dict(line.split("#")[0].strip().split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.startswith(("torch==", "torchaudio==")))
    cpu = (f"pip install torch=={pins['torch']} torchaudio=={pins['torchaudio']} "
           "--index-url https://download.pytorch.org/whl/cpu && pip install -r requirements.txt")
    assert cpu in readme
