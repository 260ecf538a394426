"""The one exception type users see.

Every problem with user input (a file, a line of it, a field, a config value) raises
:class:`InputError`. The command line turns it into one clear message and a non-zero exit, never a
traceback. Library callers can catch it like any ``ValueError``.
"""

from __future__ import annotations

from os import PathLike


class InputError(ValueError):
    """Bad user input, located as precisely as possible (file, line, field)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path if self.line is None else f"{self.path}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message
