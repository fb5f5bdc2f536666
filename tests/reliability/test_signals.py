"""SIGTERM (what Slurm sends at a time limit, before SIGKILL) must let a stage clean up."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from snakefile_runner import SPHEROSEG



@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A 48-frame 512 x 512 stack: ingest takes long enough to be interrupted mid-write."""
    folder = tmp_path_factory.mktemp("signals") / "experiment"
    folder.mkdir()
    frames = np.random.default_rng(0).integers(0, 4096, (48, 512, 512), dtype=np.uint16)
    tifffile.imwrite(folder / "stack.tif", frames, imagej=True, metadata={"axes": "TYX"})
    return folder


def test_sigterm_during_ingest_removes_the_temporary_output(experiment, tmp_path):
    output = tmp_path / "image.ome.zarr"
    process = subprocess.Popen([SPHEROSEG, "ingest", "--experiment", str(experiment), "--position", "stack",
                                "--output", str(output)], stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".image.ome.zarr.tmp-*/0/c*")):  # a first chunk file
        assert process.poll() is None, "ingest ended before it was interrupted"
        assert time.monotonic() < deadline, "ingest never started writing"
        time.sleep(0.002)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0, "an interrupted ingest must not report success"
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [], f"left behind after SIGTERM; stderr: {stderr[-1000:]}"


def test_sigterm_while_a_writer_thread_starts_waits_for_that_writer(tmp_path, monkeypatch):
    """A SIGTERM inside ThreadPoolExecutor.submit (in Thread.start) must not leave the new
    worker writing after write_frames has returned: the temporary output is removed then."""
    import os
    import threading

    from spheroseg import ngff
    from spheroseg.atomic import exit_on_signal
    from spheroseg.ingest import write

    written = []

    def slow_write(arrays, t, frame):
        time.sleep(0.3)
        written.append(t)

    real_start = threading.Thread.start

    def start_then_sigterm(thread):
        real_start(thread)
        os.kill(os.getpid(), signal.SIGTERM)  # handled here, inside submit

    array = ngff.create_image(tmp_path / "a.ome.zarr", shape=(1, 8, 8), dtype="uint8", axes="tyx",
                              pixel_size_um=None, time_interval_s=None)
    monkeypatch.setattr(write, "_write_frame", slow_write)
    monkeypatch.setattr(threading.Thread, "start", start_then_sigterm)
    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        with pytest.raises(SystemExit):
            write.write_frames([array], iter([(0, np.zeros((8, 8), "uint8"))]), workers=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.undo()
    assert written == [0], "the started writer must have finished before write_frames returned"
