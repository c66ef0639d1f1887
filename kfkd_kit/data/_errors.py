"""DataError, the one exception for input data we cannot use, and how a bad cell is shown."""
from __future__ import annotations


class DataError(ValueError):
    """Input data we cannot use. The message is one line: file, row or line, column, problem."""


def show(value, limit=40) -> str:
    """A cell's text for a one-line message."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    value = str(value)
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)
