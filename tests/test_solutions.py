"""Exercise solutions (``streamlib.solutions``) graded against the library, and the exercise notebooks
(``book/exercises``) in step with them; nbval executes the notebooks themselves."""

import json
from pathlib import Path

import pytest

from streamlib.solutions import CHAPTERS, ExerciseError, chapter, check, exercise, grade

BOOK = Path(__file__).resolve().parents[1] / "book"
ALL = [ex for num in CHAPTERS for ex in chapter(num)]


@pytest.mark.parametrize("num", CHAPTERS)
def test_each_chapter_has_graded_exercises_from_explore_to_implement(num):
    exs = chapter(num)
    assert 3 <= len(exs) <= 5
    assert [ex.id for ex in exs] == [f"{num}.{i}" for i in range(1, len(exs) + 1)]
    assert "implement" in {ex.level for ex in exs} and len({ex.level for ex in exs}) >= 2


@pytest.mark.parametrize("ex", ALL, ids=[ex.id for ex in ALL])
def test_worked_solution_matches_the_library(ex):
    assert check(ex.id, ex.solution())


@pytest.mark.parametrize("ex", ALL, ids=[ex.id for ex in ALL])
def test_a_wrong_answer_is_not_graded_correct(ex):
    wrong = (lambda *args: None) if ex.level == "implement" else object()
    assert not check(ex.id, wrong)
    assert not check(ex.id, None)


def test_an_off_by_one_function_fails():
    from streamlib.solutions import ch04

    def shifted(codes, bos):
        return ch04.apply_delay(codes, bos).roll(1, dims=-1)

    assert not check("04.3", shifted)


def test_grade_prints_a_verdict(capsys):
    assert grade("01.2", None) is None and "not answered yet" in capsys.readouterr().out
    assert grade("01.2", 99) is False and "not yet" in capsys.readouterr().out
    assert grade("01.2", chapter("01")[1].solution()) is True and "correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError):
        exercise("01.99")
    with pytest.raises(ExerciseError):
        chapter("13")


@pytest.mark.parametrize("num", CHAPTERS)
def test_exercise_notebook_grades_every_exercise_of_its_chapter(num):
    paths = list((BOOK / "exercises").glob(f"{num}_*.ipynb"))
    assert len(paths) == 1 and (BOOK / paths[0].name).exists()  # same name as its chapter
    cells = json.loads(paths[0].read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for ex in chapter(num):
        assert f'grade("{ex.id}"' in code
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")  # stored without outputs
