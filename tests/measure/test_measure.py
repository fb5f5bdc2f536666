"""spheroseg.measure on analytic shapes, and ``spheroseg measure``/``aggregate``: known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from spheroseg.measure import measure_frame, measure_store, metric_columns, metric_rows, trace_object
from spheroseg.segmentation import ObjectLinker, segment_frame

PIXEL_SIZE_UM = 0.65


def ellipse_coverage(shape: tuple[int, int], *, centre: tuple[float, float], semi_y: float,
                     semi_x: float, samples: int = 8) -> np.ndarray:
    """Fraction of each pixel covered by an axis-aligned ellipse (anti-aliased), float64.

    Pixels near the edge are supersampled ``samples x samples`` times; the others are 0/1.
    """
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    radius = np.hypot((yy - centre[0]) / semi_y, (xx - centre[1]) / semi_x)
    coverage = (radius < 1).astype(np.float64)
    rows, cols = np.nonzero(np.abs(radius - 1) < 1.5 / min(semi_y, semi_x))
    offsets = (np.arange(samples) + 0.5) / samples - 0.5
    dy, dx = (grid.ravel() for grid in np.meshgrid(offsets, offsets, indexing="ij"))
    sub_y = (rows[:, None] + dy - centre[0]) / semi_y
    sub_x = (cols[:, None] + dx - centre[1]) / semi_x
    coverage[rows, cols] = (sub_y ** 2 + sub_x ** 2 < 1).mean(axis=1)
    return coverage


def ellipse_perimeter(a: float, b: float) -> float:
    """Ramanujan's second approximation (relative error < 1e-9 for b/a >= 0.3)."""
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def ellipse_case(semi_y: float, semi_x: float, seed: int) -> tuple[np.ndarray, tuple]:
    """Anti-aliased ellipse at a random sub-pixel centre in a tight image."""
    rng = np.random.default_rng(seed)
    shape = (int(2 * semi_y) + 12, int(2 * semi_x) + 12)
    centre = (shape[0] / 2 + rng.uniform(-0.5, 0.5), shape[1] / 2 + rng.uniform(-0.5, 0.5))
    return ellipse_coverage(shape, centre=centre, semi_y=semi_y, semi_x=semi_x), centre


def measure_single(probabilities: np.ndarray, **kwargs: object) -> dict[str, float]:
    """Metrics (pixel units) of the single object of a probability map at threshold 0.5."""
    labels = (probabilities > 0.5).astype(np.int32)
    (measurement,) = measure_frame(labels, probabilities, **kwargs)
    return measurement.metrics


SHAPES = [(10, 10), (14.3, 14.3), (20, 20), (47.5, 47.5), (300, 300), (10, 20), (20, 45),
          (33, 60), (120, 300)]
SHAPE_IDS = ["disk-r10", "disk-r14.3", "disk-r20", "disk-r47.5", "disk-r300",
             "ellipse-10x20", "ellipse-20x45", "ellipse-33x60", "ellipse-120x300"]


@pytest.mark.parametrize(("semi_y", "semi_x"), SHAPES, ids=SHAPE_IDS)
def test_anti_aliased_shapes_area_perimeter_circularity(semi_y: float, semi_x: float) -> None:
    probabilities, _ = ellipse_case(semi_y, semi_x, seed=int(semi_y * 7 + semi_x))
    metrics = measure_single(probabilities)
    area, perimeter = math.pi * semi_y * semi_x, ellipse_perimeter(semi_y, semi_x)
    assert metrics["area"] == pytest.approx(area, rel=0.005)
    tolerance = 0.005 if min(semi_y, semi_x) >= 20 else 0.01
    assert metrics["perimeter"] == pytest.approx(perimeter, rel=tolerance)
    if semi_y == semi_x:
        assert 0.99 <= metrics["circularity"] <= 1.0


@pytest.mark.parametrize(("semi_y", "semi_x"), SHAPES, ids=SHAPE_IDS)
def test_binary_masks_perimeter_within_two_percent(semi_y: float, semi_x: float) -> None:
    coverage, _ = ellipse_case(semi_y, semi_x, seed=int(semi_x * 3 + semi_y))
    metrics = measure_single((coverage > 0.5).astype(np.float32))
    assert metrics["perimeter"] == pytest.approx(ellipse_perimeter(semi_y, semi_x), rel=0.02)
    assert metrics["area"] == pytest.approx(math.pi * semi_y * semi_x, rel=0.03)


def sigmoid_disk(radius: float, *, width: float, seed: int) -> np.ndarray:
    """Smooth probability map of a disk, ``1 / (1 + exp((r - radius) / width))``, float32."""
    rng = np.random.default_rng(seed)
    size = int(2 * radius + 12 + 8 * width)
    centre = size / 2 + rng.uniform(-0.5, 0.5, size=2)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    distance = np.hypot(yy - centre[0], xx - centre[1])
    return (1 / (1 + np.exp((distance - radius) / width))).astype(np.float32)


RADII = [10, 12.5, 14.3, 20, 30, 47.5, 75, 100, 150, 200, 300]


@pytest.mark.parametrize("radius", RADII, ids=[f"r{r}" for r in RADII])
@pytest.mark.parametrize("kind", ["coverage", "sigmoid-w0.5", "sigmoid-w1", "sigmoid-w2", "sigmoid-w4"])
def test_disk_circularity_is_at_most_one(kind: str, radius: float) -> None:
    # The perimeter gets the chord-to-arc length that the area's arc correction implies
    # (before, smooth maps read up to 1.0004: both a hair low, the perimeter more).
    seed = int(radius * 10)
    if kind == "coverage":
        probabilities, _ = ellipse_case(radius, radius, seed=seed)
    else:
        probabilities = sigmoid_disk(radius, width=float(kind.split("-w")[1]), seed=seed)
    metrics = measure_single(probabilities)
    assert 0.995 <= metrics["circularity"] <= 1.0
    assert metrics["perimeter"] == pytest.approx(2 * math.pi * radius, rel=0.0015)


@pytest.mark.parametrize("radius", [3, 5, 8, 10, 20, 100], ids=lambda r: f"r{r}")
def test_binary_disk_circularity_is_at_most_one(radius: float) -> None:
    # A smoothed binary mask loses sigma**2 / 2 * integral(curvature**2) of length as well as
    # pi * sigma**2 of area; both are given back (before, a radius-5 disk read 1.034).
    for seed in range(4):
        coverage, _ = ellipse_case(radius, radius, seed=seed)
        metrics = measure_single((coverage > 0.5).astype(np.float32))
        assert 0.95 <= metrics["circularity"] <= 1.0


def test_ellipse_axes_feret_centroid_solidity() -> None:
    probabilities, centre = ellipse_case(25, 60, seed=3)
    metrics = measure_single(probabilities)
    assert metrics["major_axis"] == pytest.approx(120, rel=0.003)
    assert metrics["minor_axis"] == pytest.approx(50, rel=0.003)
    assert metrics["aspect_ratio"] == pytest.approx(2.4, rel=0.005)
    assert metrics["eccentricity"] == pytest.approx(math.sqrt(1 - (25 / 60) ** 2), rel=0.003)
    assert metrics["feret_max"] == pytest.approx(120, rel=0.003)
    assert metrics["feret_min"] == pytest.approx(50, rel=0.003)
    assert metrics["solidity"] == pytest.approx(1, abs=0.003)
    assert metrics["equivalent_diameter"] == pytest.approx(2 * math.sqrt(25 * 60), rel=0.003)
    assert (metrics["centroid_y"], metrics["centroid_x"]) == pytest.approx(centre, abs=0.01)


def test_ring_with_kept_hole_excludes_hole_area() -> None:
    outer, _ = ellipse_case(30, 30, seed=1)
    inner = ellipse_coverage(outer.shape, centre=(outer.shape[0] / 2,) * 2, semi_y=12,
                             semi_x=12)
    ring = np.clip(outer - inner, 0, 1)
    labels = (ring > 0.5).astype(np.int32)
    (measurement,) = measure_frame(labels, ring)
    assert len(measurement.contour.holes) == 1
    assert measurement.metrics["area"] == pytest.approx(math.pi * (30 ** 2 - 12 ** 2), rel=0.005)
    assert measurement.metrics["perimeter"] == pytest.approx(2 * math.pi * 30, rel=0.005)


def test_filled_hole_in_labels_counts_as_object() -> None:
    outer, _ = ellipse_case(30, 30, seed=1)
    ring = np.clip(outer - ellipse_coverage(outer.shape, centre=(36, 36), semi_y=12,
                                            semi_x=12), 0, 1)
    labels, _ = segment_frame(ring)  # holes filled by default
    (measurement,) = measure_frame(labels, ring)
    assert not measurement.contour.holes
    assert measurement.metrics["area"] == pytest.approx(math.pi * 30 ** 2, rel=0.005)


@pytest.mark.parametrize("value", [1.0, 0.8], ids=["binary", "soft"])
def test_one_pixel_object_gives_a_finite_row(value: float) -> None:
    probabilities = np.zeros((5, 5), np.float32)
    probabilities[2, 2] = value
    labels = (probabilities > 0.5).astype(np.int32)
    (measurement,) = measure_frame(labels, probabilities)
    metrics = measurement.metrics
    assert 0 < metrics["area"] <= 1 and 0 < metrics["circularity"] <= 1
    assert all(math.isfinite(metrics[name]) for name in ("perimeter", "feret_max", "solidity"))


def test_object_touching_border_is_cut_at_the_image_edge() -> None:
    coverage = ellipse_coverage((60, 40), centre=(30, -0.5), semi_y=20, semi_x=20)
    labels = (coverage > 0.5).astype(np.int32)
    (measurement,) = measure_frame(labels, coverage)
    assert measurement.touches_border
    assert measurement.metrics["area"] == pytest.approx(math.pi * 20 ** 2 / 2, rel=0.005)
    assert measurement.metrics["feret_max"] == pytest.approx(40, rel=0.005)


def test_touching_objects_are_traced_separately() -> None:
    left = ellipse_coverage((40, 70), centre=(20, 20), semi_y=12, semi_x=12)
    right = ellipse_coverage((40, 70), centre=(20, 43), semi_y=12, semi_x=12)
    probabilities = np.maximum(left, right)
    labels = (probabilities > 0.5).astype(np.int32)
    labels[:, 32:] *= 2  # split the merged blob along x = 31.5
    first, second = measure_frame(labels, probabilities)
    assert (first.object_id, second.object_id) == (1, 2)
    assert first.metrics["area"] + second.metrics["area"] == pytest.approx(
        measure_single(probabilities)["area"], rel=0.002)


def test_mean_intensity_is_taken_from_the_raw_image() -> None:
    labels = np.zeros((8, 8), np.int32)
    labels[2:5, 2:5] = 1
    image = np.arange(64, dtype=np.uint16).reshape(8, 8)
    (measurement,) = measure_frame(labels, labels * 0.9, image)
    assert measurement.mean_intensity == pytest.approx(image[2:5, 2:5].mean())


def test_rows_scale_lengths_and_areas() -> None:
    probabilities, _ = ellipse_case(20, 20, seed=5)
    labels = (probabilities > 0.5).astype(np.int32)
    measurements = measure_frame(labels, probabilities)
    (pixels,) = metric_rows(measurements, experiment="e", position="p", timepoint=3,
                            pixel_size_um=None, time_interval_s=None)
    (physical,) = metric_rows(measurements, experiment="e", position="p", timepoint=3,
                              pixel_size_um=0.5, time_interval_s=10.0)
    columns = metric_columns(pixel_size_um=0.5, time_interval_s=10.0)
    assert (pixels[3], physical[3]) == ("3", "30.000000")
    area = columns.index("area_um2")
    assert float(physical[area]) == pytest.approx(float(pixels[area]) * 0.25, rel=1e-6)
    circ = columns.index("circularity")
    assert physical[circ] == pixels[circ]


def test_trace_absent_object_is_empty() -> None:
    contour = trace_object(np.zeros((4, 4)), np.zeros((4, 4), np.int32), 7)
    assert contour.outers == [] and contour.holes == []


@pytest.mark.parametrize(
    ("probabilities", "labels", "kwargs", "error", "match"),
    [
        (np.zeros((4, 4)), np.zeros((4, 5), np.int32), {}, ValueError,
         "labels must have the shape of probabilities"),
        (np.zeros((4, 4)), np.zeros((4, 4)), {}, TypeError, "labels must have an integer dtype"),
        (np.zeros(4), np.zeros(4, np.int32), {}, ValueError, "probabilities must be a 2-D"),
        (np.zeros((4, 4)), np.zeros((4, 4), np.int32), {"threshold": 1.0}, ValueError,
         r"threshold must be in \(0.0, 1.0\), got 1.0"),
        (np.zeros((4, 4)), np.zeros((4, 4), np.int32), {"smoothing": "lots"}, ValueError,
         "smoothing must be 'auto', None or a sigma"),
        (np.zeros((4, 4)), np.zeros((4, 4), np.int32), {"smoothing": -1.0}, ValueError,
         "smoothing must be"),
    ],
    ids=["shape", "float-labels", "1d", "threshold", "smoothing-word", "smoothing-negative"],
)
def test_trace_object_rejects_bad_inputs(probabilities: np.ndarray, labels: np.ndarray,
                                         kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        trace_object(probabilities, labels, 1, **kwargs)


def test_measure_frame_rejects_image_of_other_shape() -> None:
    with pytest.raises(ValueError, match="image must have the shape of labels"):
        measure_frame(np.zeros((4, 4), np.int32), np.zeros((4, 4)), np.zeros((3, 4)))


def test_explicit_smoothing_and_none() -> None:
    coverage, _ = ellipse_case(20, 20, seed=9)
    binary = (coverage > 0.5).astype(np.float32)
    raw = measure_single(binary, smoothing=None)["perimeter"]
    smooth = measure_single(binary, smoothing=1.0)["perimeter"]
    truth = 2 * math.pi * 20
    assert abs(smooth / truth - 1) + 0.005 < abs(raw / truth - 1)  # staircase is too long


# --- time series through segment, link and measure ---------------------------------------

def series_truth(t: int) -> list[tuple[tuple[float, float], float, float]]:
    """Two bodies at frame t: (centre, semi_y, semi_x); one grows and moves, one elongates."""
    return [((30 + 2.5 * t, 35 + 1.7 * t), 14 + 1.5 * t, 14 + 1.5 * t),
            ((60 - 1.3 * t, 100 + 0.8 * t), 16 - 0.8 * t, 16 + 3.0 * t)]


def series_frames(frames: int = 6, shape: tuple[int, int] = (100, 150)) -> list[np.ndarray]:
    """Anti-aliased probability maps of the two-body series."""
    result = []
    for t in range(frames):
        bodies = [ellipse_coverage(shape, centre=c, semi_y=a, semi_x=b)
                  for c, a, b in series_truth(t)]
        result.append(np.maximum(*bodies).astype(np.float32))
    return result


def test_time_series_keeps_ids_and_area_within_one_percent() -> None:
    linker = ObjectLinker()
    for t, probabilities in enumerate(series_frames()):
        labels = linker.link(segment_frame(probabilities)[0])
        measurements = {m.object_id: m for m in measure_frame(labels, probabilities)}
        assert sorted(measurements) == [1, 2], t
        for object_id, (centre, semi_y, semi_x) in enumerate(series_truth(t), start=1):
            metrics = measurements[object_id].metrics
            assert metrics["area"] == pytest.approx(math.pi * semi_y * semi_x, rel=0.01)
            assert (metrics["centroid_y"], metrics["centroid_x"]) == pytest.approx(centre,
                                                                                  abs=0.05)


# --- stores, CLI, determinism ------------------------------------------------------------

def write_series(folder: Path, frames: list[np.ndarray], *, pixel_size_um: float | None,
                 interval_s: float | None) -> dict[str, Path]:
    """Probability, label and two-channel raw images of a series, as NGFF stores."""
    from spheroseg import ngff
    from spheroseg.segmentation import segment_store

    paths = {name: folder / f"{name}.ome.zarr" for name in ("probabilities", "labels", "image")}
    sizes = dict(pixel_size_um=pixel_size_um, time_interval_s=interval_s)
    shape = frames[0].shape
    probabilities = ngff.create_image(paths["probabilities"], shape=(len(frames), *shape),
                                      dtype=np.float32, axes="tyx", **sizes)
    image = ngff.create_image(paths["image"], shape=(len(frames), 2, *shape), dtype=np.uint16,
                              axes="tcyx", **sizes)
    for t, frame in enumerate(frames):
        probabilities[t] = frame
        image[t, 0] = (frame * 1000).astype(np.uint16)
        image[t, 1] = 7
    segment_store(paths["probabilities"], paths["labels"])
    return paths


def run_measure(paths: dict[str, Path], output: Path, *extra: str) -> int:
    """Run ``spheroseg measure`` on the stores; return the exit status."""
    from spheroseg.cli import main

    return main(["measure", "--labels", str(paths["labels"]), "--probabilities",
                 str(paths["probabilities"]), "--image", str(paths["image"]),
                 "--experiment", "exp", "--position", "A1", "--output-dir", str(output),
                 *extra])


def test_measure_cli_writes_tracked_csvs_and_geojson(tmp_path: Path) -> None:
    import pandas as pd

    frames = series_frames(4, shape=(100, 150))
    frames.insert(2, np.zeros_like(frames[0]))  # an empty frame in the middle
    paths = write_series(tmp_path, frames, pixel_size_um=PIXEL_SIZE_UM, interval_s=300.0)
    assert run_measure(paths, tmp_path / "out") == 0
    table = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert list(table.columns) == metric_columns(pixel_size_um=1.0, time_interval_s=1.0)
    assert table["timepoint"].tolist() == [0, 0, 1, 1, 3, 3, 4, 4]
    assert table["time_s"].tolist() == [0, 0, 300, 300, 900, 900, 1200, 1200]
    assert table["object_id"].tolist() == [1, 2] * 4  # linked across the empty frame
    assert table["touches_border"].dtype == bool and not table["touches_border"].any()
    truth = [math.pi * a * b * PIXEL_SIZE_UM ** 2 for t in (0, 1) for _, a, b in series_truth(t)]
    assert table["area_um2"][:4].to_numpy() == pytest.approx(truth, rel=0.01)
    files = sorted(p.name for p in (tmp_path / "out" / "metrics").iterdir())
    assert files == [f"t{t:04d}.csv" for t in range(5)]
    empty = (tmp_path / "out" / "metrics" / "t0002.csv").read_text()
    assert empty.count("\n") == 1 and empty.startswith("experiment,position,timepoint,time_s")
    geojson = json.loads((tmp_path / "out" / "contours.geojson").read_text())
    assert len(geojson["features"]) == 8
    feature = geojson["features"][0]
    assert feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["object_id"] == 1 and feature["properties"]["time_s"] == 0
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]


def test_measure_is_deterministic_and_uses_pixel_units(tmp_path: Path) -> None:
    paths = write_series(tmp_path, series_frames(2, shape=(100, 150)), pixel_size_um=None,
                         interval_s=None)
    assert run_measure(paths, tmp_path / "a", "--channel", "1") == 0
    assert run_measure(paths, tmp_path / "b", "--channel", "1") == 0
    for name in ("metrics.csv", "contours.geojson", "metrics/t0001.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    header, first = (tmp_path / "a" / "metrics.csv").read_text().splitlines()[:2]
    assert header.split(",")[3] == "time_frame" and "area_px2" in header
    assert header.split(",")[-3:] == ["mean_intensity", "touches_border", "is_main_body"]
    assert first.split(",")[-3] == "7.000000"  # mean intensity of channel 1


def test_measure_in_worker_processes_writes_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    from spheroseg import runtime

    frames = series_frames(4, shape=(100, 150))
    frames.insert(1, np.zeros_like(frames[0]))
    paths = write_series(tmp_path, frames, pixel_size_um=PIXEL_SIZE_UM, interval_s=300.0)
    assert run_measure(paths, tmp_path / "serial", "--threads", "1") == 0
    monkeypatch.setattr(runtime, "PARALLEL_MIN_PIXELS", 0)  # this small series in workers
    pools, start_pool = [], runtime.process_pool
    monkeypatch.setattr(runtime, "process_pool",
                        lambda workers, **kwargs: pools.append(workers) or start_pool(workers, **kwargs))
    assert run_measure(paths, tmp_path / "workers", "--threads", "2") == 0
    assert pools == [2]
    for name in ("metrics.csv", "contours.geojson", "metrics/t0001.csv", "metrics/t0004.csv"):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "workers" / name).read_bytes()


def test_measure_rejects_mismatched_grids(tmp_path: Path) -> None:
    from spheroseg import ngff

    paths = write_series(tmp_path, series_frames(2, shape=(100, 150)), pixel_size_um=None,
                         interval_s=None)
    ngff.create_image(tmp_path / "small.ome.zarr", shape=(2, 50, 150), dtype=np.uint8,
                      axes="tyx", pixel_size_um=None, time_interval_s=None)
    with pytest.raises(ValueError, match="image must have 2 frames of 100 x 150 pixels"):
        measure_store(paths["labels"], paths["probabilities"], tmp_path / "small.ome.zarr",
                      tmp_path / "out", experiment="e", position="p")
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        measure_store(paths["probabilities"], paths["probabilities"], paths["image"],
                      tmp_path / "out", experiment="e", position="p")
    assert not (tmp_path / "out").exists()


MEASURE_ARGS = ["measure", "--labels", "l", "--probabilities", "p", "--image", "i",
                "--experiment", "e", "--position", "p", "--output-dir", "o"]


def test_measure_cli_usage_error_for_a_word_that_is_no_sigma() -> None:
    from spheroseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*MEASURE_ARGS, "--smoothing", "lots"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--threshold", "0"], "threshold must be in (0.0, 1.0), got 0.0"),
     (["--smoothing", "-2"], "smoothing must be 'auto', None or a sigma in [0, 50) pixels, got -2.0")],
    ids=["threshold", "smoothing-negative"],
)
def test_measure_cli_checks_values_before_reading(extra: list[str], message: str, capsys) -> None:
    from spheroseg.cli import main

    assert main([*MEASURE_ARGS, *extra]) == 1  # the inputs do not exist: checked first
    assert capsys.readouterr().err == f"spheroseg measure: error: {message}\n"


def test_measure_cli_bad_channel_is_one_line_error(tmp_path: Path, capsys) -> None:
    paths = write_series(tmp_path, series_frames(1, shape=(100, 150)), pixel_size_um=None,
                         interval_s=None)
    assert run_measure(paths, tmp_path / "out", "--channel", "5") == 1
    err = capsys.readouterr().err
    assert "channel must be an integer in [0, 1], got 5 (in " in err and "image.ome.zarr" in err
    assert not (tmp_path / "out").exists()  # not even an empty output folder


# --- aggregate ---------------------------------------------------------------------------

COLUMNS = metric_columns(pixel_size_um=1.0, time_interval_s=60.0)
HEADER = ",".join(COLUMNS) + "\n"


def row(start: str) -> str:
    """A CSV row of HEADER: `start` (experiment ... area_um2), then zeros."""
    return start + ",0" * (len(COLUMNS) - start.count(",") - 1) + "\n"


def aggregate(tmp_path: Path, *tables: str) -> int:
    """Write tables as CSV files and run ``spheroseg aggregate`` on them."""
    from spheroseg.cli import main

    paths = []
    for index, text in enumerate(tables):
        paths.append(tmp_path / f"in{index}.csv")
        paths[-1].write_bytes(text) if isinstance(text, bytes) else paths[-1].write_text(text)
    return main(["aggregate", "--output", str(tmp_path / "all.csv"), *map(str, paths)])


def test_aggregate_sorts_and_keeps_values_verbatim(tmp_path: Path) -> None:
    b = HEADER + row("e,B,0,0.000000,1,2.500000")
    a = HEADER + row("e,A,10,60.000000,1,1.000000") + row("e,A,2,12.000000,1,1.100000")
    assert aggregate(tmp_path, b, a, HEADER) == 0
    assert (tmp_path / "all.csv").read_text() == (
        HEADER + row("e,A,2,12.000000,1,1.100000") + row("e,A,10,60.000000,1,1.000000")
        + row("e,B,0,0.000000,1,2.500000"))


@pytest.mark.parametrize(("pixel_size_um", "time_interval_s"),
                         [(0.5, 60.0), (0.5, None), (None, 60.0), (None, None)],
                         ids=["um-s", "um-frame", "px-s", "px-frame"])
def test_aggregate_takes_every_header_measure_writes(tmp_path: Path, pixel_size_um,
                                                     time_interval_s) -> None:
    columns = metric_columns(pixel_size_um=pixel_size_um, time_interval_s=time_interval_s)
    header = ",".join(columns) + "\n"
    assert aggregate(tmp_path, header + row("e,A,0,0,1,2.0")) == 0
    assert (tmp_path / "all.csv").read_text() == header + row("e,A,0,0,1,2.0")


CUT = ",".join(COLUMNS[:13])  # a file cut inside its header: experiment ... aspect_ratio


@pytest.mark.parametrize(
    ("tables", "match"),
    [
        (("",), "must have a header row"),
        (("experiment,position,time_s\n",), "metrics CSV must have the columns"),
        ((HEADER + "e,A,0,0\n",), "row 2 must have 22 fields, got 4"),
        ((HEADER + row("e,A,x,0,1,2"),), "timepoint and object_id must be integers"),
        ((HEADER + row("e,A,0,0,1,2"), HEADER + row("e,A,0,0,1,3")), "must appear once"),
        ((b"\xe0\xff\x00 not text",), "metrics CSV must be UTF-8 text, got bytes that are not"),
        ((HEADER + row("e,A,0,0,1,2"), CUT + ",ecc"),
         "metrics CSV header must be one that spheroseg measure writes (22 columns, 'experiment' "
         "to 'is_main_body'), got 'ecc' in column 14 where 'eccentricity' belongs; remove the file "
         "and run again to have measure write it anew (in "),
        ((HEADER + row("e,A,0,0,1,2"), CUT + "\n"),
         "got only 13 of its 22 columns, ending with 'aspect_ratio'"),
        ((HEADER.replace("\n", ",note\n"),), "got 'note' in column 23 after its last column 'is_main_body'"),
        (("experiment,position,timepoint,time_s,object_id,area_um2\ne,A,0,0,1,2\n",),
         "got only 6 of its 22 columns, ending with 'area_um2'"),
    ],
    ids=["empty", "missing-column", "short-row", "bad-int", "duplicate", "binary",
         "cut-in-header", "cut-at-comma", "extra-column", "foreign-header"],
)
def test_aggregate_errors(tmp_path: Path, capsys, tables: tuple[str, ...], match: str) -> None:
    assert aggregate(tmp_path, *tables) == 1
    assert match in capsys.readouterr().err
    assert not (tmp_path / "all.csv").exists()


def test_aggregate_function_needs_inputs(tmp_path: Path) -> None:
    from spheroseg.cli.aggregate import aggregate_metrics

    with pytest.raises(ValueError, match="inputs must name at least one metrics CSV"):
        aggregate_metrics([], tmp_path / "all.csv")




@pytest.mark.parametrize("seed", range(3), ids=[f"seed-{seed}" for seed in range(3)])
def test_square_morphology_equals_scipy(seed: int) -> None:
    from scipy import ndimage

    from spheroseg.measure.trace import square_dilation, square_erosion

    rng = np.random.default_rng(seed)
    square = np.ones((3, 3), dtype=bool)
    for shape in ((1, 1), (1, 7), (19, 23), (40, 33)):
        mask = rng.random(shape) < rng.uniform(0.1, 0.9)
        np.testing.assert_array_equal(square_dilation(mask), ndimage.binary_dilation(mask, square))
        np.testing.assert_array_equal(square_erosion(mask),
                                      ndimage.binary_erosion(mask, square, border_value=0))
