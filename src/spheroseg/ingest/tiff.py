"""TIFF files as time series: how a file's axes map onto NGFF axes (`inspect_tiff`), the
checks that a file really holds what it says, and frame-by-frame reading (`iter_frames`)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spheroseg.ingest.metadata import PhysicalSizes, read_channel_names, read_physical_sizes


# tifffile axis letters mapped onto NGFF axes; I and Q are unnamed page sequences.
TIFF_AXES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x", "I": "t", "Q": "t"}
MAX_PLANE_BYTES = 2**31
# A reader's name for a channel the file does not name (bioio: "Channel:0:1"; OME: "C:1").
_PLACEHOLDER_CHANNEL = re.compile(r"^(Channel:\d+:\d+|C:?\d+)$", re.IGNORECASE)


class IngestError(ValueError):
    """A raw input file cannot be ingested; the message names the file and the problem."""


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
    series : int
        Index of the series in the file (OME-TIFF images, tifffile series).
    series_name : str
        Name of the series in the file metadata ("" if it has none).
    axes_override : str or None
        NGFF axis letters, one per file axis, that replace the reader's guess
        (``ingest.axes``); None keeps the guess.
    channel_names : tuple of str
        The file's name of each output channel (OME-XML ``Channel/@Name``, a vendor file's
        channel names); empty where the file names none, or not one per output channel.
    """

    path: Path
    file_axes: str
    shape: tuple[int, ...]
    dtype: Any
    sizes: PhysicalSizes
    series: int = 0
    series_name: str = ""
    axes_override: str | None = None
    channel_names: tuple[str, ...] = ()

    @property
    def axes(self) -> str:
        """Output NGFF axes, ``"tcyx"`` or ``"tczyx"``."""
        return "tczyx" if len(self.shape) == 5 else "tcyx"


def channel_names_for(names: Sequence[Any], shape: Sequence[int]) -> tuple[str, ...]:
    """`names` as the output channels' names, if they are one per channel of the output
    `shape` ``(T, C, ...)`` and at least one is not a reader's placeholder (bioio's
    ``Channel:0:1``, an empty name); else none.

    Examples
    --------
    >>> channel_names_for(["BF", "GFP"], (3, 2, 64, 64)), channel_names_for(["BF"], (3, 2, 64, 64))
    (('BF', 'GFP'), ())
    >>> channel_names_for(["Channel:0:0", "Channel:0:1"], (3, 2, 64, 64))
    ()
    """
    cleaned = tuple(str(name).strip() for name in names)
    if len(cleaned) != shape[1] or all(not name or _PLACEHOLDER_CHANNEL.match(name) for name in cleaned):
        return ()
    return cleaned


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


def check_axes_override(axes: str) -> str:
    """Check an ``ingest.axes`` value: letters of ``tczyx``, each once, with y before x.

    Examples
    --------
    >>> check_axes_override("tyx")
    'tyx'
    """
    if not isinstance(axes, str):
        raise TypeError(f"ingest.axes must be a string such as 'tyx', got {axes!r}")
    if (set(axes) - set("tczyx") or len(set(axes)) != len(axes)
            or "".join(letter for letter in axes if letter in "yx") != "yx"):
        raise ValueError(f"ingest.axes must use each of t, c, z at most once and y before x "
                         f"(e.g. 'tyx', 'cyx', 'tczyx'), got {axes!r}")
    return axes


def _override_roles(axes: str, file_shape: Sequence[int], path: Path, *, file_axes: str,
                    reader: str) -> dict[int, str]:
    """Map file axes to the NGFF axes named by ``ingest.axes``; size-1 extras are dropped.
    `file_axes` and `reader` (whose letters they are) only explain a wrong length."""
    check_axes_override(axes)
    if len(axes) != len(file_shape):
        raise IngestError(f"ingest.axes must have one letter per axis of the file's shape "
                          f"{tuple(file_shape)}, whose axes are {file_axes} in {reader}'s order, "
                          f"got {axes!r} (in {path})")
    return {index: letter for index, (letter, size) in enumerate(zip(axes, file_shape))
            if size > 1 or letter in "yx"}


def _ambiguous_layout(tif: Any, series: Any) -> str | None:
    """Why the layout of `series` is a guess, or None if the file says what its axes are.

    A bare ``tifffile.imwrite(path, stack)`` of a (3 or 4, Y, X) stack stores one page with
    3 or 4 samples per pixel in separate planes: channels or timepoints, nothing tells.
    """
    if tif.is_ome or tif.is_imagej or "S" not in series.axes:
        return None
    samples = series.shape[series.axes.index("S")]
    if samples < 2 or int(series.keyframe.planarconfig) != 2:  # 2: separate planes
        return None
    guess = "".join(TIFF_AXES.get(letter, "?") for letter in series.axes)
    as_time = guess.replace("c", "t") if "t" not in guess else guess
    question = (f"file axes must be known, got one page with {samples} samples per pixel (shape "
                f"{tuple(series.shape)}): {samples} channels or {samples} timepoints? Set "
                f"ingest.axes (spheroseg ingest --axes) to ")
    if as_time != guess and all(len(set(axes)) == len(axes) for axes in (guess, as_time)):
        return f"{question}{as_time!r} for timepoints or {guess!r} for channels"
    return (f"{question}one letter per file axis ({len(series.shape)} axes) from t, c, z, y, x, each at "
            f"most once")


def _series_roles(tif: Any, series: Any, path: Path, axes: str | None) -> dict[int, str]:
    """File axis index -> NGFF axis for `series`: from ``ingest.axes`` or the file."""
    if axes is not None:
        return _override_roles(axes, series.shape, path, file_axes=series.axes,
                               reader="tifffile")
    ambiguity = _ambiguous_layout(tif, series)
    if ambiguity is not None:
        raise IngestError(f"{ambiguity} (in {path})")
    return _map_axes(series.axes, series.shape, path)


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
    if getattr(series.keyframe, "bitspersample", 8) < 8:
        raise IngestError(f"image must have 8 or more bits per sample, got "
                          f"{series.keyframe.bitspersample}-bit planes (a 1-bit TIFF is a mask, not "
                          f"microscopy; save the image itself) (in {path})")
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


def inspect_tiff(path: str | os.PathLike[str], *, series: int = 0,
                 axes: str | None = None) -> TiffLayout:
    """Read the layout and physical sizes of one series of a TIFF file (no pixel data).

    Parameters
    ----------
    path : str or PathLike
        A TIFF, OME-TIFF or ImageJ hyperstack file.
    series : int
        Which series (OME image) of the file.
    axes : str, optional
        NGFF letters, one per file axis (``ingest.axes``), replacing the reader's guess.

    Returns
    -------
    TiffLayout
        Output shape ``(T, C, [Z,] Y, X)``, dtype and physical sizes.

    Raises
    ------
    IngestError
        If the file is not a readable TIFF image, is truncated, has unsupported or
        ambiguous axes (then it names ``ingest.axes``), or lacks the series.
    """
    return inspect_tiff_series(path, axes=axes, only=series)[0]


def inspect_tiff_series(path: str | os.PathLike[str], *, axes: str | None = None,
                        only: int | None = None) -> tuple[TiffLayout, ...]:
    """Layouts of every image series of a TIFF file (or of series `only`), headers only.

    Raises
    ------
    IngestError
        As `inspect_tiff`.
    """
    import tifffile

    path = Path(path)
    with _reading(path), tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise IngestError(f"file must hold an image, got a TIFF without one (in {path})")
        if only is not None and not 0 <= only < len(tif.series):
            raise IngestError(f"series must be in [0, {len(tif.series) - 1}], got {only} "
                              f"(in {path})")
        chosen = range(len(tif.series)) if only is None else [only]
        return tuple(_layout(tif, index, path, axes) for index in chosen)


def _layout(tif: Any, index: int, path: Path, axes: str | None) -> TiffLayout:
    """TiffLayout of series `index` of an open file."""
    series = tif.series[index]
    roles = _series_roles(tif, series, path, axes)
    _check_data_in_file(series, path)
    shape = _output_shape(roles, series.shape)
    return TiffLayout(
        path=path, file_axes=series.axes, shape=shape,
        dtype=series.dtype, sizes=read_physical_sizes(tif, index), series=index,
        series_name=str(series.name or ""), axes_override=axes,
        channel_names=channel_names_for(read_channel_names(tif, index), shape),
    )


#: Words of the tifffile log messages that mean bytes the file points to are not there (a
#: truncated or overwritten file): tifffile logs them and reads on, dropping pages or metadata.
_TRUNCATION_SIGNS = ("offset", "truncat", "unexpected end")


class _TiffLog(logging.Handler):
    """Collects tifffile's error messages while a file is read."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _reading:
    """Context manager turning any failure of a reader library into an IngestError, and a file
    that tifffile reads only in part (it logs the bad offset and drops the pages or metadata
    behind it) into one as well, so that a truncated file never ingests as a shorter stack."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = _TiffLog()

    def __enter__(self) -> None:
        logging.getLogger("tifffile").addHandler(self.log)
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        logging.getLogger("tifffile").removeHandler(self.log)
        if error is None:
            damage = [m for m in self.log.messages if any(sign in m.lower() for sign in _TRUNCATION_SIGNS)]
            if damage:
                detail = " ".join(damage[0].split())[:200]
                raise IngestError(f"file must be a complete TIFF, got a truncated or corrupt file "
                                  f"(the reader could not read all of it: {detail}) (in {self.path})")
            return False
        if isinstance(error, IngestError) or not isinstance(error, Exception):
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
        series = tif.series[layout.series]
        roles = _series_roles(tif, series, layout.path, layout.axes_override)
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
