"""Metric plots over time: per position (one line per main body) and across an experiment.

Main bodies (``is_main_body``) are drawn as tracked objects; shed fragments are summed per
frame in a third row of panels (how many, and their total area), which appears only when a
table has fragments (:mod:`spheroseg.report.series`).

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
from spheroseg.report.series import (  # noqa: E402
    experiment_series,
    fragment_series,
    has_fragments,
    main_body_mask,
)
from spheroseg.report.style import FLAG_COLOUR, FRAGMENT_LINE_COLOUR, object_colours  # noqa: E402
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
                    ringed: bool = False, markers: bool = True,
                    fragments: bool = False) -> list[object]:
    """Legend entries: objects, fragments, then the QC shading and the border marker."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[object] = [Line2D([], [], color=c, marker="o" if markers else "", ms=4,
                                    label=f"object {i}") for i, c in colours.items()]
    if fragments:
        handles.append(Line2D([], [], color=FRAGMENT_LINE_COLOUR, marker="o", ms=3,
                              label="shed fragments"))
    if flags:
        handles.append(Patch(color=FLAG_COLOUR, alpha=0.35, label="QC-flagged frame"))
    if ringed:
        handles.append(Line2D([], [], ls="", marker="o", ms=11, mfc="none", mec="#d62828",
                              mew=1.8, label="flagged object"))
    if border:
        handles.append(Line2D([], [], ls="", marker="s", ms=8, mfc="none", mec="black",
                              label="touches border"))
    return handles


def _panels(rows: int) -> tuple[Figure, np.ndarray]:
    """A figure of `rows` x 2 panels sharing the time axis."""
    import matplotlib.pyplot as plt

    return plt.subplots(rows, 2, figsize=(10, 7.5 if rows == 2 else 10), sharex=True,
                        layout="constrained")


def _fragment_labels(metrics: pd.DataFrame) -> list[str]:
    """Axis labels of the fragment panels."""
    area = axis_label(metric_column(list(metrics.columns), "area"))
    return ["Shed fragments (count)", area.replace("Area", "Fragments, total area")]


def _plot_position_fragments(panels: np.ndarray, metrics: pd.DataFrame) -> None:
    """Fragment count and total area of one position over time (the third row)."""
    summary = fragment_series(metrics)
    for axes, column, label in zip(panels, ("fragments", "fragment_area"), _fragment_labels(metrics)):
        axes.plot(summary["time"], summary[column], "-o", color=FRAGMENT_LINE_COLOUR, ms=3, lw=1.5)
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
        axes.grid(True, color="#dddddd", lw=0.6)


def plot_position(metrics: pd.DataFrame, qc: pd.DataFrame | None = None, *,
                  title: str) -> Figure:
    """Area, perimeter, circularity and aspect ratio over time of one position's main bodies,
    and its shed fragments (count and total area) when it has any.

    Parameters
    ----------
    metrics : DataFrame
        One position's metrics (``timepoint``, ``object_id``, ``time_s`` or ``time_frame``,
        the metric columns, ``touches_border`` and ``is_main_body``, computed when absent).
    qc : DataFrame, optional
        The position's QC table; frames with a flag in :data:`FRAME_FLAGS` are shaded.
    title : str
        Figure title (e.g. ``"demo / pos0"``).

    Returns
    -------
    Figure
        2 x 2 panels (3 x 2 with fragments), time in hours (or frames when the interval is
        unknown), one line and colour per main body, hollow squares where it touches the
        border.

    Raises
    ------
    ValueError
        If a metric column is missing.
    """
    import matplotlib.pyplot as plt

    columns = [metric_column(list(metrics.columns), name) for name in PLOTTED_METRICS]
    bodies = metrics[main_body_mask(metrics)] if len(metrics) else metrics
    fragments = has_fragments(metrics)
    flagged = flagged_timepoints(qc, flags=FRAME_FLAGS) if qc is not None and len(qc) else {}
    colours = object_colours(bodies["object_id"].tolist())
    step = frame_step(metrics)
    span = step * max(int(metrics["timepoint"].max()), 1) if len(metrics) else step
    _, time_label = time_hours(metrics)
    with plt.rc_context(STYLE):
        figure, panels = _panels(3 if fragments else 2)
        ringed = _draw_body_panels(panels.flat[:4], bodies, qc, columns=columns, colours=colours,
                                   flagged=flagged, step=step, span=span)
        if fragments:
            _plot_position_fragments(panels[2], metrics)
            for axes in panels[2]:
                _shade_flags(axes, flagged, step=step, span=span)
        for axes in panels[-1]:
            axes.set_xlabel(time_label)
        if metrics.empty:
            panels.flat[0].text(0.5, 0.5, "no object found in any frame", ha="center",
                                transform=panels.flat[0].transAxes)
        border = "touches_border" in bodies.columns and bodies["touches_border"].astype(
            str).str.lower().isin(["true", "1"]).any()
        markers = bodies.groupby("object_id").size().max() <= MAX_MARKED_POINTS \
            if len(bodies) else True
        figure.legend(handles=_legend_handles(colours, flags=bool(flagged), border=bool(border),
                                              ringed=ringed, markers=bool(markers),
                                              fragments=fragments),
                      loc="outside right upper", frameon=False)
        figure.suptitle(f"{title}: shape over time", fontsize=13)
        if flagged:
            unit = "h" if time_label.startswith("Time") else ""
            figure.supxlabel(flag_summary(flagged, step=step, unit=unit), fontsize=9,
                             color="#9c4a00")
    return figure


def _draw_body_panels(panels: Sequence[Axes], bodies: pd.DataFrame, qc: pd.DataFrame | None, *,
                      columns: list[str], colours: dict[int, str], flagged: dict[int, list[str]],
                      step: float, span: float) -> bool:
    """The four metric panels of the main bodies; True if a flagged point got a red ring."""
    ringed = False
    for axes, column in zip(panels, columns):
        _shade_flags(axes, flagged, step=step, span=span)
        _plot_objects(axes, bodies, column, colours)
        ringed = _mark_flagged_points(axes, bodies, column, qc) or ringed
        axes.set_ylabel(axis_label(column))
        axes.grid(True, color="#dddddd", lw=0.6)
    return ringed


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


def _plot_group(axes: Axes, rows: pd.DataFrame, column: str, colour: str,
                means: pd.DataFrame) -> None:
    """Thin line per (position, object), thick line for the group mean at each timepoint."""
    times, _ = time_hours(rows)
    for _, track in rows.groupby(["position", "object_id"], sort=True):
        order = track.sort_values("timepoint").index
        axes.plot(times[order], rows.loc[order, column], "-", color=colour, lw=0.8, alpha=0.4)
    axes.plot(means["time"], means["value"].to_numpy(), "-o", color=colour, lw=2.5, ms=3)


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
        group (condition, else position), a thin line per main body, a thick line for the
        group's mean over its main bodies at each timepoint
        (:func:`~spheroseg.report.series.experiment_series`). With shed fragments a third
        row shows their count and total area per position (thin) and the group mean
        (thick).

    Raises
    ------
    ValueError
        If a metric column is missing.
    """
    import matplotlib.pyplot as plt

    columns = [metric_column(list(metrics.columns), name) for name in PLOTTED_METRICS]
    by = group_column(metrics)
    groups = _group_order(metrics[by])
    cycle = matplotlib.colormaps["tab10"].colors
    colours = {group: cycle[index % len(cycle)] for index, group in enumerate(groups)}
    series = experiment_series(metrics, by) if len(metrics) else pd.DataFrame(
        columns=["group", "time", "series", "value"])
    bodies = metrics[main_body_mask(metrics)] if len(metrics) else metrics
    fragments = has_fragments(metrics)
    _, time_label = time_hours(metrics)
    with plt.rc_context(STYLE):
        figure, panels = _panels(3 if fragments else 2)
        ringed = False
        for axes, column in zip(panels.flat[:4], columns):
            for group in groups:
                _plot_group(axes, bodies[bodies[by].astype(str) == group], column, colours[group],
                            series[(series["group"] == group) & (series["series"] == column)])
            ringed = _mark_flagged_tracks(axes, bodies, column, qc) or ringed
            axes.set_ylabel(axis_label(column))
            axes.grid(True, color="#dddddd", lw=0.6)
        if fragments:
            _plot_experiment_fragments(panels[2], metrics, series, by=by, groups=groups,
                                       colours=colours)
        for axes in panels[-1]:
            axes.set_xlabel(time_label)
        _experiment_legend(figure, bodies, by=by, groups=groups, colours=colours,
                           ringed=ringed, fragments=fragments)
        figure.suptitle(f"{title}: shape over time by {by}", fontsize=13)
    return figure


def _plot_experiment_fragments(panels: np.ndarray, metrics: pd.DataFrame, series: pd.DataFrame, *,
                               by: str, groups: list[str], colours: dict[str, object]) -> None:
    """Fragment count and total area: thin line per position, thick line per group mean."""
    summary = fragment_series(metrics)
    first = metrics.drop_duplicates("position").set_index("position", drop=False)
    group_of = first[by].astype(str)
    for axes, column, label in zip(panels, ("fragments", "fragment_area"), _fragment_labels(metrics)):
        for position, rows in summary.groupby("position", sort=True):
            colour = colours[group_of[position]]
            axes.plot(rows["time"], rows[column], "-", color=colour, lw=0.8, alpha=0.4)
        for group in groups:
            means = series[(series["group"] == group) & (series["series"] == column)]
            axes.plot(means["time"], means["value"], "-o", color=colours[group], lw=2.5, ms=3)
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
        axes.grid(True, color="#dddddd", lw=0.6)


def _experiment_legend(figure: Figure, bodies: pd.DataFrame, *, by: str, groups: list[str],
                       colours: dict[str, object], ringed: bool, fragments: bool) -> None:
    """Legend of the comparison figure: groups, single bodies, QC rings."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[g], lw=2.5, label=_group_label(bodies, by, g))
               for g in groups]
    single = "single main body" if fragments else "single object"
    handles.append(Line2D([], [], color="grey", lw=0.8, alpha=0.6, label=single))
    if ringed:
        handles.append(Line2D([], [], ls="", marker="o", ms=10, mfc="none", mec="#d62828",
                              mew=1.6, label="QC flag (qc.csv)"))
    figure.legend(handles=handles, loc="outside right upper", frameon=False,
                  title=f"{by} (thick: mean)")


def _group_label(metrics: pd.DataFrame, by: str, group: str) -> str:
    """Legend text: the group and how many positions and objects it holds."""
    rows = metrics[metrics[by].astype(str) == group]
    positions = rows["position"].nunique()
    objects = len(rows.groupby(["position", "object_id"]))
    if by == "position":
        return f"{group} ({objects} obj.)"
    return f"{group} ({positions} pos., {objects} obj.)"
