"""Entry point: `streamlit run app/main.py` (pages Play, Leaderboard, Challenge, Models).

Settings come from the environment (geoai/settings.py, README "Configuration"). The project
is installed editable (`make setup`), so `app`, `db` and `geoai` import from any directory.
"""
from __future__ import annotations

import logging

import streamlit as st

from app import page_challenge, page_leaderboard, page_models, page_play, page_upload, resources

log = logging.getLogger("geoai.app")


def main() -> None:
    st.set_page_config(page_title="geoai: where was this photo taken?", page_icon="🌍", layout="wide")
    pages = [st.Page(page_play.render, title="Play", icon=":material/location_on:", url_path="play", default=True),
             st.Page(page_upload.render, title="Your photo", icon=":material/photo_camera:", url_path="your-photo"),
             st.Page(page_leaderboard.render, title="Leaderboard", icon=":material/leaderboard:", url_path="leaderboard"),
             st.Page(page_challenge.render, title="Challenge", icon=":material/school:", url_path=page_challenge.PAGE_PATH),
             st.Page(page_models.render, title="Models", icon=":material/smart_toy:", url_path="models")]
    navigation = st.navigation(pages)
    with st.sidebar:
        online = resources.basemap_available()
        st.toggle("Online basemap", value=online, disabled=not online, key="basemap",
                  help="Street map tiles from the internet; the offline map with country borders "
                       "is always there.")
    try:
        navigation.run()
    except Exception:  # a player never sees a traceback; the log has it
        log.exception("page failed")
        st.error("Something went wrong on this page. It has been logged; please reload the page "
                 "or start a new game.")


main()
