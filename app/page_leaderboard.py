"""The Leaderboard page: best games per map, and how people fare against each model (by the
model's readable label). A database error is shown as its one-line message."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import formatting, resources, saving
from app.messages import without_paths
from app.tables import show_table
from db.store import StoreError


def render() -> None:
    st.title("Leaderboard")
    try:
        render_board(resources.store())
    except StoreError as exc:
        st.error(f"The leaderboard database is not available: {without_paths(exc)}")


def render_board(store) -> None:
    maps = store.maps()
    if not maps:
        st.info("No games yet: play one on the Play page and it will appear here.")
        return
    map_name = st.selectbox("Map", maps, key="leaderboard_map")
    best = store.best_games(map_name, limit=20)
    st.subheader(f"Best games on {map_name}")
    board = pd.DataFrame([{"rank": g.rank, "player": g.player, "points": g.points, "rounds": g.rounds,
                           "winner": g.winner, "finished (UTC)": g.finished_at} for g in best])
    show_table(board, {"points": formatting.points, "finished (UTC)": finished_text})

    st.subheader("People vs models")
    scope = st.radio("Games", ["this map", "all maps"], horizontal=True, key="leaderboard_scope")
    matchups = store.person_vs_models(map_name if scope == "this map" else None, labels=saving.model_labels())
    if not matchups:
        st.caption("No games against models yet.")
        return
    table = pd.DataFrame([{
        "model": m.model, "games": m.games,
        "people won": f"{m.person_won_games} ({m.person_game_win_rate:.0%})",
        "model won": m.model_won_games, "ties": m.tied_games,
        "rounds people were closer": f"{m.person_won_rounds}/{m.rounds} ({m.person_round_win_rate:.0%})",
        "people mean km": m.person_mean_km, "model mean km": m.model_mean_km,
    } for m in matchups])
    show_table(table, {"people mean km": formatting.km_number, "model mean km": formatting.km_number})


def finished_text(value) -> str:
    """A finish time to the minute: "2026-12-02 07:41"."""
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(value)
