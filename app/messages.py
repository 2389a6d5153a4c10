"""Messages players read never show where things live on the server."""
from __future__ import annotations

import re

# An absolute POSIX or Windows path, a file: URL, or a SQLAlchemy URL's file part.
_PATH = re.compile(r"""(?<![\w.])(?:file:/+|sqlite:/+)?(?:[A-Za-z]:[\\/]|/)(?:[^\s'"`,;:()\[\]<>]+[\\/])*[^\s'"`,;:()\[\]<>]*""")


def without_paths(text: object) -> str:
    """The message with every server path replaced by its last part ("…/metadata.csv")."""
    def short(match: re.Match) -> str:
        parts = [p for p in re.split(r"[\\/]", match.group(0)) if p]
        if not parts:
            return match.group(0)
        return f"…/{parts[-1]}"
    return _PATH.sub(short, str(text))
