"""The ``measure`` stage on disk: read labels, probabilities and image (NGFF) frame by frame,
write ``contours.geojson``, ``metrics/t<NNNN>.csv`` and ``metrics.csv``, each atomically."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spheroseg.measure.frame import measure_frame
from spheroseg.measure.tables import (
    format_csv,
    geojson_feature,
    geojson_properties,
    mark_main_bodies,
    metric_columns,
    metric_rows,
)
from spheroseg.measure.trace import DEFAULT_LEVEL, check_smoothing
from spheroseg.segmentation import check_threshold

if TYPE_CHECKING:
    from spheroseg.ngff import ImageMetadata

# A worker process's frame readers per set of images (it lives for one measure_store call).
_WORKER_SOURCES: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}


def _check_same_grid(paths: Mapping[str, str | os.PathLike[str]]) -> tuple[int, ImageMetadata]:
    """Read metadata of the named images; raise unless all have the same T, Y and X."""
    from spheroseg import ngff

    metadata = ngff.check_same_grid(paths, reference="labels")
    if metadata["labels"].dtype.kind not in "iu":
        raise TypeError(f"labels must have an integer dtype, got {metadata['labels'].dtype!r} "
                        f"(in {paths['labels']})")
    return ngff.frames_and_plane(metadata["labels"])[0], metadata["labels"]


def _frame_thresholds(labels_path: str | os.PathLike[str], frames: int,
                      threshold: float | None) -> list[float]:
    """Threshold per frame: the given one, else the one segment recorded, else the default."""
    from spheroseg.segmentation import read_thresholds

    if threshold is not None:
        return [threshold] * frames
    recorded = read_thresholds(labels_path)
    if recorded is None or len(recorded) != frames:
        return [DEFAULT_LEVEL] * frames
    return [t if 0 < t < 1 else DEFAULT_LEVEL for t in recorded]


def measure_store(labels_path: str | os.PathLike[str],
                  probabilities_path: str | os.PathLike[str],
                  image_path: str | os.PathLike[str], output_dir: str | os.PathLike[str], *,
                  experiment: str, position: str, channel: int = 0,
                  threshold: float | None = None,
                  smoothing: str | float | None = "auto", threads: int | None = None) -> int:
    """Measure every object of every frame of one position and write contours and CSVs.

    Writes, each atomically, ``contours.geojson`` (a FeatureCollection, one Feature per
    object per timepoint), ``metrics/t<NNNN>.csv`` (one per timepoint; header only when
    the frame has no object) and ``metrics.csv`` (all timepoints) in `output_dir`.
    Frames are measured in `threads` worker processes when the position is large
    (`spheroseg.runtime.frame_workers`) and written in time order; the outputs
    do not depend on `threads`. The rows (text) are kept until the end, since
    ``is_main_body`` (:mod:`spheroseg.measure.bodies`) needs every frame of the position.
    Units come from the labels' metadata.

    Parameters
    ----------
    labels_path, probabilities_path, image_path : str or PathLike
        NGFF images with the same number of frames and plane shape.
    output_dir : str or PathLike
        Folder of the position's results.
    experiment, position : str
        Names written in the CSV rows.
    channel : int
        Channel of the raw image for ``mean_intensity``.
    threshold : float, optional
        Contour level; by default the per-frame threshold recorded by ``segment``
        (segment's default if none was recorded).
    smoothing : "auto", float or None
        See :func:`trace_object`.
    threads : int, optional
        Worker processes; by default the CPUs this process may use.

    Returns
    -------
    int
        Number of rows (objects over all timepoints).

    Raises
    ------
    ValueError
        If an input is not an NGFF image, the grids differ or `channel` is out of range.
    TypeError
        If the labels are not integers.
    """
    from spheroseg.atomic import atomic_path, write_text

    if threshold is not None:
        check_threshold(threshold)
    check_smoothing(smoothing)
    paths = {"labels": labels_path, "probabilities": probabilities_path, "image": image_path}
    frames, metadata = _check_same_grid(paths)
    units = dict(pixel_size_um=metadata.pixel_size_um, time_interval_s=metadata.time_interval_s)
    columns = metric_columns(**units)
    thresholds = _frame_thresholds(labels_path, frames, threshold)
    output = Path(output_dir)
    frame_rows: list[list[list[str]]] = []
    naming = FrameNaming(experiment, position, units["pixel_size_um"], units["time_interval_s"])
    measured = _measured_frames({name: str(path) for name, path in paths.items()}, thresholds,
                                channel=channel, smoothing=smoothing, naming=naming,
                                threads=threads, plane=metadata.shape[-2:])
    with atomic_path(output / "contours.geojson") as geojson_tmp, \
            atomic_path(output / "metrics", directory=True) as metrics_tmp, \
            open(geojson_tmp, "w", encoding="utf-8") as geojson:
        geojson.write('{"type":"FeatureCollection","features":[')
        separator = "\n"
        for rows, features in measured:
            frame_rows.append(rows)
            for feature in features:
                geojson.write(separator + feature)
                separator = ",\n"
        geojson.write("\n]}\n")
        _write_frame_tables(metrics_tmp, columns, frame_rows)
    all_rows = [row for rows in frame_rows for row in rows]
    write_text(output / "metrics.csv", format_csv(columns, all_rows))
    return len(all_rows)


@dataclasses.dataclass(frozen=True)
class FrameNaming:
    """What every row of a position carries: its names and units."""

    experiment: str
    position: str
    pixel_size_um: float | None
    time_interval_s: float | None


def _measured_frames(paths: dict[str, str], thresholds: list[float], *, channel: int,
                     smoothing: str | float | None, naming: FrameNaming, threads: int | None,
                     plane: tuple[int, ...]) -> Iterator[tuple[list[list[str]], list[str]]]:
    """CSV rows and GeoJSON features of every frame in time order, from worker processes
    (which also format them: text for thousands of contour points is a third of the work)
    when it pays."""
    from spheroseg.runtime import frame_workers

    workers = frame_workers(threads, frames=len(thresholds), plane=plane)
    calls = ((paths, t, thresholds[t], channel, smoothing, naming) for t in range(len(thresholds)))
    if workers <= 1:
        from spheroseg import ngff

        sources = {name: ngff.open_frames(path) for name, path in paths.items()}
        for args in calls:
            yield _measure_one(sources, *args)
        return
    from spheroseg.runtime import ordered_map, process_pool

    with process_pool(workers, preload=[__name__]) as pool:
        yield from ordered_map(pool, _measure_in_worker, calls, depth=2 * workers)


def _measure_one(sources: dict[str, Any], paths: dict[str, str], t: int, threshold: float,
                 channel: int, smoothing: str | float | None,
                 naming: FrameNaming) -> tuple[list[list[str]], list[str]]:
    """Read frame `t` of the three images, measure it, and format its rows and features."""
    from spheroseg import ngff

    measurements = measure_frame(
        np.asarray(ngff.read_frame(sources["labels"], t)),
        np.asarray(ngff.read_frame(sources["probabilities"], t), dtype=np.float32),
        ngff.read_frame(sources["image"], t, channel=channel),
        threshold=threshold, smoothing=smoothing)
    units = dict(pixel_size_um=naming.pixel_size_um, time_interval_s=naming.time_interval_s)
    columns = metric_columns(**units)
    rows = metric_rows(measurements, experiment=naming.experiment, position=naming.position,
                       timepoint=t, **units)
    features = [geojson_feature(item, geojson_properties(columns, row))
                for item, row in zip(measurements, rows, strict=True)]
    return rows, features


def _measure_in_worker(paths: dict[str, str], *args: Any) -> tuple[list[list[str]], list[str]]:
    """`_measure_one` in a worker process, which keeps its frame readers between frames."""
    from spheroseg import ngff

    key = tuple(sorted(paths.items()))
    if key not in _WORKER_SOURCES:  # a worker lives for one measure_store call
        _WORKER_SOURCES[key] = {name: ngff.open_frames(path) for name, path in paths.items()}
    return _measure_one(_WORKER_SOURCES[key], paths, *args)


def _write_frame_tables(folder: Path, columns: list[str], frames: list[list[list[str]]]) -> None:
    """Mark the main bodies (they need every frame) and write ``t<NNNN>.csv`` per frame."""
    from spheroseg.atomic import write_text

    mark_main_bodies(columns, frames)
    for t, rows in enumerate(frames):
        write_text(folder / f"t{t:04d}.csv", format_csv(columns, rows))
