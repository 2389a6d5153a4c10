"""The Models page: the bundles in play and their evaluation tables."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import formatting, resources
from app.identity import identities, styled_players
from app.messages import without_paths
from app.players import FAMILY_LABELS, choose_opponents, opponent_verdict

METRIC_COLUMNS = ("n", "mean_km", "median_km", "within_1km", "within_25km", "within_200km", "within_750km",
                  "within_2500km", "mean_points", "country_accuracy")


def metrics_frame(metrics: dict) -> pd.DataFrame:
    """One row per split (test, val, train) with the metrics the bundle recorded."""
    rows = []
    for split in ("test", "val", "train"):
        values = metrics.get(split)
        if isinstance(values, dict):
            rows.append({"split": split, **{k: values.get(k) for k in METRIC_COLUMNS if k in values}})
    return pd.DataFrame(rows)


def render() -> None:
    st.title("Models")
    infos, problems = resources.all_opponents()
    for problem in problems:
        st.warning(without_paths(problem))
    if not infos:
        st.info("No model bundles were found. Train and publish some:")
        st.code("python -m train convert-offline\n"
                "python -m train --data ../shared/data/croatia-streetview --out runs/croatia\n"
                "python -m train publish runs/croatia", language="bash")
        return
    maps = resources.map_names()
    in_play: dict[str, list[str]] = {}
    reasons = []
    for map_name in maps:
        try:
            places = resources.game_map(map_name).places
        except Exception as exc:  # an unreadable map must not hide the models
            st.warning(f"Map {map_name}: {without_paths(str(exc))}")
            continue
        chosen = {i.name for i in choose_opponents(infos, map_name, places)}
        for info in infos:
            why = opponent_verdict(info, map_name, places)
            plays = info.name in chosen
            if plays:
                in_play.setdefault(info.name, []).append(map_name)
            elif why.plays:
                why = type(why)(False, why.why + "; another model of its family plays instead", why.share)
            reasons.append({"map": map_name, "model": info.name, "plays": "yes" if plays else "no",
                            "places covered": why.share, "why": why.why})
    listing = pd.DataFrame([{
        "name in the game": i.label, "model": i.name, "backbone": i.backbone, "family": FAMILY_LABELS.get(i.family, i.family),
        "head": i.head, "fusion": i.fusion, "trained on": i.dataset,
        "plays on": ", ".join(in_play.get(i.name, [])) or "-",
        "test mean km": None if i.test_score() == float("inf") else i.test_score(),
    } for i in infos])
    # Each model in the colour it has on the Play page's maps and tables (app.identity).
    names = {i.label: identities("", [i])[i.name] for i in infos}
    styled = styled_players(listing, "name in the game", names).format({"test mean km": formatting.km_number})
    st.dataframe(styled, hide_index=True, width="stretch")
    for info in infos:
        with st.expander(f"{info.label}: evaluation", expanded=len(infos) <= 2):
            frame = metrics_frame(info.metrics)
            if frame.empty:
                st.caption("This bundle records no evaluation.")
            else:
                st.dataframe(metrics_styled(frame), hide_index=True, width="stretch")
            st.caption(f"Bundle: {info.path.name}")
    if reasons:
        st.subheader("Which models play each map")
        st.caption("A model plays a map when the map's places lie where it saw training photos; of those, one "
                   "per family plays, preferring models trained on the map, then the lowest test km on it.")
        st.dataframe(pd.DataFrame(reasons).style.format({"places covered": lambda v: formatting.percent(v, 0)},
                                                        na_rep="-"), hide_index=True, width="stretch")


def metrics_styled(frame: pd.DataFrame):
    """km with one decimal at most, points with separators, shares as percentages."""
    formats = {}
    for column in frame.columns:
        if column.endswith("_km"):
            formats[column] = formatting.km_number
        elif column == "mean_points":
            formats[column] = formatting.points
        elif column.startswith("within_") or column == "country_accuracy":
            formats[column] = lambda v: formatting.percent(v, 1)
        elif column == "n":
            formats[column] = formatting.points
    return frame.style.format(formats, na_rep="-")
