"""Physical scale in predict: frames resampled to the model card's pixel size and back."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from spheroseg import ngff
from spheroseg.inference import plan_for_image, predict_tiles, stitch_tiles
from spheroseg.inference.rescale import RESCALE_TOLERANCE, choose_rescale, resample_plane
from spheroseg.measure import measure_store
from spheroseg.modelcard import write_card
from spheroseg.normalization import normalize_image
from spheroseg.segmentation import SegmentationOptions, segment_store
from spheroseg.synthetic import Ellipse, render_frame
from spheroseg.tiling import read_plan, write_plan

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "models" / "default.pt"


PERCENTILE = {"kind": "percentile", "low": 1.0, "high": 99.8}


class PointwiseProbabilities(torch.nn.Module):
    """A fixed pointwise function of the input, already in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.1 + 0.8 * torch.sigmoid(4.0 * x - 2.0)


def model_with_pixel_size(tmp_path: Path, pixel_size_um: float | None) -> Path:
    """A pointwise probability model whose card says it was trained at `pixel_size_um`."""
    path = tmp_path / "pointwise.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(PointwiseProbabilities().eval()).save(str(path))
    card = {"name": path.stem, "input": {"channels": 1, "normalization": PERCENTILE},
            "output": {"kind": "probabilities", "channels": 1}, "spatial_divisor": 8,
            "tile": {"size": 64, "halo": 8}}
    if pixel_size_um is not None:
        card["input"]["pixel_size_um"] = pixel_size_um
    write_card(card, path)
    return path


def smooth_image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """uint16 frame with structure a few pixels wide (survives resampling) plus mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    base = 1000 + 400 * np.sin(yy / 7.0) * np.cos(xx / 11.0)
    return (base + rng.normal(0, 5, shape)).clip(0, 65535).astype(np.uint16)


def write_image(path: Path, frames: np.ndarray, *, pixel_size_um: float | None) -> Path:
    """(T, Y, X) uint16 frames as an NGFF image with one channel."""
    array = ngff.create_image(path, shape=(frames.shape[0], 1, *frames.shape[1:]), dtype=np.uint16,
                              axes="tcyx", pixel_size_um=pixel_size_um, time_interval_s=60.0)
    array[:, 0] = frames
    return path


def predict_chain(folder: Path, image: Path, model: Path, *, rescale: str) -> Path:
    """tile -> predict -> stitch (library level); return the probabilities path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_plan(plan_for_image(image, model, rescale=rescale), folder / "tiles.json")
    predict_tiles(image, folder / "tiles.json", model, folder / "tiles.zarr", device="cpu")
    stitch_tiles(folder / "tiles.json", folder / "tiles.zarr", folder / "probabilities.ome.zarr")
    return folder / "probabilities.ome.zarr"


@pytest.mark.parametrize(
    ("image_size", "mode", "expected_shape", "reason"),
    [(8.0, "auto", (400, 240), "resampled"), (0.5, "auto", (25, 15), "resampled"),
     (2.0 * (1 + RESCALE_TOLERANCE * 0.9), "auto", (100, 60), "within"),
     (8.0, "off", (100, 60), "off"), (None, "auto", (100, 60), "unknown")],
    ids=["coarse-image", "fine-image", "within-tolerance", "off", "unknown-pixel-size"])
def test_choose_rescale(image_size, mode, expected_shape, reason):
    grid = choose_rescale((100, 60), image_pixel_size_um=image_size, model_pixel_size_um=2.0,
                          rescale=mode)
    assert grid.model_shape == expected_shape and reason in grid.reason
    assert grid.factor == (image_size / 2.0 if grid.active else 1.0)


def test_choose_rescale_without_model_pixel_size_keeps_the_image():
    grid = choose_rescale((100, 60), image_pixel_size_um=8.0, model_pixel_size_um=None)
    assert not grid.active and "input.pixel_size_um" in grid.reason


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rescale": "on"}, r"rescale must be one of \('auto', 'off'\), got 'on'"),
    ({"image_pixel_size_um": -1.0}, r"image pixel size must be a positive number"),
    ({"model_pixel_size_um": math.nan}, r"model pixel size must be a positive number")],
    ids=["unknown-mode", "negative-size", "nan-size"])
def test_choose_rescale_rejects_bad_values(kwargs, match):
    arguments = {"image_pixel_size_um": 1.0, "model_pixel_size_um": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        choose_rescale((10, 10), **arguments)


@pytest.mark.parametrize("shape", [(400, 240), (25, 15), (137, 83)], ids=["up-4x", "down-4x", "odd"])
def test_resample_plane_keeps_pixel_edges_and_mean(shape):
    plane = np.zeros((100, 60), np.float32)
    plane[30:70, 20:40] = 1.0
    result = resample_plane(plane, shape, order=1)
    assert result.shape == shape and result.dtype == np.float32
    scale = shape[0] / 100 * shape[1] / 60
    assert result.sum() == pytest.approx(plane.sum() * scale, rel=0.02)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centroid = ((result * yy).sum() / result.sum(), (result * xx).sum() / result.sum())
    expected = (50 * shape[0] / 100 - 0.5, 30 * shape[1] / 60 - 0.5)  # the box's centre
    assert centroid == pytest.approx(expected, abs=0.05 * max(1, shape[0] / 100))


def test_rescale_off_reproduces_the_native_prediction_exactly(tmp_path):
    # A pointwise model's known answer: its function of every normalised input pixel. Off,
    # an 8 um/px image meets a 2 um/px model as today: no resampling, the exact answer.
    frames = np.stack([smooth_image((60, 90), seed) for seed in range(2)])
    image = write_image(tmp_path / "image.ome.zarr", frames, pixel_size_um=8.0)
    model = model_with_pixel_size(tmp_path, 2.0)
    probabilities = predict_chain(tmp_path / "off", image, model, rescale="off")
    assert read_plan(tmp_path / "off" / "tiles.json").source_shape is None
    result = np.asarray(ngff.open_array(probabilities)[:], dtype=np.float32)
    module = PointwiseProbabilities()
    for t in range(2):
        with torch.no_grad():
            expected = module(torch.from_numpy(normalize_image(frames[t], PERCENTILE))).numpy()
        np.testing.assert_allclose(result[t], expected, atol=1e-3)  # float16 storage
    store = zarr.open_array(store=str(tmp_path / "off" / "tiles.zarr"), mode="r")
    assert store.attrs["spheroseg"]["rescale"]["rescaled"] is False
    assert ngff.read_attributes(probabilities)["spheroseg"]["rescale"]["factor"] == 1.0


def test_rescale_auto_predicts_on_the_model_grid_and_returns_to_the_image_grid(tmp_path):
    frames = smooth_image((60, 90))[None]
    image = write_image(tmp_path / "image.ome.zarr", frames, pixel_size_um=8.0)
    model = model_with_pixel_size(tmp_path, 2.0)
    probabilities = predict_chain(tmp_path / "auto", image, model, rescale="auto")
    plan = read_plan(tmp_path / "auto" / "tiles.json")
    assert (plan.image_shape, plan.source_shape) == ((240, 360), (60, 90))
    meta = ngff.read_metadata(probabilities)
    assert meta.shape == (1, 60, 90) and meta.pixel_size_um == 8.0
    record = ngff.read_attributes(probabilities)["spheroseg"]["rescale"]
    assert record["rescaled"] and record["factor"] == 4.0
    assert (record["image_shape"], record["model_shape"]) == ([60, 90], [240, 360])
    with torch.no_grad():
        native = PointwiseProbabilities()(torch.from_numpy(normalize_image(frames[0], PERCENTILE)))
    result = np.asarray(ngff.open_array(probabilities)[0], dtype=np.float32)
    assert np.abs(result - native.numpy()).mean() < 0.01  # up 4x and down again: near the input


def test_unknown_pixel_size_predicts_at_native_scale_with_a_warning(tmp_path, caplog):
    image = write_image(tmp_path / "image.ome.zarr", smooth_image((60, 90))[None], pixel_size_um=None)
    model = model_with_pixel_size(tmp_path, 2.0)
    with caplog.at_level(logging.WARNING, logger="spheroseg.inference.rescale"):
        plan = plan_for_image(image, model)
    assert plan.source_shape is None and plan.image_shape == (60, 90)
    assert "no pixel size" in caplog.text and "ingest.pixel_size_um" in caplog.text


def test_tile_cli_rejects_an_unknown_rescale_mode_before_reading(tmp_path, capsys):
    from spheroseg.cli import main

    code = main(["tile", "--image", str(tmp_path / "missing.ome.zarr"), "--model",
                 str(tmp_path / "missing.pt"), "--rescale", "maybe", "--output",
                 str(tmp_path / "tiles.json")])
    assert code == 1 and "rescale must be one of" in capsys.readouterr().err
    assert not (tmp_path / "tiles.json").exists()


# The same two bodies (micrometres: centre y, centre x, semi-axes, angle) in a 480 um field.
BODIES_UM = [(150.0, 160.0, 90.0, 70.0, 0.4), (330.0, 320.0, 60.0, 60.0, 0.0)]
FIELD_UM, FINE_UM = 480.0, 0.5


def render_at(pixel_sizes_um: list[float]) -> dict[float, np.ndarray]:
    """One optical image of the bodies (spheroseg.synthetic at 0.5 um/px), sampled by cameras
    of coarser pixels (block means): the same field at each pixel size, uint16 (Y, X)."""
    side = round(FIELD_UM / FINE_UM)
    ellipses = [Ellipse(y / FINE_UM, x / FINE_UM, a / FINE_UM, b / FINE_UM, angle)
                for y, x, a, b, angle in BODIES_UM]
    fine = render_frame(np.random.default_rng(7), ellipses, shape=(side, side), n_debris=0,
                        illumination=np.ones((side, side), np.float32)).astype(np.float64)
    images = {}
    for size in pixel_sizes_um:
        block = round(size / FINE_UM)
        binned = fine.reshape(side // block, block, side // block, block).mean(axis=(1, 3))
        images[size] = np.round(binned).astype(np.uint16)
    return images


def measured_areas(folder: Path, frame: np.ndarray, *, pixel_size_um: float,
                   rescale: str) -> list[float]:
    """Areas (um2) of the objects the shipped model finds, largest first."""
    image = write_image(folder / "image.ome.zarr", frame[None], pixel_size_um=pixel_size_um)
    probabilities = predict_chain(folder, image, SHIPPED_MODEL, rescale=rescale)
    segment_store(probabilities, folder / "labels.ome.zarr", SegmentationOptions(min_area_um2=2000.0))
    measure_store(folder / "labels.ome.zarr", probabilities, image, folder, experiment="e",
                  position="p")
    return sorted(pd.read_csv(folder / "metrics.csv")["area_um2"], reverse=True)


def test_same_bodies_at_half_two_and_eight_um_per_pixel_agree_within_two_percent(tmp_path):
    card = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text(encoding="utf-8"))
    assert card["input"]["pixel_size_um"] == 2.0  # 0.5 and 8 um/px are 4x off either way
    truth = sorted((math.pi * a * b for _, _, a, b, _ in BODIES_UM), reverse=True)
    areas = {size: measured_areas(tmp_path / str(size), frame, pixel_size_um=size, rescale="auto")
             for size, frame in render_at([0.5, 2.0, 8.0]).items()}
    for body, expected in enumerate(truth):
        values = [areas[size][body] for size in areas if len(areas[size]) == len(truth)]
        assert len(values) == 3, f"every pixel size must find both bodies, got {areas}"
        assert max(values) / min(values) - 1 <= 0.02, areas
        assert all(abs(value / expected - 1) <= 0.02 for value in values), (areas, truth)


def test_tile_and_stitch_do_not_import_scipy() -> None:
    """scipy.ndimage costs tile and stitch about 0.12 s each per position
    (``benchmarks/stage_startup_results.md``); only resampling needs it, so it loads there."""
    import subprocess
    import sys

    code = ("import sys; import spheroseg.cli, spheroseg.inference, spheroseg.tiling; "
            "print(sorted(name for name in sys.modules if name.startswith('scipy')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
