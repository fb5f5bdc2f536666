"""One small body in a big empty field (a whole-well scan), measured with the shipped default model.

The body covers less than 0.1 % of the field, so a per-frame percentile (p99.8) lies in the
background; the chain is run as the workflow runs it (tile -> predict -> stitch -> segment ->
measure, with the workflow's default options), at the library level.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spheroseg import ngff
from spheroseg.synthetic import Ellipse, render_frame

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "default.pt"
PIXEL_SIZE_UM = 2.0
CROP = 400


def _sparse_field(path: Path, side: int, body: Ellipse) -> None:
    """Write a (1, 1, side, side) NGFF image: the demo's rendering of `body` in an empty noisy field."""
    rng = np.random.default_rng(side)
    field = rng.poisson(150.0, (side, side)).astype(np.float32) + rng.normal(0.0, 20.0, (side, side))
    field = np.clip(np.rint(field), 0, 65535).astype(np.uint16)
    top, left = int(body.center_y) - CROP // 2, int(body.center_x) - CROP // 2
    local = Ellipse(body.center_y - top, body.center_x - left, body.semi_major, body.semi_minor, body.angle)
    field[top: top + CROP, left: left + CROP] = render_frame(
        rng, [local], shape=(CROP, CROP), n_debris=0, illumination=np.ones((CROP, CROP), np.float32))
    array = ngff.create_image(path, shape=(1, 1, side, side), dtype="uint16", axes="tcyx",
                              pixel_size_um=PIXEL_SIZE_UM, time_interval_s=None)
    array[0, 0] = field


def _measure(folder: Path, image: Path) -> pd.DataFrame:
    """tile -> predict -> stitch -> segment -> measure with the workflow's default options."""
    from spheroseg.inference import plan_for_image, predict_tiles, stitch_tiles
    from spheroseg.measure import measure_store
    from spheroseg.segmentation import SegmentationOptions, segment_store
    from spheroseg.tiling import write_plan

    plan = folder / "tiles.json"
    write_plan(plan_for_image(image, MODEL), plan)  # the workflow's tiles: fitted, with the card's halo
    predict_tiles(image, plan, MODEL, folder / "tiles.zarr", device="cpu")
    stitch_tiles(plan, folder / "tiles.zarr", folder / "probabilities.ome.zarr")
    segment_store(folder / "probabilities.ome.zarr", folder / "labels.ome.zarr",
                  SegmentationOptions(threshold=0.5, fill_holes=True, min_area_um2=2000))
    measure_store(folder / "labels.ome.zarr", folder / "probabilities.ome.zarr", image, folder / "results",
                  experiment="sparse", position="well")
    return pd.read_csv(folder / "results" / "metrics.csv")


@pytest.mark.slow
@pytest.mark.parametrize("side", [3000, 6000], ids=["3000px", "6000px"])
def test_one_body_in_a_large_empty_field_is_measured_within_3_percent(tmp_path, side):
    body = Ellipse(side * 0.41, side * 0.57, 60.0, 45.0, 0.4)
    truth_um2 = math.pi * body.semi_major * body.semi_minor * PIXEL_SIZE_UM**2
    assert truth_um2 / PIXEL_SIZE_UM**2 / side**2 < 0.001  # the body covers < 0.1 % of the field
    image = tmp_path / "image.ome.zarr"
    _sparse_field(image, side, body)
    metrics = _measure(tmp_path, image)
    assert len(metrics) == 1, f"one object expected, got {len(metrics)}: {metrics['area_um2'].tolist()}"
    assert metrics["area_um2"].iloc[0] == pytest.approx(truth_um2, rel=0.03)
