"""The load test command end to end, kept small: a server against PostgreSQL, 1 then 2
concurrent players through the websocket protocol, every game played and found saved."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_game_support import game_environment

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def serve(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoai.bench", "serve", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--players", "0"], "--players: each count must be 1-50"),
    (["--players", "1,x"], "--players takes comma-separated counts"),
    (["--games", "1000"], "--games must be 1-20"),
    (["--database-url", "sqlite:///x.db"], "must be a PostgreSQL URL"),
])
def test_bad_options_are_one_line_errors(args, message, capsys):
    from geoai.bench.serve import main
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[transformers]")]
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def postgres_available() -> bool:
    return bool(os.environ.get("GEOAI_TEST_POSTGRES_URL") or glob.glob("/usr/lib/postgresql/*/bin/initdb")
                or shutil.which("initdb"))


def test_concurrent_players_play_whole_games_into_postgresql(shared_data, tmp_path):
    if not postgres_available():
        if os.environ.get("GEOAI_REQUIRE_POSTGRES") == "1":
            pytest.fail("GEOAI_REQUIRE_POSTGRES=1 but no PostgreSQL server or installation")
        pytest.skip("no PostgreSQL: set GEOAI_TEST_POSTGRES_URL or apt-get install postgresql")
    env = {**os.environ, **game_environment(shared_data, tmp_path)}
    done = serve(["--players", "1,2", "--games", "1", "--rounds", "2", "--think", "0"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [level["players"] for level in result["levels"]] == [1, 2]
    for level in result["levels"]:
        assert level["errors"] == 0
        assert level["games_played"] == level["games_saved"] == level["players"]
        assert level["guesses"] == 2 * level["players"]  # each Guess timed where the server saw it
        assert 0 < level["guess_p50_ms"] <= level["guess_p95_ms"]
        assert level["peak_rss_mb"] > 0 and level["cpu_s_per_game"] > 0
