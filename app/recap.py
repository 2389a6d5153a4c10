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


def recap_frame(game: Game) -> pd.DataFrame:
    """One row per round: a thumbnail (data URL) and each player's distance and points, as text."""
    rows = []
    for result in game.results:
        thumb = thumbnail(result.place.image_paths[0]) if result.place.image_paths else None
        row = {"round": result.number,
               "photo": f"data:image/jpeg;base64,{base64.b64encode(thumb).decode()}" if thumb else None}
        for who, guess in result.guesses.items():
            name = game.display_name(who)
            row[f"{name}: distance"] = formatting.km(guess.distance_km)
            row[f"{name}: points"] = formatting.points(guess.points)
        rows.append(row)
    return pd.DataFrame(rows)


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
            .mark_line(point=alt.OverlayMarkDef(size=70))
            .encode(x=alt.X("round:O", title="Round", axis=alt.Axis(labelAngle=0)),
                    y=alt.Y("points:Q", title="Points", scale=alt.Scale(domain=[0, 5000]),
                            axis=alt.Axis(format=",d")),
                    color=alt.Color("player:N", title=None, scale=alt.Scale(domain=names, range=hexes),
                                    legend=alt.Legend(orient="bottom")),
                    tooltip=[alt.Tooltip("player:N"), alt.Tooltip("round:O"),
                             alt.Tooltip("points:Q", format=",d")])
            .properties(height=280))


def show_recap(game: Game, colours: Mapping[str, Sequence[int]]) -> None:
    st.subheader("Every round")
    frame = recap_frame(game)
    st.dataframe(frame, hide_index=True, width="stretch", row_height=72, key="recap",
                 column_config={"photo": st.column_config.ImageColumn("photo", width="small"),
                                "round": st.column_config.NumberColumn("round", width="small")})
    st.altair_chart(points_chart(game, colours), width="stretch")
