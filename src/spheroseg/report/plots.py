"""Metric plots over time: per position (one line per object) and across an experiment.

Figures are drawn with matplotlib's Agg backend (no display needed) and saved with fixed
metadata so the same table gives the same PNG and SVG bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
# Titles and legends hold experiment and position names: a '$' there is text, not mathtext.
matplotlib.rcParams["text.parse_math"] = False

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from spheroseg.report.qc import FLAG_NAMES, FRAME_FLAGS, flagged_timepoints  # noqa: E402
from spheroseg.report.style import FLAG_COLOUR, object_colours  # noqa: E402
from spheroseg.report.tables import PLOTTED_METRICS, axis_label, metric_column, time_hours  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Above this many timepoints per object, lines are drawn without point markers.
MAX_MARKED_POINTS = 40
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
         "svg.hashsalt": "spheroseg", "axes.spines.top": False, "axes.spines.right": False}


def frame_step(metrics: pd.DataFrame) -> float:
    """Time between frames in the units of :func:`time_hours` (hours, or 1 frame).

    Examples
    --------
    >>> frame_step(pd.DataFrame({"timepoint": [0, 2], "time_s": [0.0, 3600.0]}))
    0.5
    """
    later = metrics[metrics["timepoint"] > 0]
    if "time_s" not in metrics.columns or later.empty:
        return 1.0
    return float(np.median(later["time_s"].astype(float) / later["timepoint"]) / 3600.0)


def _shade_flags(axes: Axes, flagged: dict[int, list[str]], *, step: float,
                 span: float) -> None:
    """Shade each flagged frame: a band one frame interval wide, but at least 1.5 % of `span`
    so single frames of long series stay visible; white edges separate neighbouring bands."""
    half = max(step, 0.015 * span) / 2
    for t in flagged:
        axes.axvspan(t * step - half, t * step + half, facecolor=FLAG_COLOUR, alpha=0.5,
                     edgecolor="white", lw=1.0, zorder=0)


def flag_summary(flagged: dict[int, list[str]], *, step: float, unit: str,
                 limit: int = 8) -> str:
    """One line naming the flagged frames, e.g. ``"QC: t5 (5.0 h) area jump; ..."``.

    Examples
    --------
    >>> flag_summary({5: ["area_jump"], 7: ["appears"]}, step=1.0, unit="h", limit=1)
    'QC-flagged frames: t5 (5.0 h) area jump; and 1 more (see qc.csv)'
    """
    parts = []
    for t, names in sorted(flagged.items())[:limit]:
        when = f" ({t * step:.1f} {unit})" if unit else ""
        parts.append(f"t{t}{when} " + ", ".join(FLAG_NAMES.get(n, n) for n in names))
    more = len(flagged) - limit
    tail = f"; and {more} more (see qc.csv)" if more > 0 else ""
    return "QC-flagged frames: " + "; ".join(parts) + tail


def _mark_flagged_points(axes: Axes, metrics: pd.DataFrame, column: str,
                         qc: pd.DataFrame | None) -> bool:
    """Red rings on (object, timepoint) points with an area-jump or appearance flag."""
    if qc is None or qc.empty:
        return False
    chosen = qc[qc["flag"].isin(["area_jump", "appears"])].dropna(subset=["object_id"])
    keys = set(zip(chosen["timepoint"].astype(int), chosen["object_id"].astype(int)))
    hits = [(t, i) in keys for t, i in zip(metrics["timepoint"], metrics["object_id"])]
    if not any(hits):
        return False
    times, _ = time_hours(metrics)
    axes.plot(times[hits], metrics.loc[hits, column], "o", ms=11, mfc="none", mec="#d62828",
              mew=1.8, zorder=5)
    return True


def _plot_objects(axes: Axes, metrics: pd.DataFrame, column: str, colours: dict[int, str]) -> None:
    """One line per object; hollow markers where the object touches the border."""
    times, _ = time_hours(metrics)
    touching = metrics["touches_border"].astype(str).str.lower().isin(["true", "1"]) \
        if "touches_border" in metrics.columns else pd.Series(False, index=metrics.index)
    for object_id, rows in metrics.groupby("object_id", sort=True):
        order = rows.sort_values("timepoint").index
        colour = colours[int(object_id)]
        marker = "o" if len(order) <= MAX_MARKED_POINTS else ""
        axes.plot(times[order], metrics.loc[order, column], "-" + marker, color=colour, ms=4,
                  lw=1.5, label=f"object {object_id}")
        edge = order[touching[order].to_numpy()]
        axes.plot(times[edge], metrics.loc[edge, column], "s", ms=8, mfc="none",
                  mec="black", mew=1.0)


def _legend_handles(colours: dict[int, str], *, flags: bool, border: bool,
                    ringed: bool = False, markers: bool = True) -> list[object]:
    """Legend entries: objects, then the QC shading and the border marker when present."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[object] = [Line2D([], [], color=c, marker="o" if markers else "", ms=4,
                                    label=f"object {i}") for i, c in colours.items()]
    if flags:
        handles.append(Patch(color=FLAG_COLOUR, alpha=0.35, label="QC-flagged frame"))
    if ringed:
        handles.append(Line2D([], [], ls="", marker="o", ms=11, mfc="none", mec="#d62828",
                              mew=1.8, label="flagged object"))
    if border:
        handles.append(Line2D([], [], ls="", marker="s", ms=8, mfc="none", mec="black",
                              label="touches border"))
    return handles


def plot_position(metrics: pd.DataFrame, qc: pd.DataFrame | None = None, *,
                  title: str) -> Figure:
    """Area, perimeter, circularity and aspect ratio over time of one position.

    Parameters
    ----------
    metrics : DataFrame
        One position's metrics (``timepoint``, ``object_id``, ``time_s`` or ``time_frame``,
        the metric columns and ``touches_border``).
    qc : DataFrame, optional
        The position's QC table; frames with a flag in :data:`FRAME_FLAGS` are shaded.
    title : str
        Figure title (e.g. ``"demo / pos0"``).

    Returns
    -------
    Figure
        2 x 2 panels, time in hours (or frames when the interval is unknown), one line and
        colour per object, hollow squares where an object touches the border.

    Raises
    ------
    ValueError
        If a metric column is missing.
    """
    import matplotlib.pyplot as plt

    columns = [metric_column(list(metrics.columns), name) for name in PLOTTED_METRICS]
    flagged = flagged_timepoints(qc, flags=FRAME_FLAGS) if qc is not None and len(qc) else {}
    colours = object_colours(metrics["object_id"].tolist())
    step = frame_step(metrics)
    span = step * max(int(metrics["timepoint"].max()), 1) if len(metrics) else step
    _, time_label = time_hours(metrics)
    with plt.rc_context(STYLE):
        figure, panels = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True, layout="constrained")
        for index, (axes, column) in enumerate(zip(panels.flat, columns)):
            _shade_flags(axes, flagged, step=step, span=span)
            _plot_objects(axes, metrics, column, colours)
            ringed = _mark_flagged_points(axes, metrics, column, qc)
            axes.set_ylabel(axis_label(column))
            axes.grid(True, color="#dddddd", lw=0.6)
            if index >= 2:
                axes.set_xlabel(time_label)
        if metrics.empty:
            panels.flat[0].text(0.5, 0.5, "no object found in any frame", ha="center",
                                transform=panels.flat[0].transAxes)
        border = "touches_border" in metrics.columns and metrics["touches_border"].astype(
            str).str.lower().isin(["true", "1"]).any()
        markers = metrics.groupby("object_id").size().max() <= MAX_MARKED_POINTS \
            if len(metrics) else True
        figure.legend(handles=_legend_handles(colours, flags=bool(flagged), border=bool(border),
                                              ringed=ringed, markers=bool(markers)),
                      loc="outside right upper", frameon=False)
        figure.suptitle(f"{title}: shape over time", fontsize=13)
        if flagged:
            unit = "h" if time_label.startswith("Time") else ""
            figure.supxlabel(flag_summary(flagged, step=step, unit=unit), fontsize=9,
                             color="#9c4a00")
    return figure


def save_figure(figure: Figure, paths: Sequence[str | os.PathLike[str]], *, dpi: int = 120) -> None:
    """Save `figure` to each path (format from the suffix: .png, .svg, .pdf) atomically, then close it.

    Raises
    ------
    ValueError
        If a suffix is not png, svg or pdf.
    """
    import matplotlib.pyplot as plt

    from spheroseg.atomic import atomic_path

    for path in paths:
        kind = Path(path).suffix.lower().lstrip(".")
        if kind not in ("png", "svg", "pdf"):
            raise ValueError(f"figure path must end in .png, .svg or .pdf, got {str(path)!r}")
        metadata = {"Software": None} if kind == "png" else {"Date": None}
        if kind == "pdf":
            metadata["CreationDate"] = metadata.pop("Date")
        with atomic_path(path) as tmp, plt.rc_context({"svg.hashsalt": "spheroseg"}):
            figure.savefig(tmp, format=kind, dpi=dpi, metadata=metadata)
    plt.close(figure)


def _plot_group(axes: Axes, rows: pd.DataFrame, column: str, colour: str) -> None:
    """Thin line per (position, object), thick line for the group mean at each timepoint."""
    times, _ = time_hours(rows)
    for _, track in rows.groupby(["position", "object_id"], sort=True):
        order = track.sort_values("timepoint").index
        axes.plot(times[order], rows.loc[order, column], "-", color=colour, lw=0.8, alpha=0.4)
    means = rows.assign(_time=times).groupby("_time", sort=True)[column].mean()
    axes.plot(means.index, means.to_numpy(), "-o", color=colour, lw=2.5, ms=3)


def _group_order(values: pd.Series) -> list[str]:
    """Groups in category order for a categorical column (sample-sheet order), else sorted."""
    present = set(values.astype(str))
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(c) for c in values.cat.categories if str(c) in present]
    return sorted(present)


def group_column(metrics: pd.DataFrame) -> str:
    """``condition`` when the metrics carry a sample sheet, else ``position``.

    Examples
    --------
    >>> group_column(pd.DataFrame(columns=["position", "condition"]))
    'condition'
    """
    return "condition" if "condition" in metrics.columns else "position"


def _mark_flagged_tracks(axes: Axes, metrics: pd.DataFrame, column: str,
                        qc: pd.DataFrame | None) -> bool:
    """Red rings on (position, object, timepoint) points with an area-jump or appearance flag."""
    if qc is None or qc.empty:
        return False
    chosen = qc[qc["flag"].isin(["area_jump", "appears"])].dropna(subset=["object_id"])
    keys = set(zip(chosen["position"].astype(str), chosen["timepoint"].astype(int),
                   chosen["object_id"].astype(int)))
    hits = [(p, t, i) in keys for p, t, i in
            zip(metrics["position"].astype(str), metrics["timepoint"], metrics["object_id"])]
    if not any(hits):
        return False
    times, _ = time_hours(metrics)
    axes.plot(times[hits], metrics.loc[hits, column], "o", ms=10, mfc="none", mec="#d62828",
              mew=1.6, zorder=5)
    return True


def plot_experiment(metrics: pd.DataFrame, qc: pd.DataFrame | None = None, *,
                    title: str) -> Figure:
    """Compare positions, or conditions when the table has a ``condition`` column.

    Parameters
    ----------
    metrics : DataFrame
        Experiment-wide metrics (all positions), optionally merged with a sample sheet
        (:func:`spheroseg.report.samples.merge_samples`).
    qc : DataFrame, optional
        The experiment's QC table; objects with an area jump or appearance get a red ring.
    title : str
        Figure title (e.g. the experiment name).

    Returns
    -------
    Figure
        2 x 2 panels (area, perimeter, circularity, aspect ratio over time); one colour per
        group (condition, else position), a thin line per object, a thick line for the
        group's mean over its objects at each timepoint.

    Raises
    ------
    ValueError
        If a metric column is missing.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    columns = [metric_column(list(metrics.columns), name) for name in PLOTTED_METRICS]
    by = group_column(metrics)
    groups = _group_order(metrics[by])
    cycle = matplotlib.colormaps["tab10"].colors
    colours = {group: cycle[index % len(cycle)] for index, group in enumerate(groups)}
    _, time_label = time_hours(metrics)
    with plt.rc_context(STYLE):
        figure, panels = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True, layout="constrained")
        for index, (axes, column) in enumerate(zip(panels.flat, columns)):
            for group in groups:
                _plot_group(axes, metrics[metrics[by].astype(str) == group], column,
                            colours[group])
            ringed = _mark_flagged_tracks(axes, metrics, column, qc)
            axes.set_ylabel(axis_label(column))
            axes.grid(True, color="#dddddd", lw=0.6)
            if index >= 2:
                axes.set_xlabel(time_label)
        handles = [Line2D([], [], color=colours[g], lw=2.5, label=_group_label(metrics, by, g))
                   for g in groups]
        handles.append(Line2D([], [], color="grey", lw=0.8, alpha=0.6, label="single object"))
        if ringed:
            handles.append(Line2D([], [], ls="", marker="o", ms=10, mfc="none", mec="#d62828",
                                  mew=1.6, label="QC flag (qc.csv)"))
        figure.legend(handles=handles, loc="outside right upper", frameon=False,
                      title=f"{by} (thick: mean)")
        figure.suptitle(f"{title}: shape over time by {by}", fontsize=13)
    return figure


def _group_label(metrics: pd.DataFrame, by: str, group: str) -> str:
    """Legend text: the group and how many positions and objects it holds."""
    rows = metrics[metrics[by].astype(str) == group]
    positions = rows["position"].nunique()
    objects = len(rows.groupby(["position", "object_id"]))
    if by == "position":
        return f"{group} ({objects} obj.)"
    return f"{group} ({positions} pos., {objects} obj.)"
