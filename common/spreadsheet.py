"""The one CSV cell writer of every export that a spreadsheet opens.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or a tab or a carriage
return, which some strip first) as a formula: a tenant named `=HYPERLINK("https://…")` turns
an export into a link that sends the sheet's data away when clicked (OWASP, "CSV
injection"). Text is therefore written with a leading apostrophe when it starts so, which a
spreadsheet shows as plain text and hides.

Numbers are told apart by their type, not by their text: an `int` or a `Decimal` (which only
our own code computes) is written as a number, never escaped, so that an amount such as
`-12,50` stays a number the accountant can add up. Everything else, names above all, is text.
"""

import csv
from decimal import Decimal

BOM = "\ufeff"  # so that Excel reads UTF-8 (accents) without an import dialog
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value, *, decimal_comma: bool = False) -> str:
    """One cell's text: numbers as numbers (with a decimal comma if asked), text defused."""
    if value is None:
        return ""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = format(value, "f") if isinstance(value, Decimal) else str(value)
        return text.replace(".", ",") if decimal_comma else text
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class _Echo:
    """A file that hands back what is written: rows as strings, for streamed responses."""

    def write(self, value):
        return value


class Writer:
    """`csv.writer` with every cell through `cell`; semicolons and CRLF by default (what a
    French spreadsheet opens without asking). Without `out`, `writerow` returns the line."""

    def __init__(self, out=None, *, decimal_comma: bool = False, delimiter: str = ";"):
        self._writer = csv.writer(out or _Echo(), delimiter=delimiter, lineterminator="\r\n")
        self.decimal_comma = decimal_comma

    def writerow(self, values):
        return self._writer.writerow(cell(v, decimal_comma=self.decimal_comma) for v in values)


def cents(amount: int) -> Decimal:
    """Integer cents as a Decimal number of euros: -1250 → Decimal("-12.50")."""
    return Decimal(amount).scaleb(-2)


def tenths(amount: int) -> Decimal:
    """Integer tenths as a Decimal with one decimal: 125 → Decimal("12.5")."""
    return Decimal(amount).scaleb(-1)
