"""Broken databases: whatever is at the database's address, reading does what it can and
every failure is one clear StoreError, never a traceback, a hang or a silent loss."""
from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from db import GameStore, StoreError
from db.connect import CONNECT_TIMEOUT_S
from db_backends import game_record, make_db_url  # noqa: F401 - a fixture


def sqlite_store(path: Path) -> GameStore:
    return GameStore(f"sqlite:///{path}")


def filled_database(path: Path, games: int = 2) -> None:
    store = sqlite_store(path)
    for i in range(games):
        store.save_game(game_record(f"Player {i}", person_km=(i, i)))
    store.dispose()


@contextmanager
def read_only(path: Path):
    """Make the file read-only for this process, as root too (the immutable attribute)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("cannot make a file read-only for root here (no chattr +i on this file system)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_shows_the_leaderboard_and_refuses_saves_clearly(tmp_path):
    path = tmp_path / "games.sqlite"
    filled_database(path)
    before = path.read_bytes()
    with read_only(path):
        store = sqlite_store(path)
        assert store.maps() == ["croatia"]
        assert [g.player for g in store.best_games("croatia")] == ["Player 0", "Player 1"]
        assert {m.model for m in store.person_vs_models()} == {"beit"}
        with pytest.raises(StoreError, match="read-only: the leaderboard can be read, but no game can be saved"):
            store.save_game(game_record("Dora"))
        store.dispose()
    assert path.read_bytes() == before


def test_a_database_opened_read_only_by_url_reads(tmp_path):
    path = tmp_path / "games.sqlite"
    filled_database(path, games=3)
    store = GameStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert store.game_count() == 3
    with pytest.raises(StoreError, match="read-only"):
        store.save_game(game_record("Dora"))
    store.dispose()


def _garbage(kind: str) -> bytes:
    return {"random bytes": os.urandom(50_000), "text": b"player,points\nAna,100\n" * 100,
            "png": b"\x89PNG\r\n\x1a\n" + os.urandom(4000),
            "damaged sqlite header": b"SQLite format 3\x00" + os.urandom(8000),
            "zeros": b"\x00" * 4096 * 3}[kind]


@pytest.mark.parametrize("kind", ["random bytes", "text", "png", "damaged sqlite header", "zeros"])
def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path, kind):
    path = tmp_path / "games.sqlite"
    path.write_bytes(_garbage(kind))
    before = path.read_bytes()
    store = sqlite_store(path)
    for action in (store.maps, store.game_count, lambda: store.save_game(game_record())):
        with pytest.raises(StoreError) as caught:
            action()
        message = str(caught.value)
        assert "\n" not in message and str(path) in message
        assert "not a SQLite database" in message or "damaged" in message or "malformed" in message, message
    store.dispose()
    assert path.read_bytes() == before  # never "repaired" into an empty leaderboard


def test_a_folder_where_the_file_should_be_is_a_clear_error(tmp_path):
    (tmp_path / "games.sqlite").mkdir()
    with pytest.raises(StoreError, match="is a folder, not a file"):
        sqlite_store(tmp_path / "games.sqlite").maps()


def test_a_file_where_the_folder_should_be_is_a_clear_error(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the folder"):
        sqlite_store(tmp_path / "data" / "games.sqlite").maps()


def test_a_database_deleted_while_the_game_runs_is_reported_not_saved_into_nothing(tmp_path):
    path = tmp_path / "games.sqlite"
    store = sqlite_store(path)
    store.save_game(game_record("Ana"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError, match="was deleted while the game was running"):
        store.save_game(game_record("Ben"))
    with pytest.raises(StoreError, match="was deleted"):
        store.best_games("croatia")
    assert not path.exists()
    store.dispose()


def test_a_database_replaced_while_the_game_runs_is_followed(tmp_path):
    path = tmp_path / "games.sqlite"
    store = sqlite_store(path)
    store.save_game(game_record("Ana"))
    other = tmp_path / "restored.sqlite"
    filled_database(other, games=3)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(other, path)  # e.g. a backup restored over it
    store.save_game(game_record("Ben"))
    assert store.game_count() == 4  # the restored file's three games and the new one
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM game").fetchone()[0] == 4
    check.close()
    store.dispose()


# -- a PostgreSQL address that accepts connections and never answers --------------------------
@contextmanager
def silent_server(max_connections: int = 8, lifetime_s: float = 60.0):
    """A TCP server on 127.0.0.1 that accepts and reads, never replies; closed on exit."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(max_connections)
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve() -> None:
        deadline = time.monotonic() + lifetime_s
        while not stop.is_set() and time.monotonic() < deadline and len(accepted) < max_connections:
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append(connection)  # kept open, never answered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        server.close()


def test_a_server_that_never_answers_fails_within_the_connect_timeout():
    with silent_server() as (port, accepted):
        store = GameStore(f"postgresql+psycopg://geoai:secret@127.0.0.1:{port}/geoai")
        for action in (lambda: store.save_game(game_record()), store.maps):
            started = time.monotonic()
            with pytest.raises(StoreError) as caught:
                action()
            waited = time.monotonic() - started
            message = str(caught.value)
            assert f"did not answer within {CONNECT_TIMEOUT_S} s" in message and "\n" not in message
            assert "secret" not in message  # the password is never shown
            assert CONNECT_TIMEOUT_S - 1 <= waited < 4 * CONNECT_TIMEOUT_S, waited
        assert accepted  # it really connected and waited for an answer
        store.dispose()


def test_a_closed_port_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = GameStore(f"postgresql+psycopg://geoai@127.0.0.1:{port}/geoai")
    with pytest.raises(StoreError, match="cannot reach the database server"):
        store.maps()
    store.dispose()


def test_a_postgres_statement_stuck_behind_a_lock_fails_after_the_statement_timeout(make_db_url):
    """The server answers but the save cannot proceed (a table locked by someone else): the
    save fails with a clear message after the statement timeout instead of hanging."""
    from sqlalchemy import create_engine, text

    from db.connect import STATEMENT_TIMEOUT_MS
    url = make_db_url("postgresql")
    store = GameStore(url)
    store.save_game(game_record("Ana"))
    blocker = create_engine(url)
    with blocker.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE game IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"took longer than {STATEMENT_TIMEOUT_MS // 1000} s to answer"):
            store.save_game(game_record("Ben"))
        waited = time.monotonic() - started
    assert STATEMENT_TIMEOUT_MS / 1000 - 1 <= waited < 3 * STATEMENT_TIMEOUT_MS / 1000, waited
    assert store.game_count() == 1  # nothing half-saved; the store works again once the lock is gone
    store.save_game(game_record("Ben"))
    assert store.game_count() == 2
    blocker.dispose()
    store.dispose()
