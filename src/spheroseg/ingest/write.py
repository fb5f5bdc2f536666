"""One position into OME-Zarr: frames streamed from the TIFF readers to parallel compressing
writers, with progress, written atomically (`ingest_position`)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spheroseg.ingest.metadata import PhysicalSizes, check_overrides, resolve_sizes
from spheroseg.ingest.sources import iter_frames, plan_position
from spheroseg.ingest.tiff import IngestError, TiffLayout

if TYPE_CHECKING:
    from spheroseg.ngff import ImageMetadata

LOG = logging.getLogger("spheroseg.ingest")

FRAMES_IN_FLIGHT = 4


def _stream_frames(layouts: Sequence[TiffLayout], *, fill_nonfinite: float | None = None,
                   blank: list[tuple[int, float]] | None = None,
                   display: dict[int, Any] | None = None) -> Iterator[tuple[int, Any]]:
    """All frames of a position: each file's frames, numbered consecutively and checked.

    Non-finite pixels raise (or are replaced by `fill_nonfinite`); constant frames are
    appended to `blank` as ``(t, value)``; the frames whose t is a key of `display` leave
    their ``ngff.display_plane`` there (for the channels' display windows, from the frame
    in memory rather than read back).
    """
    from spheroseg.ngff import display_plane

    offset = 0
    for layout in layouts:
        for t, frame in iter_frames(layout):
            frame = _finite_frame(frame, offset + t, layout.path, fill_nonfinite)
            if blank is not None and frame.size and _is_constant(frame):
                blank.append((offset + t, float(frame.flat[0])))
            if display is not None and offset + t in display:
                display[offset + t] = display_plane(frame)
            yield offset + t, frame
        offset += layout.shape[0]


def _is_constant(frame: Any) -> bool:
    """Whether all pixels have one value; a real frame is told apart by its first pixels."""
    first = frame.flat[0]
    head = frame.reshape(-1)[: 4096] if frame.flags.c_contiguous else frame.flat[:4096]
    if (head != first).any():
        return False
    return bool(frame.min() == frame.max())


def _finite_frame(frame: Any, t: int, path: Path, fill: float | None) -> Any:
    """`frame` unchanged if all its pixels are finite, else filled with `fill` or refused."""
    import numpy as np

    if frame.dtype.kind not in "fc":
        return frame
    bad = ~np.isfinite(frame)
    if not bad.any():
        return frame
    if fill is None:
        raise IngestError(
            f"pixel values must be finite, got {int(bad.sum())} NaN or infinite pixel(s) in "
            f"timepoint {t}; set ingest.fill_nonfinite (spheroseg ingest --fill-nonfinite) "
            f"to a value that replaces them (in {path})")
    return np.where(bad, np.asarray(fill, dtype=frame.dtype), frame)


def _report_blank_frames(blank: list[tuple[int, float]], label: str) -> None:
    """Log constant frames (blank pages, padding, a shutter that did not open)."""
    if blank:
        shown = ", ".join(f"{t} (all {value:g})" for t, value in blank[:10])
        LOG.warning("%s: %d constant (blank) frame(s) at timepoint %s%s; QC flags them as "
                    "blank_frame. If they are not timepoints (e.g. an extra padding page), "
                    "remove them from the file", label, len(blank), shown,
                    " ..." if len(blank) > 10 else "")


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
    from spheroseg.atomic import signals_held
    from spheroseg.runtime import paused_gc

    pending: list[Future[None]] = []
    count = 0
    with paused_gc(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            for t, frame in frames:
                with signals_held():  # a SIGTERM inside submit would leave a writer unjoined
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


def ingest_position(
    files: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
    overrides: PhysicalSizes = PhysicalSizes(), name: str | None = None,
    pyramid: bool = True, workers: int = 2, series: int = 0, axes: str | None = None,
    fill_nonfinite: float | None = None,
) -> ImageMetadata:
    """Ingest the file(s) of one position into a new OME-Zarr image, atomically.

    Parameters
    ----------
    files : sequence of str or PathLike
        One file holding the whole series (TIFF, or ND2/CZI/LIF with the ``vendor`` extra),
        or one file per timepoint in time order.
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
    series : int
        Which series (OME image, vendor scene) of each file.
    axes : str, optional
        NGFF letters per file axis (``ingest.axes``) replacing the reader's guess.
    fill_nonfinite : float, optional
        Finite value that replaces NaN and infinite pixels; None refuses such pixels.

    Returns
    -------
    ImageMetadata
        What was written (`spheroseg.ngff.read_metadata` of the output). Constant frames
        are listed in the group attribute ``spheroseg.blank_frames``; the ``omero``
        metadata names the channels (where the file does) and gives each a display window.

    Raises
    ------
    IngestError
        If an input is unreadable, truncated, inconsistent, ambiguous or has non-finite
        pixels; no output is left behind.
    ValueError
        If an override is not a number > 0, `workers` is below 1, or `fill_nonfinite` is not
        finite.
    OSError
        If the output cannot be written (``spheroseg.atomic.OutputError``).
    """
    from spheroseg import ngff
    from spheroseg.atomic import atomic_path
    from spheroseg.progress import progress
    from spheroseg.runtime import configure_allocator
    from spheroseg.zarrio import seal_arrays

    check_overrides(overrides)
    configure_allocator()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r} (config key 'ingest.workers')")
    if fill_nonfinite is not None and not math.isfinite(fill_nonfinite):
        raise ValueError(f"fill_nonfinite must be a finite number, got {fill_nonfinite!r}")
    layouts = plan_position(files, series=series, axes=axes)
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
        blank: list[tuple[int, float]] = []
        display: dict[int, Any] = dict.fromkeys(ngff.display_times(shape[0]))
        frames = progress(_stream_frames(layouts, fill_nonfinite=fill_nonfinite, blank=blank, display=display),
                          total=shape[0], description=f"{label}: frames", unit="frame",
                          pixels_per_item=math.prod(shape[1:]))
        written = write_frames([level0, *levels], frames, workers=workers)
        if written != shape[0]:
            raise IngestError(f"input must provide {shape[0]} frames, got {written} "
                              f"(in {first.path})")
        if blank:
            ngff.update_attributes(tmp, {"spheroseg": {"blank_frames": [t for t, _ in blank]}})
        ngff.write_channels(tmp, ngff.display_windows(list(display.values())), first.channel_names)
        seal_arrays(tmp)
    _report_blank_frames(blank, label)
    LOG.info("%s: wrote %d frame(s) of shape %s %s to %s", label, shape[0], shape[1:],
             first.dtype, output)
    return ngff.read_metadata(output)
