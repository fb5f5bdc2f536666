"""SIGTERM (what Slurm sends at a time limit, before SIGKILL) must let a stage clean up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

SPHEROSEG = str(Path(sys.executable).parent / "spheroseg")


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
