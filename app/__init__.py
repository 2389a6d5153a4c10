"""The GeoGuessr-style game (Streamlit): `streamlit run app/main.py`.

Pure, tested logic lives in game.py, session.py, maps.py, players.py, identity.py and
views.py; the map is the components/guess_map component; the page modules (page_*.py)
only wire them to Streamlit widgets.
"""
