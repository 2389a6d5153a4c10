"""Load test of the running game: `python -m geoai.bench serve [--players 1,5,10,20]`.

Starts the app (geoai/bench/serve_server.py: the real Streamlit server with request timing)
against a fresh PostgreSQL database, then for each player count drives that many concurrent
players through the server's websocket protocol, each playing whole games like a person
(name, rounds, a guess per round after a pause to look, Guess, Next round, the final page
that saves the game). Localhost only; bounded in players, games, rounds and time.

Reported per player count: Guess -> result p50/p95 as the server sees it (from the Guess
message to the finished result page), errors, games played vs games found in the database,
the server's peak RSS and its CPU seconds per game. A table, then one JSON line.

PostgreSQL: --database-url (a server URL; a fresh database is created in it and dropped at
the end), else GEOAI_TEST_POSTGRES_URL, else a throw-away server from scripts/pg-test-server.sh.
Maps and models are the game's own settings (GEOAI_DATA_DIR, GEOAI_MODELS_DIR, GEOAI_CHECKPOINTS).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from geoai import settings

DEFAULT_LEVELS = "1,5,10,20"
MAX_PLAYERS, MAX_GAMES, MAX_ROUNDS = 50, 20, 10
SERVER_START_TIMEOUT_S = 180


class BenchError(RuntimeError):
    """A one-line reason the load test cannot run."""


@dataclass
class Level:
    players: int
    games_played: int = 0
    games_saved: int = 0  # rows in the database for this level's players
    errors: list[str] = field(default_factory=list)
    guess_server_s: list[float] = field(default_factory=list)
    guess_client_s: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    def summary(self) -> dict:
        server = np.asarray(self.guess_server_s) * 1000
        client = np.asarray(self.guess_client_s) * 1000
        pct = (lambda a, q: round(float(np.percentile(a, q)), 1) if a.size else None)
        return {"players": self.players, "guesses": int(server.size),
                "guess_p50_ms": pct(server, 50), "guess_p95_ms": pct(server, 95),
                "client_p95_ms": pct(client, 95), "errors": len(self.errors),
                "games_played": self.games_played, "games_saved": self.games_saved,
                "peak_rss_mb": round(self.peak_rss_mb, 1),
                "cpu_s_per_game": round(self.cpu_s / self.games_played, 2) if self.games_played else None,
                "wall_s": round(self.wall_s, 1)}


# -- PostgreSQL -------------------------------------------------------------------------------
def _psycopg_url(url: str) -> str:
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


class Database:
    """A fresh database for one run, in a given server or in a throw-away one."""

    def __init__(self, server_url: str | None):
        self.pg_dir = None
        if not server_url:
            server_url = settings.postgres_test_url() or self._start_throwaway()
        if not server_url.startswith(("postgresql://", "postgresql+psycopg://")):
            raise BenchError(f"--database-url must be a PostgreSQL URL, got {server_url.split(':')[0]}://...")
        self.server_url = server_url
        self.name = f"geoai_bench_{uuid.uuid4().hex[:10]}"
        self._admin(f'CREATE DATABASE "{self.name}"')
        self.url = self._with_database(server_url, self.name)

    @staticmethod
    def _with_database(url: str, name: str) -> str:
        scheme, rest = url.split("://", 1)
        authority, _, tail = rest.partition("/")
        query = tail.partition("?")[2]
        return f"postgresql+psycopg://{authority}/{name}" + (f"?{query}" if query else "")

    def _start_throwaway(self) -> str:
        script = settings.REPO_ROOT / "scripts" / "pg-test-server.sh"
        done = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BenchError(f"could not start a throw-away PostgreSQL: {done.stderr.strip()[-300:]}")
        values = dict(re.findall(r"export (\w+)=(\S+)", done.stdout))
        self.pg_dir = values.get("GEOAI_PG_TEST_DIR")
        return values["GEOAI_TEST_POSTGRES_URL"]

    def _admin(self, statement: str) -> None:
        import psycopg
        try:
            with psycopg.connect(_psycopg_url(self.server_url), autocommit=True, connect_timeout=10) as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise BenchError(f"PostgreSQL refused {statement.split()[0]} {statement.split()[1]}: {exc}") from exc

    def games_of(self, prefix: str) -> int:
        import psycopg
        with psycopg.connect(_psycopg_url(self.url), connect_timeout=10) as conn:
            row = conn.execute("SELECT count(*) FROM game g JOIN player p ON p.id = g.player_id "
                               "WHERE p.name LIKE %s", (prefix + "%",)).fetchone()
        return int(row[0])

    def close(self) -> None:
        try:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            if self.pg_dir:
                subprocess.run(["bash", str(settings.REPO_ROOT / "scripts" / "pg-test-server.sh"), "stop", self.pg_dir],
                               capture_output=True, timeout=120)


# -- the server -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The game's Streamlit server on 127.0.0.1, with its request timing log."""

    def __init__(self, database_url: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timing_path = workdir / "timing.jsonl"
        self.log_path = workdir / "server.log"
        env = {**os.environ, "GEOAI_DATABASE_URL": database_url, "GEOAI_BASEMAP": "off",
               "GEOAI_SALIENCY": "on-request", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "geoai.bench.serve_server", str(self.timing_path),
                 "--server.headless", "true", "--server.port", str(self.port), "--server.address", "127.0.0.1",
                 "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                cwd=settings.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.process.pid)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise BenchError(f"the server did not answer within {SERVER_START_TIMEOUT_S} s: {self.log_tail()}")

    def log_tail(self, chars: int = 600) -> str:
        return self.log_path.read_text(errors="replace")[-chars:].replace("\n", " | ")

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def timings(self) -> list[dict]:
        if not self.timing_path.exists():
            return []
        return [json.loads(line) for line in self.timing_path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- one player count -------------------------------------------------------------------------
def run_level(server: Server, db: Database, players: int, games: int, rounds: int, think_s: float,
              timeout_s: float, log) -> Level:
    from geoai.bench.game_driver import play_game
    from geoai.bench.streamlit_client import ClientError

    level = Level(players)
    prefix = f"Bench_{players}_"
    lock = threading.Lock()
    guess_ids: set[str] = set()
    deadline = time.monotonic() + timeout_s
    done = threading.Event()

    def player(index: int) -> None:
        for game in range(games):
            if time.monotonic() > deadline:
                with lock:
                    level.errors.append(f"player {index}: time limit before game {game + 1}")
                return
            try:
                outcome = play_game(server.url, f"{prefix}{index:02d}", rounds, seed=players * 1000 + index * 10 + game,
                                    timeout_s=120, think_s=think_s)
            except ClientError as exc:
                with lock:
                    level.errors.append(f"player {index}: {exc}")
                continue
            with lock:
                level.games_played += 1
                level.guess_client_s += outcome.guess_client_s
                guess_ids.update(outcome.guess_ids)
                if outcome.game_id is None:
                    level.errors.append(f"player {index}: not saved: {outcome.save_error}")

    def sample_rss() -> None:
        while not done.is_set():
            level.peak_rss_mb = max(level.peak_rss_mb, server.rss_mb())
            done.wait(0.2)

    seen = len(server.timings())
    cpu_before, started = server.cpu_s(), time.monotonic()
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=player, args=(i,), daemon=True) for i in range(players)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 150)
    done.set()
    sampler.join()
    level.wall_s = time.monotonic() - started
    level.cpu_s = server.cpu_s() - cpu_before
    if any(t.is_alive() for t in threads):
        level.errors.append("players still running after the time limit")
    level.guess_server_s = [r["seconds"] for r in server.timings()[seen:] if guess_ids.intersection(r["triggers"])]
    level.games_saved = db.games_of(prefix)
    log(f"{players} players: {level.games_played} games, {len(level.errors)} errors, {level.wall_s:.0f} s")
    for error in level.errors[:5]:
        log(f"  error: {error}")
    return level


def warm_up(server: Server, rounds: int) -> None:
    """One game before measuring: maps, grids, models and the database get loaded once."""
    from geoai.bench.game_driver import play_game
    from geoai.bench.streamlit_client import ClientError
    try:
        play_game(server.url, "Bench_warmup", rounds, timeout_s=SERVER_START_TIMEOUT_S)
    except ClientError as exc:
        raise BenchError(f"the warm-up game failed: {exc}; server log: {server.log_tail()}") from exc


def format_table(levels: list[dict]) -> str:
    head = ("players", "guess p50 ms", "guess p95 ms", "errors", "played/saved", "peak RSS MiB", "CPU s/game")
    rows = [head] + [(str(s["players"]), str(s["guess_p50_ms"]), str(s["guess_p95_ms"]), str(s["errors"]),
                      f"{s['games_played']}/{s['games_saved']}", str(s["peak_rss_mb"]), str(s["cpu_s_per_game"]))
                     for s in levels]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"--players takes comma-separated counts like 1,5,10,20, got {text!r}") from None
    if not levels or any(n < 1 or n > MAX_PLAYERS for n in levels):
        raise BenchError(f"--players: each count must be 1-{MAX_PLAYERS}, got {text!r}")
    return levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geoai.bench serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", default=DEFAULT_LEVELS, help=f"concurrent players per step (default {DEFAULT_LEVELS})")
    parser.add_argument("--games", type=int, default=2, help="games each player plays per step (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per game (default 5)")
    parser.add_argument("--think", type=float, default=10.0,
                        help="mean seconds a player looks before each guess and each next round (default 10, "
                             "a brisk player; 2 is a stress test)")
    parser.add_argument("--database-url", help="PostgreSQL server URL (default: GEOAI_TEST_POSTGRES_URL or a throw-away server)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per step (default 900)")
    args = parser.parse_args(argv)
    log = lambda msg: print(f"[serve] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        levels = parse_levels(args.players)
        if not (1 <= args.games <= MAX_GAMES and 1 <= args.rounds <= MAX_ROUNDS):
            raise BenchError(f"--games must be 1-{MAX_GAMES} and --rounds 1-{MAX_ROUNDS}")
        if not (0 <= args.think <= 60 and 10 <= args.timeout <= 3600):
            raise BenchError("--think must be 0-60 s and --timeout 10-3600 s")
        db = Database(args.database_url)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results, server = [], None
    try:
        with tempfile.TemporaryDirectory(prefix="geoai-serve-") as workdir:
            server = Server(db.url, Path(workdir))
            log(f"server on {server.url}, database {db.name}; warming up")
            warm_up(server, args.rounds)
            for players in levels:
                results.append(run_level(server, db, players, args.games, args.rounds, args.think,
                                         args.timeout, log).summary())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
        db.close()
    print(format_table(results))
    print(json.dumps({"levels": results, "games": args.games, "rounds": args.rounds, "think_s": args.think}), flush=True)
    return 0 if all(r["errors"] == 0 and r["games_played"] == r["games_saved"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
