"""One person's play session as a small state machine, independent of Streamlit.

setup -> guessing -> result -> guessing ... -> finished. The Play page keeps one
PlaySession in st.session_state and only renders its state; clicks on the map arrive as
picked grid cells (`pick`), exactly as a test feeds them.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from app.game import DEFAULT_ROUNDS, Game, GameError, Place, RoundResult, choose_places, place_problem
from app.pickgrid import PickGrid
from db.names import validate_player_name

# name -> (lat, lon), or the exception that kept that model from guessing (it is dropped)
Predictor = Callable[[Place], Mapping[str, tuple[float, float] | Exception]]


class Phase(str, Enum):
    SETUP = "setup"
    GUESSING = "guessing"
    RESULT = "result"
    FINISHED = "finished"


@dataclass
class PlaySession:
    phase: Phase = Phase.SETUP
    game: Game | None = None
    grid: PickGrid | None = None
    guess: tuple[float, float] | None = None
    anchor: tuple[float, float] | None = None  # where the finer patch is centred
    last_result: RoundResult | None = None
    saved_game_id: int | None = None
    save_error: str | None = None
    game_serial: int = 0  # changes per game: fresh map widgets
    problem_of: Callable[[Place], str | None] = place_problem  # why a place cannot be played

    def start(self, player_name: str, map_name: str, map_size_km: float, places: Sequence[Place],
              grid: PickGrid, opponents: Sequence[str], rounds: int = DEFAULT_ROUNDS,
              rng: random.Random | None = None) -> Game:
        """Begin a game (InvalidPlayerName / GameError with a clear message on bad input)."""
        name = validate_player_name(player_name)
        rng = rng or random.Random()
        chosen = choose_places(places, rounds, rng)
        game = Game(player_name=name, map_name=map_name, map_size_km=map_size_km,
                    places=chosen, opponents=tuple(opponents), pool=places, rng=rng)
        game.skip_unplayable(self.problem_of)
        self.game = game
        self.grid = grid
        self.phase = Phase.GUESSING
        self.guess = self.anchor = self.last_result = None
        self.saved_game_id = self.save_error = None
        self.game_serial += 1
        return self.game

    @property
    def map_key(self) -> str:
        """Widget key of the round's map: new per round, so no selection carries over."""
        number = self.game.round_number if self.game else 0
        return f"pickmap-{self.game_serial}-{number}"

    def pick(self, cell: str, layer: str = "grid") -> tuple[float, float]:
        """A click on the map: the picked cell's centre becomes (or replaces) the guess."""
        if self.phase is not Phase.GUESSING or self.grid is None:
            raise GameError("there is no round waiting for a guess")
        self.guess = self.grid.position_of(cell)
        if layer != "refine":  # a click on the coarse grid recentres the finer patch
            self.anchor = self.guess
        return self.guess

    def refine_cells(self) -> list[str]:
        if self.anchor is None or self.grid is None:
            return []
        return self.grid.refine_cells(*self.anchor)

    def confirm(self, predict: Predictor) -> RoundResult:
        """The Guess button: models predict, the round is scored and shown."""
        if self.phase is not Phase.GUESSING or self.game is None:
            raise GameError("there is no round waiting for a guess")
        if self.guess is None:
            raise GameError("click the map to place your guess first")
        answers = predict(self.game.current_place) if self.game.opponents else {}
        for name, answer in answers.items():
            if isinstance(answer, Exception):
                self.game.drop_opponent(name, str(answer))
        model_guesses = {n: a for n, a in answers.items() if not isinstance(a, Exception)}
        self.last_result = self.game.play_round(self.guess, model_guesses)
        self.phase = Phase.FINISHED if self.game.is_over else Phase.RESULT
        return self.last_result

    def next_round(self) -> None:
        if self.phase is not Phase.RESULT:
            raise GameError("the round is not finished yet")
        self.game.skip_unplayable(self.problem_of)
        self.phase = Phase.FINISHED if self.game.is_over else Phase.GUESSING
        self.guess = self.anchor = None

    def save(self, save_game: Callable) -> int | None:
        """Save the finished game once (`save_game(record) -> id`); later calls return that id."""
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
