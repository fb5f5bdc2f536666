from __future__ import annotations

import os
import signal

import pytest

from spheroseg.atomic import OutputError, atomic_path, exit_on_signal, signals_held, write_text


def test_file_appears_only_on_success(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_directory_store_replaces_previous(tmp_path):
    target = tmp_path / "image.ome.zarr"
    target.mkdir()
    (target / "old").write_text("old")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


def test_os_error_names_output_and_cleans_up(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(OutputError, match=r"could not write .*out\.txt"):
        with atomic_path(target) as tmp:
            tmp.write_text("x")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_failure_removes_the_folders_it_made_and_keeps_the_others(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "kept.txt").write_text("kept")
    target = tmp_path / "results" / "exp" / "pos0" / "metrics"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target, directory=True):
            raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["kept.txt"]
    # a folder that has gained a file meanwhile (another writer's output) stays, with its parents
    with pytest.raises(OutputError):
        with atomic_path(target):
            (target.parent / "other.csv").write_text("x")
            raise OSError(28, "No space left on device")
    assert [p.name for p in target.parent.iterdir()] == ["other.csv"]


def test_write_text_unicode_name(tmp_path):
    target = tmp_path / "well A1 (ctrl) ü" / "metrics.csv"
    write_text(target, "a,b\n")
    assert target.read_text() == "a,b\n"
    assert not any(name.startswith(".") for name in os.listdir(target.parent))


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    target = tmp_path / "probabilities.ome.zarr"
    stale = tmp_path / ".probabilities.ome.zarr.tmp-dead1234"
    stale.mkdir()
    (stale / "chunk").write_bytes(b"partial")
    other = tmp_path / ".labels.ome.zarr.tmp-alive"
    other.mkdir()
    with atomic_path(target, directory=True) as tmp:
        (tmp / "done").write_text("1")
    assert not stale.exists()
    assert other.exists(), "temporaries of other outputs are left alone"


@pytest.fixture
def sigterm_exits():
    """SIGTERM handled as the command line handles it, for one test."""
    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_exits_at_once_outside_a_held_block(sigterm_exits):
    with pytest.raises(SystemExit) as raised:
        os.kill(os.getpid(), signal.SIGTERM)
    assert raised.value.code == 128 + signal.SIGTERM


def test_sigterm_inside_a_held_block_exits_at_its_end(sigterm_exits):
    reached = []
    with pytest.raises(SystemExit) as raised:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append("after the signal")
        reached.append("after the block")
    assert reached == ["after the signal"]
    assert raised.value.code == 128 + signal.SIGTERM
    with signals_held():  # nothing left pending
        reached.append("again")
    assert reached[-1] == "again"
