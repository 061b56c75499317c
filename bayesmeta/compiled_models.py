"""Per-process cache of compiled models, so that a second fit of the same model does not recompile.

Building a PyMC model and compiling it for nutpie costs seconds; sampling a meta-analysis of a few
dozen studies costs a fraction of one. :func:`bayesmeta.inference.fit_data` (and through it
:func:`~bayesmeta.inference.fit`) and the MCMC sensitivity sweep therefore keep the
:class:`~bayesmeta.inference.CompiledFit` objects they build here and reuse one when

* the model is the same: family, moderators, subgroup, subgroup tau, bias model, measure and
  sampler (:func:`model_key`), and the data are the same: column names, dtypes and every value
  (:func:`frame_digest`, a SHA-256 over pandas' row hashes); and
* the new priors have the compiled priors' *structure* (families and bound finiteness,
  :meth:`CompiledFit.accepts`): only prior parameters change, which the builders keep in data
  containers, so nothing is rebuilt.

A reused model gives the same draws bit for bit as a freshly compiled one for the same seed and
priors (``tests/test_inference.py``). Entries are lent out one at a time (a
:class:`CompiledFit` samples one chain set at a time): a second thread asking for a model that is
in use gets a fresh compilation. The cache holds at most ``maxsize`` models, least recently used
first out. This module knows nothing of PyMC; it stores whatever the factory returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["CompiledModelCache", "frame_digest", "model_key"]


def frame_digest(data: pd.DataFrame) -> str:
    """SHA-256 of a frame's column names, dtypes, index and values."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in data.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
    return h.hexdigest()


def model_key(data: pd.DataFrame, *, family: str, moderators: Sequence[str], subgroup: str | None,
              subgroup_tau: str, bias: str, sampler: str, measure: str | None) -> str:
    """The cache key of a model: everything :func:`~bayesmeta.inference.compile_fit` builds from,
    except the priors (matched separately by structure)."""
    model = {"family": family, "moderators": list(moderators), "subgroup": subgroup or None,
             "subgroup_tau": subgroup_tau, "bias": bias or "none", "sampler": sampler,
             "measure": measure}
    return json.dumps(model, sort_keys=True) + frame_digest(data)


class CompiledModelCache:
    """Least-recently-used store of compiled models, lent out one borrower at a time.

    Parameters
    ----------
    maxsize
        Most models kept (each holds a compiled sampler: a few MB).
    """

    def __init__(self, maxsize: int = 16) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._entries: list[tuple[str, Any]] = []   # most recently used last
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every model (those lent out stay usable by their borrowers)."""
        with self._lock:
            self._entries.clear()

    @contextlib.contextmanager
    def borrow(self, key: str, priors: Mapping[str, Any], build: Callable[[], Any]) -> Iterator[Any]:
        """Lend a model for ``key`` that accepts ``priors``, building it with ``build`` if none is
        free; a model built here is stored when the borrower is done."""
        found = None
        with self._lock:
            for i, (k, compiled) in enumerate(self._entries):
                if k == key and id(compiled) not in self._busy and compiled.accepts(priors):
                    found = compiled
                    self._entries.append(self._entries.pop(i))
                    self._busy.add(id(compiled))
                    break
        if found is not None:
            try:
                yield found
            finally:
                with self._lock:
                    self._busy.discard(id(found))
            return
        compiled = build()
        yield compiled
        with self._lock:
            self._entries.append((key, compiled))
            del self._entries[:-self.maxsize]
