"""Ingest raw microscopy (TIFF, OME-TIFF, ImageJ hyperstacks, per-timepoint files) into OME-Zarr.

One position becomes one NGFF image with axes ``t, c, (z,) y, x``, the raw dtype and values,
and the physical pixel size and frame interval from the file metadata (OME-XML, ImageJ, TIFF
resolution tags) or from explicit overrides. Frames are streamed: a few timepoints are in
memory at a time, and compression of different frames runs in parallel threads.

Discovery (`discover_positions`) only lists folder entries and imports nothing heavy, so the
Snakefile can call it when it builds the DAG.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import tifffile

    from spheroseg.ngff import ImageMetadata

LOG = logging.getLogger("spheroseg.ingest")

TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
PLACEHOLDERS = {"position": r"(?P<position>[^/]+?)", "timepoint": r"(?P<timepoint>\d+)"}
# tifffile axis letters mapped onto NGFF axes; I and Q are unnamed page sequences.
TIFF_AXES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x", "I": "t", "Q": "t"}
MICROMETRES_PER_UNIT = {
    "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "\u00b5m": 1.0, "\u03bcm": 1.0, "\\u00b5m": 1.0, "nm": 1e-3, "nanometer": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6,
    "inch": 25400.0, "in": 25400.0,
}
SECONDS_PER_UNIT = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "millisecond": 1e-3,
    "\u00b5s": 1e-6, "us": 1e-6, "microsecond": 1e-6, "ns": 1e-9, "min": 60.0,
    "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
}
# Screen resolutions that image editors write by default: they are not a calibration.
DEFAULT_DPI = (72.0, 96.0)
FRAMES_IN_FLIGHT = 4


@dataclass(frozen=True)
class PhysicalSizes:
    """Physical sizes of one image; None where unknown."""

    pixel_size_um: float | None = None
    time_interval_s: float | None = None
    z_step_um: float | None = None


@dataclass(frozen=True)
class TiffLayout:
    """How one TIFF series maps onto NGFF axes.

    Attributes
    ----------
    path : Path
        The file.
    file_axes : str
        tifffile axis letters of series 0, for example ``"TCYX"``.
    shape : tuple of int
        Output shape ``(T, C, Y, X)`` or ``(T, C, Z, Y, X)``.
    dtype : numpy.dtype
        Pixel data type.
    sizes : PhysicalSizes
        Physical sizes read from the file metadata.
    """

    path: Path
    file_axes: str
    shape: tuple[int, ...]
    dtype: Any
    sizes: PhysicalSizes

    @property
    def axes(self) -> str:
        """Output NGFF axes, ``"tcyx"`` or ``"tczyx"``."""
        return "tczyx" if len(self.shape) == 5 else "tcyx"


def _strip_suffix(name: str) -> str | None:
    """File name without its TIFF suffix, or None if it is not a TIFF name."""
    lower = name.lower()
    for suffix in TIFF_SUFFIXES:
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

    Without a pattern every TIFF file directly in the folder (``*.tif``, ``*.tiff``,
    ``*.ome.tif``, ``*.ome.tiff``) is one position named after the file; subfolders and
    hidden files are ignored. With a pattern, files whose path relative to the folder matches
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
        If the folder does not exist, holds no TIFF file, the pattern matches nothing, two
        files give the same position (and timepoint), or the pattern is invalid.
    """
    folder = Path(experiment_dir)
    if not folder.is_dir():
        raise ValueError(f"experiment must be an existing folder, got {str(folder)!r}")
    if pattern is None:
        return _positions_by_file(folder)
    return _positions_by_pattern(folder, pattern)


def _positions_by_file(folder: Path) -> dict[str, list[Path]]:
    """One position per TIFF file directly in `folder`."""
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
            f"experiment folder must contain at least one .tif/.tiff file, got none (in {folder})"
        )
    return dict(sorted(positions.items()))


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
        numbers = sorted(files)
        if numbers[-1] - numbers[0] + 1 != len(numbers):
            LOG.warning("position %r: timepoints %d..%d have gaps (%d files); frames are "
                        "stored consecutively, so times after a gap are shifted", name,
                        numbers[0], numbers[-1], len(numbers))
    return {name: [files[t] for t in sorted(files)] for name, files in sorted(found.items())}


def _unit_factor(unit: Any, table: dict[str, float]) -> float | None:
    """Conversion factor for a unit name, None if unknown."""
    if not isinstance(unit, str):
        return None
    return table.get(unit.strip()) or table.get(unit.strip().lower())


def _clean(value: float) -> float:
    """Round away binary noise from unit conversions (12 significant digits)."""
    return float(f"{value:.12g}")


def _positive(value: Any) -> float | None:
    """`value` as a finite positive float, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _ome_sizes(xml: str) -> PhysicalSizes:
    """Pixel size, z step and frame interval of the first OME image."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        LOG.warning("OME-XML metadata could not be parsed; ignoring it")
        return PhysicalSizes()
    pixels = root.find("{*}Image/{*}Pixels")
    if pixels is None:
        return PhysicalSizes()

    def length(attribute: str) -> float | None:
        factor = _unit_factor(pixels.get(attribute + "Unit", "\u00b5m"), MICROMETRES_PER_UNIT)
        value = _positive(pixels.get(attribute))
        return value * factor if value is not None and factor is not None else None

    interval = _positive(pixels.get("TimeIncrement"))
    factor = _unit_factor(pixels.get("TimeIncrementUnit", "s"), SECONDS_PER_UNIT)
    interval = interval * factor if interval is not None and factor is not None else None
    if interval is None:
        interval = _ome_delta_t(pixels)
    return PhysicalSizes(length("PhysicalSizeX"), interval, length("PhysicalSizeZ"))


def _ome_delta_t(pixels: Any) -> float | None:
    """Median step of the plane ``DeltaT`` values of channel 0, z 0 over time."""
    times = {}
    for plane in pixels.findall("{*}Plane"):
        if plane.get("TheC", "0") == "0" and plane.get("TheZ", "0") == "0":
            delta = plane.get("DeltaT")
            factor = _unit_factor(plane.get("DeltaTUnit", "s"), SECONDS_PER_UNIT)
            try:
                times[int(plane.get("TheT", "0"))] = float(delta) * factor
            except (TypeError, ValueError):
                continue
    ordered = [times[t] for t in sorted(times)]
    steps = sorted(b - a for a, b in zip(ordered, ordered[1:]))
    return _positive(steps[len(steps) // 2]) if steps else None


def _resolution_um(page: Any, unit_name: str | None) -> float | None:
    """Pixel size from the XResolution tag and the resolution unit (or an ImageJ unit)."""
    tag = page.tags.get("XResolution")
    try:
        numerator, denominator = tag.value
        pixels_per_unit = numerator / denominator
        units_per_pixel = denominator / numerator
    except (AttributeError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (math.isfinite(pixels_per_unit) and pixels_per_unit > 0):
        return None
    if unit_name is not None:
        factor = _unit_factor(unit_name, MICROMETRES_PER_UNIT)
    else:
        resolution_unit = int(getattr(page.tags.get("ResolutionUnit"), "value", 1) or 1)
        factor = {2: 25400.0, 3: 10000.0}.get(resolution_unit)
        if resolution_unit == 2 and pixels_per_unit in DEFAULT_DPI:
            factor = None
    return _clean(factor * units_per_pixel) if factor is not None else None


def read_physical_sizes(tif: tifffile.TiffFile) -> PhysicalSizes:
    """Physical sizes from OME-XML, else ImageJ metadata, else TIFF resolution tags.

    Parameters
    ----------
    tif : tifffile.TiffFile
        An open TIFF file.

    Returns
    -------
    PhysicalSizes
        Sizes in micrometres and seconds; None where the file does not say.
    """
    page = tif.pages.first
    if tif.is_ome and tif.ome_metadata:
        sizes = _ome_sizes(tif.ome_metadata)
        if sizes != PhysicalSizes():
            return sizes
    imagej = tif.imagej_metadata if tif.is_imagej else None
    if isinstance(imagej, dict):
        unit = imagej.get("unit")
        factor = _unit_factor(unit, MICROMETRES_PER_UNIT)
        spacing = _positive(imagej.get("spacing"))
        interval = _positive(imagej.get("finterval"))
        time_factor = _unit_factor(imagej.get("tunit", "sec"), SECONDS_PER_UNIT)
        return PhysicalSizes(
            _resolution_um(page, unit) if factor is not None else None,
            interval * time_factor if interval is not None and time_factor else None,
            spacing * factor if spacing is not None and factor is not None else None,
        )
    return PhysicalSizes(_resolution_um(page, None), None, None)


class IngestError(ValueError):
    """A raw input file cannot be ingested; the message names the file and the problem."""


MAX_PLANE_BYTES = 2**31


def _map_axes(file_axes: str, file_shape: Sequence[int], path: Path) -> dict[int, str]:
    """Map each kept file axis (by index) to an NGFF axis; size-1 extras are dropped."""
    roles: dict[int, str] = {}
    for index, (letter, size) in enumerate(zip(file_axes, file_shape)):
        target = TIFF_AXES.get(letter)
        if size == 1 and letter not in "YX":
            continue
        if target is None:
            raise IngestError(
                f"file axes must be among T, C, Z, Y, X, got axis {letter!r} of size {size} "
                f"(in {path})"
            )
        if target in roles.values():
            raise IngestError(
                f"file axes must hold at most one {target!r} axis, got {file_axes!r} with "
                f"shape {tuple(file_shape)} (in {path})"
            )
        roles[index] = target
    spatial = "".join(role for index, role in roles.items() if file_axes[index] != "S")
    if not spatial.endswith("yx") or spatial.count("y") != 1:
        raise IngestError(f"file axes must end in Y, X, got {file_axes!r} (in {path})")
    return roles


def _output_shape(roles: dict[int, str], file_shape: Sequence[int]) -> tuple[int, ...]:
    """``(T, C, [Z,] Y, X)`` for the kept file axes."""
    sizes = {target: int(file_shape[index]) for index, target in roles.items()}
    shape = [sizes.get("t", 1), sizes.get("c", 1)]
    if "z" in sizes:
        shape.append(sizes["z"])
    return (*shape, sizes["y"], sizes["x"])


def _check_plane(number: int, page: Any, series: Any, path: Path) -> None:
    """Raise if one plane disagrees with the series layout or lies beyond its file."""
    keyframe = series.keyframe
    if page is None:
        raise IngestError(f"image plane {number} must exist, got a missing plane (in {path})")
    if page.shape != keyframe.shape or page.dtype != keyframe.dtype:
        raise IngestError(
            f"image plane {number} must have the shape and dtype of plane 0 "
            f"{keyframe.shape} {keyframe.dtype}, got {page.shape} {page.dtype} (in {path})"
        )
    if series.dataoffset is not None:
        expected = series.dataoffset + number * keyframe.nbytes
        if page.dataoffsets and page.dataoffsets[0] != expected:
            raise IngestError(
                f"image plane {number} must start at byte {expected} of the contiguous "
                f"series, got {page.dataoffsets[0]} (in {path})"
            )
        return
    ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
    if not ends or max(ends) > page.parent.filehandle.size or (
        page.compression == 1 and sum(page.databytecounts) < keyframe.nbytes
    ):
        raise IngestError(f"image plane {number} must lie within the file, got a "
                          f"truncated or corrupt plane (in {path})")


def _check_data_in_file(series: Any, path: Path) -> None:
    """Raise if any plane of the series is missing, inconsistent or beyond end of file."""
    plane_bytes = series.keyframe.nbytes
    if plane_bytes > MAX_PLANE_BYTES or min(series.shape, default=0) < 1:
        raise IngestError(f"image planes must have 1 to {MAX_PLANE_BYTES} bytes, got shape "
                          f"{series.shape} {series.dtype} (in {path})")
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
        if end > series.parent.filehandle.size:
            raise IngestError(f"file must hold {series.nbytes} bytes of pixel data, got a "
                              f"truncated file (in {path})")
    for number, page in enumerate(series.pages):
        _check_plane(number, page, series, path)


def inspect_tiff(path: str | os.PathLike[str]) -> TiffLayout:
    """Read the layout and physical sizes of series 0 of a TIFF file (no pixel data).

    Parameters
    ----------
    path : str or PathLike
        A TIFF, OME-TIFF or ImageJ hyperstack file.

    Returns
    -------
    TiffLayout
        Output shape ``(T, C, [Z,] Y, X)``, dtype and physical sizes.

    Raises
    ------
    IngestError
        If the file is not a readable TIFF image, is truncated or has unsupported axes.
    """
    import tifffile

    path = Path(path)
    with _reading(path):
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise IngestError(f"file must hold an image, got a TIFF without one "
                                  f"(in {path})")
            series = tif.series[0]
            roles = _map_axes(series.axes, series.shape, path)
            _check_data_in_file(series, path)
            return TiffLayout(
                path=path, file_axes=series.axes, shape=_output_shape(roles, series.shape),
                dtype=series.dtype, sizes=read_physical_sizes(tif),
            )


class _reading:
    """Context manager turning any failure of a reader library into an IngestError."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        if error is None or isinstance(error, IngestError) or not isinstance(error, Exception):
            return False
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise IngestError(
            f"file must be a complete, readable TIFF image, got {type(error).__name__}: {detail} "
            f"(in {self.path})"
        ) from error


def _frame_index(roles: dict[int, str], ndim: int, t: int) -> tuple[Any, ...]:
    """Index into the file array selecting timepoint `t` and dropping size-1 extras."""
    index: list[Any] = []
    for axis in range(ndim):
        role = roles.get(axis)
        index.append(t if role == "t" else slice(None) if role else 0)
    return tuple(index)


def _to_output_frame(plane: Any, roles: dict[int, str], shape: tuple[int, ...]) -> Any:
    """Reorder a frame read from the file to ``(C, [Z,] Y, X)``."""
    import numpy as np

    kept = [role for axis, role in sorted(roles.items()) if role != "t"]
    order = [kept.index(role) for role in "czyx" if role in kept]
    return np.ascontiguousarray(np.transpose(plane, order)).reshape(shape[1:])


def iter_frames(layout: TiffLayout) -> Iterator[tuple[int, Any]]:
    """Yield ``(t, frame)`` for every timepoint of a TIFF file, one frame in memory at a time.

    Parameters
    ----------
    layout : TiffLayout
        From `inspect_tiff`.

    Yields
    ------
    tuple of (int, ndarray of shape (C, [Z,] Y, X))
        Timepoint index and its pixels, raw dtype.

    Raises
    ------
    IngestError
        If the file cannot be read or its content changed since `inspect_tiff`.
    """
    import numpy as np
    import tifffile
    import zarr

    with _reading(layout.path), tifffile.TiffFile(layout.path) as tif:
        series = tif.series[0]
        roles = _map_axes(series.axes, series.shape, layout.path)
        if _output_shape(roles, series.shape) != layout.shape:
            raise IngestError(f"file must not change during ingest, got a new shape "
                              f"(in {layout.path})")
        frames = layout.shape[0]
        t_axis = next((axis for axis, role in roles.items() if role == "t"), None)
        pages = len(series.pages)
        if t_axis in (0, None) and pages % frames == 0:
            # Fast path: the pages of timepoint t are consecutive in the series.
            rest = series.shape[1:] if t_axis == 0 else series.shape
            start = 1 if t_axis == 0 else 0
            index = tuple(slice(None) if axis in roles else 0
                          for axis in range(start, len(series.shape)))
            per_frame = pages // frames
            for t in range(frames):
                plane = series.asarray(key=slice(t * per_frame, (t + 1) * per_frame))
                yield t, _to_output_frame(plane.reshape(rest)[index], roles, layout.shape)
            return
        with series.aszarr() as store:
            array = zarr.open_array(store=store, mode="r")
            for t in range(frames):
                plane = np.asarray(array[_frame_index(roles, array.ndim, t)])
                yield t, _to_output_frame(plane, roles, layout.shape)


def plan_position(files: Sequence[str | os.PathLike[str]]) -> tuple[TiffLayout, ...]:
    """Inspect the file(s) of one position and check they form one time series.

    A single file holds the whole series; several files hold one timepoint each (sorted)
    and must share shape and dtype.

    Parameters
    ----------
    files : sequence of str or PathLike
        One file, or one file per timepoint in time order.

    Returns
    -------
    tuple of TiffLayout
        One layout per file.

    Raises
    ------
    IngestError
        If there is no file, a file is unreadable, or the files do not match.
    """
    if not files:
        raise IngestError("files must list at least one TIFF file, got none")
    layouts = tuple(inspect_tiff(path) for path in files)
    if len(layouts) == 1:
        return layouts
    first = layouts[0]
    for layout in layouts:
        if layout.shape[0] != 1:
            raise IngestError(
                f"each per-timepoint file must hold one timepoint, got {layout.shape[0]} "
                f"(in {layout.path})"
            )
        if layout.shape != first.shape or layout.dtype != first.dtype:
            raise IngestError(
                f"files of one position must share shape and dtype, got "
                f"{layout.shape[1:]} {layout.dtype} but {first.shape[1:]} {first.dtype} in "
                f"{first.path.name!r} (in {layout.path})"
            )
    return layouts


def resolve_sizes(
    found: PhysicalSizes, overrides: PhysicalSizes, *, frames: int, has_z: bool, label: str
) -> PhysicalSizes:
    """Combine sizes from the file with explicit overrides (which win), logging the outcome.

    Missing pixel size (and missing frame interval for a time series, or z step for a
    stack) without an override is logged as a warning: lengths are then in pixels.

    Examples
    --------
    >>> resolve_sizes(PhysicalSizes(0.5, None), PhysicalSizes(None, 60.0), frames=1,
    ...               has_z=False, label="A1")
    PhysicalSizes(pixel_size_um=0.5, time_interval_s=60.0, z_step_um=None)
    """
    merged = {}
    for field, value in vars(found).items():
        override = getattr(overrides, field)
        if override is not None and value is not None and not math.isclose(override, value):
            LOG.info("%s: %s %s from the command line replaces %s from the file",
                     label, field, override, value)
        merged[field] = override if override is not None else value
    result = PhysicalSizes(**merged)
    wanted = {"pixel_size_um": "--pixel-size-um", "time_interval_s": "--time-interval-s",
              "z_step_um": "--z-step-um"}
    if frames == 1:
        wanted.pop("time_interval_s")
    if not has_z:
        wanted.pop("z_step_um")
    for field, option in wanted.items():
        if getattr(result, field) is None:
            LOG.warning("%s: %s unknown (no metadata in the file and no %s); results will "
                        "use %s units", label, field, option,
                        "frame" if field == "time_interval_s" else "pixel")
    return result


def _stream_frames(layouts: Sequence[TiffLayout]) -> Iterator[tuple[int, Any]]:
    """All frames of a position: each file's frames, numbered consecutively."""
    offset = 0
    for layout in layouts:
        for t, frame in iter_frames(layout):
            yield offset + t, frame
        offset += layout.shape[0]


def _write_frame(arrays: Sequence[Any], t: int, frame: Any) -> None:
    """Write one frame to level 0 and its downsampled versions to the other levels."""
    from spheroseg.ngff import downsample_plane, write_frame

    write_frame(arrays[0], t, frame)
    for level in arrays[1:]:
        frame = downsample_plane(frame, factor=2)
        write_frame(level, t, frame)


def write_frames(arrays: Sequence[Any], frames: Iterator[tuple[int, Any]], *,
                 workers: int = 2) -> int:
    """Write frames from an iterator with `workers` threads, a few frames in flight.

    Reading stays on the calling thread (TIFF readers are not thread-safe); compression
    of different frames runs in parallel. Returns the number of frames written.
    """
    pending: list[Future[None]] = []
    count = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            for t, frame in frames:
                pending.append(pool.submit(_write_frame, arrays, t, frame))
                count += 1
                while len(pending) >= max(FRAMES_IN_FLIGHT, workers + 1):
                    pending.pop(0).result()
            for future in pending:
                future.result()
        finally:
            for future in pending:
                future.cancel()
    return count


def check_overrides(overrides: PhysicalSizes) -> None:
    """Raise ValueError for an override that is not a finite number > 0."""
    for name in ("pixel_size_um", "time_interval_s", "z_step_um"):
        value = getattr(overrides, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value < math.inf):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")


def ingest_position(
    files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
    overrides: PhysicalSizes = PhysicalSizes(), name: str | None = None,
    pyramid: bool = True, workers: int = 2,
) -> ImageMetadata:
    """Ingest the file(s) of one position into a new OME-Zarr image, atomically.

    Parameters
    ----------
    files : sequence of str or PathLike
        One TIFF holding the whole series, or one TIFF per timepoint in time order.
    output : str or PathLike
        The ``image.ome.zarr`` to write; replaced only if the whole ingest succeeds.
    overrides : PhysicalSizes
        Sizes that replace the file metadata where not None.
    name : str, optional
        Image name for the metadata (the position name).
    pyramid : bool
        Also write 2x downsampled levels for viewing (down to 256 px).
    workers : int
        Threads compressing frames in parallel.

    Returns
    -------
    ImageMetadata
        What was written (`spheroseg.ngff.read_metadata` of the output).

    Raises
    ------
    IngestError
        If an input is unreadable, truncated or inconsistent; no output is left behind.
    ValueError
        If an override is not a number > 0.
    OSError
        If the output cannot be written (``spheroseg.atomic.OutputError``).
    """
    from spheroseg import ngff
    from spheroseg.atomic import atomic_path
    from spheroseg.progress import progress

    check_overrides(overrides)
    layouts = plan_position(files)
    first = layouts[0]
    shape = (sum(layout.shape[0] for layout in layouts), *first.shape[1:])
    label = name if name is not None else first.path.name
    sizes = resolve_sizes(first.sizes, overrides, frames=shape[0],
                          has_z=len(shape) == 5, label=label)
    with atomic_path(output) as tmp:
        level0 = ngff.create_image(
            tmp, shape=shape, dtype=first.dtype, axes=first.axes, name=name,
            pixel_size_um=sizes.pixel_size_um, time_interval_s=sizes.time_interval_s,
            z_step_um=sizes.z_step_um,
        )
        levels = ngff.create_levels(tmp) if pyramid else []
        frames = progress(_stream_frames(layouts), total=shape[0], description=f"{label}: frames",
                          unit="frame", pixels_per_item=math.prod(shape[1:]))
        written = write_frames([level0, *levels], frames, workers=workers)
        if written != shape[0]:
            raise IngestError(f"input must provide {shape[0]} frames, got {written} "
                              f"(in {first.path})")
    LOG.info("%s: wrote %d frame(s) of shape %s %s to %s", label, shape[0], shape[1:],
             first.dtype, output)
    return ngff.read_metadata(output)
