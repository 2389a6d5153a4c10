"""A real browser plays the game: headless Debian Chromium driven by Playwright against a
real `streamlit run` (helpers in browser_support.py).

- A click records exactly the coordinate under the pointer (computed here from the map's
  view state with Web Mercator math): within 1 km on the Croatia map, 10 km on the world map,
  also across the antimeridian after panning there.
- The pin is drawn within 300 ms of the click, measured in the page.
- Clicking, moving the pin, zooming (buttons and wheel) and panning run no Streamlit script
  and send nothing to the server.
- A game is played to the end with a reload in the middle, which resumes it; the round
  timer ends a round at 0 with 0 points. The "Deploy" button is not shown.

Screenshots land in test-artifacts/ (gitignored).
"""
from __future__ import annotations

import re
import sqlite3
import time

import pytest
from geopy.distance import great_circle

from browser_support import (CHROMIUM_ARGS, LAST_MAP, REPO, chromium_path, click_map, expected_position,
                             map_point, map_state, press_guess_and_wait_result, running_streamlit,
                             script_runs, start_game, wait_round_map)
from test_game_support import GAME_MAP, WORLD_MAP, game_environment

ARTIFACTS = REPO / "test-artifacts"
PIN_WITHIN_MS = 300

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(shared_data, tmp_path_factory):
    """One app for the module (starting Streamlit and the models takes a while)."""
    tmp = tmp_path_factory.mktemp("browser")
    log_path = tmp / "streamlit.log"
    try:
        with running_streamlit(game_environment(shared_data, tmp), log_path) as url:
            yield url, tmp, log_path
    finally:
        print(log_path.read_text(errors="replace")[-4000:])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    expect.set_options(timeout=120_000)  # the first start loads maps and models
    page.sent_frames = []  # what the browser sends to the server over Streamlit's websocket
    page.on("websocket", lambda ws: ws.on("framesent", lambda frame: page.sent_frames.append(frame)))
    yield page
    context.close()


def recorded_guesses(db_path, player: str) -> list[tuple[float, float]]:
    """The person's guesses of the player's last saved game, in round order."""
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT g.lat, g.lon FROM guess g JOIN round r ON g.round_id = r.id JOIN game ga ON r.game_id = ga.id "
            "JOIN player p ON ga.player_id = p.id WHERE p.name = ? AND g.who = 'person' "
            "AND ga.id = (SELECT MAX(ga2.id) FROM game ga2 JOIN player p2 ON ga2.player_id = p2.id "
            "WHERE p2.name = ?) ORDER BY r.number", (player, player)).fetchall()
    return [(float(lat), float(lon)) for lat, lon in rows]


def quiet_interaction(page, log_path, action) -> None:
    """Run `action`; assert it caused no script run and sent nothing to the server."""
    runs, frames = script_runs(log_path), len(page.sent_frames)
    action()
    page.wait_for_timeout(1200)  # long enough for a rerun to show up if one were triggered
    assert script_runs(log_path) == runs, "a map interaction ran the Streamlit script"
    assert page.sent_frames[frames:] == [], "a map interaction sent a message to the server"


def test_exact_instant_pin_on_croatia_without_reruns(app, page):
    from playwright.sync_api import expect

    url, tmp, log_path = app
    start_game(page, url, "Pixel_Croatia", GAME_MAP, rounds=1)
    wait_round_map(page)
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)  # no developer toolbar
    guess_button = page.locator(".gm-guess")
    expect(guess_button).to_be_disabled()  # nothing to send before a pin

    timings = []

    def click_twice():
        state = map_state(page)
        for fx, fy in ((0.35, 0.45), (0.62, 0.58)):  # place the pin, then move it
            x, y = (round(v) for v in map_point(state, fx, fy))
            clicked = click_map(page, x, y)
            timings.append(clicked["click_to_pin_ms"])
            lat, lon = expected_position(state, x, y)
            assert great_circle((lat, lon), (clicked["pin"]["lat"], clicked["pin"]["lon"])).km < 1.0

    def zoom_with_buttons_and_wheel():
        page.locator(".gm-zoom-in").click()
        page.wait_for_timeout(400)
        box = map_state(page)["canvas"]
        page.mouse.move(box["left"] + box["width"] / 2, box["top"] + box["height"] / 2)
        page.mouse.wheel(0, -240)
        page.wait_for_timeout(600)
        page.locator(".gm-zoom-out").click()
        page.wait_for_timeout(400)

    zoom_before = map_state(page)["view"]["zoom"]
    quiet_interaction(page, log_path, zoom_with_buttons_and_wheel)
    assert map_state(page)["view"]["zoom"] > zoom_before + 0.3  # +1, wheel in, -1: zoomed in overall
    quiet_interaction(page, log_path, click_twice)
    assert max(timings) <= PIN_WITHIN_MS, timings
    state = map_state(page)
    x, y = (round(v) for v in map_point(state, 0.62, 0.58))
    expected = expected_position(state, x, y)
    expect(page.get_by_text(re.compile(r"Your guess: 4\d\.\d{4}, 1\d\.\d{4}"))).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "browser-round.png"))

    press_guess_and_wait_result(page)
    expect(page.get_by_text("Final score")).to_be_visible()
    expect(page.get_by_text("Saved to the leaderboard")).to_be_visible()
    (recorded,) = recorded_guesses(tmp / "game.sqlite", "Pixel_Croatia")
    assert great_circle(recorded, expected).km < 1.0, (recorded, expected)


def test_exact_pin_on_the_world_map_across_the_antimeridian(app, page):
    from playwright.sync_api import expect

    url, tmp, log_path = app
    start_game(page, url, "Pixel_World", WORLD_MAP, rounds=1)
    wait_round_map(page)
    state = map_state(page)
    box = state["canvas"]

    def pan_to_the_pacific():
        # Drag the map left until the antimeridian is in view: the world repeats past it.
        world_px = 512 * 2 ** state["view"]["zoom"]
        shift = (180.0 - state["view"]["longitude"]) / 360.0 * world_px
        x0, y0 = box["left"] + box["width"] * 0.8, box["top"] + box["height"] * 0.5
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 - shift, y0, steps=12)
        page.mouse.up()
        page.wait_for_timeout(600)

    quiet_interaction(page, log_path, pan_to_the_pacific)
    state = map_state(page)
    assert abs(abs(state["view"]["longitude"]) - 180) < 20
    positions = []

    def click_both_sides():
        for fx in (0.4, 0.6):
            x, y = (round(v) for v in map_point(state, fx, 0.55))
            clicked = click_map(page, x, y)
            assert clicked["click_to_pin_ms"] <= PIN_WITHIN_MS
            expected = expected_position(state, x, y)
            assert great_circle(expected, (clicked["pin"]["lat"], clicked["pin"]["lon"])).km < 10.0
            assert -180 <= clicked["pin"]["lon"] < 180
            positions.append(expected)

    quiet_interaction(page, log_path, click_both_sides)
    assert positions[0][1] > 0 > positions[1][1]  # the two clicks sit on both sides of 180
    page.screenshot(path=str(ARTIFACTS / "browser-world-round.png"))
    press_guess_and_wait_result(page)
    expect(page.get_by_text("Final score")).to_be_visible()
    (recorded,) = recorded_guesses(tmp / "game.sqlite", "Pixel_World")
    assert great_circle(recorded, positions[-1]).km < 10.0, (recorded, positions[-1])


def test_play_to_the_end_with_a_reload_in_the_middle(app, page):
    from playwright.sync_api import expect

    url, tmp, _ = app
    start_game(page, url, "Reload_Tester", GAME_MAP, rounds=3)
    key = wait_round_map(page)
    scoreboard = page.locator("[data-testid='stMetric']")
    expect(scoreboard.first).to_contain_text("1/3")
    x, y = map_point(map_state(page), 0.5, 0.5)
    click_map(page, round(x), round(y))
    press_guess_and_wait_result(page)
    expect(page.get_by_text("Round 1: the photo was taken here")).to_be_visible()
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "browser-result.png"), full_page=True)
    points_after_one = scoreboard.nth(1).inner_text()
    page.get_by_role("button", name="Next round").click()
    key = wait_round_map(page, key)
    expect(scoreboard.first).to_contain_text("2/3")
    assert re.search(r"[?&]game=[A-Za-z0-9_-]{16}", page.url), page.url

    page.reload()  # a new Streamlit session: the game comes back from the server
    key = wait_round_map(page)
    expect(scoreboard.first).to_contain_text("2/3")
    assert scoreboard.nth(1).inner_text() == points_after_one
    for number in (2, 3):
        x, y = map_point(map_state(page), 0.45, 0.55)
        click_map(page, round(x), round(y))
        press_guess_and_wait_result(page)
        if number < 3:
            page.get_by_role("button", name="Next round").click()
            key = wait_round_map(page, key)
    expect(page.get_by_text("Final score")).to_be_visible()
    expect(page.get_by_text("Saved to the leaderboard")).to_be_visible()
    assert len(recorded_guesses(tmp / "game.sqlite", "Reload_Tester")) == 3
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "browser-final.png"), full_page=True)

    page.goto(f"{url}/leaderboard")
    expect(page.locator("[data-testid='stMarkdownContainer'] table").first).to_contain_text("Reload_Tester")


def test_round_timer_reaching_zero_scores_zero(app, page):
    from playwright.sync_api import expect

    url, _, _ = app
    start_game(page, url, "Slow_Tester", GAME_MAP, rounds=1, timer_s=30)
    wait_round_map(page)
    clock = page.locator(".gm-timer")
    expect(clock).to_have_text(re.compile(r"0:[0-3]\d"))
    minutes, seconds = clock.inner_text().split(":")
    shown, started = int(minutes) * 60 + int(seconds), time.monotonic()
    expect(page.get_by_text("Time ran out")).to_be_visible(timeout=120_000)
    assert time.monotonic() - started >= shown - 2  # not before the clock said
    table = page.locator("[data-testid='stMarkdownContainer'] table").first
    expect(table).to_contain_text("Slow_Tester")
    assert page.evaluate(f"{LAST_MAP}.key").startswith("result")
