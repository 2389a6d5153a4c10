"""The game's database (SQLAlchemy 2.0): players, games, rounds and every guess.

    >>> from db import GameStore
    >>> store = GameStore()          # GEOAI_DATABASE_URL or db/geoai.sqlite
    >>> store.save_game(record)      # a db.records.GameRecord, in one transaction
    >>> store.best_games("croatia-streetview")
"""
from db.names import MAX_NAME_LENGTH, InvalidPlayerName, validate_player_name
from db.records import GameRecord, GuessRecord, RoundRecord
from db.store import DATABASE_URL_ENV, BestGame, GameStore, ModelMatchup, StoreError, database_url

__all__ = [
    "DATABASE_URL_ENV", "MAX_NAME_LENGTH", "BestGame", "GameRecord", "GameStore", "GuessRecord",
    "InvalidPlayerName", "ModelMatchup", "RoundRecord", "StoreError", "database_url",
    "validate_player_name",
]
