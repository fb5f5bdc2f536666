"""Speed and memory of ``segment`` and ``measure`` on large frames.

A position of 2048 x 2048 float16 probability frames with five smooth bodies (radius 150
to 300 px) is segmented and measured through the stores, as the workflow does. Also one
1440 x 1920 frame with many objects: the annotated invasion mask of spheroid 5 on day 2 from
``../shared/data/spheroids`` (skipped when absent). Run from the repository root::

    nice python benchmarks/measure_speed.py

It writes ``benchmarks/measure_speed_results.md``.
"""

from __future__ import annotations

import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spheroseg import ngff
from spheroseg.atomic import write_text
from spheroseg.measure import measure_frame, measure_store
from spheroseg.segmentation import SegmentationOptions, segment_frame, segment_store

SIZE, FRAMES = 2048, 3
BODIES = ((400, 400, 200), (400, 1500, 250), (1200, 800, 300), (1700, 1700, 150),
          (1000, 1900, 180))  # centre y, centre x, radius (px); the last touches the border
SPHEROID = Path("../shared/data/spheroids/spheroid5_day2_mask.tif")
RESULTS = Path(__file__).with_name("measure_speed_results.md")


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """Probability (float16, sigmoid edges) and raw (uint16) images of the test position."""
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    probabilities = ngff.create_image(folder / "p.ome.zarr", shape=(FRAMES, SIZE, SIZE),
                                      dtype=np.float16, axes="tyx", pixel_size_um=0.65,
                                      time_interval_s=600.0)
    image = ngff.create_image(folder / "i.ome.zarr", shape=(FRAMES, 1, SIZE, SIZE),
                              dtype=np.uint16, axes="tcyx", pixel_size_um=0.65,
                              time_interval_s=600.0)
    for t in range(FRAMES):
        frame = np.zeros((SIZE, SIZE), np.float32)
        for cy, cx, radius in BODIES:
            distance = (radius + 10 * t - np.hypot(yy - cy, xx - cx)) / 1.5
            frame = np.maximum(frame, 1 / (1 + np.exp(-np.clip(distance, -30, 30))))
        probabilities[t] = frame.astype(np.float16)
        image[t, 0] = (frame * 1000).astype(np.uint16)
    return folder / "p.ome.zarr", folder / "i.ome.zarr"


def timed(function, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    """Seconds one call takes."""
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def many_objects() -> str:
    """Timing line for the spheroid invasion mask, or why it was skipped."""
    if not SPHEROID.is_file():
        return f"- many objects: skipped ({SPHEROID} is absent)"
    import tifffile

    mask = (tifffile.imread(SPHEROID) > 0).astype(np.float32)
    labels, _ = segment_frame(mask, SegmentationOptions(min_area_px=50))
    seconds = timed(measure_frame, labels, mask)
    return (f"- many objects: {labels.max()} objects on a {mask.shape[0]} x {mask.shape[1]} "
            f"binary frame (`{SPHEROID.name}`) measured in {seconds:.2f} s")


def main() -> int:
    """Run the timings and write the results file."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        probabilities, image = write_inputs(folder)
        segment_seconds = timed(segment_store, probabilities, folder / "l.ome.zarr")
        measure_seconds = timed(measure_store, folder / "l.ome.zarr", probabilities, image,
                                folder / "out", experiment="bench", position="p")
        rows = (folder / "out" / "metrics.csv").read_text().count("\n") - 1
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = "\n".join([
        "# Morphology speed and memory",
        "",
        "Written by `benchmarks/measure_speed.py` on "
        f"{platform.machine()}, Python {sys.version.split()[0]} (a shared 2-core machine: "
        "timings vary with its load).",
        "",
        f"- segment: {FRAMES} frames of {SIZE} x {SIZE} (float16) with {len(BODIES)} bodies "
        f"in {segment_seconds:.1f} s ({segment_seconds / FRAMES:.2f} s per frame)",
        f"- measure: the same {FRAMES} frames, {rows} rows, in {measure_seconds:.1f} s "
        f"({measure_seconds / FRAMES:.2f} s per frame)",
        many_objects(),
        f"- peak resident memory of the whole script: {peak_mib:.0f} MiB (frames are "
        "processed one at a time; the script itself holds float32 grids to draw the inputs)",
        "",
    ])
    write_text(RESULTS, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
