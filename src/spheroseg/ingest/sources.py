"""Which reader reads a raw file: tifffile for TIFF, OME-TIFF and ImageJ files (`tiff`),
bioio for Nikon ND2, Zeiss CZI and Leica LIF files (`vendor`, an optional extra); and the
file(s) of one position checked as one time series (`plan_position`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spheroseg.ingest.tiff import IngestError, TiffLayout, inspect_tiff_series
from spheroseg.ingest.tiff import iter_frames as iter_tiff_frames
from spheroseg.ingest.vendor import (
    VendorLayout,
    inspect_vendor_series,
    is_vendor_file,
    iter_vendor_frames,
)


def inspect_series(path: str | os.PathLike[str], *, axes: str | None = None,
                   only: int | None = None, read_last_plane: bool = False
                   ) -> tuple[TiffLayout, ...]:
    """Layouts of every series (OME image, vendor scene) of a file, from its headers.

    Parameters
    ----------
    path : str or PathLike
        A TIFF, OME-TIFF, ImageJ, ND2, CZI or LIF file (chosen by suffix).
    axes : str, optional
        NGFF letters per file axis (``ingest.axes``) replacing the reader's axes.
    only : int, optional
        Index of the one series to inspect.
    read_last_plane : bool
        For a vendor file, also read each series' last plane as ingest does (a truncated
        file fails here); TIFF files are always checked against their size instead.

    Returns
    -------
    tuple of TiffLayout
        One per series (`VendorLayout` for vendor files).

    Raises
    ------
    IngestError
        If the file is unreadable or ambiguous, or (``MissingReaderError``) a vendor file
        lacks the optional readers.
    """
    if is_vendor_file(path):
        return inspect_vendor_series(path, axes=axes, only=only, read_last_plane=read_last_plane)
    return inspect_tiff_series(path, axes=axes, only=only)


def iter_frames(layout: TiffLayout) -> Iterator[tuple[int, Any]]:
    """Yield ``(t, frame)`` of one series, one frame in memory at a time, with the reader
    that inspected it (see `spheroseg.ingest.tiff.iter_frames`)."""
    if isinstance(layout, VendorLayout):
        return iter_vendor_frames(layout)
    return iter_tiff_frames(layout)


def plan_position(files: Sequence[str | os.PathLike[str]], *, series: int = 0,
                  axes: str | None = None) -> tuple[TiffLayout, ...]:
    """Inspect the file(s) of one position and check they form one time series.

    A single file holds the whole series; several files hold one timepoint each (sorted)
    and must share shape and dtype. TIFF and vendor files alike (`inspect_series`).

    Parameters
    ----------
    files : sequence of str or PathLike
        One file, or one file per timepoint in time order.
    series : int
        Which series (OME image, vendor scene) of each file.
    axes : str, optional
        NGFF letters per file axis (``ingest.axes``) replacing the reader's guess.

    Returns
    -------
    tuple of TiffLayout
        One layout per file (`VendorLayout` for vendor files).

    Raises
    ------
    IngestError
        If there is no file, a file is unreadable, or the files do not match.
    """
    if not files:
        raise IngestError("files must list at least one image file, got none")
    layouts = tuple(inspect_series(path, axes=axes, only=series)[0] for path in files)
    if len(layouts) > 1:
        check_timepoint_files([(layout.path, layout.shape, layout.dtype) for layout in layouts])
    return layouts


def check_timepoint_files(files: Sequence[tuple[Path, tuple[int, ...], Any]]) -> None:
    """Raise unless per-timepoint files, as (path, shape, dtype) in time order, hold one
    timepoint each and share shape and dtype.

    Raises
    ------
    IngestError
        Naming the first file that does not match.
    """
    first_path, first_shape, first_dtype = files[0]
    for path, shape, dtype in files:
        if shape[0] != 1:
            raise IngestError(
                f"each per-timepoint file must hold one timepoint, got {shape[0]}; without "
                f"ingest.pattern (spheroseg ingest --pattern) each file is read as a time "
                f"series of its own (config key 'ingest.pattern', in {path})")
        if tuple(shape) != tuple(first_shape) or np.dtype(dtype) != np.dtype(first_dtype):
            raise IngestError(
                f"files of one position must share shape and dtype, got "
                f"{tuple(shape[1:])} {np.dtype(dtype)} but {tuple(first_shape[1:])} "
                f"{np.dtype(first_dtype)} in {Path(first_path).name!r} (in {path})"
            )
