"""The one CSV cell writer (common.spreadsheet): text a spreadsheet would run as a formula is
defused, numbers our code computes stay numbers."""

from decimal import Decimal

import pytest

from common import spreadsheet


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+33 6 12", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", '=HYPERLINK("x";"y")', "-12,50"],
)
def test_text_that_starts_like_a_formula_gets_an_apostrophe(text):
    assert spreadsheet.cell(text) == "'" + text


@pytest.mark.parametrize("text", ["Acme", " =1", "a=b", "", "12,50", "2026-03-01"])
def test_other_text_is_written_as_it_is(text):
    assert spreadsheet.cell(text) == text


def test_numbers_are_numbers_even_negative_with_a_decimal_comma():
    assert spreadsheet.cell(spreadsheet.cents(-1250), decimal_comma=True) == "-12,50"
    assert spreadsheet.cell(spreadsheet.cents(-1250)) == "-12.50"
    assert spreadsheet.cell(spreadsheet.cents(5)) == "0.05"
    assert spreadsheet.cell(spreadsheet.tenths(-7), decimal_comma=True) == "-0,7"
    assert spreadsheet.cell(-30) == "-30"
    assert spreadsheet.cell(Decimal("1E+3")) == "1000"
    assert spreadsheet.cell(None) == ""


def test_a_writer_without_a_file_returns_each_line():
    writer = spreadsheet.Writer(decimal_comma=True)
    line = writer.writerow(["@me", spreadsheet.cents(-100), 3, "a;b"])
    assert line == '\'@me;-1,00;3;"a;b"\r\n'
