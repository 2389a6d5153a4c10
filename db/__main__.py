"""python -m db: the game database from the command line.

    python -m db upgrade                                   # bring the database to the current schema
    python -m db status                                    # schema revision and games stored
    python -m db challenge create --map M --rounds 5 [--timer 60] [--seed N] [--base-url URL]
    python -m db challenge show CODE                       # the challenge's board

The database is GEOAI_DATABASE_URL (or --url). Errors are one line on stderr, exit code 1.
"""
from __future__ import annotations

import argparse
import sys

from db import challenges, schema
from db.connect import StoreError, database_errors, database_url, make_engine, safe_url
from db.store import GameStore


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m db", description="The game database.")
    parser.add_argument("--url", help="database URL (default: GEOAI_DATABASE_URL or db/geoai.sqlite)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    upgrade = commands.add_parser("upgrade", help="bring the database to the current schema (back it up first)")
    upgrade.set_defaults(run=_upgrade)
    status = commands.add_parser("status", help="schema revision and number of games")
    status.set_defaults(run=_status)
    challenge = commands.add_parser("challenge", help="class challenges").add_subparsers(required=True, metavar="ACTION")
    create = challenge.add_parser("create", help="create a challenge and print its code and link")
    create.add_argument("--map", required=True, help="the map (dataset folder name)")
    create.add_argument("--rounds", type=int, default=5)
    create.add_argument("--timer", type=int, default=None, help="seconds per round (default: no timer)")
    create.add_argument("--seed", type=int, default=None, help="picks the places (default: random)")
    create.add_argument("--base-url", default=challenges.DEFAULT_BASE_URL, help="the game's address for the link")
    create.add_argument("--no-map-check", action="store_true", help="do not check the map exists in GEOAI_DATA_DIR")
    create.set_defaults(run=_create_challenge)
    show = challenge.add_parser("show", help="a challenge's settings and board")
    show.add_argument("code")
    show.set_defaults(run=_show_challenge)
    return parser


def _upgrade(args) -> int:
    url = args.url or database_url()
    engine = make_engine(url)
    try:
        with database_errors("cannot upgrade the database", url):
            before_games = _count_games(engine)
            before, after = schema.upgrade(engine)
            after_games = _count_games(engine)
    finally:
        engine.dispose()
    if before_games != after_games:  # cannot happen in one transaction; say so loudly if it did
        raise StoreError(f"the upgrade changed the number of games from {before_games} to {after_games}")
    if before == after:
        print(f"{safe_url(url)} is already at schema {after} ({after_games} games)")
    else:
        print(f"upgraded {safe_url(url)} from schema {before or 'none (empty)'} to {after}; "
              f"{after_games} games kept")
    return 0


def _count_games(engine) -> int:
    from sqlalchemy import inspect, text
    with engine.connect() as connection:
        if "game" not in inspect(connection).get_table_names():
            return 0
        return int(connection.execute(text("SELECT count(*) FROM game")).scalar() or 0)


def _status(args) -> int:
    url = args.url or database_url()
    engine = make_engine(url)
    try:
        with database_errors("cannot read the database", url), engine.connect() as connection:
            state = schema.schema_state(connection)
        games = _count_games(engine)
    finally:
        engine.dispose()
    verdict = ("current" if state.current else "empty" if state.revision is None
               else f"out of date: run `{schema.UPGRADE_COMMAND}`")
    legacy = " (from before migrations)" if state.legacy else ""
    print(f"{safe_url(url)}: schema {state.revision or '-'}{legacy}, newest {state.head}: {verdict}; {games} games")
    return 0


def _create_challenge(args) -> int:
    if not args.no_map_check:
        _check_map(args.map)
    store = GameStore(args.url)
    try:
        made = store.create_challenge(args.map, args.rounds, args.timer, args.seed)
    finally:
        store.dispose()
    timer = f", {made.timer_seconds} s per round" if made.timer_seconds else ""
    print(f"challenge {made.code}: {made.rounds} rounds on {made.map_name}{timer} (seed {made.seed})")
    print(made.link(args.base_url))
    return 0


def _check_map(name: str) -> None:
    from app.maps import discover_maps  # the maps the game would offer
    from geoai.settings import data_dir
    maps = [p.name for p in discover_maps(None)]
    if name not in maps:
        shown = ", ".join(maps) if maps else "none"
        raise ValueError(f"no map called {name!r} in {data_dir()} (maps: {shown}); "
                         f"use --no-map-check to create it anyway")


def _show_challenge(args) -> int:
    store = GameStore(args.url)
    try:
        found = store.challenge_board(args.code)
    finally:
        store.dispose()
    if found is None:
        raise ValueError(f"there is no challenge with the code {args.code!r}")
    c = found.challenge
    timer = f", {c.timer_seconds} s per round" if c.timer_seconds else ""
    print(f"challenge {c.code}: {c.rounds} rounds on {c.map_name}{timer}; "
          f"{len(found.people)} players, {found.practice_games} practice games")
    for e in found.ranking():
        rank = "model" if e.is_model else f"{e.rank:>5}"
        print(f"{rank}  {e.name:<32} {e.points:>7} points  {e.mean_km:>9.1f} km mean over {e.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
