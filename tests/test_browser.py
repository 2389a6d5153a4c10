"""A real browser plays one round: start the app, click the map, Guess, check the result
and the leaderboard. Chromium comes from Debian (/usr/bin/chromium), driven by Playwright.

Screenshots land in test-artifacts/ (gitignored).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_game_support import GAME_MAP, game_environment

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("GEOAI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PLAYER = "Browser_Tester"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@pytest.fixture
def running_app(shared_data, tmp_path):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install the Debian package `chromium`")
    port = free_port()
    env = {**os.environ, **game_environment(shared_data, tmp_path), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "streamlit.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, tmp_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        print(log_path.read_text()[-4000:])


def test_play_a_round_in_a_real_browser(running_app):
    from playwright.sync_api import expect, sync_playwright

    url, tmp = running_app
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        expect.set_options(timeout=120_000)  # first start loads maps, grid and models
        page.goto(url)
        page.get_by_label("Your name").fill(PLAYER)
        expect(page.get_by_role("combobox", name="Map")).to_have_value(GAME_MAP)  # the default map
        page.get_by_label("Rounds").fill("1")
        page.get_by_label("Rounds").press("Tab")
        page.get_by_role("button", name="Start game").click()
        expect(page.get_by_text("Click the map to place your guess.")).to_be_visible()

        canvas = page.locator("[data-testid='stDeckGlJsonChart'] canvas").first
        expect(canvas).to_be_visible()
        page.wait_for_timeout(1500)  # deck.gl builds the grid layer after the first frame
        box = canvas.bounding_box()
        x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5
        # Like a person: the pointer moves onto the map (deck.gl picks on hover), then clicks.
        page.mouse.move(x - 20, y - 20)
        page.mouse.move(x, y, steps=5)
        page.wait_for_timeout(300)
        page.mouse.click(x, y)
        expect(page.get_by_text("Your guess:")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-guess.png"))

        page.get_by_role("button", name="Guess").click()
        expect(page.get_by_text("Final score")).to_be_visible()
        result = page.locator("[data-testid='stTable']").filter(has_text="distance (km)").first
        expect(result).to_contain_text(PLAYER)
        cells = result.locator("tbody tr td:nth-child(2)").all_inner_texts()  # the distance column
        assert len(cells) == 3 and all(re.fullmatch(r"[\d,]+\.\d", c.strip()) for c in cells), cells
        expect(page.get_by_text("Saved to the leaderboard")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-result.png"), full_page=True)

        page.goto(f"{url}/leaderboard")
        board = page.locator("[data-testid='stTable']").first
        expect(board).to_contain_text(PLAYER)
        page.screenshot(path=str(ARTIFACTS / "browser-leaderboard.png"), full_page=True)
        browser.close()
