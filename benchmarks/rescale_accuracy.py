"""Areas of the same synthetic bodies at 0.5, 2 and 8 µm/px with the shipped model, with
``predict.rescale`` auto and off, for two ways of imaging them.

- *camera pixels*: one optical image rendered at 0.5 µm/px by ``spheroseg.synthetic``
  (blur 0.5 µm), sampled by coarser pixels (block means): the same optics and a coarser camera
  (the rendering of ``tests/inference/test_rescale.py``).
- *blur of one pixel*: rendered directly at each pixel size, so the blur is one pixel
  (8 µm at 8 µm/px): optics as coarse as the pixels.

Library level: tile -> predict -> stitch -> segment (``min_area_um2`` 2000) -> measure.

    python benchmarks/rescale_accuracy.py [--output benchmarks/rescale_results.md]

Not a timing benchmark: seconds are for orientation.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from spheroseg import ngff
from spheroseg.atomic import write_text
from spheroseg.inference import plan_for_image, predict_tiles, stitch_tiles
from spheroseg.measure import measure_store
from spheroseg.segmentation import SegmentationOptions, segment_store
from spheroseg.synthetic import Ellipse, render_frame
from spheroseg.tiling import write_plan

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "default.pt"
# Body sets (micrometres: centre y, centre x, semi-axes, angle) in a square field.
FIELD_UM = 480.0
BODIES = {
    "medium (90 x 70 µm, r 60 µm)": [(150.0, 160.0, 90.0, 70.0, 0.4), (330.0, 320.0, 60.0, 60.0, 0.0)],
    "large (180 x 130 µm)": [(240.0, 240.0, 180.0, 130.0, 0.3)],
}
SIZES = (0.5, 2.0, 8.0)
FINE = 0.5


def render(bodies: list[tuple[float, ...]], size: float, kind: str) -> np.ndarray:
    """The field at `size` µm/px, uint16 (Y, X): ``camera`` (binned from 0.5) or ``pixel``."""
    base = FINE if kind == "camera" else size
    side = round(FIELD_UM / base)
    ellipses = [Ellipse(y / base, x / base, a / base, b / base, angle) for y, x, a, b, angle in bodies]
    frame = render_frame(np.random.default_rng(7), ellipses, shape=(side, side), n_debris=0,
                         illumination=np.ones((side, side), np.float32)).astype(np.float64)
    if kind == "camera" and size != FINE:
        block = round(size / FINE)
        frame = frame.reshape(side // block, block, side // block, block).mean(axis=(1, 3))
    return np.round(frame).astype(np.uint16)


def areas(folder: Path, frame: np.ndarray, *, size: float, rescale: str) -> list[float]:
    """Areas (µm²) of the objects found, largest first."""
    folder.mkdir(parents=True)
    image = folder / "image.ome.zarr"
    array = ngff.create_image(image, shape=(1, 1, *frame.shape), dtype=np.uint16, axes="tcyx",
                              pixel_size_um=size, time_interval_s=60.0)
    array[0, 0] = frame
    write_plan(plan_for_image(image, MODEL, rescale=rescale), folder / "tiles.json")
    predict_tiles(image, folder / "tiles.json", MODEL, folder / "tiles.zarr", device="cpu")
    stitch_tiles(folder / "tiles.json", folder / "tiles.zarr", folder / "p.ome.zarr")
    segment_store(folder / "p.ome.zarr", folder / "labels.ome.zarr",
                  SegmentationOptions(min_area_um2=2000.0))
    measure_store(folder / "labels.ome.zarr", folder / "p.ome.zarr", image, folder,
                  experiment="e", position="p")
    return sorted(pd.read_csv(folder / "metrics.csv")["area_um2"], reverse=True)


def table_rows(work: Path) -> list[str]:
    """One Markdown row per body set, rendering and rescale mode."""
    rows = []
    for name, bodies in BODIES.items():
        truth = sorted((math.pi * a * b for _, _, a, b, _ in bodies), reverse=True)
        for kind in ("camera", "pixel"):
            for rescale in ("auto", "off"):
                cells = []
                for size in SIZES:
                    found = areas(work / f"{len(rows)}-{size}", render(bodies, size, kind),
                                  size=size, rescale=rescale)
                    errors = [f"{a / t - 1:+.1%}" for a, t in zip(found, truth)]
                    missing = ["missing"] * (len(truth) - len(found))
                    cells.append(", ".join(errors + missing))
                label = "camera pixels" if kind == "camera" else "blur of one pixel"
                rows.append(f"| {name} | {label} | {rescale} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "rescale_results.md"))
    args = parser.parse_args()
    start = time.time()
    with tempfile.TemporaryDirectory() as folder:
        rows = table_rows(Path(folder))
    header = ["# Areas at 0.5, 2 and 8 µm/px (predict.rescale)", "",
              f"Written by `benchmarks/rescale_accuracy.py` with `{MODEL.name}` (trained at 2 µm/px); "
              "relative area error against the exact ellipse area, largest body first. "
              f"Field {FIELD_UM:g} µm, no debris. See the script's docstring for the two renderings.", "",
              "| bodies | rendering | rescale | 0.5 µm/px | 2 µm/px | 8 µm/px |",
              "|---|---|---|---|---|---|"]
    footer = ["", f"{time.time() - start:.0f} s on {os.cpu_count()} CPUs (load average "
              f"{os.getloadavg()[0]:.1f})."]
    write_text(args.output, "\n".join(header + rows + footer) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
