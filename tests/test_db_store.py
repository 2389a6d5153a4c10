"""The game store on every backend (SQLite and PostgreSQL, see db_backends): saving in one
transaction, field checks, leaderboards, challenges and parallel writers."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from db import GameStore, GuessRecord, InvalidPlayerName, RecordError, RoundRecord, StoreError
from db.models import PERSON, Game, Guess, Player, Round
from db_backends import db_url, game_record, make_db_url  # noqa: F401 - fixtures

WRITER = Path(__file__).resolve().parent / "db_parallel_writer.py"
T0 = game_record().started_at


@pytest.fixture
def store(db_url):
    game_store = GameStore(db_url)
    yield game_store
    game_store.dispose()


def table_counts(store: GameStore) -> dict[str, int]:
    store.create_tables()
    with store._sessions() as session:
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in (Player, Game, Round, Guess)}


# -- schema and saving --------------------------------------------------------------------------
def test_an_empty_database_gets_the_schema_on_first_use(store):
    assert store.game_count() == 0
    assert table_counts(store) == {"player": 0, "game": 0, "round": 0, "guess": 0}


def test_sqlite_uses_wal_and_waits_for_writers(make_db_url):
    store = GameStore(make_db_url("sqlite"))
    store.game_count()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    store.dispose()


def test_postgres_connections_have_timeouts(make_db_url):
    store = GameStore(make_db_url("postgresql"))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "15s"
    store.dispose()


def test_save_game_stores_every_round_and_guess(store):
    game_id = store.save_game(game_record(labels={"beit": "BEiT · Transformer"}))
    with store._sessions() as session:
        game = session.get(Game, game_id)
        assert game.player.name == "Ana" and game.person_points == 10000 - 30 and game.rounds_played == 2
        assert [r.number for r in game.rounds] == [1, 2]
        assert {(g.who, g.label, g.distance_km) for g in game.rounds[1].guesses} == {
            (PERSON, None, 20.0), ("beit", "BEiT · Transformer", 5.0)}
        assert game.finished_at - game.started_at == timedelta(minutes=3)


@pytest.mark.parametrize("spellings, shown", [(("Ana", " Ana "), "Ana"), (("Ana", "ANA", "ana"), "Ana"),
                                              (("Željko", "ŽELJKO"), "Željko"), (("Straße", "STRASSE"), "Straße"),
                                              (("Ｎｅｏ", "neo"), "Neo")])
def test_names_differing_only_by_case_are_one_player_shown_as_first_spelled(store, spellings, shown):
    for name in spellings:
        store.save_game(game_record(name))
    with store._sessions() as session:
        assert session.scalar(select(func.count(Player.id))) == 1
    assert {g.player for g in store.best_games("croatia")} == {shown}


def test_a_failing_game_leaves_nothing_behind(store):
    bad = game_record()
    broken_round = RoundRecord(2, "loc3", "img3.jpg", 45.0, 16.0, (GuessRecord(PERSON, 45.0, 16.0, 1.0, 10),))
    with pytest.raises(StoreError, match="refused the game"):
        store.save_game(replace(bad, rounds=bad.rounds + (broken_round,)))  # round 2 twice
    assert table_counts(store) == {"player": 0, "game": 0, "round": 0, "guess": 0}


def test_a_returning_players_bad_game_is_refused_at_once(store):
    store.save_game(game_record("Ana"))
    good = game_record("Ana")
    broken_round = RoundRecord(3, "loc3", "img3.jpg", 45.0, 16.0, (GuessRecord(PERSON, 45.0, 16.0, 1.0, 6000),))
    with pytest.raises(StoreError, match="points in round 3 is 6000"):
        store.save_game(replace(good, rounds=good.rounds + (broken_round,)))
    assert store.game_count() == 1


def test_invalid_name_is_not_saved(store):
    with pytest.raises(InvalidPlayerName):
        store.save_game(game_record("<img src=x>"))
    assert store.game_count() == 0


def test_unusable_database_url_says_so():
    with pytest.raises(StoreError, match="GEOAI_DATABASE_URL"):
        GameStore("nosuchdialect://x/y")


# -- every text field against its column, on every backend ---------------------------------------
def _with_text(record, field: str, value: str):
    """The record with one text field (of the game, its first round or a model's guess) set."""
    if field in ("map_name", "winner"):
        return replace(record, **{field: value})
    first = record.rounds[0]
    if field in ("location_id", "image"):
        first = replace(first, **{field: value})
    else:  # a model's guess: who or label
        person, model = first.guesses
        first = replace(first, guesses=(person, replace(model, **{field: value})))
    return replace(record, rounds=(first,) + record.rounds[1:])


TEXT_FIELDS = {  # field -> (column length, what the message calls it)
    "map_name": (200, "the map name"), "winner": (400, "the winner"),
    "location_id": (400, "round 1's place id"), "image": (1000, "round 1's photo name"),
    "who": (200, "a player's name in round 1"), "label": (200, "a model's label in round 1"),
}


@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
def test_text_at_its_column_length_is_stored_exactly(store, field):
    length, _ = TEXT_FIELDS[field]
    value = ("é" + "x" * (length - 2) + "ß")  # non-ASCII: lengths are characters, not bytes
    game_id = store.save_game(_with_text(game_record(), field, value))
    with store._sessions() as session:
        game = session.get(Game, game_id)
        stored = {"map_name": game.map_name, "winner": game.winner, "location_id": game.rounds[0].location_id,
                  "image": game.rounds[0].image}
        model = next(g for g in game.rounds[0].guesses if g.who != PERSON)
        stored.update(who=model.who, label=model.label)
    assert stored[field] == value


@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
@pytest.mark.parametrize("problem", ["one too long", "far too long", "NUL byte"])
def test_text_the_database_cannot_hold_is_a_clear_error_and_nothing_is_saved(store, field, problem):
    length, what = TEXT_FIELDS[field]
    value = {"one too long": "x" * (length + 1), "far too long": "y" * 1_000_000,
             "NUL byte": "ab\x00cd"}[problem]
    expected = "NUL character" if problem == "NUL byte" else f"at most {length:,}"
    with pytest.raises(RecordError, match=f"^{what}.*{expected}"):
        store.save_game(_with_text(game_record(), field, value))
    assert table_counts(store) == {"player": 0, "game": 0, "round": 0, "guess": 0}


@pytest.mark.parametrize("name", ["x" * 33, "Ana\x00", "A" * 10_000])
def test_names_the_database_cannot_hold_are_refused_before_saving(store, name):
    with pytest.raises(InvalidPlayerName):
        store.save_game(game_record(name))
    assert store.game_count() == 0


# -- leaderboards ----------------------------------------------------------------------------------
def test_best_games_per_map_in_order(store):
    store.save_game(game_record("Ana", person_km=(10, 10), at=T0))
    store.save_game(game_record("Ben", person_km=(1, 1), at=T0 + timedelta(hours=1)))
    store.save_game(game_record("Cleo", person_km=(10, 10), at=T0 + timedelta(hours=2)))
    store.save_game(game_record("Dan", map_name="world", person_km=(0, 0)))
    best = store.best_games("croatia")
    assert [(g.rank, g.player, g.points) for g in best] == [(1, "Ben", 9998), (2, "Ana", 9980), (3, "Cleo", 9980)]
    assert [g.player for g in store.best_games("world")] == ["Dan"]
    assert store.maps() == ["croatia", "world"]
    assert len(store.best_games("croatia", limit=1)) == 1


def test_person_vs_model_statistics_by_readable_label(store):
    labels = {"bundle-beit-7f3a": "BEiT · Transformer", "bundle-resnet-91c2": "ResNet-50 · CNN"}
    models = tuple(labels)
    # Game 1: person closer in round 1 only, model wins the game on points.
    store.save_game(game_record(person_km=(10, 900), model_km=(50, 5), models=models, labels=labels))
    # Game 2: person closer in both rounds.
    store.save_game(game_record(person_km=(1, 1), model_km=(50, 50), models=models, labels=labels))
    stats = {m.model: m for m in store.person_vs_models("croatia")}
    assert set(stats) == {"BEiT · Transformer", "ResNet-50 · CNN"}
    beit = stats["BEiT · Transformer"]
    assert (beit.games, beit.person_won_games, beit.model_won_games, beit.tied_games) == (2, 1, 1, 0)
    assert (beit.rounds, beit.person_won_rounds) == (4, 3)
    assert beit.person_mean_km == pytest.approx((10 + 900 + 1 + 1) / 4)
    assert beit.model_mean_km == pytest.approx((50 + 5 + 50 + 50) / 4)
    assert beit.person_game_win_rate == 0.5
    assert store.person_vs_models("nowhere") == []


# -- challenges -----------------------------------------------------------------------------------
def test_challenge_first_attempt_counts_later_ones_are_practice(store):
    made = store.create_challenge("croatia", rounds=2, timer_seconds=30, seed=1234)
    assert store.challenge(made.code.lower()) == made
    assert made.link("https://geo.example/app?x=1") == f"https://geo.example/app?challenge={made.code}"
    labels = {"beit": "BEiT · Transformer", "resnet": "ResNet-50 · CNN"}
    play = dict(models=("beit", "resnet"), labels=labels, challenge_code=made.code)
    assert not store.has_played_challenge(made.code, "Ana")
    store.save_game(game_record("Ana", person_km=(100, 100), model_km=(50, 20), **play))
    assert store.has_played_challenge(made.code, "ANA")
    store.save_game(game_record("ana", person_km=(1, 1), model_km=(50, 20), **play))  # practice
    store.save_game(game_record("Ben", person_km=(10, 10), model_km=(50, 20), **play))
    store.save_game(game_record("Cleo", person_km=(0, 0)))  # not in the challenge
    board = store.challenge_board(made.code)
    assert [(e.rank, e.name, e.points) for e in board.people] == [(1, "Ben", 9980), (2, "Ana", 9800)]
    assert board.practice_games == 1
    assert [(m.name, m.points, m.rounds, m.mean_km) for m in board.models] == [
        ("BEiT · Transformer", 9930, 2, 35.0), ("ResNet-50 · CNN", 9930, 2, 35.0)]
    assert [e.name for e in board.ranking()] == ["Ben", "BEiT · Transformer", "ResNet-50 · CNN", "Ana"]


def test_challenge_codes_are_unique_and_checked(store):
    codes = {store.create_challenge("croatia", rounds=3).code for _ in range(20)}
    assert len(codes) == 20
    assert store.challenge("NOPE99") is None and store.challenge_board("NOPE99") is None
    assert store.challenge("<script>") is None
    with pytest.raises(StoreError, match="no challenge with the code"):
        store.save_game(game_record(challenge_code="ZZZZZZ"))
    code = codes.pop()
    with pytest.raises(RecordError, match="played on croatia"):
        store.save_game(game_record(map_name="world", challenge_code=code))
    assert store.game_count() == 0
    for bad in [dict(rounds=0), dict(rounds=21), dict(timer_seconds=1), dict(seed=-1), dict(map_name="")]:
        with pytest.raises(ValueError):
            store.create_challenge(**{"map_name": "croatia", "rounds": 3, **bad})


# -- concurrency -----------------------------------------------------------------------------------
def test_parallel_saves_from_threads_lose_no_game(db_url):
    threads_n, games_each = 8, 4
    stores = [GameStore(db_url) for _ in range(3)]  # several engines share the empty database
    errors, ids = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(threads_n)

    def play(i: int) -> None:
        game_store = stores[i % len(stores)]
        try:
            barrier.wait()
            for j in range(games_each):
                # Half the threads share one brand-new name: the unique player row races.
                game_id = game_store.save_game(game_record("Shared" if i % 2 else f"Player {i}", person_km=(i, j)))
                with lock:
                    ids.append(game_id)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    _check_every_game_is_there(db_url, ids, threads_n * games_each)
    for s in stores:
        s.dispose()


def test_parallel_saves_from_processes_on_an_empty_database_lose_no_game(db_url, tmp_path):
    """Several processes start at once on an empty database: the schema is created once,
    the shared new name becomes one player, every game is stored."""
    processes_n, threads_n, games_each = 4, 3, 3
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, str(WRITER), db_url, str(i), str(threads_n), str(games_each), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(processes_n)]
    go.touch()
    ids, errors = [], []
    for w in writers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err[-2000:]
        answer = json.loads(out.strip().splitlines()[-1])
        ids += answer["ids"]
        errors += answer["errors"]
    assert not errors, errors
    _check_every_game_is_there(db_url, ids, processes_n * threads_n * games_each)


def _check_every_game_is_there(url: str, ids: list[int], expected: int) -> None:
    assert len(ids) == len(set(ids)) == expected
    check = GameStore(url)
    assert check.game_count("croatia") == expected
    with check._sessions() as session:
        assert set(session.scalars(select(Game.id))) == set(ids)
        assert session.scalar(select(func.count(Round.id))) == expected * 2
        assert session.scalar(select(func.count(Player.id)).where(Player.name == "Shared")) == 1
        if check.engine.dialect.name == "sqlite":
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    check.dispose()
