"""Temporal quality control: frames and objects that deserve a second look.

A QC table (``qc.csv``) is tidy: one row per flag, with the columns of :data:`QC_COLUMNS`.
The flags are

``area_jump``
    An object's area changes by more than a fraction of its area in the previous frame
    (``value`` is the signed relative change, e.g. ``0.27`` for +27 %).
``appears`` / ``vanishes``
    An object id present at ``timepoint`` but not in the previous frame, or present in the
    previous frame but not at ``timepoint`` (``value`` is empty).
``touches_border``
    The object touches the image border, so its shape is cut off (``value`` is empty).

These four concern the main bodies only (``is_main_body``): shed fragments come and go in
every frame, and flagging each would shade every frame.
``uncertain_frame``
    More than a fraction of the frame's pixels have a foreground probability in
    [0.3, 0.7]: the model is unsure there (``value`` is that share; ``object_id`` is empty).
``blank_frame``
    The raw frame is constant (every pixel the same value): a blank or padding page, or a
    shutter that did not open; ingest lists such frames in the image's attributes.
``no_objects``
    The frame has no object, so it has no row in the metrics: the size filter of segment
    removed every object (``value`` is the largest removed area and ``limit`` the minimum
    area, both in the metrics' area unit; segment records what it removed in the labels'
    attributes), or no pixel passed the threshold at all (``value`` 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from spheroseg.report.series import main_body_mask

QC_COLUMNS = ["experiment", "position", "timepoint", "time_h", "object_id", "flag", "value",
              "limit", "message"]
FLAGS = ("area_jump", "appears", "vanishes", "touches_border", "uncertain_frame", "blank_frame",
         "no_objects")
# How figures name each flag.
FLAG_NAMES = {"area_jump": "area jump", "appears": "object appears",
              "vanishes": "object vanishes", "uncertain_frame": "model unsure",
              "touches_border": "touches border", "blank_frame": "blank frame",
              "no_objects": "no object"}
# Flags that mark a whole frame as suspicious in plots (touches_border marks single points).
FRAME_FLAGS = ("area_jump", "appears", "vanishes", "uncertain_frame", "blank_frame", "no_objects")
UNSURE_LOW, UNSURE_HIGH = 0.3, 0.7


def uncertain_share(probabilities: NDArray, *, low: float = UNSURE_LOW,
                    high: float = UNSURE_HIGH) -> float:
    """Share of pixels whose foreground probability lies in ``[low, high]``.

    Parameters
    ----------
    probabilities : ndarray of shape (Y, X), float
        Foreground probabilities in [0, 1].
    low, high : float
        Closed interval counted as "unsure".

    Returns
    -------
    float
        Share in [0, 1] (0 for an empty frame).

    Raises
    ------
    ValueError
        If the interval is not ``0 <= low <= high <= 1``.

    Examples
    --------
    >>> uncertain_share(np.array([[0.0, 0.3], [0.5, 0.9]]))
    0.5
    """
    if not 0 <= low <= high <= 1:
        raise ValueError(f"low and high must satisfy 0 <= low <= high <= 1, got {(low, high)!r}")
    values = np.asarray(probabilities, dtype=np.float32)
    if values.size == 0:
        return 0.0
    return float(np.count_nonzero((values >= low) & (values <= high)) / values.size)


def uncertain_shares(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    """:func:`uncertain_share` of every frame of a ``probabilities.ome.zarr``, one frame at a time.

    Returns
    -------
    ndarray of shape (T,), float64

    Raises
    ------
    ValueError
        If `path` is not an NGFF image.
    """
    from spheroseg import ngff

    frames, _ = ngff.frames_and_plane(ngff.read_metadata(path))
    array = ngff.open_array(path)
    return np.array([uncertain_share(ngff.read_frame(array, t)) for t in range(frames)])


def area_column(columns: Sequence[str], *, source: str | os.PathLike[str] = "metrics") -> str:
    """Name of the area column (``area_um2`` or, with unknown pixel size, ``area_px2``).

    Raises
    ------
    ValueError
        If there is neither.

    Examples
    --------
    >>> area_column(["timepoint", "area_px2"])
    'area_px2'
    """
    for name in ("area_um2", "area_px2"):
        if name in columns:
            return name
    raise ValueError(f"metrics must have an 'area_um2' or 'area_px2' column, got "
                     f"{list(columns)!r} (in {source})")


def _flag(timepoint: int, object_id: int | None, flag: str, value: float | None,
          limit: float | None, message: str) -> dict[str, object]:
    """One QC row without experiment, position and time."""
    return {"timepoint": int(timepoint), "object_id": object_id, "flag": flag, "value": value,
            "limit": limit, "message": message}


def area_jump_flags(metrics: pd.DataFrame, *, fraction: float) -> list[dict[str, object]]:
    """Flags for objects whose area changes by more than `fraction` between consecutive frames.

    Parameters
    ----------
    metrics : DataFrame
        One position: ``timepoint``, ``object_id`` and an area column.
    fraction : float
        Largest accepted relative change, ``|a_t - a_{t-1}| / a_{t-1}``.

    Returns
    -------
    list of dict
        One flag per (object, timepoint) whose change exceeds `fraction`, at the later frame.

    Examples
    --------
    >>> table = pd.DataFrame({"timepoint": [0, 1, 2], "object_id": [1, 1, 1],
    ...                       "area_um2": [100.0, 130.0, 131.0]})
    >>> [(f["timepoint"], round(f["value"], 2)) for f in area_jump_flags(table, fraction=0.2)]
    [(1, 0.3)]
    """
    area = area_column(list(metrics.columns))
    flags = []
    table = metrics.sort_values(["object_id", "timepoint"])
    for object_id, rows in table.groupby("object_id", sort=True):
        times = rows["timepoint"].to_numpy()
        areas = rows[area].to_numpy(dtype=float)
        for index in np.flatnonzero(np.diff(times) == 1):
            before, after = areas[index], areas[index + 1]
            if not before > 0 or not np.isfinite(after):
                continue
            change = (after - before) / before
            if abs(change) > fraction:
                flags.append(_flag(times[index + 1], int(object_id), "area_jump", float(change),
                                   fraction, f"area {change:+.0%} since the previous frame"))
    return flags


def presence_flags(metrics: pd.DataFrame, *, n_frames: int) -> list[dict[str, object]]:
    """Flags for object ids that appear or vanish between consecutive frames.

    Parameters
    ----------
    metrics : DataFrame
        One position: ``timepoint`` and ``object_id``.
    n_frames : int
        Number of frames of the position (frames without any object have no rows).

    Returns
    -------
    list of dict
        ``appears`` at the first frame of a new id (after frame 0), ``vanishes`` at the
        first frame where an id present just before is missing.

    Examples
    --------
    >>> table = pd.DataFrame({"timepoint": [0, 1, 1, 2], "object_id": [1, 1, 2, 2]})
    >>> [(f["timepoint"], f["object_id"], f["flag"]) for f in presence_flags(table, n_frames=3)]
    [(1, 2, 'appears'), (2, 1, 'vanishes')]
    """
    present = [set() for _ in range(n_frames)]
    for t, object_id in zip(metrics["timepoint"], metrics["object_id"]):
        present[int(t)].add(int(object_id))
    flags = []
    for t in range(1, n_frames):
        for object_id in sorted(present[t] - present[t - 1]):
            flags.append(_flag(t, object_id, "appears", None, None,
                               "object not in the previous frame"))
        for object_id in sorted(present[t - 1] - present[t]):
            flags.append(_flag(t, object_id, "vanishes", None, None,
                               "object of the previous frame is missing"))
    return flags


def border_flags(metrics: pd.DataFrame) -> list[dict[str, object]]:
    """Flags for objects touching the image border (``touches_border`` true).

    Examples
    --------
    >>> table = pd.DataFrame({"timepoint": [0, 1], "object_id": [1, 1],
    ...                       "touches_border": ["false", "true"]})
    >>> [(f["timepoint"], f["flag"]) for f in border_flags(table)]
    [(1, 'touches_border')]
    """
    touching = metrics["touches_border"].astype(str).str.lower().isin(["true", "1"])
    return [_flag(t, int(object_id), "touches_border", None, None,
                  "object touches the image border: its shape is cut off")
            for t, object_id in zip(metrics["timepoint"][touching], metrics["object_id"][touching])]


def uncertain_flags(shares: Sequence[float], *, fraction: float) -> list[dict[str, object]]:
    """Flags for frames where more than `fraction` of the pixels are unsure.

    Examples
    --------
    >>> [(f["timepoint"], f["value"]) for f in uncertain_flags([0.01, 0.2], fraction=0.05)]
    [(1, 0.2)]
    """
    return [_flag(t, None, "uncertain_frame", float(share), fraction,
                  f"{share:.1%} of pixels have a probability in [{UNSURE_LOW}, {UNSURE_HIGH}]")
            for t, share in enumerate(shares) if share > fraction]


def blank_flags(frames: Sequence[int]) -> list[dict[str, object]]:
    """Flags for constant raw frames (from the image's ``spheroseg.blank_frames``).

    Examples
    --------
    >>> [(f["timepoint"], f["flag"]) for f in blank_flags([1])]
    [(1, 'blank_frame')]
    """
    return [_flag(t, None, "blank_frame", None, None,
                  "the raw frame is constant (blank or padding page?)") for t in frames]


def no_object_flags(record: dict[str, object], *,
                    pixel_size_um: float | None) -> list[dict[str, object]]:
    """Flags for frames without an object (``no_objects``): the size filter removed them all,
    or thresholding found none.

    Parameters
    ----------
    record : dict
        The labels' ``spheroseg.segment`` attributes (see
        :func:`spheroseg.segmentation.read_segmentation_record`): per-frame ``objects``,
        ``removed_objects`` and ``largest_removed_px``, and ``min_area_px`` /
        ``min_area_um2``. A record without the per-frame lists (labels written before they
        existed) gives no flag.
    pixel_size_um : float or None
        Pixel size of the labels: areas in µm² when known, else in px².

    Returns
    -------
    list of dict

    Examples
    --------
    >>> record = {"objects": [1, 0, 0], "removed_objects": [3, 2, 0],
    ...           "largest_removed_px": [40.0, 120.0, 0.0], "min_area_px": 500.0,
    ...           "min_area_um2": 2000.0}
    >>> [(f["timepoint"], f["value"], f["limit"]) for f in no_object_flags(record, pixel_size_um=2.0)]
    [(1, 480.0, 2000.0), (2, 0.0, 2000.0)]
    """
    counts = [record.get(key) for key in ("objects", "removed_objects", "largest_removed_px")]
    if not all(isinstance(values, list) for values in counts):
        return []
    scale, unit = (1.0, "px²") if pixel_size_um is None else (pixel_size_um ** 2, "µm²")
    limit = float(record.get("min_area_px") or 0.0) * scale
    key = "segment.min_area_um2" if record.get("min_area_um2") is not None else "segment.min_area_px"
    flags = []
    for t, (kept, removed, largest) in enumerate(zip(*counts)):
        if kept == 0 and removed > 0:
            value = float(largest) * scale
            flags.append(_flag(t, None, "no_objects", value, limit,
                               f"the size filter removed all {removed} object(s): the largest "
                               f"had {value:.4g} {unit}, below the minimum of {limit:.4g} {unit} "
                               f"({key})"))
        elif kept == 0:
            flags.append(_flag(t, None, "no_objects", 0.0, limit,
                               "no pixel passed the threshold (segment.threshold, "
                               "segment.method): the model found nothing to measure"))
    return flags


def _check_metrics(metrics: pd.DataFrame, n_frames: int, source: str | os.PathLike[str]) -> None:
    """Raise unless the table has the QC columns and timepoints in [0, n_frames)."""
    needed = ["timepoint", "object_id", "touches_border"]
    missing = [name for name in needed if name not in metrics.columns]
    if missing:
        raise ValueError(f"metrics must have the columns {needed!r}, got "
                         f"{list(metrics.columns)!r} (in {source})")
    area_column(list(metrics.columns), source=source)
    times = metrics["timepoint"]
    if len(times) and (times.min() < 0 or times.max() >= n_frames):
        raise ValueError(f"timepoint must be in [0, {n_frames - 1}] (the probability maps have "
                         f"{n_frames} frames), got {int(times.max())!r} (in {source})")


def check_limits(*, area_jump_fraction: float, uncertain_fraction: float) -> None:
    """Raise ValueError unless ``area_jump_fraction > 0`` and ``0 < uncertain_fraction <= 1``."""
    for name, value, high in (("area_jump_fraction", area_jump_fraction, math.inf),
                              ("uncertain_fraction", uncertain_fraction, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high:
            expectation = "> 0" if high == math.inf else f"in (0, {high:g}]"
            raise ValueError(f"{name} must be {expectation}, got {value!r}")


def position_qc(metrics: pd.DataFrame, shares: Sequence[float], *, experiment: str,
                position: str, area_jump_fraction: float, uncertain_fraction: float,
                time_interval_s: float | None = None,
                source: str | os.PathLike[str] = "metrics",
                blank_frames: Sequence[int] = (),
                emptied: Sequence[dict[str, object]] = ()) -> pd.DataFrame:
    """All QC flags of one position.

    Parameters
    ----------
    metrics : DataFrame
        The position's metrics (``timepoint``, ``object_id``, an area column,
        ``touches_border`` and ``is_main_body``, computed when absent); frames without objects
        have no rows. Object flags (area jumps, appearances, border contact) concern the main
        bodies only: shed fragments come and go in every frame.
    shares : sequence of float, length T
        :func:`uncertain_share` of each frame; its length is the number of frames.
    experiment, position : str
        Names written into the table.
    area_jump_fraction, uncertain_fraction : float
        Limits of :func:`area_jump_flags` and :func:`uncertain_flags`.
    time_interval_s : float, optional
        Frame interval, for the ``time_h`` column (empty when unknown).
    source : str or PathLike
        Where `metrics` came from, for error messages.
    blank_frames : sequence of int
        Timepoints whose raw frame is constant (`blank_flags`).
    emptied : sequence of dict
        ``no_objects`` flags of the frames the size filter emptied (`no_object_flags`).

    Returns
    -------
    DataFrame
        Columns :data:`QC_COLUMNS`, sorted by timepoint, object id (frame flags first) and flag.

    Raises
    ------
    ValueError
        If a column is missing, a timepoint is outside the frames or a limit is out of range
        (:func:`check_limits`).
    """
    check_limits(area_jump_fraction=area_jump_fraction, uncertain_fraction=uncertain_fraction)
    _check_metrics(metrics, len(shares), source)
    bodies = metrics[main_body_mask(metrics)] if len(metrics) else metrics
    flags = (area_jump_flags(bodies, fraction=area_jump_fraction)
             + presence_flags(bodies, n_frames=len(shares)) + border_flags(bodies)
             + uncertain_flags(shares, fraction=uncertain_fraction)
             + blank_flags([t for t in blank_frames if 0 <= t < len(shares)])
             + [flag for flag in emptied if 0 <= int(flag["timepoint"]) < len(shares)])
    table = pd.DataFrame(flags, columns=["timepoint", "object_id", "flag", "value", "limit",
                                         "message"])
    table.insert(0, "experiment", experiment)
    table.insert(1, "position", position)
    hours = None if time_interval_s is None else table["timepoint"] * time_interval_s / 3600
    table.insert(3, "time_h", hours)
    table["object_id"] = table["object_id"].astype("Int64")
    return sort_qc(table)


def sort_qc(table: pd.DataFrame) -> pd.DataFrame:
    """QC rows in a stable order: position, timepoint, object (frame flags first), flag."""
    order = table.assign(_flag=table["flag"].map(FLAGS.index))
    order = order.sort_values(["position", "timepoint", "object_id", "_flag"], kind="stable",
                              na_position="first")
    return order.drop(columns="_flag").reset_index(drop=True)[QC_COLUMNS]


def write_qc(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a QC table as CSV atomically (numbers with 10 significant digits)."""
    from spheroseg.atomic import write_text

    write_text(path, table[QC_COLUMNS].to_csv(index=False, float_format="%.10g",
                                              lineterminator="\n"))


def read_qc(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a QC table written by :func:`write_qc`.

    Raises
    ------
    ValueError
        If the file is missing or its header is not :data:`QC_COLUMNS`.
    """
    if not Path(path).is_file():
        raise ValueError(f"QC table must be an existing file, got {str(path)!r}")
    table = pd.read_csv(path, dtype={"experiment": str, "position": str, "flag": str,
                                     "message": str})
    if list(table.columns) != QC_COLUMNS:
        raise ValueError(f"QC table columns must be {QC_COLUMNS!r}, got "
                         f"{list(table.columns)!r} (in {path})")
    table["object_id"] = table["object_id"].astype("Int64")
    return table


def merge_qc(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenate per-position QC tables into one experiment table, sorted.

    Raises
    ------
    ValueError
        If `paths` is empty or a table is malformed.
    """
    if not paths:
        raise ValueError("paths must name at least one QC table, got none")
    tables = [read_qc(path) for path in paths]
    tables = [table for table in tables if len(table)] or tables[:1]
    return sort_qc(pd.concat(tables, ignore_index=True))


def flagged_timepoints(qc: pd.DataFrame, *, flags: Sequence[str] = FRAME_FLAGS) -> dict[int, list[str]]:
    """Timepoint -> sorted distinct flags among `flags` raised there.

    Examples
    --------
    >>> qc = pd.DataFrame({"timepoint": [5, 5, 6], "flag": ["area_jump", "uncertain_frame",
    ...                    "touches_border"]})
    >>> flagged_timepoints(qc)
    {5: ['area_jump', 'uncertain_frame']}
    """
    chosen = qc[qc["flag"].isin(list(flags))]
    return {int(t): sorted(set(rows["flag"])) for t, rows in chosen.groupby("timepoint")}


def emptied_positions(path: str | os.PathLike[str]) -> list[str]:
    """Console lines naming the positions with frames without an object (``no_objects``).

    One line per position: how many frames, which, and why (the largest removed area and
    the key, or that nothing passed the threshold).
    Empty when the QC table is missing (a run that did not reach QC) or has no such flag.

    Raises
    ------
    ValueError
        If the table exists but is malformed.
    """
    if not Path(path).is_file():
        return []
    table = read_qc(path)
    emptied = table[table["flag"] == "no_objects"]
    lines = []
    for position, rows in emptied.groupby("position", sort=True):
        times = ", ".join(f"t{int(t)}" for t in rows["timepoint"][:10])
        more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
        largest = rows.loc[rows["value"].idxmax()]
        lines.append(f"position {position!r}: no object left in {len(rows)} frame(s) "
                     f"({times}{more}); at t{int(largest['timepoint'])} {largest['message']}")
    return lines
