"""The one error type the training command reports to a user (no traceback)."""
from __future__ import annotations


class TrainError(RuntimeError):
    """A problem with the user's input or environment, explained in the message."""
