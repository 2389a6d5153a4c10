"""Read the app's tables (app.tables: HTML in markdown elements) back as DataFrames, with
numbers written for people ("4,900", "12.3") turned back into numbers."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pandas as pd

INTEGER = re.compile(r"-?\d{1,3}(,\d{3})*$|-?\d+$")
DECIMAL = re.compile(r"-?(\d{1,3}(,\d{3})*|\d+)\.\d+$")


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _value(text: str):
    if INTEGER.match(text):
        return int(text.replace(",", ""))
    if DECIMAL.match(text):
        return float(text.replace(",", ""))
    return text


def read_tables(html: str) -> list[pd.DataFrame]:
    parser = _Tables()
    parser.feed(html)
    return [pd.DataFrame([[_value(c) for c in row] for row in rows[1:]], columns=rows[0]) for rows in parser.tables]


def tables(at) -> list[pd.DataFrame]:
    """Every table on an AppTest page, in page order."""
    return [t for m in at.markdown if "<table>" in m.value for t in read_tables(m.value)]
