"""Exceptions and warnings shared by every layer.

Errors about user input name the file, the row and the column (or the spec key),
so that a statistician can go straight to the cell. Rows are numbered as in a
spreadsheet: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BayesmetaError",
    "InputError",
    "SpecError",
    "DataWarning",
    "SamplerWarning",
]


class BayesmetaError(Exception):
    """Base class of the package's errors. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


class InputError(BayesmetaError, ValueError):
    """Bad input data: names file, row and column where they are known.

    Parameters
    ----------
    message
        What is wrong, in words a statistician understands.
    file
        The data file (or ``None`` for an in-memory frame).
    row
        Spreadsheet row number (header is row 1, first data row is row 2).
    column
        The column as it is named in the file.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return (": ".join([", ".join(where), self.message]) if where else self.message)


class SpecError(BayesmetaError, ValueError):
    """A model spec (TOML) is invalid: names the file and the dotted key."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, key: str | None = None) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.key = key
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ", ".join(x for x in (self.file, f"key '{self.key}'" if self.key else None) if x)
        return f"{where}: {self.message}" if where else self.message


class DataWarning(UserWarning):
    """Rows left out, corrections applied, or other facts about the data a user must see."""


class SamplerWarning(UserWarning):
    """Divergences, R-hat above threshold, low ESS, high Pareto k: never hidden."""
