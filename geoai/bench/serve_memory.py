"""`python -m geoai.bench serve-memory [--models DIR] [--map NAME] [--rounds N]`: the game
process's memory and Guess->result time, with precomputed opponents vs live models.

Each mode runs in a fresh child process that plays the real pages (app/main.py, through
Streamlit's AppTest: the same scripts, caches, models and predictions file a server runs)
for N rounds of 5-round games, clicking Guess as soon as the round shows (so a live model
has had no time to think ahead). Reported per mode: RSS after the first page, RSS after the
rounds, peak RSS (VmHWM), whether torch was imported, and Guess->result server time (from
the Guess click to the result table being built) p50/p95/max. "precomputed" plays the
models folder as published (with models/predictions/<map>.sqlite); "live" plays the same
bundles from a folder without the predictions. Prints a table, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geoai import settings

MODES = ("precomputed", "live")
ROUNDS_PER_GAME = 5


def _rss_mib() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB (Linux /proc)."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def play(map_name: str, rounds: int) -> dict:
    """In this process: play `rounds` rounds through the real pages; memory and timings."""
    from streamlit.testing.v1 import AppTest

    from app import page_play

    built: list[float] = []
    original = page_play.result_table

    def timed_result_table(play_session):  # the result screen's table: the answer is on the page
        built.append(time.perf_counter())
        return original(play_session)

    page_play.result_table = timed_result_table
    at = AppTest.from_file(str(settings.REPO_ROOT / "app" / "main.py"), default_timeout=600).run()
    rss_first_page, _ = _rss_mib()
    times_ms, started_games, played = [], 0, 0
    while played < rounds:
        at.text_input(key="player_name").input(f"Bench {started_games}")
        at.selectbox(key="map_name").select(map_name)
        at.number_input(key="rounds").set_value(ROUNDS_PER_GAME)
        at.button[0].click().run()
        started_games += 1
        session = at.session_state["play"]
        for number in range(ROUNDS_PER_GAME):
            if played >= rounds:
                break
            built.clear()
            clicked = time.perf_counter()
            at.session_state["map_guess"] = (45.0, 16.0)  # what the map's Guess button sends
            at.run()
            if at.exception or not built:
                raise RuntimeError(f"round {played + 1} did not reach its result: "
                                   f"{[e.value for e in (*at.exception, *at.error)]}")
            times_ms.append((built[0] - clicked) * 1000)
            played += 1
            if number < ROUNDS_PER_GAME - 1:
                at.button(key=f"next-{session.map_key}").click().run()
        if played < rounds:  # back to the setup form for the next game
            next(b for b in at.button if b.label == "Play again").click().run()
    rss_after, peak = _rss_mib()
    ordered = sorted(times_ms)
    return {"rounds": played, "torch_imported": "torch" in sys.modules,
            "rss_first_page_mib": round(rss_first_page, 1), "rss_after_mib": round(rss_after, 1),
            "peak_rss_mib": round(peak, 1),
            "guess_to_result_p50_ms": round(statistics.median(ordered), 1),
            "guess_to_result_p95_ms": round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 1),  # nearest rank
            "guess_to_result_max_ms": round(ordered[-1], 1),
            "guess_to_result_first_ms": round(times_ms[0], 1)}


def _live_models_dir(models: Path, into: Path) -> Path:
    """The same bundles (links), without the predictions folder: every answer comes from a model."""
    from geoai.bundle_files import discover_bundles

    folder = into / "models-live"
    folder.mkdir()
    for bundle in discover_bundles(models):
        (folder / bundle.name).symlink_to(bundle.resolve(), target_is_directory=True)
    return folder


def run_mode(mode: str, models: Path, map_name: str, rounds: int, tmp: Path) -> dict:
    env = {**os.environ, "GEOAI_MODELS_DIR": str(models if mode == "precomputed" else _live_models_dir(models, tmp)),
           "GEOAI_DATABASE_URL": f"sqlite:///{tmp / f'{mode}.sqlite'}", "GEOAI_BASEMAP": "off",
           "GEOAI_SALIENCY": "on-request", "PYTHONWARNINGS": "ignore"}
    # Run as a file, not `-m geoai.bench...`: the bench package imports torch, the game must not.
    done = subprocess.run([sys.executable, "-m", "geoai.bench.serve_memory", "--child", "--map", map_name,
                           "--rounds", str(rounds)], cwd=settings.REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the {mode} game process failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return {"mode": mode, **json.loads(lines[-1])}


def format_table(rows: list[dict]) -> str:
    head = (f"{'mode':<12} {'rounds':>6} {'torch':>6} {'RSS 1st page':>13} {'RSS after':>10} {'peak RSS':>9} "
            f"{'Guess->result p50':>18} {'p95':>8} {'max':>8} {'1st':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['mode']:<12} {r['rounds']:>6} {'yes' if r['torch_imported'] else 'no':>6} "
                     f"{r['rss_first_page_mib']:>9.0f} MiB {r['rss_after_mib']:>6.0f} MiB {r['peak_rss_mib']:>5.0f} MiB "
                     f"{r['guess_to_result_p50_ms']:>15.1f} ms {r['guess_to_result_p95_ms']:>5.0f} ms "
                     f"{r['guess_to_result_max_ms']:>5.0f} ms {r['guess_to_result_first_ms']:>5.0f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geoai.bench serve-memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=None, help="published models folder (default GEOAI_MODELS_DIR "
                        "or <repo>/models), with predictions/<map>.sqlite")
    parser.add_argument("--map", default="croatia-streetview", help="map to play (default croatia-streetview)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per mode (default 10)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: precomputed,live")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 200:
        parser.error("--rounds must be 1 to 200")
    if args.child:
        print(json.dumps(play(args.map, args.rounds)), flush=True)
        return 0
    from geoai.precomputed import predictions_path

    models = (args.models or settings.models_dir()).resolve()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        parser.error(f"--modes takes {', '.join(MODES)}")
    if "precomputed" in modes and not predictions_path(models, args.map).is_file():
        print(f"error: {predictions_path(models, args.map)} does not exist: publish the map's models first "
              "(python -m train publish RUN)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="geoai-serve-memory-") as tmp:
        for mode in modes:
            print(f"[bench] {mode}: playing {args.rounds} rounds of {args.map}...", file=sys.stderr, flush=True)
            try:
                rows.append(run_mode(mode, models, args.map, args.rounds, Path(tmp)))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
    print(format_table(rows))
    print(json.dumps({"map": args.map, "models": str(models), "modes": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
