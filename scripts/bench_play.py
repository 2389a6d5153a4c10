"""Play benchmark: click->pin and Guess->result times in headless Chromium, p50/p95.

    .venv/bin/python scripts/bench_play.py [--rounds 20] [--map croatia-streetview]

Starts the real game (`streamlit run app/main.py`, the test suite's tiny model bundles and
a throw-away SQLite file, datasets from GEOAI_DATA_DIR, default ../shared/data), plays
`--rounds` rounds in Debian's Chromium (new games as needed) and measures in the page:
- click->pin: from the pointer release on the map to the end of the first frame drawn
  with the pin there (the map component's own timestamps);
- Guess->result: from pressing Guess to the first frame of the result map, which the
  server sends after scoring the round (one Streamlit rerun, the models' answers).
Prints one line per round, a summary and a last line of JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from geoai import settings

sys.path.insert(0, str(settings.REPO_ROOT / "tests"))  # the browser tests' helpers drive the game

from browser_support import (CHROMIUM_ARGS, chromium_path, click_map, map_point,  # noqa: E402
                             map_state, press_guess_and_wait_result, running_streamlit, start_game,
                             wait_round_map)
from test_game_support import game_environment  # noqa: E402

MAX_ROUNDS_PER_GAME = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def play(url: str, rounds: int, map_name: str) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    pins, results = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        game = 0
        while len(results) < rounds:
            game += 1
            start_game(page, url, f"Bench {game}", map_name, min(MAX_ROUNDS_PER_GAME, rounds - len(results)))
            key = None
            while True:
                key = wait_round_map(page, key)
                state = map_state(page)
                # two clicks per round: the pin, then a move (both are click->pin samples)
                for fx, fy in ((0.42, 0.48), (0.55, 0.57)):
                    x, y = (round(v) for v in map_point(state, fx, fy))
                    pins.append(click_map(page, x, y)["click_to_pin_ms"])
                results.append(press_guess_and_wait_result(page))
                print(f"round {len(results):2d}: click->pin {pins[-2]:6.1f} / {pins[-1]:6.1f} ms, "
                      f"Guess->result {results[-1]:7.1f} ms", flush=True)
                if page.get_by_role("button", name="Next round").count() == 0:
                    break  # the game's last round: its result is on the final screen
                page.get_by_role("button", name="Next round").click()
        browser.close()
    return pins, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--map", default="croatia-streetview")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 200:
        parser.error("--rounds must be 1 to 200")
    shared = settings.data_dir()
    if not (shared / args.map / "metadata.csv").is_file():
        parser.error(f"no map {args.map!r} in {shared} (set GEOAI_DATA_DIR)")
    with tempfile.TemporaryDirectory(prefix="geoai-bench-play-") as tmp:
        tmp = Path(tmp)
        started = time.monotonic()
        with running_streamlit(game_environment(shared, tmp), tmp / "streamlit.log") as url:
            pins, results = play(url, args.rounds, args.map)
    summary = {
        "rounds": len(results), "map": args.map, "browser": "headless Chromium (software WebGL)",
        "click_to_pin_ms": {"p50": round(percentile(pins, 50), 1), "p95": round(percentile(pins, 95), 1),
                            "max": round(max(pins), 1), "samples": len(pins)},
        "guess_to_result_ms": {"p50": round(percentile(results, 50), 1), "p95": round(percentile(results, 95), 1),
                               "max": round(max(results), 1), "mean": round(statistics.fmean(results), 1),
                               "samples": len(results)},
        "wall_s": round(time.monotonic() - started, 1),
    }
    c, g = summary["click_to_pin_ms"], summary["guess_to_result_ms"]
    print(f"click->pin     p50 {c['p50']:7.1f} ms  p95 {c['p95']:7.1f} ms  ({c['samples']} clicks)")
    print(f"Guess->result  p50 {g['p50']:7.1f} ms  p95 {g['p95']:7.1f} ms  ({g['samples']} rounds)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
