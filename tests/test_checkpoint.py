"""``streamlib.checkpoint``: atomic writes keep the old file when writing fails."""

import csv

import pytest

from streamlib.checkpoint import write_csv


def test_write_csv_round_trip(tmp_path):
    path = write_csv(tmp_path / "sub" / "t.csv", ("a", "b"), [{"a": 1, "b": "x"}, {"a": 2, "b": ""}])
    assert list(csv.DictReader(path.open())) == [{"a": "1", "b": "x"}, {"a": "2", "b": ""}]


def test_write_csv_failure_keeps_the_old_file(tmp_path):
    path = write_csv(tmp_path / "t.csv", ("a",), [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_csv(path, ("a",), rows())
    assert list(csv.DictReader(path.open())) == [{"a": "1"}]
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]   # no temporary file left behind
