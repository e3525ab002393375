"""Notebook helpers: the Markdown tables the chapters display."""

from streamlib.viz import markdown_table


def test_markdown_table_has_a_header_rule_and_one_line_per_row():
    table = markdown_table(("model", "loss"), [("a", "1.000"), ("b", 2)])
    assert table.data == "| model | loss |\n|---|---|\n| a | 1.000 |\n| b | 2 |"
