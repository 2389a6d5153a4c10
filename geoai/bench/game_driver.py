"""Play whole games of the geoai app through its websocket protocol, like a person would:
name and rounds in the setup form, a guess on each round's map, Guess, Next round, and the
final page that saves the game. Only `submit_guess` knows how the map takes a guess.
"""
from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field

from streamlit.proto.WidgetStates_pb2 import WidgetState

from geoai.bench.streamlit_client import ClientError, Page, StreamlitSession

GUESS_MAP = "guess_map"  # the round's map component (its name ends with this)
INTERNAL_KEY_PREFIX = "$$STREAMLIT_INTERNAL_KEY"
SAVED = re.compile(r"Saved to the leaderboard \(game #(\d+)\)")


@dataclass
class GameOutcome:
    player: str
    rounds: int
    game_id: int | None = None           # the leaderboard's id, when the page said it was saved
    guess_ids: list[str] = field(default_factory=list)  # widget ids whose press was a Guess
    guess_client_s: list[float] = field(default_factory=list)  # Guess -> result page, client side
    save_error: str = ""
    assets: set[str] = field(default_factory=set)  # URL paths the round's map loads in the browser


def start_game(session: StreamlitSession, player: str, rounds: int) -> Page:
    page = session.run()
    name = page.widget("text_input", "Your name")
    count = page.widget("number_input", "Rounds")  # the label may go on: "Rounds (1-10)"
    start = page.widget("button", "Start game")
    session.set_string(name.id, player)
    session.set_int(count.id, rounds)
    page = session.click(start.id)
    errors = page.alerts("ERROR")
    if errors:
        raise ClientError(f"the game did not start: {errors[0]}")
    return page


def submit_guess(session: StreamlitSession, page: Page, rng: random.Random) -> tuple[str, Page, float]:
    """Place a guess on the round's map and press Guess; returns the pressed widget's id, the
    result page and the seconds from the press to the result (client side)."""
    maps = [e.bidi_component for e in page.of_type("bidi_component")
            if e.bidi_component.component_name.endswith(GUESS_MAP)]
    if not maps:
        raise ClientError(f"no map on the round's page: {page.summary()}")
    return _guess_on_component(session, maps[0], rng)


def _guess_on_component(session: StreamlitSession, component, rng: random.Random) -> tuple[str, Page, float]:
    """The guess map (a Components v2 component): clicks stay in the browser, and the Guess
    button sends one (lat, lon) as the component's "guess" event, tagged with its round."""
    kind = component.WhichOneof("data")
    data = json.loads(component.json if kind == "json" else component.mixed.json)
    libraries = data.get("lib") if isinstance(data.get("lib"), dict) else {}
    session.assets.update(str(url) for url in libraries.values())
    south, west, north, east = _frame(data)
    lat, lon = rng.uniform(south, north), (rng.uniform(west, east) + 180.0) % 360.0 - 180.0
    events_id = f"{INTERNAL_KEY_PREFIX}_{component.id}__events"  # Streamlit's trigger id for the events
    payload = [{"event": "guess", "value": {"lat": lat, "lon": lon, "round": data.get("id")}}]
    started = time.perf_counter()
    page = session.run({events_id: WidgetState(id=events_id, json_trigger_value=json.dumps(payload))})
    return events_id, page, time.perf_counter() - started


def _frame(data: dict) -> tuple[float, float, float, float]:
    """(south, west, north, east) the map opens on (east may pass 180), else the whole world."""
    fit = data.get("fit")
    if isinstance(fit, list) and len(fit) == 2:
        (west, south), (east, north) = fit
        return south, west, north, (east + 360.0 if east < west else east)
    return -60.0, -180.0, 70.0, 180.0


def play_game(url: str, player: str, rounds: int, *, seed: int = 0, timeout_s: float = 60.0,
              think_s: float = 0.0) -> GameOutcome:
    """One whole game in a fresh session; ClientError when anything a player would notice fails."""
    rng = random.Random(seed)
    outcome = GameOutcome(player, rounds)
    with StreamlitSession(url, timeout_s=timeout_s) as session:
        page = start_game(session, player, rounds)
        for number in range(1, rounds + 1):
            if think_s:
                time.sleep(rng.uniform(0.5, 1.5) * think_s)
            guess_id, page, seconds = submit_guess(session, page, rng)
            outcome.guess_client_s.append(seconds)
            outcome.guess_ids.append(guess_id)
            errors = page.alerts("ERROR")
            if number < rounds:
                if errors:
                    raise ClientError(f"round {number} failed: {errors[0]}")
                page = session.click(page.widget("button", "Next round").id)
        outcome.assets = set(session.assets)
        saved = [m for t in page.texts() if (m := SAVED.search(t))]
        if saved:
            outcome.game_id = int(saved[0].group(1))
        else:
            outcome.save_error = next(iter(page.alerts("ERROR")), "no save message on the final page")
    return outcome
