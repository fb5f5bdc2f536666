"""Vendor microscopy files (Nikon ND2, Zeiss CZI, Leica LIF) as time series, through the
`bioio <https://github.com/bioio-devs/bioio>`_ readers (the optional ``vendor`` extra:
``pip install 'spheroseg[vendor]'``).

Each scene of a file is a series, as each image of an OME-TIFF is: a multi-position file
gives one position per scene. Headers are read without pixel data (`inspect_vendor_series`),
except, where asked, the last plane of each scene, read as ingest reads it; frames are read
one timepoint at a time (`iter_vendor_frames`), so memory stays at about one frame whatever
the file's size. bioio imports take seconds, so nothing here is imported
unless a folder holds vendor files.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spheroseg.ingest.metadata import PhysicalSizes, median_step
from spheroseg.ingest.tiff import (
    IngestError,
    TiffLayout,
    _frame_index,
    _map_axes,
    _output_shape,
    _override_roles,
    _to_output_frame,
    channel_names_for,
)

# Suffix -> (bioio plugin module, its PyPI name).
VENDOR_READERS = {".nd2": ("bioio_nd2", "bioio-nd2"), ".czi": ("bioio_czi", "bioio-czi"),
                  ".lif": ("bioio_lif", "bioio-lif")}
EXTRA = "vendor"
# Loggers of the readers: quiet while headers are read (a CZI without acquisition times
# logs a traceback before answering "no interval").
_READER_LOGGERS = ("bioio", "bioio_base", "bioio_czi", "bioio_nd2", "bioio_lif")
# First bytes of a TIFF (little- and big-endian) and of a BigTIFF.
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
# Most characters of a reader's reason quoted in a message (cut at a sentence or a word).
REASON_CHARS = 200
# A bytes literal in a reader's message (nd2: "Invalid ChunkMap signature b'\x00...'").
_BYTES_LITERAL = re.compile(r"b'(?:[^'\\]|\\.)*'" r'|b"(?:[^"\\]|\\.)*"')


class MissingReaderError(IngestError):
    """The optional reader for a vendor file is not installed (never cached: installing it
    fixes the run)."""


class VendorLayout(TiffLayout):
    """One scene of a vendor file as a time series: the fields of `TiffLayout`, with
    ``file_axes`` the bioio dimension order (``"TCZYX"``, ``"TCZYXS"`` for RGB) and
    ``series`` / ``series_name`` the scene index and name."""


def is_vendor_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` has a vendor suffix (``.nd2``, ``.czi``, ``.lif``, any case).

    Examples
    --------
    >>> is_vendor_file("plate/A1.ND2"), is_vendor_file("A1.tif")
    (True, False)
    """
    return Path(path).suffix.lower() in VENDOR_READERS


def _reader_class(path: Path) -> Any:
    """The bioio plugin Reader for `path`, or MissingReaderError naming the extra."""
    import importlib

    module, package = VENDOR_READERS[path.suffix.lower()]
    try:
        importlib.import_module("bioio")
        return importlib.import_module(module).Reader
    except ImportError as err:
        raise MissingReaderError(
            f"file must be read by the optional vendor readers, got a {path.suffix} file "
            f"without them ({err.name or package} is not installed); install them with "
            f"pip install 'spheroseg[{EXTRA}]' (bioio, {package}) or export the file to "
            f"OME-TIFF (in {path})") from err


def _check_content(path: Path) -> None:
    """Raise for an empty file, or for a TIFF under a vendor name, before any reader tries."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return  # the reader says why
    if not head:
        raise IngestError(f"file must be a {path.suffix} image, got an empty file (0 bytes) "
                          f"(in {path})")
    if head in TIFF_MAGIC:
        raise IngestError(f"file must be the {path.suffix} image its name says, got a TIFF "
                          f"file; rename it to {path.stem}.tif (in {path})")


def _bytes_summary(match: re.Match[str]) -> str:
    """A bytes literal of a reader's message as its length, e.g. ``(32 zero bytes)``."""
    try:
        data = ast.literal_eval(match.group())
    except (ValueError, SyntaxError):
        return "(raw bytes)"
    return f"({len(data)} {'zero ' if data and not data.strip(bytes(1)) else ''}bytes)"


def _shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters after a sentence (else before a word), marked ``...``."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    sentence = head.rfind(". ")
    if sentence >= limit // 2:
        return head[: sentence + 1] + " ..."
    space = head.rfind(" ")
    return (head[:space] if space > 0 else head[:limit]) + " ..."


def _reader_reason(err: Exception, path: Path) -> str:
    """A reader's reason on one line: bioio's list of the readers' own reasons without its
    preamble, the file as its name, raw bytes summarised, cut at a sentence or a word."""
    text = str(err)
    if "Readers attempted:" in text:
        text = re.sub(r"^\s*- \w+: ", "", text.split("Readers attempted:", 1)[1], flags=re.M)
    text = _BYTES_LITERAL.sub(_bytes_summary, text)
    text = text.replace(os.path.abspath(path), path.name).replace(str(path), path.name)
    return _shorten(" ".join(text.split()).rstrip("."), REASON_CHARS) or type(err).__name__


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """A `bioio.BioImage` of `path`; any reader failure becomes an IngestError."""
    _check_content(path)
    reader = _reader_class(path)
    import bioio

    levels = {name: logging.getLogger(name).level for name in _READER_LOGGERS}
    for name in _READER_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    image = None
    try:
        image = bioio.BioImage(path, reader=reader)
        yield image
    except IngestError:
        raise
    except Exception as err:  # reader libraries raise anything on a bad file
        raise IngestError(f"file must be a complete {path.suffix} image that bioio reads, got "
                          f"{type(err).__name__}: {_reader_reason(err, path)}; if the file is "
                          f"fine, export it to OME-TIFF (Fiji, bfconvert) (in {path})") from err
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if image is not None and hasattr(image, "close"):
            image.close()


def _um(value: Any) -> float | None:
    """A bioio physical size (micrometres by bioio's convention) as a finite positive float."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _z_step_um(value: Any) -> float | None:
    """The z spacing in µm: the magnitude of bioio's signed z increment (a stack taken
    top-down has a negative one, as LIF files state it)."""
    try:
        return _um(abs(float(value)))
    except (TypeError, ValueError):
        return None


def _lif_frame_interval_s(image: Any) -> float | None:
    """Seconds per frame from the scene's T coordinates, where bioio-lif puts the file's own
    T dimension (its ``Length / (n - 1)``, in seconds); bioio-lif 2.0's ``time_interval`` is
    always None (its ``timelapse_interval`` works for multi-well plates only)."""
    import numpy as np

    coords = image.xarray_dask_data.coords
    if "T" not in coords or coords["T"].size < 2:
        return None
    times = np.asarray(coords["T"].values, dtype=float)
    return _um((times[-1] - times[0]) / (times.size - 1))


def _nd2_frame_interval_s(path: Path, scene: int) -> float | None:
    """Seconds per frame from an ND2's per-frame acquisition times, for a time loop that
    states no period ("no delay": bioio reports none): the median step between the first
    plane (z 0) of consecutive timepoints of the scene (its ``P Index`` in a multi-position
    file). None where the file records no times. Reads frame metadata only."""
    try:
        import nd2

        with nd2.ND2File(path) as document:
            if document.sizes.get("T", 1) < 2:
                return None
            events = document.events()
    except Exception:  # a file whose frame metadata cannot be read: no interval, not fatal
        return None
    times: dict[int, float] = {}
    for event in events:
        time_s, t_index = event.get("Time [s]"), event.get("T Index")
        if event.get("P Index", scene) != scene or event.get("Z Index", 0) != 0:
            continue
        if isinstance(t_index, int | float) and isinstance(time_s, int | float) and math.isfinite(time_s):
            times[int(t_index)] = min(float(time_s), times.get(int(t_index), math.inf))
    step = median_step(times)
    return None if step is None else _um(round(step, 6))


def _scene_sizes(image: Any, path: Path, scene: int = 0) -> PhysicalSizes:
    """Pixel size, frame interval and z step of the current scene (None where unknown)."""
    sizes = image.physical_pixel_sizes
    try:
        interval = image.time_interval
    except Exception:  # a reader that cannot work out an interval: unknown, not fatal
        interval = None
    seconds = interval.total_seconds() if hasattr(interval, "total_seconds") else interval
    seconds = _um(seconds)
    if seconds is None and path.suffix.lower() == ".lif":
        seconds = _lif_frame_interval_s(image)
    if seconds is None and path.suffix.lower() == ".nd2" and image.dims.T > 1:
        seconds = _nd2_frame_interval_s(path, scene)
    return PhysicalSizes(_um(sizes.X), seconds, _z_step_um(sizes.Z))


def _scene_roles(image: Any, path: Path, axes: str | None) -> dict[int, str]:
    """File axis index -> NGFF axis for the current scene: from ``ingest.axes`` or bioio."""
    order, shape = image.dims.order, image.dims.shape
    if axes is not None:
        return _override_roles(axes, shape, path, file_axes=order, reader="bioio")
    return _map_axes(order, shape, path)


def _scene_layout(image: Any, index: int, path: Path, axes: str | None, *,
                  read_last_plane: bool = False) -> VendorLayout:
    """The layout of scene `index` of an open file (after reading its last plane, if asked)."""
    image.set_scene(index)
    roles = _scene_roles(image, path, axes)
    shape = _output_shape(roles, image.dims.shape)
    if read_last_plane:
        _read_last_plane(image, roles, shape)
    return VendorLayout(
        path=path, file_axes=image.dims.order, shape=shape,
        dtype=image.dtype, sizes=_scene_sizes(image, path, index), series=index,
        series_name=str(image.scenes[index] or ""), axes_override=axes,
        channel_names=channel_names_for(_scene_channel_names(image), shape),
    )


def _scene_channel_names(image: Any) -> list[str]:
    """bioio's channel names of the current scene (empty where the reader has none)."""
    try:
        return [str(name) for name in image.channel_names or ()]
    except Exception:  # a reader that cannot name its channels: unnamed, not fatal
        return []


def _read_block(data: Any, index: tuple[Any, ...]) -> Any:
    """Pixels of ``data[index]`` from bioio's dask array, computed on the calling thread."""
    import numpy as np

    return np.asarray(data[index].compute(scheduler="synchronous"))


def _read_last_plane(image: Any, roles: dict[int, str], shape: tuple[int, ...]) -> None:
    """Read the current scene's last plane (last timepoint, last z, every channel) as ingest
    reads frames, so that pixels past the end of a truncated file, or pixels the reader
    cannot decode, fail now with ingest's error."""
    data = image.get_image_dask_data(image.dims.order)
    index = list(_frame_index(roles, data.ndim, shape[0] - 1))
    for axis, role in roles.items():
        if role == "z":
            index[axis] = slice(-1, None)
    _read_block(data, tuple(index))


def inspect_vendor_series(path: str | os.PathLike[str], *, axes: str | None = None,
                          only: int | None = None,
                          read_last_plane: bool = False) -> tuple[VendorLayout, ...]:
    """Layouts of every scene of a vendor file (or of scene `only`), from its headers.

    Parameters
    ----------
    path : str or PathLike
        An ``.nd2``, ``.czi`` or ``.lif`` file.
    axes : str, optional
        NGFF letters, one per bioio dimension (``ingest.axes``), replacing bioio's axes.
    only : int, optional
        Index of the one scene to inspect.
    read_last_plane : bool
        Also read the last plane of each scene (last timepoint, last z, every channel) as
        ingest does, so that a truncated file, or pixels that bioio cannot decode, fail here.

    Returns
    -------
    tuple of VendorLayout
        Output shape ``(T, C, [Z,] Y, X)``, dtype and physical sizes per scene.

    Raises
    ------
    MissingReaderError
        If the ``vendor`` extra (bioio and the format's plugin) is not installed.
    IngestError
        If the file is unreadable, has unsupported axes, or lacks the scene (or, with
        `read_last_plane`, its last plane is unreadable).
    """
    path = Path(path)
    with _opened(path) as image:
        scenes = len(image.scenes)
        if only is not None and not 0 <= only < scenes:
            raise IngestError(f"series must be in [0, {scenes - 1}], got {only} (in {path})")
        chosen = range(scenes) if only is None else [only]
        return tuple(_scene_layout(image, index, path, axes, read_last_plane=read_last_plane)
                     for index in chosen)


def iter_vendor_frames(layout: VendorLayout) -> Iterator[tuple[int, Any]]:
    """Yield ``(t, frame)`` for every timepoint of one scene, one frame in memory at a time.

    Yields
    ------
    tuple of (int, ndarray of shape (C, [Z,] Y, X))
        Timepoint index and its pixels, raw dtype.

    Raises
    ------
    IngestError
        If the file cannot be read or its layout changed since `inspect_vendor_series`.
    """
    with _opened(layout.path) as image:
        image.set_scene(layout.series)
        roles = _scene_roles(image, layout.path, layout.axes_override)
        if _output_shape(roles, image.dims.shape) != layout.shape:
            raise IngestError(f"file must not change during ingest, got a new shape "
                              f"(in {layout.path})")
        data = image.get_image_dask_data(image.dims.order)
        for t in range(layout.shape[0]):
            plane = _read_block(data, _frame_index(roles, data.ndim, t))
            yield t, _to_output_frame(plane, roles, layout.shape)
