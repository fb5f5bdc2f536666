"""Tile plans, padding, windows and stitching (pure numpy)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from spheroseg.tiling import (
    Stitcher,
    axis_origins,
    blending_window,
    discard_halo,
    fit_tiles,
    pad_frame,
    plan_tiles,
    read_plan,
    tile_slices,
    write_plan,
)


@pytest.mark.parametrize(
    ("length", "tile", "halo", "divisor"),
    [(1031, 256, 32, 8), (517, 104, 5, 8), (7, 16, 2, 4), (2048, 256, 32, 8), (300, 64, 0, 16),
     (1, 8, 1, 2)],
    ids=["wide", "odd-halo", "tiny", "2048", "no-halo", "single-pixel"],
)
def test_axis_origins_cover_the_axis_with_halo_on_the_divisor_grid(length, tile, halo, divisor):
    starts = axis_origins(length, tile=tile, halo=halo, divisor=divisor)
    assert starts[0] <= -halo
    assert starts[-1] + tile >= length + halo
    assert all(start % divisor == 0 for start in starts)
    gaps = np.diff(starts)
    assert np.all(gaps > 0) and np.all(gaps <= tile - 2 * halo)
    # Every pixel lies at least `halo` inside some tile.
    depth = np.zeros(length, dtype=int)
    for start in starts:
        inside = np.arange(length) - start
        reach = np.minimum(inside + 1, tile - inside)
        depth = np.maximum(depth, np.where((inside >= 0) & (inside < tile), reach, 0))
    assert depth.min() >= halo


@pytest.mark.parametrize(
    ("shape", "max_tile", "halo", "divisor"),
    [((2048, 2048), 768, 32, 8), ((1440, 1920), 768, 32, 8), ((256, 256), 768, 32, 8),
     ((517, 1031), 200, 13, 16), ((5, 3000), 512, 0, 4), ((4096, 100), 768, 32, 8)],
    ids=["2048", "spheroid-frame", "demo-frame", "odd-divisor-16", "no-halo-strip", "tall"],
)
def test_fit_tiles_fewest_smallest_tiles_keep_the_halo(shape, max_tile, halo, divisor):
    plan = fit_tiles(shape, frames=2, max_tile=max_tile, halo=halo, divisor=divisor)
    assert plan.frames == 2 and plan.image_shape == shape and plan.halo == halo
    for axis, length in enumerate(shape):
        side = plan.tile_shape[axis]
        assert side % divisor == 0 and side <= max_tile
        starts = sorted({origin[axis] for origin in plan.origins})
        assert starts == axis_origins(length, tile=side, halo=halo, divisor=divisor)
        fewest = len(axis_origins(length, tile=max_tile // divisor * divisor, halo=halo,
                                  divisor=divisor)) if max_tile // divisor * divisor >= side else None
        assert fewest is None or len(starts) <= fewest
        smaller = side - divisor
        if smaller >= 2 * halo + divisor:  # one step smaller needs more tiles
            assert len(axis_origins(length, tile=smaller, halo=halo, divisor=divisor)) > len(starts)


def test_fit_tiles_computes_fewer_pixels_than_quarter_overlap_tiles():
    fitted = fit_tiles((2048, 2048), frames=1, max_tile=768, halo=32, divisor=8)
    fixed = plan_tiles((2048, 2048), frames=1, tile_size=256, overlap=0.25, divisor=8)
    assert (fitted.tile_shape, len(fitted.origins)) == ((752, 752), 9)
    assert round(fitted.computed_fraction, 2) == 1.21 and round(fixed.computed_fraction, 2) == 1.89


@pytest.mark.parametrize(
    ("shape", "min_tile", "tile_shape"),
    [((40, 50), 128, (128, 128)), ((2048, 300), 400, (752, 400)), ((40, 50), 1, (104, 120))],
    ids=["small-image", "one-axis", "no-minimum"],
)
def test_fit_tiles_never_go_below_the_models_minimum(shape, min_tile, tile_shape):
    plan = fit_tiles(shape, frames=1, max_tile=768, halo=32, divisor=8, min_tile=min_tile)
    assert plan.tile_shape == tile_shape and plan.image_shape == shape


def test_fit_tiles_refuse_a_cap_below_the_models_minimum():
    with pytest.raises(ValueError, match="max_tile must be >= 800"):
        fit_tiles((100, 100), frames=1, max_tile=768, halo=32, divisor=8, min_tile=800)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"max_tile": 64}, ValueError, "max_tile must be >= 72"),
     ({"halo": -1}, ValueError, "halo must be >= 0"),
     ({"max_tile": 256.0}, TypeError, "max_tile must be an integer")],
    ids=["max-tile-below-overlap", "negative-halo", "float-max-tile"],
)
def test_fit_tiles_rejects_bad_arguments(kwargs, error, match):
    arguments = {"frames": 1, "max_tile": 768, "halo": 32, "divisor": 8} | kwargs
    with pytest.raises(error, match=match):
        fit_tiles((100, 100), **arguments)


def test_axis_origins_rejects_a_tile_too_small_for_halo_and_divisor():
    with pytest.raises(ValueError, match="tile must be a multiple of 8 and >= 2 \\* halo"):
        axis_origins(100, tile=16, halo=6, divisor=8)


@pytest.mark.parametrize(
    ("shape", "tile_size", "overlap", "divisor", "tile_shape", "halo"),
    [((517, 1031), 256, 0.25, 8, (256, 256), 32), ((517, 1031), 250, 0.1, 8, (256, 256), 13),
     ((40, 1031), 256, 0.25, 8, (104, 256), 32), ((5, 7), 64, 0.0, 4, (8, 8), 0)],
    ids=["default", "rounded-up", "short-image", "tiny-no-overlap"],
)
def test_plan_tiles_sizes(shape, tile_size, overlap, divisor, tile_shape, halo):
    plan = plan_tiles(shape, frames=3, tile_size=tile_size, overlap=overlap, divisor=divisor)
    assert plan.tile_shape == tile_shape
    assert plan.halo == halo
    assert all(side % divisor == 0 for side in plan.tile_shape)
    assert plan.frames == 3 and plan.image_shape == shape
    assert plan.computed_fraction >= 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"overlap": 0.5}, ValueError, "overlap must be in \\[0, 0.5\\)"),
     ({"overlap": -0.1}, ValueError, "overlap must be in"),
     ({"overlap": "0.25"}, TypeError, "overlap must be a number"),
     ({"tile_size": 0}, ValueError, "tile_size must be >= 1"),
     ({"tile_size": 25.0}, TypeError, "tile_size must be an integer"),
     ({"divisor": 0}, ValueError, "divisor must be >= 1"),
     ({"frames": 0}, ValueError, "frames must be >= 1")],
    ids=["overlap-half", "overlap-negative", "overlap-string", "tile-zero", "tile-float",
         "divisor-zero", "no-frames"],
)
def test_plan_tiles_rejects_bad_arguments(kwargs, error, match):
    arguments = {"frames": 1, "tile_size": 64, "overlap": 0.25, "divisor": 8} | kwargs
    with pytest.raises(error, match=match):
        plan_tiles((100, 100), **arguments)


def test_plan_tiles_rejects_a_bad_image_shape():
    with pytest.raises(ValueError, match="image_shape must be \\(Y, X\\)"):
        plan_tiles((2, 100, 100), frames=1, tile_size=64, overlap=0.25, divisor=8)


def test_pad_frame_reflects_at_the_borders_and_tiles_hold_the_image():
    frame = np.arange(5 * 7, dtype=np.float32).reshape(1, 5, 7)
    plan = plan_tiles((5, 7), frames=1, tile_size=8, overlap=0.25, divisor=4)
    padded = pad_frame(frame, plan)
    (top, _), (left, _) = plan.padding
    np.testing.assert_array_equal(padded[0, top:top + 5, left:left + 7], frame[0])
    np.testing.assert_array_equal(padded[0, top - 1, left:left + 7], frame[0, 1])
    for index in range(len(plan.origins)):
        rows, cols = tile_slices(plan, index)
        assert padded[0, rows, cols].shape == plan.tile_shape


def test_pad_frame_rejects_a_frame_of_another_shape():
    plan = plan_tiles((5, 7), frames=1, tile_size=8, overlap=0.25, divisor=4)
    with pytest.raises(ValueError, match="frame must have shape \\(C, 5, 7\\)"):
        pad_frame(np.zeros((1, 5, 8)), plan)


@pytest.mark.parametrize("kind", ["cosine", "gaussian", "flat"], ids=str)
def test_blending_window_is_positive_symmetric_and_peaks_inside(kind):
    window = blending_window((64, 48), halo=8, kind=kind)
    assert window.shape == (64, 48) and window.dtype == np.float32
    assert window.min() > 0
    np.testing.assert_allclose(window, window[::-1, ::-1], rtol=1e-6)
    assert window[32, 24] == window.max()


def test_cosine_windows_of_neighbours_at_the_nominal_overlap_sum_to_one():
    halo, tile = 8, 64
    window = blending_window((tile, tile), halo=halo, kind="cosine")[tile // 2]
    stride = tile - 2 * halo
    overlap = window[stride:] + window[: tile - stride]
    np.testing.assert_allclose(overlap, 1.0, atol=1e-6)


def test_blending_window_rejects_unknown_kind():
    with pytest.raises(ValueError, match="window must be one of"):
        blending_window((8, 8), halo=1, kind="hann")


@pytest.mark.parametrize("window", ["cosine", "gaussian", "flat"], ids=str)
@pytest.mark.parametrize(
    ("shape", "tile_size", "overlap"),
    [((37, 53), 16, 0.25), ((37, 53), 24, 0.4), ((10, 90), 32, 0.0), ((20, 20), 64, 0.3)],
    ids=["small-tiles", "large-overlap", "no-overlap", "one-tile"],
)
def test_stitching_exact_tiles_reproduces_the_frame(window, shape, tile_size, overlap):
    rng = np.random.default_rng(0)
    frame = rng.random(shape, dtype=np.float32)
    plan = plan_tiles(shape, frames=1, tile_size=tile_size, overlap=overlap, divisor=8)
    padded = pad_frame(frame[None], plan)[0]
    tiles = np.stack([padded[tile_slices(plan, i)] for i in range(len(plan.origins))])
    stitched = Stitcher(plan, window).stitch(tiles)
    assert stitched.shape == shape and stitched.dtype == np.float32
    np.testing.assert_allclose(stitched, frame, atol=1e-5)


def test_stitcher_rejects_tiles_that_do_not_match_the_plan():
    plan = plan_tiles((37, 53), frames=1, tile_size=16, overlap=0.25, divisor=8)
    with pytest.raises(ValueError, match="tiles must have shape"):
        Stitcher(plan).stitch(np.zeros((1, 16, 16), dtype=np.float32))


def test_plan_round_trips_through_json(tmp_path):
    plan = plan_tiles((517, 1031), frames=4, tile_size=256, overlap=0.25, divisor=8)
    write_plan(plan, tmp_path / "tiles.json", image="image.ome.zarr")
    assert read_plan(tmp_path / "tiles.json") == plan
    assert json.loads((tmp_path / "tiles.json").read_text())["image"] == "image.ome.zarr"


def test_resampled_plan_round_trips_with_its_source_shape(tmp_path):
    plan = replace(plan_tiles((400, 240), frames=2, tile_size=128, overlap=0.25, divisor=8),
                   source_shape=(100, 60))
    write_plan(plan, tmp_path / "tiles.json")
    again = read_plan(tmp_path / "tiles.json")
    assert again == plan and again.source_grid == (100, 60)
    assert plan_tiles((10, 10), frames=1, tile_size=16, overlap=0.0, divisor=8).source_grid == (10, 10)


def _plan_document() -> dict:
    return {"format": "spheroseg-tile-plan/1", "frames": 1, "image_shape": [10, 10],
            "tile_shape": [16, 16], "halo": 2, "divisor": 8, "origins": [[-8, -8]]}


@pytest.mark.parametrize(
    ("change", "match"),
    [({"format": "other"}, "format must be 'spheroseg-tile-plan/1'"),
     ({"image_shape": [10]}, "image_shape must be a list of two positive integers"),
     ({"tile_shape": [16, 0]}, "tile_shape must be a list of two positive integers"),
     ({"frames": 0}, "frames must be a non-negative integer"),
     ({"halo": -1}, "halo must be a non-negative integer"),
     ({"divisor": True}, "divisor must be a non-negative integer"),
     ({"origins": []}, "origins must be a non-empty list"),
     ({"origins": [[0.5, 0]]}, "origins must be a non-empty list"),
     ({"source_shape": [10, -1]}, "source_shape must be a list of two positive integers")],
    ids=["format", "image-shape", "tile-shape", "frames", "halo", "divisor", "no-origins",
         "float-origin", "source-shape"],
)
def test_read_plan_rejects_invalid_plans(tmp_path, change, match):
    path = tmp_path / "tiles.json"
    path.write_text(json.dumps(_plan_document() | change))
    with pytest.raises(ValueError, match=match):
        read_plan(path)


def test_read_plan_rejects_missing_and_non_json_files(tmp_path):
    with pytest.raises(ValueError, match="plan must be an existing tile plan file"):
        read_plan(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="plan must be a readable JSON tile plan"):
        read_plan(tmp_path / "bad.json")


@pytest.mark.parametrize("window", ["cosine", "gaussian", "flat"], ids=str)
@pytest.mark.parametrize(
    "make_plan",
    [lambda: plan_tiles((37, 53), frames=1, tile_size=24, overlap=0.4, divisor=8),
     lambda: fit_tiles((150, 203), frames=1, max_tile=64, halo=12, divisor=8),
     lambda: fit_tiles((40, 30), frames=1, max_tile=768, halo=7, divisor=4)],
    ids=["fixed", "fitted", "one-tile"],
)
def test_stitching_ignores_what_tiles_hold_in_their_halo(window, make_plan):
    # The halo is context only: a network's answer there (zero padding within its reach)
    # must not reach the frame, whatever it is.
    plan = make_plan()
    rng = np.random.default_rng(1)
    frame = rng.random(plan.image_shape, dtype=np.float32)
    padded = pad_frame(frame[None], plan)[0]
    tiles = np.stack([padded[tile_slices(plan, i)] for i in range(len(plan.origins))])
    band = discard_halo(np.ones(plan.tile_shape, dtype=np.float32), halo=plan.halo) < 1
    assert band.any() and not band.all()
    tiles[:, band] = 1000.0
    np.testing.assert_allclose(Stitcher(plan, window).stitch(tiles), frame, atol=1e-5)


def test_discard_halo_floors_exactly_the_outer_halo():
    window = discard_halo(blending_window((12, 10), halo=3, kind="gaussian"), halo=3)
    kept = window > 1e-11
    assert kept[3:9, 3:7].all() and kept.sum() == 6 * 4
    assert window.min() > 0
