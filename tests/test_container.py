"""The container as a host would run it: build the image (scripts/docker-build.sh, cached
layers reused), start it beside a PostgreSQL container, wait for its health check, play one
whole game through the running server (Streamlit's websocket protocol, like a browser) and
find the game in PostgreSQL.

Needs a working Docker daemon. Without one the test is skipped, except where
GEOAI_REQUIRE_DOCKER=1 (CI), where it fails. PostgreSQL image: GEOAI_POSTGRES_IMAGE, else
geoai-postgres:15 when it exists (scripts/docker-base.sh, no registry needed), else postgres:16.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from test_game_support import GAME_MAP, tiny_bundles_dir

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("GEOAI_IMAGE", "geoai:latest")
PLAYER = "Container_Tester"
ROUNDS = 2
BUILD_TIMEOUT_S = 1800  # an uncached build installs torch and the requirements
HEALTH_TIMEOUT_S = 180

pytestmark = pytest.mark.slow


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def docker_problem() -> str | None:
    """Why Docker cannot run here, or None."""
    if not shutil.which("docker"):
        return "the docker command is not installed (apt-get install docker.io)"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker daemon does not answer within 30 s"
    if info.returncode != 0:
        return f"no Docker daemon answers (start it: scripts/docker-daemon.sh): {info.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module")
def docker_ready():
    problem = docker_problem()
    if problem:
        if os.environ.get("GEOAI_REQUIRE_DOCKER") == "1":
            pytest.fail(f"GEOAI_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)


def postgres_image() -> str:
    if os.environ.get("GEOAI_POSTGRES_IMAGE"):
        return os.environ["GEOAI_POSTGRES_IMAGE"]
    local = docker("image", "inspect", "geoai-postgres:15", check=False)
    return "geoai-postgres:15" if local.returncode == 0 else "postgres:16"


def readable_by_all(root: Path) -> None:
    """The container runs as an unprivileged user: let it read the bundles (temp dirs are 0700)."""
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)


def wait_healthy(container: str, url: str) -> float:
    """Seconds until Docker reports the container healthy and /_stcore/health answers."""
    started = time.monotonic()
    while time.monotonic() - started < HEALTH_TIMEOUT_S:
        state = docker("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", container).stdout.split()
        if state and state[0] != "running":
            raise AssertionError(f"the container stopped ({state[0]}):\n{docker('logs', container).stderr[-3000:]}")
        if state[-1] == "healthy":
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                assert response.status == 200
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"not healthy within {HEALTH_TIMEOUT_S} s:\n{docker('logs', container).stderr[-3000:]}")


def sql(container: str, password: str, query: str) -> str:
    out = docker("exec", "-e", f"PGPASSWORD={password}", container,
                 "psql", "-h", "127.0.0.1", "-U", "geoai", "-d", "geoai", "-tA", "-c", query)
    return out.stdout.strip()


@pytest.mark.timeout(BUILD_TIMEOUT_S + 600)
def test_container_plays_a_game_into_postgresql(docker_ready, shared_data, tmp_path):
    from geoai.bench.game_driver import play_game

    started = time.monotonic()
    build = subprocess.run(["bash", "scripts/docker-build.sh"], cwd=REPO, capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT_S)
    build_s = time.monotonic() - started
    assert build.returncode == 0, f"image build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    print(f"\nimage {IMAGE} built in {build_s:.0f} s")

    bundles_root = tiny_bundles_dir(shared_data).parent  # models/ and the backbones they name
    readable_by_all(bundles_root)
    tag = uuid.uuid4().hex[:8]
    network, db, app = f"geoai-test-{tag}", f"geoai-test-db-{tag}", f"geoai-test-app-{tag}"
    password = uuid.uuid4().hex
    try:
        docker("network", "create", network)
        docker("run", "-d", "--name", db, "--network", network, "-e", "POSTGRES_USER=geoai",
               "-e", f"POSTGRES_PASSWORD={password}", "-e", "POSTGRES_DB=geoai", postgres_image(), timeout=300)
        docker("run", "-d", "--name", app, "--network", network, "-p", "127.0.0.1::8501",
               "-e", f"GEOAI_DATABASE_URL=postgresql+psycopg://geoai:{password}@{db}:5432/geoai",
               "-e", "GEOAI_BASEMAP=off", "-e", f"GEOAI_MODELS_DIR={bundles_root / 'models'}",
               "-v", f"{bundles_root}:{bundles_root}:ro",
               "-v", f"{shared_data / GAME_MAP}:/srv/maps/{GAME_MAP}:ro", IMAGE)
        port = docker("port", app, "8501/tcp").stdout.split(":")[-1].strip()
        url = f"http://127.0.0.1:{port}"
        health_s = wait_healthy(app, url)
        print(f"container healthy after {health_s:.1f} s at {url}")

        started = time.monotonic()
        outcome = play_game(url, PLAYER, ROUNDS, timeout_s=180)
        print(f"played {ROUNDS} rounds in {time.monotonic() - started:.1f} s "
              f"(Guess -> result: {', '.join(f'{s:.2f} s' for s in outcome.guess_client_s)}); "
              f"saved as game #{outcome.game_id}")
        assert outcome.game_id is not None, outcome.save_error
        for asset in sorted(outcome.assets):  # the map's scripts, served by the container itself
            with urllib.request.urlopen(f"{url}{asset}", timeout=30) as response:
                assert response.status == 200 and len(response.read()) > 1000, asset
        print(f"map scripts served: {', '.join(sorted(outcome.assets)) or 'none'}")

        row = sql(db, password, "SELECT p.name, g.map_name, g.rounds_played, count(r.id) FROM game g "
                      "JOIN player p ON p.id = g.player_id JOIN round r ON r.game_id = g.id "
                      f"WHERE g.id = {outcome.game_id} GROUP BY p.name, g.map_name, g.rounds_played")
        assert row == f"{PLAYER}|{GAME_MAP}|{ROUNDS}|{ROUNDS}", row
        user = docker("exec", app, "id", "-un").stdout.strip()
        assert user != "root"
    finally:
        logs = docker("logs", app, check=False)
        print((logs.stdout + logs.stderr)[-2000:])
        docker("rm", "-f", "-v", app, db, check=False)
        docker("network", "rm", network, check=False)
