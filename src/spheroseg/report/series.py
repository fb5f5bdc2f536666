"""The data the figures draw: main bodies apart from shed fragments, and group means over time.

Plots and overlays show the main bodies (``is_main_body``, see
:mod:`spheroseg.measure.bodies`) as tracked objects and sum the fragments per frame (how
many, and their total area), so that an invasive spheroid shedding a hundred cells still
plots as one growing body. Tables without the column (written before it existed) get it
computed the same way, per position.
"""

from __future__ import annotations

import pandas as pd

from spheroseg.report.tables import PLOTTED_METRICS, metric_column, time_hours

MAIN_BODY = "is_main_body"
FRAGMENT_SERIES = ("fragments", "fragment_area")


def main_body_mask(metrics: pd.DataFrame) -> pd.Series:
    """Boolean Series (the table's index): is each row a main body?

    From the ``is_main_body`` column (``true``/``false`` or booleans); rows without a value
    (positions measured before the column existed) are decided per position by
    :func:`spheroseg.measure.bodies.main_body_flags` on their areas.

    Examples
    --------
    >>> table = pd.DataFrame({"position": ["p"] * 3, "object_id": [1, 2, 1],
    ...                       "area_um2": [900.0, 10.0, 950.0]})
    >>> main_body_mask(table).tolist()
    [True, False, True]
    """
    from spheroseg.measure.bodies import main_body_flags

    given = metrics[MAIN_BODY] if MAIN_BODY in metrics.columns else \
        pd.Series(pd.NA, index=metrics.index)
    text = given.astype("string").str.lower()
    mask = text.isin(["true", "1"]).astype(bool)
    missing = text.isna() | ~text.isin(["true", "1", "false", "0"])
    if missing.any():
        area = metric_column(list(metrics.columns), "area")
        undecided = metrics[missing]
        positions = undecided.groupby("position", sort=False) if "position" in metrics.columns \
            else [(None, undecided)]  # one position's table
        for _, rows in positions:
            mask[rows.index] = main_body_flags(rows["object_id"].tolist(), rows[area].tolist())
    return mask


def fragment_series(metrics: pd.DataFrame) -> pd.DataFrame:
    """Fragments per position and timepoint: how many, and their total area.

    Every timepoint with a row in the position counts (0 fragments where only main bodies
    were found).

    Returns
    -------
    DataFrame
        ``position``, ``timepoint``, ``time`` (as :func:`time_hours`), ``fragments``,
        ``fragment_area`` (in the table's area unit), plus ``condition`` when present.

    Examples
    --------
    >>> table = pd.DataFrame({"position": ["p"] * 4, "timepoint": [0, 1, 1, 1],
    ...                       "object_id": [1, 1, 2, 3], "area_px2": [500.0, 520.0, 5.0, 7.0],
    ...                       "is_main_body": ["true", "true", "false", "false"]})
    >>> fragment_series(table)[["timepoint", "fragments", "fragment_area"]].values.tolist()
    [[0.0, 0.0, 0.0], [1.0, 2.0, 12.0]]
    """
    area = metric_column(list(metrics.columns), "area")
    keys = ["position", "timepoint"] + (["condition"] if "condition" in metrics.columns else [])
    times, _ = time_hours(metrics)
    table = metrics.assign(time=times, _fragment=~main_body_mask(metrics))
    table = table.assign(_area=table[area].fillna(0.0).where(table["_fragment"], 0.0))
    grouped = table.groupby(keys, sort=True, observed=True)
    summary = grouped.agg(time=("time", "first"), fragments=("_fragment", "sum"),
                          fragment_area=("_area", "sum")).reset_index()
    return summary.astype({"fragments": int})


def has_fragments(metrics: pd.DataFrame) -> bool:
    """Whether any row is a fragment (figures then add the fragment panels)."""
    return bool(len(metrics)) and not bool(main_body_mask(metrics).all())


def experiment_series(metrics: pd.DataFrame, by: str) -> pd.DataFrame:
    """The thick lines of the comparison figure: per group and time, the mean of each plotted
    metric over the group's main bodies, and the mean fragment count and area over its
    positions.

    Parameters
    ----------
    metrics : DataFrame
        Experiment metrics (optionally with a ``condition`` column).
    by : str
        Group column (``condition`` or ``position``).

    Returns
    -------
    DataFrame
        Tidy: ``group``, ``time`` (hours, or frames when the interval is unknown), ``series``
        (a metric column, ``fragments`` or ``fragment_area``) and ``value``; sorted.

    Raises
    ------
    ValueError
        If a plotted metric column is missing.
    """
    columns = [metric_column(list(metrics.columns), name) for name in PLOTTED_METRICS]
    times, _ = time_hours(metrics)
    main = metrics[main_body_mask(metrics)].assign(time=times, group=metrics[by].astype(str))
    bodies = main.melt(id_vars=["group", "time"], value_vars=columns, var_name="series")
    means = bodies.groupby(["group", "time", "series"], sort=True)["value"].mean().reset_index()
    parts = [means]
    if has_fragments(metrics):
        fragments = fragment_series(metrics)
        first = metrics.drop_duplicates("position").set_index("position", drop=False)
        groups = first[by].astype(str)
        fragments = fragments.assign(group=fragments["position"].map(groups))
        tidy = fragments.melt(id_vars=["group", "time"], value_vars=list(FRAGMENT_SERIES),
                              var_name="series")
        parts.append(tidy.groupby(["group", "time", "series"], sort=True)["value"].mean()
                     .reset_index())
    result = pd.concat(parts, ignore_index=True)
    return result.sort_values(["group", "series", "time"], kind="stable").reset_index(drop=True)


def fragment_ids(metrics: pd.DataFrame) -> dict[int, set[int]]:
    """Ids of the shed fragments (not main bodies) per timepoint of a metrics table.

    Examples
    --------
    >>> table = pd.DataFrame({"timepoint": [0, 0, 1], "object_id": [1, 2, 1],
    ...                       "area_um2": [900.0, 9.0, 950.0]})
    >>> fragment_ids(table)
    {0: {2}}
    """
    chosen = metrics[~main_body_mask(metrics)] if len(metrics) else metrics
    found: dict[int, set[int]] = {}
    for t, object_id in zip(chosen["timepoint"], chosen["object_id"]):
        found.setdefault(int(t), set()).add(int(object_id))
    return found
