"""Small static tables (a round's scores, totals, top guesses, leaderboards) as escaped HTML.

A pandas Styler through st.table costs tens of milliseconds of server time per table (it
renders the Styler's HTML and copies every cell back into a frame), which a busy server pays
on every round. These tables are a few rows of text: numbers formatted for people, each
player's name in their colour, everything else plain and escaped.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Mapping

import pandas as pd
import streamlit as st

from app.identity import Identity


def html_table(frame: pd.DataFrame, formats: Mapping[str, Callable] | None = None,
               players: Mapping[str, Identity] | None = None, player_column: str = "player") -> str:
    """`frame` as an HTML table: `formats` per column (value -> text), numeric columns aligned
    right, and in `player_column` each label found in `players` (label -> Identity) in its colour."""
    formats = formats or {}
    players = players or {}
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(f"<th{_right(c in numeric)}>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(frame.columns, values):
            text = formats[column](value) if column in formats else str(value)
            who = players.get(value) if column == player_column and isinstance(value, str) else None
            style = f' style="{who.css}"' if who is not None else _right(column in numeric)
            cells.append(f"<td{style}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _right(numeric: bool) -> str:
    return ' style="text-align: right"' if numeric else ""


def show_table(frame: pd.DataFrame, formats: Mapping[str, Callable] | None = None,
               players: Mapping[str, Identity] | None = None, player_column: str = "player") -> None:
    """Draw html_table(...) on the page (one markdown element, no index column)."""
    st.markdown(html_table(frame, formats, players, player_column), unsafe_allow_html=True)


__all__ = ["html_table", "show_table"]
