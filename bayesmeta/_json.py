"""JSON helpers shared by the run directory and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["dumps", "jsonable", "write_json"]


def jsonable(value: Any) -> Any:
    """Plain JSON types; numpy scalars become Python numbers, NaN and infinities ``null``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):
        return jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(payload: Any) -> str:
    """Indented JSON text of ``payload`` after :func:`jsonable`."""
    return json.dumps(jsonable(payload), indent=2, allow_nan=False)


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path``."""
    path.write_text(dumps(payload) + "\n", encoding="utf-8")
