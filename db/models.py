"""SQLAlchemy 2.0 tables: a player plays games; a game has rounds; each round has one
guess per participant (the person and every model opponent); a game may belong to a
challenge (the same rounds for everyone who opens its code).

The tables are created and changed only by the migrations in db/migrations (Alembic);
tests check that these classes and the newest migration describe the same schema."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer,
                        String, TypeDecorator, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.names import MAX_NAME_LENGTH

PERSON = "person"  # Guess.who of the human player; models are stored under their names.
NAME_KEY_LENGTH = 4 * MAX_NAME_LENGTH  # 128  # case folding can lengthen a name ("ß" -> "ss")
CHALLENGE_CODE_LENGTH = 8


class UTCDateTime(TypeDecorator):
    """DateTime(timezone=True) that reads back as UTC on every backend (SQLite drops the zone)."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)  # naive times are UTC in this database
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Player(Base):
    __tablename__ = "player"
    __table_args__ = (Index("ix_player_name_key", "name_key", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Validated by db.names before it gets here; unique so a returning name adds up.
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), unique=True)
    # db.names.player_key(name): "Ana" and "ANA" are one player, shown as first spelled.
    # Nullable only because it was added to existing tables; every save sets it.
    name_key: Mapped[str | None] = mapped_column(String(NAME_KEY_LENGTH), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    games: Mapped[list[Game]] = relationship(back_populates="player")


class Game(Base):
    __tablename__ = "game"
    __table_args__ = (Index("ix_game_map_points", "map_name", "person_points"),
                      Index("ix_game_challenge_player", "challenge_id", "player_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("player.id", ondelete="CASCADE"))
    map_name: Mapped[str] = mapped_column(String(200))
    map_size_km: Mapped[float] = mapped_column(Float)
    rounds_played: Mapped[int] = mapped_column(Integer)
    person_points: Mapped[int] = mapped_column(Integer)
    # Display text: the winner's name, or "tie: a, b" (kept so history survives renames).
    winner: Mapped[str] = mapped_column(String(400))
    person_won: Mapped[bool] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the game was played from a challenge's code; a name's first one counts.
    challenge_id: Mapped[int | None] = mapped_column(ForeignKey("challenge.id"), nullable=True)

    player: Mapped[Player] = relationship(back_populates="games")
    rounds: Mapped[list[Round]] = relationship(
        back_populates="game", cascade="all, delete-orphan", order_by="Round.number")


class Round(Base):
    __tablename__ = "round"
    __table_args__ = (UniqueConstraint("game_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    game_id: Mapped[int] = mapped_column(ForeignKey("game.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1-based
    location_id: Mapped[str] = mapped_column(String(400))
    image: Mapped[str] = mapped_column(String(1000))  # first view's file name in the dataset
    lat: Mapped[float] = mapped_column(Float)  # the truth
    lon: Mapped[float] = mapped_column(Float)

    game: Mapped[Game] = relationship(back_populates="rounds")
    guesses: Mapped[list[Guess]] = relationship(back_populates="round", cascade="all, delete-orphan")


class Guess(Base):
    __tablename__ = "guess"
    __table_args__ = (
        UniqueConstraint("round_id", "who"),
        CheckConstraint("distance_km >= 0", name="distance_non_negative"),
        CheckConstraint("points >= 0 AND points <= 5000", name="points_in_range"),
        Index("ix_guess_who", "who"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("round.id", ondelete="CASCADE"))
    who: Mapped[str] = mapped_column(String(200))  # PERSON or the model bundle's name
    # What people read for a model ("MobileNetV2 · CNN", geoai.labels); None for the person.
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    distance_km: Mapped[float] = mapped_column(Float)
    points: Mapped[int] = mapped_column(Integer)

    round: Mapped[Round] = relationship(back_populates="guesses")


class Challenge(Base):
    """A teacher's fixed game: everyone who opens the code plays the same places in order."""
    __tablename__ = "challenge"
    __table_args__ = (
        CheckConstraint("rounds >= 1", name="challenge_rounds_positive"),
        CheckConstraint("timer_seconds IS NULL OR timer_seconds > 0", name="challenge_timer_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(CHALLENGE_CODE_LENGTH), unique=True)
    map_name: Mapped[str] = mapped_column(String(200))
    rounds: Mapped[int] = mapped_column(Integer)
    timer_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger)  # random.Random(seed) picks the places
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
