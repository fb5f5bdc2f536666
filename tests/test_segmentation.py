"""Tests for spheroseg.segmentation and ``spheroseg segment``: thresholds, cleanup, linking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spheroseg.segmentation import (
    ObjectLinker,
    SegmentationOptions,
    border_object_ids,
    keep_largest_object,
    label_objects,
    read_thresholds,
    remove_small_objects,
    segment_frame,
    segment_store,
    split_touching_objects,
    threshold_frame,
)


def disks(shape: tuple[int, int], *centres_and_radii: tuple[float, float, float]) -> np.ndarray:
    """Anti-aliased union of disks (probability ramps 1 px wide), float32."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    field = np.zeros(shape)
    for cy, cx, radius in centres_and_radii:
        field = np.maximum(field, np.clip(radius - np.hypot(yy - cy, xx - cx) + 0.5, 0, 1))
    return field.astype(np.float32)


# --- threshold_frame -------------------------------------------------------------------

def test_threshold_fixed_is_strictly_greater() -> None:
    mask, used = threshold_frame(np.array([[0.4, 0.5, 0.6]]), threshold=0.5)
    assert mask.tolist() == [[False, False, True]]
    assert used == 0.5


def test_threshold_otsu_separates_two_levels() -> None:
    frame = np.full((10, 10), 0.1, np.float32)
    frame[:, 6:] = 0.7
    mask, used = threshold_frame(frame, method="otsu")
    assert 0.1 <= used < 0.7
    assert mask.sum() == 40


@pytest.mark.parametrize("value", [0.0, 0.7, 1.0], ids=["zeros", "middle", "ones"])
def test_threshold_otsu_constant_frame_is_empty(value: float) -> None:
    mask, _ = threshold_frame(np.full((4, 4), value), method="otsu")
    assert not mask.any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "kmeans"}, ValueError, "method must be one of"),
        ({"threshold": 0.0}, ValueError, r"threshold must be in \(0.0, 1.0\)"),
        ({"threshold": 1.0}, ValueError, "threshold must be in"),
        ({"threshold": math.nan}, ValueError, "threshold must be in"),
        ({"threshold": "0.5"}, TypeError, "threshold must be a number"),
        ({"threshold": True}, TypeError, "threshold must be a number"),
    ],
    ids=["method", "zero", "one", "nan", "string", "bool"],
)
def test_threshold_rejects_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        threshold_frame(np.zeros((3, 3)), **kwargs)


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        ([[0.1, 0.9]], TypeError, "must be a numpy array"),
        (np.zeros((2, 3, 3)), ValueError, r"must be 2-D \(Y, X\)"),
        (np.array([["a", "b"]]), TypeError, "must have a numeric dtype"),
    ],
    ids=["list", "3d", "strings"],
)
def test_threshold_rejects_bad_frames(frame: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        threshold_frame(frame)  # type: ignore[arg-type]


# --- options -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "mean"}, ValueError, "method must be one of"),
        ({"threshold": 1.5}, ValueError, "threshold must be in"),
        ({"min_area_px": -1}, ValueError, "min_area_px must be in"),
        ({"split_depth": 1.0}, ValueError, "split_depth must be in"),
        ({"fill_holes": 1}, TypeError, "fill_holes must be a bool"),
        ({"keep_largest": "yes"}, TypeError, "keep_largest must be a bool"),
        ({"min_area_um2": -5.0}, ValueError, "min_area_um2 must be in"),
        ({"max_gap": -1}, ValueError, "max_gap must be an integer >= 0"),
    ],
    ids=["method", "threshold", "min-area", "split-depth", "fill-holes", "keep-largest",
         "min-area-um2", "max-gap"],
)
def test_options_reject_bad_values(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SegmentationOptions(**kwargs)


def test_segment_frame_rejects_wrong_options_type() -> None:
    with pytest.raises(TypeError, match="options must be a SegmentationOptions"):
        segment_frame(np.zeros((3, 3)), {"threshold": 0.5})  # type: ignore[arg-type]


# --- cleanup steps -----------------------------------------------------------------------

def test_label_objects_joins_diagonal_neighbours() -> None:
    mask = np.eye(3, dtype=bool)
    assert label_objects(mask).max() == 1


def test_remove_small_objects_keeps_ids_of_the_rest() -> None:
    labels = np.array([[1, 0, 2, 2, 2], [0, 0, 2, 2, 0]])
    assert remove_small_objects(labels, min_area_px=2).tolist() == [[0, 0, 2, 2, 2],
                                                                    [0, 0, 2, 2, 0]]


def test_keep_largest_on_empty_frame_is_empty() -> None:
    assert not keep_largest_object(np.zeros((3, 3), np.int32)).any()


@pytest.mark.parametrize(("fill", "expected_holes"), [(True, 0), (False, 9)],
                         ids=["filled", "kept"])
def test_segment_frame_fills_holes_on_request(fill: bool, expected_holes: int) -> None:
    probabilities = np.zeros((11, 11), np.float32)
    probabilities[1:10, 1:10] = 0.9
    probabilities[4:7, 4:7] = 0.1
    labels, _ = segment_frame(probabilities, SegmentationOptions(fill_holes=fill))
    assert labels.max() == 1
    assert int((labels[1:10, 1:10] == 0).sum()) == expected_holes


def test_segment_frame_removes_small_objects_and_keeps_one_pixel_when_allowed() -> None:
    probabilities = disks((40, 40), (20, 20, 8))
    probabilities[2, 2] = 0.9  # a one-pixel object
    kept, _ = segment_frame(probabilities, SegmentationOptions(min_area_px=0))
    removed, _ = segment_frame(probabilities, SegmentationOptions(min_area_px=2))
    assert kept.max() == 2 and kept[2, 2] == 1
    assert removed.max() == 1 and removed[2, 2] == 0


def test_segment_frame_keep_largest() -> None:
    probabilities = disks((40, 80), (20, 15, 6), (20, 55, 12))
    labels, _ = segment_frame(probabilities, SegmentationOptions(keep_largest=True))
    assert labels.max() == 1 and labels[20, 55] == 1 and labels[20, 15] == 0


def test_segment_frame_empty_frame_has_no_objects() -> None:
    labels, _ = segment_frame(np.zeros((8, 8), np.float32))
    assert labels.dtype == np.int32 and not labels.any()


@pytest.mark.parametrize(
    ("bodies", "expected"),
    [
        (((30, 30, 20), (30, 62, 18)), 2),  # two disks with a narrow neck
        (((30, 30, 20),), 1),  # a single disk
    ],
    ids=["touching-disks", "one-disk"],
)
def test_split_touching_splits_only_at_necks(bodies: tuple, expected: int) -> None:
    probabilities = disks((60, 100), *bodies)
    labels, _ = segment_frame(probabilities, SegmentationOptions(split_touching=True))
    assert labels.max() == expected
    assert (labels > 0).sum() == (probabilities > 0.5).sum()  # splitting loses no pixel


def test_split_touching_never_splits_an_ellipse() -> None:
    yy, xx = np.mgrid[:60, :120]
    ellipse = (((yy - 30) / 15) ** 2 + ((xx - 60) / 50) ** 2 < 1).astype(np.int32)
    assert split_touching_objects(ellipse).max() == 1


def test_split_touching_rejects_bad_depth() -> None:
    with pytest.raises(ValueError, match="split_depth must be in"):
        split_touching_objects(np.zeros((3, 3), np.int32), split_depth=0)


def test_border_object_ids() -> None:
    labels = np.zeros((6, 6), np.int32)
    labels[0, 2] = 3
    labels[2:4, 2:4] = 1
    labels[5, 5] = 2
    assert border_object_ids(labels).tolist() == [2, 3]


def test_border_object_ids_rejects_float_labels() -> None:
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        border_object_ids(np.zeros((3, 3)))


# --- linking over time -------------------------------------------------------------------

def two_body_series() -> list[np.ndarray]:
    """Two bodies that grow, move and swap raster order, over 6 frames."""
    frames = []
    for t in range(6):
        first = (15 + 3 * t, 20, 8 + t)  # moves down past the second body
        second = (25, 60 - 2 * t, 10 + 0.5 * t)
        frames.append(disks((70, 80), first, second))
    return frames


def test_linker_keeps_ids_when_raster_order_changes() -> None:
    linker = ObjectLinker()
    for t, probabilities in enumerate(two_body_series()):
        labels, _ = segment_frame(probabilities)
        linked = linker.link(labels)
        assert sorted(np.unique(linked).tolist()) == [0, 1, 2], t
        first_y = 15 + 3 * t
        assert linked[int(first_y), 20] == 1 and linked[25, int(60 - 2 * t)] == 2


@pytest.mark.parametrize(("max_gap", "returning_id"), [(0, 3), (1, 1)],
                         ids=["no-memory", "remembered"])
def test_linker_new_object_gets_new_id_and_lost_one_is_remembered(
        max_gap: int, returning_id: int) -> None:
    linker = ObjectLinker(max_gap=max_gap)
    one = np.zeros((5, 9), np.int32)
    one[1:3, 1:3] = 1
    linker.link(one)
    far = np.zeros((5, 9), np.int32)
    far[1:3, 6:8] = 1
    assert linker.link(far).max() == 2
    assert linker.link(one).max() == returning_id


def test_linker_forgets_after_max_gap() -> None:
    linker = ObjectLinker(max_gap=1)
    one = np.zeros((3, 3), np.int32)
    one[1, 1] = 1
    linker.link(one)
    linker.link(np.zeros_like(one))
    linker.link(np.zeros_like(one))
    assert linker.link(one).max() == 2


@pytest.mark.parametrize("max_gap", [-1, 1.5, True], ids=["negative", "float", "bool"])
def test_linker_rejects_bad_max_gap(max_gap: object) -> None:
    with pytest.raises(ValueError, match="max_gap must be an integer >= 0"):
        ObjectLinker(max_gap=max_gap)  # type: ignore[arg-type]


def test_linker_merge_keeps_best_overlapping_id() -> None:
    linker = ObjectLinker()
    linker.link(np.array([[1, 1, 0, 2]]))
    assert linker.link(np.array([[1, 1, 1, 1]])).tolist() == [[1, 1, 1, 1]]


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (np.zeros((4, 4), np.int32), ValueError, "must have the shape of the previous frame"),
        (np.zeros((3, 3)), TypeError, "must have an integer dtype"),
        (-np.ones((3, 3), np.int32), ValueError, "labels must be >= 0"),
        (np.zeros((1, 3, 3), np.int32), ValueError, "must be 2-D"),
    ],
    ids=["shape-change", "float", "negative", "3d"],
)
def test_linker_rejects_bad_frames(labels: np.ndarray, error: type, match: str) -> None:
    linker = ObjectLinker()
    linker.link(np.zeros((3, 3), np.int32))
    with pytest.raises(error, match=match):
        linker.link(labels)


# --- stores and CLI ----------------------------------------------------------------------

def write_probabilities(path: object, frames: list[np.ndarray], *,
                        pixel_size_um: float | None = 0.65) -> None:
    """Write frames as an NGFF probability image (t, y, x)."""
    from spheroseg import ngff

    array = ngff.create_image(path, shape=(len(frames), *frames[0].shape), dtype=np.float32,
                              axes="tyx", pixel_size_um=pixel_size_um, time_interval_s=60.0)
    for t, frame in enumerate(frames):
        array[t] = frame


def test_segment_store_writes_tracked_labels_with_metadata(tmp_path) -> None:
    import zarr

    from spheroseg import ngff

    write_probabilities(tmp_path / "p.ome.zarr", two_body_series())
    thresholds = segment_store(tmp_path / "p.ome.zarr", tmp_path / "l.ome.zarr",
                               SegmentationOptions(method="otsu", min_area_um2=20.0))
    meta = ngff.read_metadata(tmp_path / "l.ome.zarr")
    assert (meta.axes, meta.shape, meta.dtype) == ("tyx", (6, 70, 80), np.int32)
    assert (meta.pixel_size_um, meta.time_interval_s) == (0.65, 60.0)
    labels = np.asarray(ngff.open_array(tmp_path / "l.ome.zarr")[:])
    assert all(sorted(np.unique(frame).tolist()) == [0, 1, 2] for frame in labels)
    assert read_thresholds(tmp_path / "l.ome.zarr") == thresholds and len(thresholds) == 6
    attributes = zarr.open_group(str(tmp_path / "l.ome.zarr"), mode="r").attrs
    assert "image-label" in attributes["ome"]  # viewers open it as a label image
    recorded = attributes["spheroseg"]["segment"]
    assert (recorded["method"], recorded["min_area_um2"], recorded["max_gap"]) == ("otsu", 20.0, 2)


@pytest.mark.parametrize("threads", [2, 3], ids=["two-workers", "three-workers"])
def test_segment_store_in_worker_processes_equals_one_process(tmp_path, monkeypatch, threads) -> None:
    from spheroseg import ngff, runtime
    from spheroseg.segmentation import read_segmentation_record

    series = two_body_series()
    series.insert(3, np.zeros_like(series[0]))  # a body-less frame: linking bridges it
    write_probabilities(tmp_path / "p.ome.zarr", series)
    options = SegmentationOptions(min_area_px=5.0, max_gap=1)
    serial = segment_store(tmp_path / "p.ome.zarr", tmp_path / "a.ome.zarr", options, threads=1)
    monkeypatch.setattr(runtime, "PARALLEL_MIN_PIXELS", 0)  # this small series in workers
    pools, start_pool = [], runtime.process_pool
    monkeypatch.setattr(runtime, "process_pool",
                        lambda workers, **kwargs: pools.append(workers) or start_pool(workers, **kwargs))
    parallel = segment_store(tmp_path / "p.ome.zarr", tmp_path / "b.ome.zarr", options,
                             threads=threads)
    assert pools == [threads] and parallel == serial
    first, second = ngff.open_frames(tmp_path / "a.ome.zarr"), ngff.open_frames(tmp_path / "b.ome.zarr")
    assert all(np.array_equal(first[t], second[t]) for t in range(len(series)))
    assert read_segmentation_record(tmp_path / "a.ome.zarr") == read_segmentation_record(
        tmp_path / "b.ome.zarr")  # thresholds, objects kept and removed per frame


def test_segment_store_worker_errors_name_the_frame(tmp_path, monkeypatch) -> None:
    from spheroseg import runtime

    frames = two_body_series()
    frames[4] = frames[4] * np.float32(2.0)
    write_probabilities(tmp_path / "p.ome.zarr", frames)
    monkeypatch.setattr(runtime, "PARALLEL_MIN_PIXELS", 0)
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\].*t=4"):
        segment_store(tmp_path / "p.ome.zarr", tmp_path / "l.ome.zarr", threads=2)
    assert not (tmp_path / "l.ome.zarr").exists()


@pytest.mark.parametrize("seed", range(4), ids=[f"seed-{seed}" for seed in range(4)])
def test_fill_holes_equals_scipy(seed) -> None:
    from scipy import ndimage

    from spheroseg.segmentation import fill_holes

    rng = np.random.default_rng(seed)
    for shape in ((1, 1), (1, 9), (23, 31), (64, 48)):
        mask = rng.random(shape) < rng.uniform(0.3, 0.8)
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_segment_store_records_what_the_size_filter_removed(tmp_path) -> None:
    from spheroseg.segmentation import read_segmentation_record

    kept = disks((40, 40), (12, 12, 8))          # about 200 px: kept
    specks = disks((40, 40), (30, 30, 2.5), (8, 32, 1.5))  # about 20 and 7 px: removed
    write_probabilities(tmp_path / "p.ome.zarr", [kept + specks, specks, np.zeros((40, 40), np.float32)],
                        pixel_size_um=1.0)
    segment_store(tmp_path / "p.ome.zarr", tmp_path / "l.ome.zarr", SegmentationOptions(min_area_um2=50.0))
    record = read_segmentation_record(tmp_path / "l.ome.zarr")
    assert record["objects"] == [1, 0, 0]  # frame 2 is empty: nothing was there to remove
    assert record["removed_objects"] == [2, 2, 0]
    largest = int(np.count_nonzero(disks((40, 40), (30, 30, 2.5)) > 0.5))
    assert record["largest_removed_px"] == [largest, largest, 0.0] and record["min_area_px"] == 50.0


def test_segment_frame_details_says_when_the_filter_emptied_a_frame() -> None:
    from spheroseg.segmentation import segment_frame_details

    specks = disks((30, 30), (10, 10, 2), (20, 20, 3))
    emptied = segment_frame_details(specks, SegmentationOptions(min_area_px=100))
    assert emptied.emptied and emptied.objects == 0 and emptied.removed_objects == 2
    assert emptied.largest_removed_px == np.count_nonzero(disks((30, 30), (20, 20, 3)) > 0.5)
    assert not segment_frame_details(np.zeros((8, 8)), SegmentationOptions()).emptied
    kept = segment_frame_details(specks, SegmentationOptions(min_area_px=20))
    assert (kept.objects, kept.removed_objects, kept.emptied) == (1, 1, False)


def test_segment_store_needs_pixel_size_for_um2(tmp_path) -> None:
    write_probabilities(tmp_path / "p.ome.zarr", two_body_series()[:1], pixel_size_um=None)
    with pytest.raises(ValueError, match="pixel size must be known to use min_area_um2"):
        segment_store(tmp_path / "p.ome.zarr", tmp_path / "l.ome.zarr",
                      SegmentationOptions(min_area_um2=5.0))
    assert not (tmp_path / "l.ome.zarr").exists()


def test_segment_store_rejects_values_outside_unit_interval(tmp_path) -> None:
    write_probabilities(tmp_path / "p.ome.zarr", [np.full((8, 8), 3.0, np.float32)])
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\].*t=0"):
        segment_store(tmp_path / "p.ome.zarr", tmp_path / "l.ome.zarr")
    assert not (tmp_path / "l.ome.zarr").exists()  # nothing half-written
    # into an image's labels group, as the workflow writes it: no empty labels/ folder is left
    write_probabilities(tmp_path / "image.ome.zarr", [np.zeros((8, 8), np.float32)])
    before = sorted(p.name for p in (tmp_path / "image.ome.zarr").iterdir())
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]"):
        segment_store(tmp_path / "p.ome.zarr", tmp_path / "image.ome.zarr" / "labels" / "segmentation")
    assert sorted(p.name for p in (tmp_path / "image.ome.zarr").iterdir()) == before


def test_segment_store_tolerates_rounding_above_one(tmp_path) -> None:
    from spheroseg import ngff

    frame = disks((20, 20), (10, 10, 5)) * np.float32(1.0004)
    write_probabilities(tmp_path / "p.ome.zarr", [frame])
    segment_store(tmp_path / "p.ome.zarr", tmp_path / "l.ome.zarr")
    assert np.asarray(ngff.open_array(tmp_path / "l.ome.zarr")[0]).max() == 1


def test_read_thresholds_absent_is_none(tmp_path) -> None:
    assert read_thresholds(tmp_path / "missing.ome.zarr") is None


def test_cli_segment_runs_and_reports_errors(tmp_path, capsys) -> None:
    from spheroseg import ngff
    from spheroseg.cli import main

    frames = two_body_series()[:2]
    write_probabilities(tmp_path / "p.ome.zarr", frames)
    write_probabilities(tmp_path / "image.ome.zarr", frames)
    args = ["segment", "--probabilities", str(tmp_path / "p.ome.zarr"),
            "--image", str(tmp_path / "image.ome.zarr")]
    assert main([*args, "--min-area-um2", "10", "--split-touching", "--keep-largest",
                 "--max-gap", "0", "--method", "otsu", "--no-fill-holes"]) == 0
    assert ngff.list_labels(tmp_path / "image.ome.zarr") == ["segmentation"]
    assert main(["segment", "--probabilities", str(tmp_path / "nope"),
                 "--image", str(tmp_path / "image.ome.zarr")]) == 1
    assert "must be an NGFF image" in capsys.readouterr().err


def test_segment_into_image_nests_lists_and_records(tmp_path) -> None:
    import json

    from spheroseg import ngff
    from spheroseg.segmentation import segment_into_image

    frames = two_body_series()[:3]
    write_probabilities(tmp_path / "p.ome.zarr", frames)
    write_probabilities(tmp_path / "image.ome.zarr", frames)
    record = tmp_path / "segment.json"
    thresholds = segment_into_image(tmp_path / "p.ome.zarr", tmp_path / "image.ome.zarr",
                                    SegmentationOptions(min_area_px=0), record=record)
    labels = tmp_path / "image.ome.zarr" / "labels" / "segmentation"
    assert ngff.list_labels(tmp_path / "image.ome.zarr") == ["segmentation"]
    assert ngff.read_attributes(labels)["ome"]["image-label"] == {"source": {"image": "../../"}}
    document = json.loads(record.read_text())
    assert document["labels"] == "image.ome.zarr/labels/segmentation"
    assert document["segment"]["thresholds"] == thresholds
    assert ngff.read_metadata(labels).shape == (3, *frames[0].shape)
    # Again (segment rerun): the label is replaced, listed once.
    segment_into_image(tmp_path / "p.ome.zarr", tmp_path / "image.ome.zarr")
    assert ngff.list_labels(tmp_path / "image.ome.zarr") == ["segmentation"]


def test_segment_into_image_refuses_an_image_of_another_size(tmp_path) -> None:
    from spheroseg.segmentation import segment_into_image

    frames = two_body_series()[:1]
    write_probabilities(tmp_path / "p.ome.zarr", frames)
    write_probabilities(tmp_path / "image.ome.zarr", [frame[:-1] for frame in frames])
    with pytest.raises(ValueError, match=r"image must have the y, x size of the probabilities"):
        segment_into_image(tmp_path / "p.ome.zarr", tmp_path / "image.ome.zarr")
    assert not (tmp_path / "image.ome.zarr" / "labels").exists()


@pytest.mark.parametrize(
    "extra", [["--min-area-px", "3", "--min-area-um2", "3"], ["--split-depth", "x"]],
    ids=["both-areas", "split-depth-word"],
)
def test_cli_segment_usage_errors(extra: list[str], tmp_path) -> None:
    from spheroseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["segment", "--probabilities", "p", "--image", "i", *extra])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--threshold", "1"], r"threshold must be in (0.0, 1.0), got 1.0"),
     (["--min-area-px", "-3"], "min_area_px must be in [0.0, inf], got -3.0"),
     (["--method", "kmeans"], "method must be one of ('fixed', 'otsu'), got 'kmeans'"),
     (["--max-gap", "-1"], "max_gap must be an integer >= 0, got -1"),
     (["--split-depth", "0"], "split_depth must be in (0.0, 1.0), got 0.0")],
    ids=["threshold", "negative-area", "method", "max-gap", "split-depth"],
)
def test_cli_segment_checks_options_before_reading(extra: list[str], message: str, capsys) -> None:
    from spheroseg.cli import main

    # The input does not exist: SegmentationOptions checks the value first, in one line.
    assert main(["segment", "--probabilities", "p", "--image", "i", *extra]) == 1
    assert capsys.readouterr().err == f"spheroseg segment: error: {message}\n"


def test_segment_into_image_with_an_unwritable_record_writes_no_labels(tmp_path) -> None:
    from spheroseg.segmentation import segment_into_image

    frames = two_body_series()[:1]
    write_probabilities(tmp_path / "p.ome.zarr", frames)
    write_probabilities(tmp_path / "image.ome.zarr", frames)
    (tmp_path / "plain").write_text("a file where the record's folder should be")
    with pytest.raises(FileExistsError):
        segment_into_image(tmp_path / "p.ome.zarr", tmp_path / "image.ome.zarr",
                           SegmentationOptions(min_area_px=0), record=tmp_path / "plain" / "segment.json")
    assert not (tmp_path / "image.ome.zarr" / "labels").exists()
