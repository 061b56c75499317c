"""Run directories are written all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayesmeta.rundir import software_versions, write_atomically


def test_complete_directory_appears(tmp_path: Path) -> None:
    out = write_atomically(tmp_path / "run", {"a.txt": lambda p: p.write_text("A"),
                                              "b.txt": lambda p: p.write_text("B")})
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging left behind


def test_failure_leaves_nothing_and_keeps_previous_run(tmp_path: Path) -> None:
    out = write_atomically(tmp_path / "run", {"a.txt": lambda p: p.write_text("old")})

    def boom(path: Path) -> None:
        path.write_text("partial")
        raise RuntimeError("sampler exploded")

    with pytest.raises(RuntimeError, match="sampler exploded"):
        write_atomically(out, {"a.txt": lambda p: p.write_text("new"), "b.txt": boom})
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (out / "a.txt").read_text() == "old"
    assert not (out / "b.txt").exists()


def test_replacing_a_run(tmp_path: Path) -> None:
    write_atomically(tmp_path / "run", {"a.txt": lambda p: p.write_text("old")})
    out = write_atomically(tmp_path / "run", {"c.txt": lambda p: p.write_text("new")})
    assert [p.name for p in out.iterdir()] == ["c.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_versions_name_the_stack() -> None:
    v = software_versions()
    assert v["python"].startswith("3.12")
    assert v["pymc"].split(".")[0] == "6"
    assert v["arviz-base"].split(".")[0] == "1"
