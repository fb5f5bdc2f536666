"""Reading metrics CSVs for reports: column checks, time in hours, axis labels with units."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

# Metric -> (label, unit power): 2 = an area, 1 = a length, 0 = a ratio (no unit).
PLOTTED_METRICS = {
    "area": ("Area", 2),
    "perimeter": ("Perimeter", 1),
    "circularity": ("Circularity (4πA/P², 1 = disk)", 0),
    "aspect_ratio": ("Aspect ratio (major / minor axis)", 0),
}
_TEXT_COLUMNS = {"experiment": str, "position": str}


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a metrics CSV (per position or per experiment) written by ``spheroseg measure``.

    Returns
    -------
    DataFrame
        ``experiment`` and ``position`` as ``str``, ``timepoint`` and ``object_id`` as int.

    Raises
    ------
    ValueError
        If the file is missing, empty, or lacks ``position``, ``timepoint`` or ``object_id``.
    """
    if not Path(path).is_file():
        raise ValueError(f"metrics CSV must be an existing file, got {str(path)!r}")
    try:
        table = pd.read_csv(path, dtype=_TEXT_COLUMNS, keep_default_na=False,
                            na_values=[""])
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"metrics CSV must have a header row, got an empty file (in {path})") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"metrics CSV must be UTF-8 text, got bytes that are not ({err.reason} at byte "
                         f"{err.start}) (in {path})") from err
    needed = ["position", "timepoint", "object_id"]
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise ValueError(f"metrics CSV must have the columns {needed!r}, got "
                         f"{list(table.columns)!r} (in {path})")
    return table.astype({"timepoint": int, "object_id": int})


def metric_column(columns: list[str], metric: str) -> str:
    """Column holding `metric` (``area`` -> ``area_um2`` or ``area_px2``).

    Raises
    ------
    ValueError
        If no column holds it.

    Examples
    --------
    >>> metric_column(["area_px2", "circularity"], "area")
    'area_px2'
    """
    power = PLOTTED_METRICS.get(metric, ("", 1))[1]
    suffix = {2: ("_um2", "_px2"), 1: ("_um", "_px"), 0: ("",)}[power]
    for name in (metric + end for end in suffix):
        if name in columns:
            return name
    raise ValueError(f"metrics must have a column for {metric!r} "
                     f"({' or '.join(metric + end for end in suffix)}), got {columns!r}")


def axis_label(column: str) -> str:
    """Axis label with units for a metrics column.

    Examples
    --------
    >>> axis_label("area_um2")
    'Area (µm²)'
    >>> axis_label("perimeter_px")
    'Perimeter (px; pixel size unknown)'
    """
    for metric, (label, power) in PLOTTED_METRICS.items():
        if power == 0 and column == metric:
            return label
        if power and column.startswith(metric + "_"):
            unit = column[len(metric) + 1:]
            if unit.startswith("um"):
                return f"{label} (µm{'²' if power == 2 else ''})"
            return f"{label} (px{'²' if power == 2 else ''}; pixel size unknown)"
    return column


def time_hours(table: pd.DataFrame) -> tuple[pd.Series, str]:
    """Time of each row for plotting, and the axis label.

    Hours from ``time_s`` when the frame interval is known, else the frame index.

    Examples
    --------
    >>> values, label = time_hours(pd.DataFrame({"timepoint": [0, 1], "time_s": [0.0, 1800.0]}))
    >>> values.tolist(), label
    ([0.0, 0.5], 'Time (h)')
    """
    if "time_s" in table.columns:
        return table["time_s"].astype(float) / 3600.0, "Time (h)"
    return table["timepoint"].astype(float), "Frame (frame interval unknown)"
