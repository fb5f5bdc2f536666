"""``spheroseg aggregate``: the per-position metrics of an experiment in one tidy CSV."""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
from typing import Any

KEY_COLUMNS = ("experiment", "position", "timepoint", "object_id")


def register(subparsers: Any) -> None:
    """Add the ``aggregate`` subcommand."""
    parser = subparsers.add_parser(
        "aggregate",
        help="concatenate the metrics.csv of several positions",
        description="Concatenate per-position metrics.csv files into one tidy CSV sorted by "
        "experiment, position, timepoint and object id; values are copied verbatim. Positions "
        "in other units (no pixel size or frame interval) add their columns, empty for the "
        "others. The output appears only when complete.",
    )
    parser.add_argument("--output", required=True, help="experiment-wide metrics.csv to write")
    parser.add_argument("inputs", nargs="+", metavar="POSITION_METRICS_CSV",
                        help="per-position metrics.csv files")
    parser.set_defaults(func=run)


def read_metrics_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a metrics CSV, checked for the key columns, the header that
    ``spheroseg measure`` writes and row lengths.

    Raises
    ------
    ValueError
        If the file is empty, lacks a key column, its header is not one that measure writes
        (a file cut inside its header) or a row has the wrong length.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle))
    except UnicodeDecodeError as err:
        raise ValueError(f"metrics CSV must be UTF-8 text, got bytes that are not ({err.reason} at byte "
                         f"{err.start}) (in {path})") from err
    if not table:
        raise ValueError(f"metrics CSV must have a header row, got an empty file (in {path})")
    header, rows = table[0], table[1:]
    missing = [name for name in KEY_COLUMNS if name not in header]
    if missing:
        raise ValueError(f"metrics CSV must have the columns {list(KEY_COLUMNS)}, "
                         f"got {header!r} (in {path})")
    _check_header(header, path)
    integers = [header.index("timepoint"), header.index("object_id")]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(f"row {number} must have {len(header)} fields, got {len(row)} "
                             f"(in {path})")
        if not all(row[i].isdigit() for i in integers):
            raise ValueError(f"timepoint and object_id must be integers >= 0, got "
                             f"{[row[i] for i in integers]!r} in row {number} (in {path})")
    return header, rows


def _header_difference(header: list[str], known: list[list[str]]) -> str:
    """Where `header` departs from the nearest of the `known` headers, in words."""

    def agreeing(columns: list[str]) -> int:
        return next((i for i, (a, b) in enumerate(zip(header, columns)) if a != b),
                    min(len(header), len(columns)))

    nearest = max(known, key=agreeing)
    index = agreeing(nearest)
    if index == len(header):
        return f"only {len(header)} of its {len(nearest)} columns, ending with {header[-1]!r}"
    if index == len(nearest):
        return f"{header[index]!r} in column {index + 1} after its last column {nearest[-1]!r}"
    return f"{header[index]!r} in column {index + 1} where {nearest[index]!r} belongs"


def _check_header(header: list[str], path: str | os.PathLike[str]) -> None:
    """Raise unless `header` is a metrics header that measure writes (µm or px, s or frames):
    a file cut inside its header has no rows and would drop its position silently."""
    from spheroseg.measure.tables import metric_columns

    known = [metric_columns(pixel_size_um=pixel, time_interval_s=interval)
             for pixel in (1.0, None) for interval in (1.0, None)]
    if header in known:
        return
    raise ValueError(f"metrics CSV header must be one that spheroseg measure writes "
                     f"({len(known[0])} columns, {known[0][0]!r} to {known[0][-1]!r}), got "
                     f"{_header_difference(header, known)}; remove the file and run again to "
                     f"have measure write it anew (in {path})")


def union_columns(headers: list[list[str]]) -> list[str]:
    """All columns of several headers, in the first header's order; a column that only a
    later header has goes before its successor there (e.g. ``time_frame`` beside ``time_s``).

    Examples
    --------
    >>> union_columns([["t", "time_s", "id"], ["t", "time_frame", "id"]])
    ['t', 'time_s', 'time_frame', 'id']
    """
    merged = list(headers[0])
    for header in headers[1:]:
        for index, name in enumerate(header):
            if name in merged:
                continue
            after = [column for column in header[index + 1:] if column in merged]
            merged.insert(merged.index(after[0]) if after else len(merged), name)
    return merged


def align_rows(columns: list[str], rows: list[list[str]], header: list[str]) -> list[list[str]]:
    """`rows` (with `columns`) laid out as `header`: empty where a column is missing.

    A single-frame position without a frame interval (column ``time_frame``) gets
    ``time_s`` 0 where others have ``time_s``: timepoint 0 is 0 s whatever the interval.
    """
    if columns == header:
        return rows
    where = {name: index for index, name in enumerate(columns)}
    single_frame = all(row[where["timepoint"]] == "0" for row in rows)
    filled = {"time_s": f"{0:.6f}"} if single_frame and "time_frame" in where else {}
    return [[row[where[name]] if name in where else filled.get(name, "") for name in header]
            for row in rows]


def _first_duplicate(keys: list[tuple[str, str, int, int]]) -> tuple[str, str, int, int]:
    """The first key that occurs a second time (the list has one)."""
    seen: set[tuple[str, str, int, int]] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    raise ValueError("keys must contain a duplicate, got none")


def aggregate_metrics(inputs: list[str | os.PathLike[str]],
                      output: str | os.PathLike[str]) -> int:
    """Concatenate metrics CSVs into `output`; return the row count.

    Positions measured in different units (no pixel size or no frame interval for some)
    keep their own columns: the output has the union of the columns (`union_columns`),
    empty where a position has no value.

    Raises
    ------
    ValueError
        If there is no input, a file is malformed, or a key (experiment, position,
        timepoint, object id) appears twice.
    """
    from spheroseg.atomic import write_text
    from spheroseg.measure.tables import format_csv

    if not inputs:
        raise ValueError("inputs must name at least one metrics CSV, got none")
    tables = [read_metrics_csv(path) for path in inputs]
    header = union_columns([columns for columns, _ in tables])
    rows = [row for columns, table in tables for row in align_rows(columns, table, header)]
    where = [header.index(name) for name in KEY_COLUMNS]
    keys = [(r[where[0]], r[where[1]], int(r[where[2]]), int(r[where[3]])) for r in rows]
    if len(set(keys)) != len(keys):
        duplicate = _first_duplicate(keys)
        raise ValueError(f"each (experiment, position, timepoint, object_id) must appear once, "
                         f"got {duplicate!r} twice (in {', '.join(map(str, inputs))})")
    order = sorted(range(len(rows)), key=keys.__getitem__)
    write_text(Path(output), format_csv(header, [rows[i] for i in order]))
    return len(rows)


def run(args: argparse.Namespace) -> None:
    """Aggregate the inputs."""
    import logging

    count = aggregate_metrics(args.inputs, args.output)
    logging.getLogger(__name__).info("wrote %s (%d rows)", args.output, count)
