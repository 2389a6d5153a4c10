"""A real browser on the screens after a guess: the result with the belief heatmap and both
models' saliency overlays, the final recap, and the own-photo page. Screenshots land in
test-artifacts/ (gitignored); the test checks what a player must be able to see on them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from result_support import classifier_models_dir, jpeg_with_gps
from browser_support import (CHROMIUM, CHROMIUM_ARGS, click_map, map_point, map_state,
                             press_guess_and_wait_result, running_streamlit, wait_round_map)
from test_browser import ARTIFACTS
from test_game_support import game_environment

pytestmark = pytest.mark.slow
PLAYER = "Screen_Tester"


@pytest.fixture
def classifier_app(shared_data, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install the Debian package `chromium`")
    env = {**game_environment(shared_data, tmp_path), "GEOAI_MODELS_DIR": str(classifier_models_dir(shared_data))}
    log_path = tmp_path / "streamlit.log"
    try:
        with running_streamlit(env, log_path) as url:
            yield url, tmp_path
    finally:
        print(log_path.read_text()[-4000:])


def start_game(page, url: str, rounds: int) -> None:
    page.goto(url)
    page.get_by_label("Your name").fill(PLAYER)
    page.get_by_label("Rounds").fill(str(rounds))
    page.get_by_label("Rounds").press("Tab")
    page.get_by_role("button", name="Start game").click()


def guess_round(page, expect, where: float) -> None:
    """Click the round's map at a fraction of its width, then press Guess."""
    if component_map(page):  # the click-to-guess map: the pin and Guess live in the browser
        page.wait_for_function(
            "() => { const m = window.__geoaiMap.last; return m && m.ready && m.key.startsWith('guessmap')"
            " && m.pin() === null && m.frames() > 0; }", timeout=180_000)
        page.wait_for_timeout(300)
        canvas = page.evaluate("window.__geoaiMap.last.canvas()")
        x, y = canvas["left"] + canvas["width"] * where, canvas["top"] + canvas["height"] * 0.5
        page.mouse.move(x - 15, y - 10)
        page.mouse.move(x, y, steps=3)
        page.mouse.click(x, y)
        page.wait_for_function("() => window.__geoaiMap.last.pin() !== null", timeout=10_000)
        page.locator(".gm-guess").click()
        return
    expect(page.get_by_text("Click the map to place your guess.")).to_be_visible()
    wait_round_map(page)
    x, y = map_point(map_state(page), where, 0.5)
    click_map(page, round(x), round(y))
    press_guess_and_wait_result(page)


def component_map(page) -> bool:
    """Whether the round's map is the click-to-guess component (else the pickable pydeck grid)."""
    page.wait_for_selector("[data-testid='stDeckGlJsonChart'] canvas, .gm-guess", timeout=180_000)
    return page.locator(".gm-guess").count() > 0


def screenshot(page, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so the window grows to fit it."""
    height = page.evaluate("Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
                           "[data-testid=stAppViewContainer]')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 40, 1000), 6000)})
    page.wait_for_timeout(1500)  # charts redraw at the new size
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})
    return path


def wait_for_insight(page, expect) -> None:
    expect(page.get_by_text("What the models believed")).to_be_visible()
    expect(page.get_by_text("Grad-CAM:", exact=False).first).to_be_visible()
    expect(page.get_by_text("Attention rollout:", exact=False).first).to_be_visible()
    page.wait_for_timeout(2500)  # deck.gl draws the heatmap a few frames after the chart appears


def test_result_recap_and_upload_screens(classifier_app, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, _ = classifier_app
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        expect.set_options(timeout=180_000)
        start_game(page, url, rounds=2)
        expect(page.get_by_text("View 4")).to_be_visible()  # every view at once, no tabs
        expect(page.locator("[data-testid='stTab']")).to_have_count(0)
        screenshot(page, "result-round.png")

        guess_round(page, expect, 0.45)
        expect(page.get_by_text("Round 1: the photo was taken here")).to_be_visible()
        wait_for_insight(page, expect)
        overlays = page.locator("[data-testid='stImage'] img")
        expect(overlays).to_have_count(8)  # 2 models x 4 views
        expect(page.get_by_text("1", exact=True).first).to_be_attached()
        expect(page.get_by_text("regression head", exact=False)).to_be_visible()
        screenshot(page, "result-insight.png")

        page.get_by_role("button", name="Next round").click()
        guess_round(page, expect, 0.55)
        expect(page.get_by_text("Final score")).to_be_visible()
        expect(page.get_by_text("Every round")).to_be_visible()
        expect(page.locator("[data-testid='stVegaLiteChart']")).to_be_visible()
        wait_for_insight(page, expect)
        screenshot(page, "result-final-recap.png")

        if page.get_by_role("link", name="Your photo").count():
            photo = tmp_path / "zagreb.jpg"
            photo.write_bytes(jpeg_with_gps((90, 120, 160), 45.8150, 15.9819, size=(640, 480)))
            page.get_by_role("link", name="Your photo").click()
            page.locator("input[type='file']").set_input_files(str(photo))
            expect(page.get_by_text("This photo carries its GPS position", exact=False)).to_be_visible()
            guess_on_upload_map(page)
            expect(page.get_by_text("Your photo was taken here")).to_be_visible()
            wait_for_insight(page, expect)
            screenshot(page, "result-upload.png")
        browser.close()


def guess_on_upload_map(page) -> None:
    """Click the world map near its centre, then press the map's Guess button (or, where the
    click-to-guess map is not installed, type a position)."""
    if page.get_by_label("Latitude").count():
        page.get_by_label("Latitude").fill("46.5")
        page.get_by_label("Longitude").fill("14.5")
        page.get_by_role("button", name="Guess").click()
        return
    page.wait_for_function("() => { const m = window.__geoaiMap && window.__geoaiMap.last; "
                           "return m && m.ready && m.key.startsWith('upload-map') && m.frames() > 0; }",
                           timeout=120_000)
    page.wait_for_timeout(300)
    canvas = page.evaluate("window.__geoaiMap.last.canvas()")
    x, y = canvas["left"] + canvas["width"] * 0.52, canvas["top"] + canvas["height"] * 0.35
    page.mouse.move(x - 15, y - 10)
    page.mouse.move(x, y, steps=3)
    page.mouse.click(x, y)
    page.wait_for_function("() => window.__geoaiMap.last.pin() !== null", timeout=10_000)
    page.locator(".gm-guess").click()
