"""The end of a game: every round at a glance (photo, distance and points for everyone) and a
chart of points per round."""
from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

import altair as alt
import pandas as pd
import streamlit as st

from app import formatting
from app.game import Game
from app.photos import thumbnail

CHART_HEIGHT = 420  # the whole chart (Streamlit fits axes and legend inside)


def recap_frame(game: Game) -> pd.DataFrame:
    """One row per round: a thumbnail (data URL) and, per player, distance and points as text."""
    rows = []
    for result in game.results:
        thumb = thumbnail(result.place.image_paths[0]) if result.place.image_paths else None
        row = {"round": result.number,
               "photo": f"data:image/jpeg;base64,{base64.b64encode(thumb).decode()}" if thumb else None}
        for who, guess in result.guesses.items():  # one column per player keeps the table narrow
            row[game.display_name(who)] = recap_cell(guess.distance_km, guess.points)
        rows.append(row)
    return pd.DataFrame(rows)


def recap_cell(distance_km: float, points: int) -> str:
    """"14.0 km · 3,583 pts"."""
    return f"{formatting.km(distance_km)} · {formatting.points(points)} pts"


def points_frame(game: Game) -> pd.DataFrame:
    """Long table (round, player, points) for the chart."""
    return pd.DataFrame([{"round": r.number, "player": game.display_name(who), "points": g.points}
                         for r in game.results for who, g in r.guesses.items()])


def points_chart(game: Game, colours: Mapping[str, Sequence[int]]) -> alt.Chart:
    """Points per round, one line per player in the player's own colour."""
    frame = points_frame(game)
    names = [game.display_name(who) for who in colours]
    hexes = ["#{:02x}{:02x}{:02x}".format(*c[:3]) for c in colours.values()]
    return (alt.Chart(frame, title="Points per round")
            .mark_bar()
            .encode(x=alt.X("round:O", title="Round", axis=alt.Axis(labelAngle=0)),
                    xOffset=alt.XOffset("player:N", sort=names),
                    y=alt.Y("points:Q", title="Points", scale=alt.Scale(domain=[0, 5000]),
                            axis=alt.Axis(format=",d", values=list(range(0, 5001, 1000)))),
                    color=alt.Color("player:N", title=None, scale=alt.Scale(domain=names, range=hexes),
                                    legend=alt.Legend(orient="top")),
                    tooltip=[alt.Tooltip("player:N"), alt.Tooltip("round:O"),
                             alt.Tooltip("points:Q", format=",d")])
            .properties(height=CHART_HEIGHT))


def show_recap(game: Game, colours: Mapping[str, Sequence[int]]) -> None:
    st.subheader("Every round")
    frame = recap_frame(game)
    st.dataframe(frame, hide_index=True, width="stretch", row_height=72, key="recap",
                 column_config={"photo": st.column_config.ImageColumn("photo", width="small"),
                                "round": st.column_config.NumberColumn("round", width="small")})
    st.altair_chart(points_chart(game, colours), width="stretch")
