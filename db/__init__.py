"""The game's database (SQLAlchemy 2.0, Alembic): players, games, rounds, every guess, challenges.

    >>> from db import GameStore
    >>> store = GameStore()          # GEOAI_DATABASE_URL or db/geoai.sqlite
    >>> store.save_game(record)      # a db.records.GameRecord, in one transaction
    >>> store.best_games("croatia-streetview")

`python -m db upgrade` brings an older database to the current schema; `python -m db
challenge create --map M --rounds 5` creates a class challenge (see db.challenges).
"""
from db.challenges import ChallengeBoard, ChallengeInfo, challenge_link
from db.connect import DATABASE_URL_ENV, StoreError, database_url
from db.names import MAX_NAME_LENGTH, InvalidPlayerName, player_key, validate_player_name
from db.records import GameRecord, GuessRecord, RoundRecord
from db.schema import SchemaOutOfDate
from db.store import BestGame, GameStore, ModelMatchup
from db.validate import RecordError

__all__ = [
    "DATABASE_URL_ENV", "MAX_NAME_LENGTH", "BestGame", "ChallengeBoard", "ChallengeInfo", "GameRecord",
    "GameStore", "GuessRecord", "InvalidPlayerName", "ModelMatchup", "RecordError", "RoundRecord",
    "SchemaOutOfDate", "StoreError", "challenge_link", "database_url", "player_key", "validate_player_name",
]
