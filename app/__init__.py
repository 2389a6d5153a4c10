"""The GeoGuessr-style game (Streamlit): `streamlit run app/main.py`.

Pure, tested logic lives in game.py, maps.py, pickgrid.py, players.py and views.py; the
page modules (page_*.py) only wire it to Streamlit widgets.
"""
