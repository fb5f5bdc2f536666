"""Discovery: which positions an experiment folder holds and which files belong to each.

Only lists folder entries and imports nothing heavy, so the Snakefile can call
`discover_positions` when it builds the DAG.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
# Read through bioio (the optional ``vendor`` extra); listed here without importing it, so
# that a folder of them without the extra stops with a message naming it.
VENDOR_SUFFIXES = (".nd2", ".czi", ".lif")
IMAGE_SUFFIXES = TIFF_SUFFIXES + VENDOR_SUFFIXES
PLACEHOLDERS = {"position": r"(?P<position>[^/]+?)", "timepoint": r"(?P<timepoint>\d+)"}


def _strip_suffix(name: str) -> str | None:
    """File name without its image suffix, or None if it is not an image file's name."""
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Turn a file-name pattern with ``{position}`` and ``{timepoint}`` into a regex.

    Parameters
    ----------
    pattern : str
        Relative path pattern, for example ``"{position}_t{timepoint}.tif"``; ``{position}``
        is required, ``{timepoint}`` (digits) is optional. Everything else is literal.

    Returns
    -------
    re.Pattern
        Full-match regex with groups ``position`` and, if used, ``timepoint``.

    Raises
    ------
    ValueError
        If the pattern lacks ``{position}``, repeats a placeholder or uses an unknown one.

    Examples
    --------
    >>> compile_pattern("{position}_t{timepoint}.tif").fullmatch("A1_t003.tif")["timepoint"]
    '003'
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string, got {pattern!r}")
    parts = re.split(r"(\{[^{}]*\})", pattern)
    regex, seen = [], set()
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            key = part[1:-1]
            if key not in PLACEHOLDERS or key in seen:
                raise ValueError(
                    f"pattern must use {{position}} and {{timepoint}} at most once each, "
                    f"got {pattern!r}"
                )
            seen.add(key)
            regex.append(PLACEHOLDERS[key])
        else:
            regex.append(re.escape(part))
    if "position" not in seen:
        raise ValueError(f"pattern must contain {{position}}, got {pattern!r}")
    return re.compile("".join(regex))


def _candidate_files(folder: Path, *, recursive: bool) -> list[Path]:
    """Visible regular files directly in `folder` (or below it if `recursive`)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found.extend(Path(root) / name for name in files if not name.startswith("."))
    return sorted(found)


def discover_positions(
    experiment_dir: str | os.PathLike[str], *, pattern: str | None = None
) -> dict[str, list[Path]]:
    """Find the positions of an experiment folder and their files.

    Without a pattern every image file directly in the folder (``*.tif``, ``*.tiff``,
    ``*.ome.tif``, ``*.ome.tiff``, and the vendor files ``*.nd2``, ``*.czi``, ``*.lif``) is
    one position named after the file; subfolders and hidden files are ignored. With a pattern, files whose path relative to the folder matches
    it are grouped by ``{position}`` and sorted by ``{timepoint}``.

    Parameters
    ----------
    experiment_dir : str or PathLike
        The experiment folder.
    pattern : str, optional
        File-name pattern such as ``"{position}_t{timepoint}.tif"`` (see `compile_pattern`).

    Returns
    -------
    dict of str to list of Path
        Position name to its file(s), sorted by position name; files sorted by timepoint.

    Raises
    ------
    ValueError
        If the folder does not exist, holds no image file, the pattern matches nothing, two
        files give the same position (and timepoint), the timepoints of a position have a
        gap, or the pattern is invalid.
    """
    folder = Path(experiment_dir)
    if not folder.is_dir():
        raise ValueError(f"experiment must be an existing folder, got {str(folder)!r}")
    if pattern is None:
        return _positions_by_file(folder)
    return _positions_by_pattern(folder, pattern)


def _positions_by_file(folder: Path) -> dict[str, list[Path]]:
    """One position per image file directly in `folder`."""
    positions: dict[str, list[Path]] = {}
    for path in _candidate_files(folder, recursive=False):
        name = _strip_suffix(path.name)
        if name is None:
            continue
        if name in positions:
            raise ValueError(
                f"position names must be unique, got {name!r} from both "
                f"{positions[name][0].name!r} and {path.name!r} (in {folder})"
            )
        positions[name] = [path]
    if not positions:
        raise ValueError(
            f"experiment folder must contain at least one image file (.tif, .tiff, .nd2, "
            f".czi, .lif), got none{_subfolder_hint(folder)} (in {folder})"
        )
    return dict(sorted(positions.items()))


def _subfolder_hint(folder: Path) -> str:
    """How many image files the subfolders of `folder` hold and a pattern that reads them,
    or "" if they hold none."""
    nested = [path for path in _candidate_files(folder, recursive=True)
              if _strip_suffix(path.name) is not None]
    if not nested:
        return ""
    tails = {"/".join(path.relative_to(folder).parts[1:]) for path in nested}
    name = nested[0].name
    tail = tails.pop() if len(tails) == 1 else "NAME" + name[len(_strip_suffix(name) or ""):]
    return (f" directly in it, but {len(nested)} in its subfolders; ingest.pattern "
            f"(spheroseg ingest --pattern) such as '{{position}}/{tail}' reads them")


def _positions_by_pattern(folder: Path, pattern: str) -> dict[str, list[Path]]:
    """Group files matching `pattern` by position, sorted by timepoint."""
    regex = compile_pattern(pattern)
    found: dict[str, dict[int, Path]] = {}
    for path in _candidate_files(folder, recursive="/" in pattern):
        match = regex.fullmatch(path.relative_to(folder).as_posix())
        if match is None:
            continue
        timepoint = int(match["timepoint"]) if "timepoint" in regex.groupindex else 0
        files = found.setdefault(match["position"], {})
        if timepoint in files:
            raise ValueError(
                f"each position must have one file per timepoint, got {files[timepoint].name!r} "
                f"and {path.name!r} for position {match['position']!r} (in {folder})"
            )
        files[timepoint] = path
    if not found:
        raise ValueError(f"pattern must match at least one file, got none for {pattern!r} "
                         f"(in {folder})")
    for name, files in found.items():
        _check_consecutive(name, files, folder)
    return {name: [files[t] for t in sorted(files)] for name, files in sorted(found.items())}


def _check_consecutive(name: str, files: dict[int, Path], folder: Path) -> None:
    """Raise if the timepoint numbers of a position's files have a gap: frames are stored in
    order, so every time after the gap would be shifted."""
    numbers = sorted(files)
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if not missing:
        return
    shown = ", ".join(map(str, missing[:8])) + (f" and {len(missing) - 8} more"
                                                  if len(missing) > 8 else "")
    first, last = (files[t].relative_to(folder).as_posix() for t in (numbers[0], numbers[-1]))
    raise ValueError(
        f"ingest.pattern files of position {name!r} must be consecutive timepoints (frames are "
        f"stored in order, so a gap would shift every later time), got no file for "
        f"timepoint(s) {shown} between {first!r} and {last!r} (config key 'ingest.pattern', "
        f"in {folder})")
