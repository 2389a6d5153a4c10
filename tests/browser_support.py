"""Driving the real game in headless Chromium (Playwright), shared by the browser tests and
the play benchmark (scripts/bench_play.py). No tests here.

The app runs as a real `streamlit run` on a free port; the map component exposes
window.__geoaiMap (view state, canvas box, pin and timings) which these helpers read.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GEOAI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TILE_SIZE = 512  # deck.gl: the world is 512 px wide at zoom 0
LAST_MAP = "window.__geoaiMap && window.__geoaiMap.last"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chromium_path() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    found = shutil.which("chromium")
    if not found:
        raise FileNotFoundError(f"Chromium not found at {CHROMIUM}: install the Debian package `chromium`")
    return found


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s} s")


@contextlib.contextmanager
def running_streamlit(env: dict[str, str], log_path: Path):
    """`streamlit run app/main.py` from the repository root (its .streamlit/config.toml)
    on a free port; yields the base URL. Every script run is logged by the app when
    GEOAI_LOG_SCRIPT_RUNS=1 (set here), so tests can count them."""
    port = free_port()
    env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "GEOAI_LOG_SCRIPT_RUNS": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.enableStaticServing", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def script_runs(log_path: Path) -> int:
    """How many times the app's script ran so far (the app logs one line per run)."""
    return log_path.read_text(errors="replace").count("geoai script run")


def start_game(page, url: str, name: str, map_name: str, rounds: int, timer_s: int = 0) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_label("Your name").fill(name)
    page.get_by_role("combobox", name="Map").click()
    page.get_by_role("option", name=map_name, exact=True).click()
    rounds_box = page.get_by_label("Rounds")
    rounds_box.fill(str(rounds))
    rounds_box.press("Tab")
    if timer_s:
        timer_box = page.get_by_label("Seconds per round")
        timer_box.fill(str(timer_s))
        timer_box.press("Tab")
    page.get_by_role("button", name="Start game").click()
    expect(page.get_by_text("Click the map to place your guess.")).to_be_visible(timeout=180_000)


def wait_round_map(page, previous_key: str | None = None, timeout_ms: int = 120_000) -> str:
    """Wait until an interactive map (another than `previous_key`) is ready; its key."""
    page.wait_for_function(
        f"""(prev) => {{ const m = {LAST_MAP}; return m && m.ready && m.key !== prev
                 && m.key.startsWith('guessmap') && m.frames() > 0; }}""",
        arg=previous_key, timeout=timeout_ms)
    page.wait_for_timeout(300)  # the first fitted frame settles
    return page.evaluate(f"{LAST_MAP}.key")


def map_state(page) -> dict:
    """The round map's current view state and canvas box (page pixels)."""
    return page.evaluate(f"({{view: {LAST_MAP}.viewState(), canvas: {LAST_MAP}.canvas()}})")


def expected_position(state: dict, x: float, y: float) -> tuple[float, float]:
    """(lat, lon) under page pixel (x, y), from the view state alone (Web Mercator math,
    independent of deck.gl): what a click there must record."""
    view, canvas = state["view"], state["canvas"]
    scale = TILE_SIZE * 2 ** view["zoom"]  # world width in pixels
    dx = x - (canvas["left"] + canvas["width"] / 2)
    dy = y - (canvas["top"] + canvas["height"] / 2)
    lon = view["longitude"] + dx / scale * 360.0
    t0 = math.log(math.tan(math.pi / 4 + math.radians(view["latitude"]) / 2))
    t = t0 - dy / scale * 2 * math.pi
    lat = math.degrees(2 * math.atan(math.exp(t)) - math.pi / 2)
    return lat, (lon + 180.0) % 360.0 - 180.0


def click_map(page, x: float, y: float) -> dict:
    """Click a page pixel on the map (pointer moved there first, like a person); returns
    the pin and the click->pin time measured in the page (ms)."""
    page.mouse.move(x - 15, y - 10)
    page.mouse.move(x, y, steps=3)
    before = page.evaluate(f"{LAST_MAP}.timings().clickAt")
    page.mouse.click(x, y)
    page.wait_for_function(
        f"(before) => {{ const t = {LAST_MAP}.timings(); return t.clickAt !== before && t.pinDrawnAt !== null; }}",
        arg=before, timeout=10_000)
    pin = page.evaluate(f"{LAST_MAP}.pin()")
    timings = page.evaluate(f"{LAST_MAP}.timings()")
    return {"pin": pin, "click_to_pin_ms": timings["pinDrawnAt"] - timings["clickAt"]}


def map_point(state: dict, fx: float, fy: float) -> tuple[float, float]:
    """The page pixel at fractions (fx, fy) of the map's canvas."""
    canvas = state["canvas"]
    return canvas["left"] + canvas["width"] * fx, canvas["top"] + canvas["height"] * fy


def press_guess_and_wait_result(page, timeout_ms: int = 120_000) -> float:
    """Press the map's Guess button; ms until the result map has drawn (measured in the page)."""
    page.locator(".gm-guess").click()
    page.wait_for_function(
        f"""() => {{ const m = {LAST_MAP}; return m && m.ready && m.key.startsWith('result')
                 && m.timings().drawnAt !== null; }}""", timeout=timeout_ms)
    return page.evaluate(f"{LAST_MAP}.timings().drawnAt - window.__geoaiMap.lastGuessAt")
