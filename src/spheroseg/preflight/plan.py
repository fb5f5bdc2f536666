"""The positions of an experiment folder, planned from file headers (cached)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spheroseg.ingest import (
    IngestError,
    MissingReaderError,
    TiffLayout,
    discover_positions,
    inspect_series,
)
from spheroseg.ingest.sources import check_timepoint_files

# 2: LIF frame intervals come from the file's T dimension (version 1 summaries have none).
# 3: summaries record the dtype (per-timepoint files are checked against each other).
# 4: a vendor file's summary also means its last plane was read (version 3 passed truncated
#    files and pixels that bioio cannot decode).
# 5: an ND2 time loop with no period ("no delay") takes its interval from the frames' own
#    acquisition times (version 4 summaries have none).
# 6: summaries record the files' channel names.
CACHE_VERSION = 6
# From this many headers to read (about 1 ms each on a local disk), say so first.
ANNOUNCE_FILES = 1000
# While reading many headers, write the cache this often (seconds), so that an interrupted
# first run keeps what it has read.
SAVE_EVERY_S = 10.0
# Characters that cannot appear in a series' part of a position (folder) name.
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]+")


@dataclass(frozen=True)
class PositionPlan:
    """One position as the workflow will ingest it.

    Attributes
    ----------
    name : str
        Position name, as in the metrics CSVs and plots.
    files : tuple of str
        Its raw file(s): one stack, or one file per timepoint.
    series : int
        Series (OME image) of each file that holds the position.
    shape : tuple of int
        ``(T, C, [Z,] Y, X)`` after ingest.
    pixel_size_um, time_interval_s : float or None
        From the file metadata; None if the file does not say.
    channel_names : tuple of str
        The file's name of each channel; empty if it names none.
    """

    name: str
    files: tuple[str, ...]
    series: int
    shape: tuple[int, ...]
    pixel_size_um: float | None
    time_interval_s: float | None
    channel_names: tuple[str, ...] = ()

    @property
    def frames(self) -> int:
        """Number of timepoints."""
        return self.shape[0]

    @property
    def channels(self) -> int:
        """Number of channels."""
        return self.shape[1]


#: ``ingest.channel``: a channel number (counting from 0), a channel name, or several names
#: (the first that a position's file has; vendors and microscopes name one channel differently).
ChannelSpec = int | str | Sequence[str]


def channel_index(plan: PositionPlan, channel: ChannelSpec) -> int:
    """The channel of `plan` that ``ingest.channel`` chooses.

    A number is taken as it is. A name is matched against the file's channel names, exactly
    first, then ignoring case when that finds one channel; of several names, the first that
    matches wins. A position with one unnamed channel (a plain TIFF) uses it for any name.

    Raises
    ------
    ValueError
        Naming the position, its file and its channels, if the number is beyond them or no
        name matches.

    Examples
    --------
    >>> plan = PositionPlan("A", ("A.nd2",), 0, (2, 2, 8, 8), None, None, ("DAPI", "Brightfield"))
    >>> channel_index(plan, 1), channel_index(plan, "brightfield"), channel_index(plan, ["BF", "Brightfield"])
    (1, 1, 1)
    >>> channel_index(plan, "BF")
    Traceback (most recent call last):
    ...
    ValueError: ingest.channel must name a channel of position 'A' (0 'DAPI', 1 'Brightfield'), got 'BF' (in A.nd2)
    """
    if isinstance(channel, int):
        if not 0 <= channel < plan.channels:
            raise ValueError(
                f"ingest.channel must be below {plan.channels} (the channels of position "
                f"{plan.name!r}), got {channel} (in {plan.files[0]})")
        return channel
    names = [channel] if isinstance(channel, str) else list(channel)
    if not plan.channel_names:
        if plan.channels == 1:
            return 0
        raise ValueError(
            f"ingest.channel must be a number for position {plan.name!r}, whose file does not "
            f"name its {plan.channels} channels, got {_names_given(names)} (in {plan.files[0]})")
    for name in names:
        if name in plan.channel_names:
            return plan.channel_names.index(name)
        folded = [number for number, known in enumerate(plan.channel_names)
                  if known.casefold() == name.casefold()]
        if len(folded) == 1:
            return folded[0]
    known = ", ".join(f"{number} {name!r}" for number, name in enumerate(plan.channel_names))
    raise ValueError(
        f"ingest.channel must name a channel of position {plan.name!r} ({known}), got "
        f"{_names_given(names)} (in {plan.files[0]})")


def _names_given(names: Sequence[str]) -> str:
    """The names of ``ingest.channel`` as given: one quoted name, or the list."""
    return repr(names[0]) if len(names) == 1 else repr(list(names))


def folder_name(name: str) -> str:
    """Folder (and Snakemake wildcard) name for an experiment or position name.

    Snakemake reads ``{...}`` in any path as a wildcard and has no escape for it, so braces
    become parentheses in folder names; the metrics and plots keep the real name.

    Examples
    --------
    >>> folder_name("run {1}")
    'run (1)'
    """
    return name.replace("{", "(").replace("}", ")")


def _layout_record(layout: TiffLayout) -> dict[str, Any]:
    """JSON-ready summary of a layout (for the cache)."""
    return {"series": layout.series, "series_name": layout.series_name,
            "shape": list(layout.shape), "dtype": str(layout.dtype),
            "pixel_size_um": layout.sizes.pixel_size_um,
            "time_interval_s": layout.sizes.time_interval_s,
            "channel_names": list(layout.channel_names)}


def _load_cache(path: Path | None) -> dict[str, Any]:
    """The cached file summaries, or an empty cache if absent, unreadable or outdated."""
    if path is None or not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("version") != CACHE_VERSION:
        return {}
    files = document.get("files")
    return files if isinstance(files, dict) else {}


def _save_cache(path: Path | None, entries: dict[str, Any]) -> None:
    """Write the cache atomically, keeping entries whose file still exists; never raises."""
    from spheroseg.atomic import write_text

    if path is None:
        return
    kept = {name: entry for name, entry in entries.items() if os.path.exists(name)}
    try:
        write_text(path, json.dumps({"version": CACHE_VERSION, "files": kept}))
    except OSError:
        pass  # a cache that cannot be written only costs time


def inspect_files(paths: Sequence[str | os.PathLike[str]], *, axes: str | None = None,
                  cache: str | os.PathLike[str] | None = None,
                  announce: Callable[[str], None] | None = None,
                  read_last_plane: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Series summaries of image files (TIFF, ND2, CZI, LIF) from their headers (and the last
    plane of each vendor series), cached by size and mtime.

    Parameters
    ----------
    paths : sequence of str or PathLike
        The files.
    axes : str, optional
        ``ingest.axes`` (part of the cache key).
    cache : str or PathLike, optional
        JSON file that remembers earlier answers.
    announce : callable, optional
        Called with one line before reading `ANNOUNCE_FILES` or more headers that the cache
        lacks (about a millisecond each on a local disk). While they are read the cache is
        written every `SAVE_EVERY_S` seconds.
    read_last_plane : bool
        Read the last plane (last timepoint, last z) of each series of an ND2, CZI or LIF
        file, as ingest reads it, so that a truncated file or pixels that bioio cannot decode
        stop the run here (`spheroseg.ingest.inspect_series`); part of the cache key.

    Returns
    -------
    dict of str to list of dict
        Absolute path -> one summary per series (``series``, ``series_name``, ``shape``,
        ``pixel_size_um``, ``time_interval_s``).

    Raises
    ------
    IngestError
        The first unreadable, truncated or ambiguous file (cached too, until it changes).
    """
    cache_path = None if cache is None else Path(cache)
    entries = _load_cache(cache_path)
    checked = [] if read_last_plane else ["headers only"]
    stamps = {os.path.abspath(path): _stamp(os.path.abspath(path), axes) + checked
              for path in paths}
    stale = [key for key, stamp in stamps.items()
             if not isinstance(entries.get(key), dict) or entries[key].get("stamp") != stamp]
    if announce is not None and len(stale) >= ANNOUNCE_FILES:
        where = "" if cache_path is None else f"; later runs take them from {cache_path}"
        announce(f"reading the headers of {len(stale)} files before any job{where}")
    saved = time.monotonic()
    for key in stale:
        entries[key] = _inspect_entry(key, axes, stamps[key], read_last_plane)
        if time.monotonic() - saved > SAVE_EVERY_S:
            _save_cache(cache_path, entries)
            saved = time.monotonic()
    if stale:
        _save_cache(cache_path, entries)
    answers = {key: entries[key] for key in stamps}
    for key, entry in answers.items():
        if "error" in entry:
            raise IngestError(entry["error"])
    return {key: entry["series"] for key, entry in answers.items()}


def _stamp(path: str, axes: str | None) -> list[Any]:
    """Cache key of a file: size, modification time and ``ingest.axes``."""
    try:
        stat = os.stat(path)
    except OSError as err:
        what = ("a link to a missing file" if os.path.islink(path) else "a file that vanished") \
            if isinstance(err, FileNotFoundError) else f"one that cannot be read ({err.strerror})"
        raise IngestError(f"file must be readable, got {what} (in {path})") from err
    return [stat.st_size, stat.st_mtime_ns, axes]


def _inspect_entry(path: str, axes: str | None, stamp: list[Any],
                   read_last_plane: bool) -> dict[str, Any]:
    """Cache entry of one file: its series summaries, or the error reading it."""
    try:
        layouts = inspect_series(path, axes=axes, read_last_plane=read_last_plane)
    except MissingReaderError:
        raise  # not cached: installing the readers fixes it
    except IngestError as err:
        return {"stamp": stamp, "error": str(err)}
    return {"stamp": stamp, "series": [_layout_record(layout) for layout in layouts]}


def _series_labels(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Name part of each series: its metadata name if all are distinct, else s0, s1, ..."""
    names = [_UNSAFE_NAME.sub("_", str(record["series_name"])).strip() for record in records]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"s{record['series']}" for record in records]


def _plans_of(name: str, files: Sequence[str], records: Sequence[Mapping[str, Any]]
              ) -> list[PositionPlan]:
    """One plan per series of a position's (first) file; T counts all files."""
    labels = _series_labels(records) if len(records) > 1 else [None]
    plans = []
    for label, record in zip(labels, records):
        shape = tuple(record["shape"])
        if len(files) > 1:
            shape = (len(files), *shape[1:])
        plans.append(PositionPlan(
            name=name if label is None else f"{name}_{label}", files=tuple(files),
            series=int(record["series"]), shape=shape, pixel_size_um=record["pixel_size_um"],
            time_interval_s=record["time_interval_s"],
            channel_names=tuple(record.get("channel_names", ()))))
    return plans


def plan_experiment(folder: str | os.PathLike[str], *, pattern: str | None = None,
                    axes: str | None = None, cache: str | os.PathLike[str] | None = None,
                    announce: Callable[[str], None] | None = None
                    ) -> dict[str, PositionPlan]:
    """The positions of an experiment folder, read from file headers (and, for vendor files,
    the last plane of each series, so that a truncated file stops here).

    Each image file (or each pattern group) is a position; a file with several series (an
    OME-TIFF of several stage positions from ``bfconvert``, the scenes of a multi-position
    ND2, CZI or LIF file) gives one position per series,
    named ``<file position>_<series name>`` (``_s<index>`` when names are missing or
    repeated). With a pattern, every file of a position is inspected and must match the first.

    Parameters
    ----------
    folder : str or PathLike
        The experiment folder.
    pattern : str, optional
        ``ingest.pattern`` (see `spheroseg.ingest.discover_positions`).
    axes : str, optional
        ``ingest.axes``: NGFF letters per file axis, for files whose layout is ambiguous.
    cache : str or PathLike, optional
        JSON cache of header summaries (see `inspect_files`).
    announce : callable, optional
        Told before a long read of uncached headers (see `inspect_files`).

    Returns
    -------
    dict of str to PositionPlan
        Position name -> plan, sorted by name.

    Raises
    ------
    ValueError
        If discovery fails, a file is unreadable or ambiguous (`IngestError`, naming the file
        and ``ingest.axes``), or two positions get the same name.
    """
    found = {name: [str(path) for path in paths]
             for name, paths in discover_positions(folder, pattern=pattern).items()}
    summaries = inspect_files([path for paths in found.values() for path in paths], axes=axes,
                              cache=cache, announce=announce)
    plans: dict[str, PositionPlan] = {}
    for name, paths in found.items():
        if len(paths) > 1:  # one file per timepoint: each must match the first
            check_timepoint_files([(path, summaries[os.path.abspath(path)][0]["shape"],
                                    summaries[os.path.abspath(path)][0]["dtype"]) for path in paths])
        for plan in _plans_of(name, paths, summaries[os.path.abspath(paths[0])]):
            if plan.name in plans:
                raise ValueError(
                    f"position names must be unique, got {plan.name!r} from both "
                    f"{Path(plans[plan.name].files[0]).name!r} and {Path(paths[0]).name!r} "
                    f"(in {folder})")
            plans[plan.name] = plan
    return dict(sorted(plans.items()))


def resolve_position(folder: str | os.PathLike[str], name: str, *, pattern: str | None = None,
                     axes: str | None = None) -> PositionPlan:
    """The plan of one position, reading only the headers of the files that can hold it
    (the ingest job reads their pixels next, and `plan_experiment` has read the last planes).

    Raises
    ------
    ValueError
        If no position has that name (the message lists some that do), or the name is a
        multi-series file (the message lists its series positions).
    """
    found = discover_positions(folder, pattern=pattern)
    candidates = [base for base in found if name == base or name.startswith(base + "_")]
    for base in sorted(candidates, key=len, reverse=True):
        paths = [str(path) for path in found[base]]
        records = inspect_files(paths[:1], axes=axes,
                                read_last_plane=False)[os.path.abspath(paths[0])]
        plans = {plan.name: plan for plan in _plans_of(base, paths, records)}
        if name in plans:
            return plans[name]
        if name == base:
            raise ValueError(
                f"position must name one series of the multi-series file {Path(paths[0]).name!r}, "
                f"got {name!r}; use one of {sorted(plans)!r} (in {folder})")
    known = ", ".join(repr(base) for base in list(found)[:10])
    raise ValueError(f"position must be one of {known}{' ...' if len(found) > 10 else ''}, "
                     f"got {name!r} (in {folder})")


def position_folders(plans: Mapping[str, PositionPlan]) -> dict[str, PositionPlan]:
    """Folder name (`folder_name`) -> plan; raise if two positions share a folder."""
    folders: dict[str, PositionPlan] = {}
    for plan in plans.values():
        folder = folder_name(plan.name)
        if folder in folders:
            raise ValueError(
                f"position names must differ in more than braces versus parentheses, got "
                f"{folders[folder].name!r} and {plan.name!r}; rename one file "
                f"(in {Path(plan.files[0]).parent})")
        folders[folder] = plan
    return folders
