"""The ``measure`` stage on disk: read labels, probabilities and image (NGFF) frame by frame,
write ``contours.geojson``, ``metrics/t<NNNN>.csv`` and ``metrics.csv``, each atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

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


def _frames_and_shape(metadata: ImageMetadata) -> tuple[int, tuple[int, ...]]:
    """(number of timepoints, (Y, X)) of an NGFF image."""
    axes, shape = metadata.axes, metadata.shape
    return (shape[axes.index("t")] if "t" in axes else 1), tuple(shape[-2:])


def _check_same_grid(paths: Mapping[str, str | os.PathLike[str]]) -> tuple[int, ImageMetadata]:
    """Read metadata of the named images; raise unless all have the same T, Y and X."""
    from spheroseg import ngff

    metadata = {name: ngff.read_metadata(path) for name, path in paths.items()}
    grids = {name: _frames_and_shape(meta) for name, meta in metadata.items()}
    frames, plane = grids["labels"]
    for name, (count, shape) in grids.items():
        if (count, shape) != (frames, plane):
            raise ValueError(f"{name} must have {frames} frames of {plane[0]} x {plane[1]} "
                             f"pixels like the labels, got {count} frames of "
                             f"{shape[0]} x {shape[1]} (in {paths[name]})")
    if metadata["labels"].dtype.kind not in "iu":
        raise TypeError(f"labels must have an integer dtype, got {metadata['labels'].dtype!r} "
                        f"(in {paths['labels']})")
    return frames, metadata["labels"]


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
                  smoothing: str | float | None = "auto") -> int:
    """Measure every object of every frame of one position and write contours and CSVs.

    Writes, each atomically, ``contours.geojson`` (a FeatureCollection, one Feature per
    object per timepoint), ``metrics/t<NNNN>.csv`` (one per timepoint; header only when
    the frame has no object) and ``metrics.csv`` (all timepoints) in `output_dir`.
    Frames are processed one at a time; the rows (text) are kept until the end, since
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
    from spheroseg import ngff
    from spheroseg.atomic import atomic_path, write_text

    if threshold is not None:
        check_threshold(threshold)
    check_smoothing(smoothing)
    paths = {"labels": labels_path, "probabilities": probabilities_path, "image": image_path}
    frames, metadata = _check_same_grid(paths)
    units = dict(pixel_size_um=metadata.pixel_size_um, time_interval_s=metadata.time_interval_s)
    columns = metric_columns(**units)
    arrays = {name: ngff.open_array(path) for name, path in paths.items()}
    thresholds = _frame_thresholds(labels_path, frames, threshold)
    output = Path(output_dir)
    frame_rows: list[list[list[str]]] = []
    with atomic_path(output / "contours.geojson") as geojson_tmp, \
            atomic_path(output / "metrics", directory=True) as metrics_tmp, \
            open(geojson_tmp, "w", encoding="utf-8") as geojson:
        geojson.write('{"type":"FeatureCollection","features":[')
        separator = "\n"
        for t in range(frames):
            measurements = measure_frame(
                np.asarray(ngff.read_frame(arrays["labels"], t)),
                np.asarray(ngff.read_frame(arrays["probabilities"], t), dtype=np.float32),
                ngff.read_frame(arrays["image"], t, channel=channel),
                threshold=thresholds[t], smoothing=smoothing)
            rows = metric_rows(measurements, experiment=experiment, position=position,
                               timepoint=t, **units)
            frame_rows.append(rows)
            for item, row in zip(measurements, rows, strict=True):
                geojson.write(separator + geojson_feature(item, geojson_properties(columns, row)))
                separator = ",\n"
        geojson.write("\n]}\n")
        _write_frame_tables(metrics_tmp, columns, frame_rows)
    all_rows = [row for rows in frame_rows for row in rows]
    write_text(output / "metrics.csv", format_csv(columns, all_rows))
    return len(all_rows)


def _write_frame_tables(folder: Path, columns: list[str], frames: list[list[list[str]]]) -> None:
    """Mark the main bodies (they need every frame) and write ``t<NNNN>.csv`` per frame."""
    from spheroseg.atomic import write_text

    mark_main_bodies(columns, frames)
    for t, rows in enumerate(frames):
        write_text(folder / f"t{t:04d}.csv", format_csv(columns, rows))
