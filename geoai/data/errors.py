"""Errors and problem records of the dataset layer.

Validation never stops at the first bad row: it collects a `Problem` per finding so a
user can fix a whole metadata file in one go. `DatasetError` carries all of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    kind: machine-readable category, e.g. "missing_column", "bad_coordinate",
        "missing_file", "unreadable_image", "truncated_image", "not_an_image",
        "image_too_large", "duplicate_path", "unsafe_path", "empty_group_key".
    message: a sentence a user understands.
    row: 1-based data row of the CSV (header excluded); None for file-level problems.
    file_name: the image path as written in the CSV, when the problem concerns one.
    """

    kind: str
    message: str
    row: int | None = None
    file_name: str | None = None

    def describe(self) -> str:
        """One line naming row and file, e.g. "row 3 (images/a.jpg): latitude is 'abc'"."""
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.file_name is not None:
            where.append(f"({self.file_name})" if where else self.file_name)
        prefix = " ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class DatasetError(ValueError):
    """A dataset cannot be used as is. The message lists every problem found."""

    def __init__(self, problems: list[Problem], source: str | Path | None = None):
        if not problems:
            raise ValueError("DatasetError needs at least one problem")
        self.problems: list[Problem] = list(problems)
        self.source = str(source) if source is not None else None
        super().__init__(self._format())

    def _format(self) -> str:
        where = f" in {self.source}" if self.source else ""
        if len(self.problems) == 1:
            return f"Dataset problem{where}: {self.problems[0].describe()}"
        lines = [f"{len(self.problems)} dataset problems{where}:"]
        lines += [f"  - {p.describe()}" for p in self.problems]
        return "\n".join(lines)


class ImageError(ValueError):
    """An image file cannot be used: missing, not an image, corrupt, truncated or too large.

    kind: the `Problem.kind` this maps to; path: the file concerned.
    """

    def __init__(self, message: str, *, kind: str, path: str | Path | None = None):
        self.kind = kind
        self.path = str(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)
