"""geoai: geolocation of street-level photos (core library).

The core imports neither Streamlit nor SQLAlchemy: the game (app/), the database (db/)
and the training command (train/) build on it.
"""
__version__ = "0.1.0"
