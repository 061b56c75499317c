"""Bundled data sets: every ``<name>.csv`` in this folder that has a ``<name>.md`` data card.

The card says where the numbers come from (paper, table, page) and how the CSV was
made. A CSV without a card is not offered.

Examples
--------
>>> from bayesmeta.datasets import dataset_path, list_datasets
>>> "bcg" in list_datasets()
True
>>> dataset_path("bcg").name
'bcg.csv'
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayesmeta.errors import InputError

__all__ = ["DATASETS_DIR", "card_path", "dataset_path", "list_datasets", "load_dataset"]

#: The folder holding the bundled CSV files and their cards.
DATASETS_DIR = Path(__file__).resolve().parent


def list_datasets() -> list[str]:
    """Names of the bundled data sets (CSV files with a data card), sorted."""
    return sorted(p.stem for p in DATASETS_DIR.glob("*.csv") if p.with_suffix(".md").is_file())


def dataset_path(name: str) -> Path:
    """Path of the bundled data set ``name`` (``<name>.csv``).

    Raises
    ------
    InputError
        If there is no such data set (or it has no data card); the message lists
        the available names.
    """
    path = DATASETS_DIR / f"{name}.csv"
    if name not in list_datasets():
        raise InputError(f"unknown bundled dataset {name!r}; available: {', '.join(list_datasets())}",
                         file=path)
    return path


def card_path(name: str) -> Path:
    """Path of the data card (``<name>.md``) of the bundled data set ``name``."""
    return dataset_path(name).with_suffix(".md")


def load_dataset(name: str, **kwargs: object) -> pd.DataFrame:
    """Read a bundled data set with :func:`bayesmeta.data.read_table` (``kwargs`` passed on)."""
    from bayesmeta.data import read_table

    return read_table(dataset_path(name), **kwargs)  # type: ignore[arg-type]
