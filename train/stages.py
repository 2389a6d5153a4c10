"""Wall-clock time of each stage of a run, for the results header."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class StageClock:
    """Records (name, seconds) of each `with clock("stage"):` block, in order."""

    def __init__(self) -> None:
        self.stages: list[dict[str, float | str]] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages.append({"name": name, "seconds": round(time.perf_counter() - started, 3)})
