"""The game database: names, saving in one transaction, leaderboards, parallel saves."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from db import GameRecord, GameStore, GuessRecord, InvalidPlayerName, RoundRecord, StoreError
from db.models import PERSON, Game, Guess, Player, Round
from db.names import validate_player_name

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def record(name="Ana", map_name="croatia", person_km=(10.0, 20.0), model_km=(50.0, 5.0), at=T0,
           models=("beit",)) -> GameRecord:
    rounds = []
    for i, (p_km, m_km) in enumerate(zip(person_km, model_km), start=1):
        guesses = [GuessRecord(PERSON, 45.0, 16.0, p_km, int(5000 - p_km))]
        guesses += [GuessRecord(m, 44.0, 15.0, m_km, int(5000 - m_km)) for m in models]
        rounds.append(RoundRecord(i, f"loc{i}", f"img{i}.jpg", 45.1, 16.1, tuple(guesses)))
    person = sum(5000 - k for k in person_km)
    model = sum(5000 - k for k in model_km)
    return GameRecord(player_name=name, map_name=map_name, map_size_km=421.0, rounds=tuple(rounds),
                      winner=name if person > model else models[0], person_won=person > model,
                      started_at=at, finished_at=at + timedelta(minutes=3))


@pytest.fixture
def store(tmp_path):
    game_store = GameStore(f"sqlite:///{tmp_path / 'games.sqlite'}")
    yield game_store
    game_store.dispose()


# -- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, clean", [("  Ana  Marija ", "Ana Marija"), ("Željko", "Željko"),
                                        ("李小龙", "李小龙"), ("neo_42.x-y", "neo_42.x-y")])
def test_valid_names(raw, clean):
    assert validate_player_name(raw) == clean


@pytest.mark.parametrize("raw, message", [("", "enter a name"), ("   ", "enter a name"), ("x" * 33, "at most 32"),
                                          ("<b>hi</b>", "'<'"), ("a\tb", "control"), ("a\u200bb", "invisible"),
                                          ("Robert'); DROP", "letters, digits"), (None, "must be text")])
def test_invalid_names(raw, message):
    with pytest.raises(InvalidPlayerName, match=message):
        validate_player_name(raw)


# -- saving ------------------------------------------------------------------------------------
def test_tables_created_on_first_start_with_wal(store, tmp_path):
    assert store.game_count() == 0
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert (tmp_path / "games.sqlite").is_file()


def test_save_game_stores_every_round_and_guess(store):
    game_id = store.save_game(record())
    with store._sessions() as session:
        game = session.get(Game, game_id)
        assert game.player.name == "Ana" and game.person_points == 10000 - 30 and game.rounds_played == 2
        assert [r.number for r in game.rounds] == [1, 2]
        assert {(g.who, g.distance_km) for g in game.rounds[1].guesses} == {(PERSON, 20.0), ("beit", 5.0)}


def test_returning_player_is_one_player(store):
    store.save_game(record("Ana"))
    store.save_game(record(" Ana "))
    with store._sessions() as session:
        assert session.scalar(select(func.count(Player.id))) == 1


def test_a_failing_game_leaves_nothing_behind(store):
    bad = record()
    broken_round = RoundRecord(2, "loc3", "img3.jpg", 45.0, 16.0,
                               (GuessRecord(PERSON, 45.0, 16.0, 1.0, 10),))  # round 2 twice
    bad = GameRecord(**{**bad.__dict__, "rounds": bad.rounds + (broken_round,)})
    with pytest.raises(StoreError, match="refused the game"):
        store.save_game(bad)
    with store._sessions() as session:
        for table in (Player, Game, Round, Guess):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_a_returning_players_bad_game_is_refused_at_once(store):
    store.save_game(record("Ana"))
    good = record("Ana")
    broken_round = RoundRecord(3, "loc3", "img3.jpg", 45.0, 16.0,
                               (GuessRecord(PERSON, 45.0, 16.0, 1.0, 6000),))  # points out of range
    with pytest.raises(StoreError, match="points in round 3 is 6000"):
        store.save_game(GameRecord(**{**good.__dict__, "rounds": good.rounds + (broken_round,)}))
    assert store.game_count() == 1


def test_invalid_name_is_not_saved(store):
    with pytest.raises(InvalidPlayerName):
        store.save_game(record("<img src=x>"))
    assert store.game_count() == 0


def test_unusable_database_url_says_so():
    with pytest.raises(StoreError, match="GEOAI_DATABASE_URL"):
        GameStore("nosuchdialect://x/y")


# -- leaderboards --------------------------------------------------------------------------------
def test_best_games_per_map_in_order(store):
    store.save_game(record("Ana", person_km=(10, 10), at=T0))
    store.save_game(record("Ben", person_km=(1, 1), at=T0 + timedelta(hours=1)))
    store.save_game(record("Cleo", person_km=(10, 10), at=T0 + timedelta(hours=2)))
    store.save_game(record("Dan", map_name="world", person_km=(0, 0)))
    best = store.best_games("croatia")
    assert [(g.rank, g.player, g.points) for g in best] == [(1, "Ben", 9998), (2, "Ana", 9980), (3, "Cleo", 9980)]
    assert [g.player for g in store.best_games("world")] == ["Dan"]
    assert store.maps() == ["croatia", "world"]
    assert len(store.best_games("croatia", limit=1)) == 1


def test_person_vs_model_statistics(store):
    # Game 1: person closer in round 1 only, model wins the game on points.
    store.save_game(record(person_km=(10, 900), model_km=(50, 5), models=("beit", "resnet")))
    # Game 2: person closer in both rounds.
    store.save_game(record(person_km=(1, 1), model_km=(50, 50), models=("beit", "resnet")))
    stats = {m.model: m for m in store.person_vs_models("croatia")}
    assert set(stats) == {"beit", "resnet"}
    beit = stats["beit"]
    assert (beit.games, beit.person_won_games, beit.model_won_games, beit.tied_games) == (2, 1, 1, 0)
    assert (beit.rounds, beit.person_won_rounds) == (4, 3)
    assert beit.person_mean_km == pytest.approx((10 + 900 + 1 + 1) / 4)
    assert beit.model_mean_km == pytest.approx((50 + 5 + 50 + 50) / 4)
    assert beit.person_game_win_rate == 0.5
    assert store.person_vs_models("nowhere") == []


# -- concurrency -----------------------------------------------------------------------------------
def test_parallel_saves_lose_no_game(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    threads_n, games_each = 12, 5
    stores = [GameStore(url) for _ in range(3)]  # several engines, like several processes
    errors, ids = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(threads_n)

    def play(i: int) -> None:
        game_store = stores[i % len(stores)]
        try:
            barrier.wait()
            for j in range(games_each):
                # Half the threads share one brand-new name: the unique player row races.
                name = "Shared" if i % 2 else f"Player {i}"
                game_id = game_store.save_game(record(name, person_km=(i, j)))
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
    assert len(set(ids)) == threads_n * games_each
    check = GameStore(url)
    assert check.game_count("croatia") == threads_n * games_each
    with check._sessions() as session:
        assert session.scalar(select(func.count(Round.id))) == threads_n * games_each * 2
        assert session.scalar(select(func.count(Player.id)).where(Player.name == "Shared")) == 1
        assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    for s in stores + [check]:
        s.dispose()
