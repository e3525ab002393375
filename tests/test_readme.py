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
