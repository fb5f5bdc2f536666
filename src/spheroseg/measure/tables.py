"""Measurements as text: the tidy metrics CSV (columns with units, one row per object) and
GeoJSON geometry of the contours."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from spheroseg.measure.frame import ObjectMeasurement
from spheroseg.measure.shapes import LENGTH_POWER, METRICS, ObjectContour


def metric_columns(*, pixel_size_um: float | None, time_interval_s: float | None) -> list[str]:
    """CSV header: units in the names (µm/s when known, else px/frame).

    Examples
    --------
    >>> metric_columns(pixel_size_um=None, time_interval_s=None)[3:7]
    ['time_frame', 'object_id', 'area_px2', 'perimeter_px']
    """
    length = "um" if pixel_size_um is not None else "px"
    names = []
    for metric in METRICS:
        power = LENGTH_POWER.get(metric, 1)
        names.append(metric if power == 0 else f"{metric}_{length}{'2' if power == 2 else ''}")
    time = "time_s" if time_interval_s is not None else "time_frame"
    return ["experiment", "position", "timepoint", time, "object_id", *names,
            "mean_intensity", "touches_border", "is_main_body"]


def _format(value: float) -> str:
    """Fixed notation with 6 decimals; empty for NaN or infinity (missing in pandas and R)."""
    return f"{value:.6f}" if math.isfinite(value) else ""


def metric_rows(measurements: list[ObjectMeasurement], *, experiment: str, position: str,
                timepoint: int, pixel_size_um: float | None,
                time_interval_s: float | None) -> list[list[str]]:
    """CSV rows (strings, in :func:`metric_columns` order) of one frame, sorted by object id.

    The last column, ``is_main_body``, needs every frame of the position: the rows end before
    it until :func:`mark_main_bodies` appends it.

    Examples
    --------
    >>> from spheroseg.measure.frame import measure_frame
    >>> labels = np.zeros((9, 9), np.int32); labels[2:7, 2:7] = 1
    >>> rows = metric_rows(measure_frame(labels, labels * 1.0), experiment="e", position="p",
    ...                    timepoint=2, pixel_size_um=0.5, time_interval_s=60.0)
    >>> rows[0][:6]
    ['e', 'p', '2', '120.000000', '1', '6.088763']
    """
    scale = 1.0 if pixel_size_um is None else float(pixel_size_um)
    time = timepoint * (1.0 if time_interval_s is None else float(time_interval_s))
    rows = []
    for item in sorted(measurements, key=lambda m: m.object_id):
        values = [item.metrics[name] * scale ** LENGTH_POWER.get(name, 1) for name in METRICS]
        rows.append([experiment, position, str(timepoint),
                     _format(time) if time_interval_s is not None else str(timepoint),
                     str(item.object_id), *map(_format, values), _format(item.mean_intensity),
                     "true" if item.touches_border else "false"])
    return rows


def mark_main_bodies(columns: list[str], frames: list[list[list[str]]]) -> None:
    """Append ``is_main_body`` (``true``/``false``) to the rows of every frame of one position.

    Parameters
    ----------
    columns : list of str
        :func:`metric_columns`, ending in ``is_main_body``.
    frames : list of list of rows
        Each frame's rows from :func:`metric_rows`; changed in place.

    Examples
    --------
    >>> columns = metric_columns(pixel_size_um=None, time_interval_s=None)
    >>> frames = [[["e", "p", "0", "0", "1", "900"], ["e", "p", "0", "0", "2", "20"]]]
    >>> mark_main_bodies(columns, frames)
    >>> [row[-1] for row in frames[0]]
    ['true', 'false']
    """
    from spheroseg.measure.bodies import main_body_flags

    rows = [row for frame in frames for row in frame]
    ids = [int(row[columns.index("object_id")]) for row in rows]
    area = columns.index(next(name for name in columns if name.startswith("area_")))
    flags = main_body_flags(ids, [float(row[area]) if row[area] else 0.0 for row in rows])
    for row, flag in zip(rows, flags, strict=True):
        row.append("true" if flag else "false")


def format_csv(columns: list[str], rows: list[list[str]]) -> str:
    """CSV text (comma separated, quoted only where needed, ``\\n`` line ends)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _ring(vertices: NDArray) -> list[list[float]]:
    """GeoJSON ring: [x, y] with the image's top-left corner at (0, 0), 3 decimals."""
    # tolist() gives the same Python floats as float() of each element, without a numpy
    # scalar per coordinate.
    return [[round(x + 0.5, 3), round(y + 0.5, 3)] for y, x in np.asarray(vertices).tolist()]


def _inside(point: NDArray, polygon: NDArray) -> bool:
    """Even-odd rule: is `point` (y, x) inside the closed polygon?"""
    y, x = point
    y0, x0, y1, x1 = polygon[:-1, 0], polygon[:-1, 1], polygon[1:, 0], polygon[1:, 1]
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return bool(np.count_nonzero(crosses & (x < at)) % 2)


def contour_geometry(contour: ObjectContour) -> dict[str, object]:
    """GeoJSON Polygon (or MultiPolygon for several outer boundaries) of a contour.

    Coordinates are ``[x, y]`` in pixels with the top-left corner of the image at
    ``(0, 0)`` (so pixel ``(row, col)`` covers ``[col, col + 1] x [row, row + 1]``), the
    convention of QuPath and of GIS tools opening an image; exterior rings counter-clockwise,
    holes clockwise (RFC 7946, with y pointing down).
    """
    parts: list[list[list[list[float]]]] = [[_ring(outer)] for outer in contour.outers]
    for hole in contour.holes:
        owner = next((index for index, outer in enumerate(contour.outers)
                      if _inside(hole[0], outer)), 0)
        if parts:
            parts[owner].append(_ring(hole))
    if len(parts) == 1:
        return {"type": "Polygon", "coordinates": parts[0]}
    return {"type": "MultiPolygon", "coordinates": parts}

def geojson_feature(item: ObjectMeasurement, properties: dict[str, object]) -> str:
    """One GeoJSON Feature as compact JSON text."""
    import json

    return json.dumps({"type": "Feature", "geometry": contour_geometry(item.contour),
                       "properties": {**properties, "object_id": item.object_id,
                                      "touches_border": item.touches_border,
                                      "smoothed": item.contour.smoothed}},
                      separators=(",", ":"))


def geojson_properties(columns: list[str], row: list[str]) -> dict[str, object]:
    """Experiment, position, timepoint and time of a CSV row as GeoJSON properties."""
    experiment, position, timepoint, time = row[:4]
    return {"experiment": experiment, "position": position, "timepoint": int(timepoint),
            columns[3]: float(time)}
