"""Progress bars: drawn on a terminal, left out of logs.

tqdm redraws a bar with carriage returns and, for nested bars, cursor moves ("\\x1b[A"):
right on a terminal, noise in a log file or a pipe. Every bar in geoai, train and their
commands comes from here.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr when `show` and stderr is a terminal; otherwise a silent one.

    The silent bar still iterates and accepts update()/set_postfix(), so callers need no branch.
    """
    return tqdm(iterable, disable=None if show else True, **kwargs)  # None: tqdm's "off unless a TTY"
