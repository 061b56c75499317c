"""The per-process cache of compiled models (bayesmeta.compiled_models), without PyMC.

A stand-in model records which priors it accepts; the cache's contract is checked on it (reuse is
seen in how many models the builder made): same key
and accepted priors reuse, a model in use is never lent twice, least recently used goes first,
and the data digest sees names, dtypes, index and values. That a reused PyMC model gives the same
draws as a fresh one is checked in test_inference.py (it needs a sampler).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from bayesmeta.compiled_models import CompiledModelCache, frame_digest, model_key


class FakeCompiled:
    """Accepts priors whose families are its own (the real rule is CompiledFit.accepts)."""

    def __init__(self, families: dict[str, str]) -> None:
        self.families = families

    def accepts(self, priors: dict[str, str]) -> bool:
        return all(self.families.get(k) == v.split("(")[0] for k, v in priors.items())


HN = {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}
HN_OTHER_SCALE = {"mu": "normal(0, 3)", "tau": "halfnormal(2)"}
HC = {"mu": "normal(0, 1)", "tau": "halfcauchy(0.5)"}


def _builder(families: dict[str, str], built: list[FakeCompiled]):
    def build() -> FakeCompiled:
        built.append(FakeCompiled(families))
        return built[-1]
    return build


def test_same_key_and_prior_families_reuse_the_model() -> None:
    cache, built = CompiledModelCache(), []
    with cache.borrow("m", HN, _builder({"mu": "normal", "tau": "halfnormal"}, built)) as a:
        assert built == [a]
    with cache.borrow("m", HN_OTHER_SCALE, _builder({}, built)) as b:
        assert b is a
    assert len(built) == 1 and len(cache) == 1


def test_other_prior_family_or_other_key_builds_a_new_model() -> None:
    cache, built = CompiledModelCache(), []
    with cache.borrow("m", HN, _builder({"mu": "normal", "tau": "halfnormal"}, built)) as a:
        pass
    with cache.borrow("m", HC, _builder({"mu": "normal", "tau": "halfcauchy"}, built)) as b:
        assert b is built[-1] and b is not a
    with cache.borrow("other", HN, _builder({"mu": "normal", "tau": "halfnormal"}, built)) as c:
        assert c is built[-1] and c is not a
    assert len(built) == 3 and len(cache) == 3


def test_a_model_in_use_is_not_lent_twice() -> None:
    cache, built = CompiledModelCache(), []
    build = _builder({"mu": "normal", "tau": "halfnormal"}, built)
    with cache.borrow("m", HN, build) as first:
        pass
    with cache.borrow("m", HN, build) as again:
        assert again is first and len(built) == 1
        with cache.borrow("m", HN, build) as inner:   # e.g. another thread
            assert inner is built[-1] and inner is not first
    assert len(built) == 2 and len(cache) == 2
    with cache.borrow("m", HN, build) as after:       # both free again
        assert after in built and len(built) == 2


def test_concurrent_borrowers_never_share_a_model() -> None:
    cache, built = CompiledModelCache(), []
    build = _builder({"mu": "normal", "tau": "halfnormal"}, built)
    lock, holders, barrier = threading.Lock(), [], threading.Barrier(4)

    def work() -> None:
        with cache.borrow("m", HN, build) as model:
            barrier.wait(timeout=10)          # all four hold a model at the same time
            with lock:
                holders.append(id(model))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(holders)) == 4


def test_least_recently_used_model_is_dropped_first() -> None:
    cache, built = CompiledModelCache(maxsize=2), []
    fam = {"mu": "normal", "tau": "halfnormal"}
    for key in ("a", "b"):
        with cache.borrow(key, HN, _builder(fam, built)):
            pass
    with cache.borrow("a", HN, _builder(fam, built)):      # a is now the newest
        assert len(built) == 2
    with cache.borrow("c", HN, _builder(fam, built)):      # b goes
        pass
    with cache.borrow("a", HN, _builder(fam, built)):      # a stayed
        assert len(built) == 3
    with cache.borrow("b", HN, _builder(fam, built)):      # b is built again
        assert len(built) == 4
    assert len(cache) == 2
    with pytest.raises(ValueError, match="maxsize"):
        CompiledModelCache(maxsize=0)


def test_a_failed_build_or_fit_leaves_nothing_behind() -> None:
    cache = CompiledModelCache()

    def failing() -> FakeCompiled:
        raise RuntimeError("compiler failed")

    with pytest.raises(RuntimeError, match="compiler"):
        with cache.borrow("m", HN, failing):
            pass
    assert len(cache) == 0
    with pytest.raises(KeyError):
        with cache.borrow("m", HN, _builder({"mu": "normal", "tau": "halfnormal"}, [])):
            raise KeyError("sampler failed")
    assert len(cache) == 0


FRAME = pd.DataFrame({"yi": [0.1, 0.2, 0.3], "vi": [0.01, 0.02, 0.03], "label": ["a", "b", "c"]})


@pytest.mark.parametrize("change", [
    lambda d: d.assign(yi=d["yi"].to_numpy() + np.array([0.0, 0.0, 1e-15])),    # one ulp-ish change
    lambda d: d.rename(columns={"vi": "sei"}),                                   # a name
    lambda d: d.astype({"yi": "float32"}),                                      # a dtype
    lambda d: d.set_axis([1, 2, 3]),                                            # the index
    lambda d: d.iloc[:2],                                                       # a row
])
def test_frame_digest_sees_every_difference(change) -> None:
    assert frame_digest(FRAME) == frame_digest(FRAME.copy())
    assert frame_digest(change(FRAME.copy())) != frame_digest(FRAME)


def test_model_key_separates_models_and_normalises_defaults() -> None:
    base = {"family": "normal", "moderators": (), "subgroup": None, "subgroup_tau": "separate",
            "bias": "none", "sampler": "nutpie", "measure": "SMD"}
    key = model_key(FRAME, **base)
    assert model_key(FRAME, **{**base, "subgroup": "", "bias": ""}) == key
    for name, value in [("family", "binomial"), ("moderators", ["x"]), ("subgroup", "site"),
                        ("subgroup_tau", "shared"), ("bias", "stepfun(0.025)"),
                        ("sampler", "pymc"), ("measure", "MD")]:
        assert model_key(FRAME, **{**base, name: value}) != key, name
