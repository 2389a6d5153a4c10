"""One person's play session as a small state machine, independent of Streamlit.

setup -> guessing -> result -> guessing ... -> finished. The Play page keeps one
PlaySession per game (in st.session_state and, for reloads, in app.live_games) and only
renders its state. The map sends one (lat, lon) when the person presses Guess (`confirm`),
or nothing before the round timer runs out (`time_up`).
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from app.game import DEFAULT_ROUNDS, MAX_ROUNDS, Game, GameError, Place, RoundResult, choose_places, place_problem
from db.names import validate_player_name

# name -> (lat, lon), or the exception that kept that model from guessing (it is dropped)
Predictor = Callable[[Place], Mapping[str, tuple[float, float] | Exception]]
MIN_TIMER_S, MAX_TIMER_S = 10, 600
# A guess sent as the clock reaches 0 still counts: network and rerun time are not the
# person's fault.
TIMER_GRACE_S = 3.0


class Phase(str, Enum):
    SETUP = "setup"
    GUESSING = "guessing"
    RESULT = "result"
    FINISHED = "finished"


def check_rounds(rounds: object) -> int:
    """The number of rounds as an int, or GameError saying what is allowed."""
    try:
        value = int(rounds)  # type: ignore[call-overload]
        if value != rounds and not isinstance(rounds, str):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise GameError(f"Rounds must be a whole number from 1 to {MAX_ROUNDS}, not {rounds!r}.") from None
    if not 1 <= value <= MAX_ROUNDS:
        raise GameError(f"Rounds must be from 1 to {MAX_ROUNDS}; {value} is not allowed.")
    return value


def check_timer(seconds: object) -> int | None:
    """Seconds per round (None: no timer, also for 0), or GameError saying what is allowed."""
    try:
        value = int(seconds)  # type: ignore[call-overload]
        if value != seconds and not isinstance(seconds, str):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise GameError(f"The round timer must be whole seconds ({MIN_TIMER_S}-{MAX_TIMER_S}, "
                        f"or 0 for none), not {seconds!r}.") from None
    if value == 0:
        return None
    if not MIN_TIMER_S <= value <= MAX_TIMER_S:
        raise GameError(f"The round timer must be {MIN_TIMER_S} to {MAX_TIMER_S} seconds, or 0 for "
                        f"no timer; {value} is not allowed.")
    return value


@dataclass
class PlaySession:
    phase: Phase = Phase.SETUP
    game: Game | None = None
    game_id: str | None = None  # in the URL, so a reload finds the game again
    timer_s: int | None = None
    round_started: float | None = None  # clock() when the current round was shown
    last_result: RoundResult | None = None
    timeout_without_pin: bool = False  # the last round ended by the timer with no pin placed
    saved_game_id: int | None = None
    save_error: str | None = None
    game_serial: int = 0  # changes per game: fresh map widgets
    problem_of: Callable[[Place], str | None] = place_problem  # why a place cannot be played
    challenge: Any = None  # the class challenge this game is played from (app.page_challenge)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def start(self, player_name: str, map_name: str, map_size_km: float, places: Sequence[Place],
              opponents: Sequence[str], rounds: int = DEFAULT_ROUNDS, *, timer_s: int | None = None,
              game_id: str | None = None, rng: random.Random | None = None) -> Game:
        """Begin a game (InvalidPlayerName / GameError with a clear message on bad input)."""
        name = validate_player_name(player_name)
        rounds = check_rounds(rounds)
        timer = check_timer(0 if timer_s is None else timer_s)
        rng = rng or random.Random()
        chosen = choose_places(places, rounds, rng)
        game = Game(player_name=name, map_name=map_name, map_size_km=map_size_km,
                    places=chosen, opponents=tuple(opponents), pool=places, rng=rng)
        game.skip_unplayable(self.problem_of)
        self.game = game
        self.game_id, self.timer_s = game_id, timer
        self.phase = Phase.GUESSING
        self.last_result = None
        self.saved_game_id = self.save_error = None
        self.game_serial += 1
        self.round_started = self.clock()
        return self.game

    @property
    def map_key(self) -> str:
        """Widget key of the round's map: new per round (no pin carries over) and the same
        after a reload (the id is the game's)."""
        number = self.game.round_number if self.game else 0
        return f"guessmap-{self.game_id or self.game_serial}-{number}"

    def remaining_s(self) -> float | None:
        """Seconds left in this round (None without a timer), never below 0."""
        if self.timer_s is None or self.round_started is None or self.phase is not Phase.GUESSING:
            return None
        return max(0.0, self.timer_s - (self.clock() - self.round_started))

    def out_of_time(self) -> bool:
        """The timer ran out, grace included: the round can only end with 0 points."""
        if self.remaining_s() is None:
            return False
        return self.clock() - self.round_started > self.timer_s + TIMER_GRACE_S

    def confirm(self, guess: tuple[float, float] | None, predict: Predictor) -> RoundResult:
        """The Guess button: the models predict, the round is scored and shown. A guess that
        arrives after the timer (and its grace) scores 0, like `time_up`."""
        if guess is None:
            raise GameError("click the map to place your guess first")
        result = self._finish_round(guess, predict, timed_out=self.out_of_time())
        self.timeout_without_pin = False
        return result

    def time_up(self, pin: tuple[float, float] | None, predict: Predictor,
                fallback: tuple[float, float]) -> RoundResult:
        """The round timer reached 0: the person scores 0 (at their pin, else `fallback`,
        where the map was centred), the models still play."""
        if self.timer_s is None:
            raise GameError("this game has no round timer")
        result = self._finish_round(pin or fallback, predict, timed_out=True)
        self.timeout_without_pin = pin is None
        return result

    def _finish_round(self, guess: tuple[float, float], predict: Predictor, timed_out: bool) -> RoundResult:
        with self.lock:  # a reload in another tab may show the same game
            if self.phase is not Phase.GUESSING or self.game is None:
                raise GameError("there is no round waiting for a guess")
            answers = predict(self.game.current_place) if self.game.opponents else {}
            for name, answer in answers.items():
                if isinstance(answer, Exception):
                    self.game.drop_opponent(name, str(answer))
            model_guesses = {n: a for n, a in answers.items() if not isinstance(a, Exception)}
            self.last_result = self.game.play_round(guess, model_guesses, person_timed_out=timed_out)
            self.phase = Phase.FINISHED if self.game.is_over else Phase.RESULT
            return self.last_result

    def next_round(self) -> None:
        with self.lock:
            if self.phase is not Phase.RESULT:
                raise GameError("the round is not finished yet")
            self.game.skip_unplayable(self.problem_of)
            self.phase = Phase.FINISHED if self.game.is_over else Phase.GUESSING
            self.round_started = self.clock()

    def save(self, save_game: Callable) -> int | None:
        """Save the finished game once (`save_game(record) -> id`); later calls return that id."""
        with self.lock:
            if self.phase is not Phase.FINISHED or self.game is None:
                raise GameError("only a finished game can be saved")
            if self.saved_game_id is None:
                self.saved_game_id = save_game(self.game.to_record())
            return self.saved_game_id

    def reset(self) -> None:
        """Back to the setup form (keeps the serial so widgets stay fresh)."""
        serial, problem_of = self.game_serial, self.problem_of
        self.__init__()  # type: ignore[misc]
        self.game_serial, self.problem_of = serial, problem_of
