"""Schema upgrades: a database written by the first geoai (before migrations) is refused with
the upgrade command, `python -m db upgrade` brings it to the current schema, and every game
in it is still there; the newest migration and db.models describe the same tables."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData,
                        String, Table, UniqueConstraint, create_engine, insert, select)

from db import GameStore, SchemaOutOfDate
from db.models import PERSON, Base, Game, Guess, Player, Round
from db.schema import head_revision
from db_backends import db_url, game_record  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def legacy_metadata() -> MetaData:
    """The tables exactly as the first geoai created them (Base.metadata.create_all, no Alembic)."""
    m = MetaData()
    Table("player", m, Column("id", Integer, primary_key=True), Column("name", String(32), nullable=False, unique=True),
          Column("created_at", DateTime(timezone=True), nullable=False))
    Table("game", m, Column("id", Integer, primary_key=True),
          Column("player_id", ForeignKey("player.id", ondelete="CASCADE"), nullable=False),
          Column("map_name", String(200), nullable=False), Column("map_size_km", Float, nullable=False),
          Column("rounds_played", Integer, nullable=False), Column("person_points", Integer, nullable=False),
          Column("winner", String(400), nullable=False), Column("person_won", Boolean, nullable=False),
          Column("started_at", DateTime(timezone=True), nullable=False),
          Column("finished_at", DateTime(timezone=True), nullable=False),
          Index("ix_game_map_points", "map_name", "person_points"))
    Table("round", m, Column("id", Integer, primary_key=True),
          Column("game_id", ForeignKey("game.id", ondelete="CASCADE"), nullable=False),
          Column("number", Integer, nullable=False), Column("location_id", String(400), nullable=False),
          Column("image", String(1000), nullable=False), Column("lat", Float, nullable=False),
          Column("lon", Float, nullable=False), UniqueConstraint("game_id", "number"))
    Table("guess", m, Column("id", Integer, primary_key=True),
          Column("round_id", ForeignKey("round.id", ondelete="CASCADE"), nullable=False),
          Column("who", String(200), nullable=False), Column("lat", Float, nullable=False),
          Column("lon", Float, nullable=False), Column("distance_km", Float, nullable=False),
          Column("points", Integer, nullable=False), UniqueConstraint("round_id", "who"),
          CheckConstraint("distance_km >= 0", name="distance_non_negative"),
          CheckConstraint("points >= 0 AND points <= 5000", name="points_in_range"),
          Index("ix_guess_who", "who"))
    return m


# (player as typed then, points per round); "ANA" was a separate player before names ignored case.
LEGACY_GAMES = [("Ana", (4000, 3000, 100)), ("Ben", (5000, 5000, 4999)), ("ANA", (10, 20, 30)),
                ("Cleo", (0, 0, 0)), ("Ana", (2500, 2500, 2500)), ("Ben", (1, 2, 3)), ("Željko", (300, 200, 100))]
MODELS = ("beit-linear", "resnet-grid")


def write_legacy_database(url: str) -> dict[int, tuple]:
    """The first geoai's database with LEGACY_GAMES; {game id: (player, points, guesses)}."""
    metadata = legacy_metadata()
    engine = create_engine(url)
    written = {}
    with engine.begin() as conn:
        metadata.create_all(conn)
        t = metadata.tables
        players: dict[str, int] = {}
        for n, (name, points) in enumerate(LEGACY_GAMES):
            at = T0 + timedelta(hours=n)
            if name not in players:
                players[name] = conn.execute(insert(t["player"]).values(name=name, created_at=at)).inserted_primary_key[0]
            game_id = conn.execute(insert(t["game"]).values(
                player_id=players[name], map_name="croatia-streetview", map_size_km=421.0, rounds_played=len(points),
                person_points=sum(points), winner=name, person_won=True, started_at=at,
                finished_at=at + timedelta(minutes=4))).inserted_primary_key[0]
            guesses = set()
            for number, p in enumerate(points, start=1):
                round_id = conn.execute(insert(t["round"]).values(
                    game_id=game_id, number=number, location_id=f"place-{n}-{number}", image=f"{n}-{number}.jpg",
                    lat=45.0 + number / 10, lon=16.0)).inserted_primary_key[0]
                for who, pts in ((PERSON, p), *((m, 2000 + i) for i, m in enumerate(MODELS))):
                    km = 5000.0 - pts
                    conn.execute(insert(t["guess"]).values(round_id=round_id, who=who, lat=44.0, lon=15.0,
                                                           distance_km=km, points=pts))
                    guesses.add((number, who, km, pts))
            written[game_id] = (name, sum(points), guesses)
    engine.dispose()
    return written


def run_db_command(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "db", "--url", url, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def stored_games(store: GameStore) -> dict[int, tuple]:
    with store._sessions() as session:
        games = {g.id: (g.player.name, g.person_points,
                        {(r.number, x.who, x.distance_km, x.points) for r in g.rounds for x in r.guesses})
                 for g in session.scalars(select(Game))}
    return games


def test_an_old_database_is_refused_then_upgraded_with_every_game(db_url):
    written = write_legacy_database(db_url)

    store = GameStore(db_url)
    for query in (store.maps, lambda: store.save_game(game_record("Dora"))):
        with pytest.raises(SchemaOutOfDate, match=r"older schema .*`python -m db upgrade`"):
            query()
    store.dispose()
    status = run_db_command(db_url, "status")
    assert status.returncode == 0 and "from before migrations" in status.stdout and "python -m db upgrade" in status.stdout

    upgraded = run_db_command(db_url, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"to {head_revision()}; {len(LEGACY_GAMES)} games kept" in upgraded.stdout

    store = GameStore(db_url)
    games = stored_games(store)
    assert set(games) == set(written)
    for game_id, (name, points, guesses) in written.items():
        stored_name, stored_points, stored_guesses = games[game_id]
        # "ANA" was the same person as "Ana": their games now share the first spelling.
        assert stored_name == ("Ana" if name == "ANA" else name)
        assert (stored_points, stored_guesses) == (points, guesses)
    assert [(g.player, g.points) for g in store.best_games("croatia-streetview", limit=20)] == sorted(
        [("Ana" if n == "ANA" else n, sum(p)) for n, p in LEGACY_GAMES], key=lambda g: -g[1])
    with store._sessions() as session:
        assert sorted(session.scalars(select(Player.name))) == ["Ana", "Ben", "Cleo", "Željko"]
        assert session.scalar(select(Round.id).limit(1)) is not None
        assert {w for w in session.scalars(select(Guess.who))} == {PERSON, *MODELS}
    # The upgraded database plays on: a returning name in another case adds to its player.
    new_id = store.save_game(game_record("ana", map_name="croatia-streetview"))
    assert stored_games(store)[new_id][0] == "Ana"
    store.dispose()
    again = run_db_command(db_url, "upgrade")
    assert again.returncode == 0 and f"already at schema {head_revision()} ({len(LEGACY_GAMES) + 1} games)" in again.stdout


def test_the_app_refuses_an_old_database_with_the_upgrade_command(db_url, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    write_legacy_database(db_url)
    monkeypatch.setenv("GEOAI_DATABASE_URL", db_url)
    st.cache_resource.clear()
    page = AppTest.from_string(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                               "from app import page_leaderboard\npage_leaderboard.render()", default_timeout=60).run()
    st.cache_resource.clear()
    assert not page.exception
    assert any("python -m db upgrade" in e.value for e in page.error), [e.value for e in page.error]


def test_the_models_describe_the_newest_migration(db_url):
    store = GameStore(db_url)
    store.create_tables()  # an empty database: the migrations build it
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    store.dispose()
    assert differences == []
