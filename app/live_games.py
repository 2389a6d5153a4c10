"""Games in progress, kept server-side so a reload resumes them.

The page puts a game's id in the URL (`?game=...`); a reload (a new Streamlit session)
finds the game here by that id. The store is bounded: at most `capacity` games, the least
recently used dropped first, and games untouched for `ttl_s` expire. Ids are random
(unguessable) tokens, so one player cannot open another's game without the link.
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DEFAULT_CAPACITY = 500
DEFAULT_TTL_S = 12 * 3600.0
ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")


def new_game_id() -> str:
    """A fresh id: 16 hex digits (64 random bits). Plain hex: widget keys are built from it,
    and Streamlit reserves "__" in component keys."""
    return secrets.token_hex(8)


def is_game_id(text: object) -> bool:
    return isinstance(text, str) and bool(ID_PATTERN.match(text))


class LiveGames:
    """A thread-safe LRU of live games (any object) by id."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or not ttl_s > 0:
            raise ValueError("capacity must be >= 1 and ttl_s > 0")
        self.capacity, self.ttl_s, self.clock = capacity, ttl_s, clock
        self._games: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._games)

    def put(self, game_id: str, game: Any) -> None:
        if not is_game_id(game_id):
            raise ValueError(f"not a game id: {game_id!r}")
        with self._lock:
            self._games[game_id] = (self.clock(), game)
            self._games.move_to_end(game_id)
            while len(self._games) > self.capacity:
                self._games.popitem(last=False)

    def get(self, game_id: object) -> Any | None:
        """The game with this id (refreshing its place in the LRU), or None."""
        if not is_game_id(game_id):
            return None
        with self._lock:
            entry = self._games.get(game_id)
            if entry is None:
                return None
            if self.clock() - entry[0] > self.ttl_s:
                del self._games[game_id]
                return None
            self._games[game_id] = (self.clock(), entry[1])
            self._games.move_to_end(game_id)
            return entry[1]

    def drop(self, game_id: object) -> None:
        with self._lock:
            self._games.pop(game_id, None)  # type: ignore[arg-type]
