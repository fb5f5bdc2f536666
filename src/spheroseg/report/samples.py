"""Sample sheets: which condition (and which free annotations) each position belongs to.

A sample sheet is a tab-separated file with a header row, one row per position, a
``position`` column naming the position (as in ``results/<experiment>/<position>/``), a
``condition`` column and any other columns (treatment, dose, replicate, ...). All values are
read as text, exactly as written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

REQUIRED_COLUMNS = ("position", "condition")
# Columns of the metrics tables that a sample sheet may not redefine (besides `position`).
RESERVED_COLUMNS = ("experiment", "timepoint", "time_s", "time_frame", "object_id")


def _where(path: str | os.PathLike[str]) -> str:
    """Where a sheet error is: the workflow's config key and the file."""
    return f"config key 'samples', in {path}"


def _check_columns(columns: list[str], path: str | os.PathLike[str]) -> None:
    """Raise unless the header has the required columns, no empty or duplicated names."""
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"sample sheet columns must include {list(REQUIRED_COLUMNS)}, "
                         f"got {columns!r} ({_where(path)})")
    blank = [index + 1 for index, name in enumerate(columns) if not name.strip()]
    if blank:
        raise ValueError(f"sample sheet column names must not be empty, got an empty name "
                         f"in column {blank[0]} ({_where(path)})")
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise ValueError(f"sample sheet column names must be unique, got {duplicated!r} "
                         f"more than once ({_where(path)})")
    reserved = [name for name in columns if name in RESERVED_COLUMNS]
    if reserved:
        raise ValueError(f"sample sheet columns must not redefine metrics columns "
                         f"{list(RESERVED_COLUMNS)}, got {reserved!r} ({_where(path)})")


def _check_values(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Raise on empty positions or conditions and on positions listed twice."""
    for name in REQUIRED_COLUMNS:
        empty = table.index[table[name].str.strip() == ""].tolist()
        if empty:
            raise ValueError(f"sample sheet {name} must not be empty, got an empty value "
                             f"in row {empty[0] + 2} ({_where(path)})")
    duplicated = table["position"][table["position"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"each position must appear once in the sample sheet, got "
                         f"{duplicated[0]!r} more than once ({_where(path)})")


def read_samples(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a sample sheet.

    Parameters
    ----------
    path : str or PathLike
        Tab-separated file with a header row and the columns ``position`` and ``condition``.

    Returns
    -------
    DataFrame
        One row per position, all columns as ``str`` (values stripped of surrounding
        whitespace), in file order.

    Raises
    ------
    ValueError
        If the file is missing, empty, not UTF-8 text (a byte-order mark is fine) or not
        tab-separated as expected, a required column is missing, a column name is empty,
        duplicated or reserved for the metrics, a position or condition is empty, a position
        is listed twice or a row has the wrong number of fields. Messages name the file and
        the config key ``samples``.
    """
    path = Path(path)
    if not path.is_file():
        found = "a folder" if path.is_dir() else "no such file"
        raise ValueError(f"sample sheet must be an existing file, got {found} {str(path)!r} "
                         f"(config key 'samples')")
    try:  # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column name
        with open(path, encoding="utf-8-sig") as handle:
            lines = [line.rstrip("\r\n") for line in handle if line.strip()]
    except UnicodeDecodeError as err:
        raise ValueError(f"sample sheet must be UTF-8 text (save it with UTF-8 encoding), got "
                         f"bytes that are not ({err.reason} at byte {err.start}) "
                         f"({_where(path)})") from err
    if not lines:
        raise ValueError(f"sample sheet must have a header row, got an empty file "
                         f"({_where(path)})")
    columns = [name.strip() for name in lines[0].split("\t")]
    _check_columns(columns, path)
    rows = [line.split("\t") for line in lines[1:]]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(columns):
            raise ValueError(f"sample sheet row {number} must have {len(columns)} tab-separated "
                             f"fields like the header, got {len(row)} ({_where(path)})")
    table = pd.DataFrame([[value.strip() for value in row] for row in rows], columns=columns,
                         dtype=str)
    _check_values(table, path)
    return table


def merge_samples(metrics: pd.DataFrame, samples: pd.DataFrame, *,
                  source: str | os.PathLike[str] = "sample sheet") -> pd.DataFrame:
    """Add the sample sheet's columns to a metrics table, right after ``position``.

    Parameters
    ----------
    metrics : DataFrame
        Tidy metrics with a ``position`` column (one row per object per timepoint).
    samples : DataFrame
        Sample sheet from :func:`read_samples`.
    source : str or PathLike
        Where the sample sheet came from, for error messages.

    Returns
    -------
    DataFrame
        `metrics` with the sample columns inserted after ``position``; rows keep their order.

    Raises
    ------
    ValueError
        If `metrics` has no ``position`` column, a metrics position is not in the sample sheet,
        or a sample column already exists in `metrics`.

    Examples
    --------
    >>> metrics = pd.DataFrame({"position": ["p1", "p0"], "area_um2": [2.0, 1.0]})
    >>> samples = pd.DataFrame({"position": ["p0", "p1"], "condition": ["ctrl", "drug"]})
    >>> merge_samples(metrics, samples).to_dict("list")
    {'position': ['p1', 'p0'], 'condition': ['drug', 'ctrl'], 'area_um2': [2.0, 1.0]}
    """
    if "position" not in metrics.columns:
        raise ValueError(f"metrics must have a 'position' column, got {list(metrics.columns)!r}")
    extra = [name for name in samples.columns if name != "position"]
    clash = [name for name in extra if name in metrics.columns]
    if clash:
        raise ValueError(f"sample sheet columns must not already be in the metrics, got "
                         f"{clash!r} (in {source})")
    positions = metrics["position"].astype(str)
    unknown = sorted(set(positions) - set(samples["position"]))
    if unknown:
        raise ValueError(f"every position in the metrics must be in the sample sheet, got "
                         f"{unknown!r} missing (in {source})")
    lookup = samples.set_index("position")
    merged = metrics.copy()
    where = list(merged.columns).index("position") + 1
    for offset, name in enumerate(extra):
        merged.insert(where + offset, name, positions.map(lookup[name]).to_numpy())
    return merged
