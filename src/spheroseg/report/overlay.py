"""Contours drawn on the frames: a montage PNG and an animated GIF per position.

Frames are shown in grey with one display range for the whole series (1st to 99.5th
percentile of the shown frames), so brightness changes over time stay visible. Each object's
contour is drawn in its own colour over a black halo, which keeps it visible on dark
background and on bright tissue alike; shed fragments (not main bodies) are thin outlines
without a number. Large frames are downscaled by block averaging.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
# Titles and legends hold experiment and position names: a '$' there is text, not mathtext.
matplotlib.rcParams["text.parse_math"] = False

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from spheroseg.report.qc import FLAG_NAMES  # noqa: E402
from spheroseg.report.style import FLAG_TEXT_COLOUR, FRAGMENT_COLOUR, object_colour  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Frame:
    """One frame to draw: grey image, contours and captions.

    Attributes
    ----------
    image : ndarray of shape (H, W), uint8
        Display image (possibly downscaled).
    shape : tuple of int
        Shape (Y, X) in pixels of the shown (possibly cropped) region of the original frame;
        contour coordinates refer to it.
    contours : list of (int, list of ndarray of shape (N, 2))
        ``(object_id, rings)``, rings as ``(x, y)`` with the image's top-left corner at (0, 0).
    title : str
        Caption, e.g. ``"t5 · 5.0 h"``.
    flags : list of str
        QC flag names raised at this frame (empty when none).
    fragments : frozenset of int
        Ids of the shed fragments among `contours`: drawn thin, without their number.
    """

    image: NDArray[np.uint8]
    shape: tuple[int, int]
    contours: list[tuple[int, list[NDArray[np.float64]]]]
    title: str
    flags: list[str]
    fragments: frozenset[int] = frozenset()

    def bodies_last(self) -> list[tuple[int, list[NDArray[np.float64]], bool]]:
        """(object_id, rings, is_fragment), fragments first so main bodies are drawn on top."""
        return sorted(((i, rings, i in self.fragments) for i, rings in self.contours),
                      key=lambda item: not item[2])


def _evenly(n_frames: int, count: int) -> list[int]:
    """`count` evenly spaced indices of `n_frames` (first and last included when count > 1)."""
    if count <= 0:
        return []
    if count == 1:
        return [0]
    return sorted({round(i * (n_frames - 1) / (count - 1)) for i in range(count)})


def choose_frames(n_frames: int, *, max_frames: int, flagged: Sequence[int] = ()) -> list[int]:
    """Up to `max_frames` frame indices: QC-flagged frames first, the rest evenly spaced.

    At most half of the slots go to flagged frames (themselves evenly picked when there are
    more); the other frames are evenly spaced and include the first and the last.

    Raises
    ------
    ValueError
        If a count is < 1.

    Examples
    --------
    >>> choose_frames(10, max_frames=4)
    [0, 3, 6, 9]
    >>> choose_frames(3, max_frames=16)
    [0, 1, 2]
    >>> choose_frames(120, max_frames=4, flagged=[60])
    [0, 60, 119]
    >>> choose_frames(120, max_frames=5, flagged=[60, 61])
    [0, 60, 61, 119]
    """
    if n_frames < 1 or max_frames < 1:
        raise ValueError(f"n_frames and max_frames must be >= 1, got {(n_frames, max_frames)!r}")
    if n_frames <= max_frames:
        return list(range(n_frames))
    marked = sorted({int(t) for t in flagged if 0 <= int(t) < n_frames})
    if len(marked) > max_frames // 2:
        marked = [marked[i] for i in _evenly(len(marked), max_frames // 2)]
    for count in range(max_frames, -1, -1):  # the most evenly spaced frames that still fit
        chosen = set(marked) | set(_evenly(n_frames, count))
        if len(chosen) <= max_frames:
            return sorted(chosen)
    return marked


def display_range(frames: Sequence[NDArray]) -> tuple[float, float]:
    """Grey-level range shared by all frames: 1st and 99.5th percentiles (high > low).

    Examples
    --------
    >>> display_range([np.arange(201.0).reshape(1, -1)])
    (2.0, 199.0)
    """
    values = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in frames])
    low, high = (float(v) for v in np.percentile(values, [1.0, 99.5]))
    return low, (high if high > low else low + 1.0)


def to_grey(frame: NDArray, *, low: float, high: float) -> NDArray[np.uint8]:
    """Scale `frame` linearly so `low` -> 0 and `high` -> 255 (clipped), as uint8.

    Examples
    --------
    >>> to_grey(np.array([[0, 5, 20]]), low=0.0, high=10.0).tolist()
    [[0, 128, 255]]
    """
    scaled = (np.asarray(frame, dtype=np.float64) - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def downscale(frame: NDArray, *, max_size: int) -> NDArray:
    """Block-average `frame` by the smallest integer factor that fits `max_size` pixels.

    Examples
    --------
    >>> downscale(np.ones((10, 6)), max_size=4).shape
    (4, 2)
    """
    from spheroseg.ngff import downsample_plane

    factor = math.ceil(max(frame.shape) / max_size)
    if factor <= 1:
        return frame
    return downsample_plane(np.asarray(frame, dtype=np.float32), factor=factor)


def read_contours(path: str | os.PathLike[str]) -> dict[int, list[tuple[int, list[NDArray[np.float64]]]]]:
    """Contours of ``contours.geojson`` by timepoint: ``{t: [(object_id, rings), ...]}``.

    Raises
    ------
    ValueError
        If the file is missing, not GeoJSON, or a feature lacks ``timepoint``/``object_id``.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ValueError(f"contours must be an existing GeoJSON file, got {str(path)!r}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"contours must be valid GeoJSON, got a JSON error {err.msg!r} "
                         f"(in {path})") from err
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise ValueError(f"contours must be a GeoJSON FeatureCollection, got "
                         f"{type(document).__name__} without 'features' (in {path})")
    found: dict[int, list[tuple[int, list[NDArray[np.float64]]]]] = {}
    for number, feature in enumerate(features):
        properties = feature.get("properties") or {}
        if "timepoint" not in properties or "object_id" not in properties:
            raise ValueError(f"each contour feature must have 'timepoint' and 'object_id' "
                             f"properties, got {sorted(properties)!r} in feature {number} (in {path})")
        found.setdefault(int(properties["timepoint"]), []).append(
            (int(properties["object_id"]), _rings(feature.get("geometry") or {})))
    return found


def _rings(geometry: dict[str, object]) -> list[NDArray[np.float64]]:
    """All rings (outer boundaries and holes) of a Polygon or MultiPolygon as (N, 2) arrays."""
    coordinates = geometry.get("coordinates") or []
    polygons = [coordinates] if geometry.get("type") == "Polygon" else coordinates
    return [np.asarray(ring, dtype=np.float64).reshape(-1, 2)
            for polygon in polygons for ring in polygon]  # type: ignore[union-attr]


def frame_title(t: int, *, time_interval_s: float | None) -> str:
    """Panel caption of frame `t`: index and time in hours when known.

    Examples
    --------
    >>> frame_title(5, time_interval_s=1800.0)
    't5 · 2.5 h'
    >>> frame_title(5, time_interval_s=None)
    't5'
    """
    if time_interval_s is None:
        return f"t{t}"
    return f"t{t} · {t * time_interval_s / 3600:.1f} h"


def load_frames(image_path: str | os.PathLike[str], contours_path: str | os.PathLike[str], *,
                timepoints: Sequence[int], flags: dict[int, list[str]] | None = None,
                channel: int = 0, max_size: int = 512, crop: bool = True,
                margin: float = 0.25,
                fragments: Mapping[int, Collection[int]] | None = None) -> list[Frame]:
    """Read, downscale and grey-scale the chosen frames with their contours and flags.

    Parameters
    ----------
    image_path : str or PathLike
        ``image.ome.zarr`` of the position.
    contours_path : str or PathLike
        ``contours.geojson`` of the position.
    timepoints : sequence of int
        Frames to load (see :func:`choose_frames`).
    flags : dict of int to list of str, optional
        QC flags per timepoint (see :func:`spheroseg.report.qc.flagged_timepoints`).
    channel : int
        Image channel to show.
    max_size : int
        Largest edge of the returned display images, in pixels.
    crop : bool
        Show only the region around the objects (:func:`crop_window`), the same for all frames.
    margin : float
        Margin of the crop, as a fraction of the objects' extent.
    fragments : mapping of int to collection of int, optional
        Ids of the shed fragments per timepoint (``series.fragment_ids``); none by default.

    Returns
    -------
    list of Frame

    Raises
    ------
    ValueError
        If an input is unreadable or a timepoint or channel is out of range.
    """
    from spheroseg import ngff

    metadata = ngff.read_metadata(image_path)
    array = ngff.open_array(image_path)
    contours = read_contours(contours_path)
    full = (int(metadata.shape[-2]), int(metadata.shape[-1]))
    window = crop_window(contours, shape=full, margin=margin) if crop else \
        (slice(0, full[0]), slice(0, full[1]))
    raw = [downscale(ngff.read_frame(array, t, channel=channel)[window], max_size=max_size)
           for t in timepoints]
    low, high = display_range(raw)
    shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    offset = np.array([window[1].start, window[0].start], dtype=np.float64)
    return [Frame(image=to_grey(frame, low=low, high=high), shape=shape,
                  contours=[(object_id, [ring - offset for ring in rings]) for object_id, rings
                            in sorted(contours.get(t, []), key=lambda item: item[0])],
                  title=frame_title(t, time_interval_s=metadata.time_interval_s),
                  flags=list((flags or {}).get(t, [])),
                  fragments=frozenset((fragments or {}).get(t, ())))
            for t, frame in zip(timepoints, raw)]



def crop_window(contours: dict[int, list[tuple[int, list[NDArray[np.float64]]]]], *,
                shape: tuple[int, int], margin: float = 0.25) -> tuple[slice, slice]:
    """Rows and columns around every contour of every frame, widened by `margin`.

    One window for the whole series, so objects do not jump between frames; the whole frame
    when there is no contour.

    Parameters
    ----------
    contours : dict
        From :func:`read_contours` (``(x, y)`` coordinates, top-left corner at 0).
    shape : tuple of int
        Frame shape (Y, X).
    margin : float
        Added on each side, as a fraction of the box's larger edge.

    Returns
    -------
    tuple of slice
        ``(rows, columns)`` inside the frame.

    Examples
    --------
    >>> ring = np.array([[10.0, 20.0], [30.0, 20.0], [30.0, 40.0], [10.0, 20.0]])
    >>> crop_window({0: [(1, [ring])]}, shape=(100, 100), margin=0.25)
    (slice(15, 45, None), slice(5, 35, None))
    """
    points = [ring for items in contours.values() for _, rings in items for ring in rings if len(ring)]
    if not points:
        return slice(0, shape[0]), slice(0, shape[1])
    stacked = np.concatenate(points)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    pad = margin * float((high - low).max())
    x0, y0 = (max(0, math.floor(v - pad)) for v in low)
    x1, y1 = (min(limit, math.ceil(v + pad)) for v, limit in zip(high, (shape[1], shape[0])))
    return slice(y0, y1), slice(x0, x1)


def scale_bar_um(width_um: float) -> float:
    """A round scale-bar length close to a fifth of the image width.

    Examples
    --------
    >>> scale_bar_um(512.0)
    100.0
    """
    for length in (1000.0, 500.0, 200.0, 100.0, 50.0, 20.0, 10.0, 5.0, 2.0, 1.0):
        if length <= width_um / 4:
            return length
    return width_um / 4


def _halo(width: float) -> list[object]:
    """Matplotlib path effects: a black outline under a line or text."""
    from matplotlib import patheffects

    return [patheffects.Stroke(linewidth=width, foreground="black"), patheffects.Normal()]


def _draw_panel(axes: object, frame: Frame, *, flag_names: dict[str, str]) -> None:
    """Image, contours with object ids and caption of one montage panel."""
    height, width = frame.shape
    axes.imshow(frame.image, cmap="gray", vmin=0, vmax=255, extent=(0, width, height, 0),
                interpolation="antialiased")
    for object_id, rings, fragment in frame.bodies_last():
        if fragment:
            for ring in rings:
                axes.plot(ring[:, 0], ring[:, 1], color=FRAGMENT_COLOUR, lw=0.7,
                          path_effects=_halo(1.6))
            continue
        colour = object_colour(object_id)
        for ring in rings:
            axes.plot(ring[:, 0], ring[:, 1], color=colour, lw=1.6, path_effects=_halo(3.5))
        if rings:
            x, y = rings[0][:, 0].mean(), rings[0][:, 1].mean()
            axes.text(x, y, str(object_id), color=colour, fontsize=9, fontweight="bold",
                      ha="center", va="center", path_effects=_halo(2.5))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_xticks([])
    axes.set_yticks([])
    title = frame.title
    if frame.flags:
        title += "\nQC: " + ", ".join(flag_names.get(f, f) for f in frame.flags)
        for spine in axes.spines.values():
            spine.set(color=FLAG_TEXT_COLOUR, linewidth=3, visible=True)
    axes.set_title(title, fontsize=10, color=FLAG_TEXT_COLOUR if frame.flags else "black")


def _draw_scale_bar(axes: object, frame: Frame, *, pixel_size_um: float) -> None:
    """White scale bar with its length in µm at the bottom right of a panel."""
    height, width = frame.shape
    length_um = scale_bar_um(width * pixel_size_um)
    length_px = length_um / pixel_size_um
    x1, y = width * 0.95, height * 0.93
    axes.plot([x1 - length_px, x1], [y, y], color="white", lw=3, solid_capstyle="butt",
              path_effects=_halo(5))
    axes.text(x1 - length_px / 2, y - height * 0.03, f"{length_um:g} µm", color="white",
              fontsize=8, ha="center", va="bottom", path_effects=_halo(2.5))


def render_montage(frames: Sequence[Frame], *, title: str, pixel_size_um: float | None,
                   columns: int = 4) -> Figure:
    """Grid of frames with coloured contours, object ids, time captions and QC flags.

    Parameters
    ----------
    frames : sequence of Frame
        From :func:`load_frames`.
    title : str
        Figure title (e.g. ``"demo / pos0"``).
    pixel_size_um : float or None
        Pixel size for the scale bar (no bar when unknown).
    columns : int
        Panels per row.

    Returns
    -------
    Figure
        Flagged frames have a red frame and the flag names in their caption.

    Raises
    ------
    ValueError
        If `frames` is empty or `columns` < 1.
    """
    import matplotlib.pyplot as plt

    if not frames or columns < 1:
        raise ValueError(f"frames must be non-empty and columns >= 1, got "
                         f"{len(frames)} frames and columns={columns!r}")
    columns = min(columns, len(frames))
    rows = math.ceil(len(frames) / columns)
    aspect = frames[0].shape[0] / frames[0].shape[1]
    figure, panels = plt.subplots(rows, columns, figsize=(2.8 * columns, 2.8 * aspect * rows + 0.9),
                                  squeeze=False, layout="constrained")
    for axes, frame in zip(panels.flat, frames):
        _draw_panel(axes, frame, flag_names=FLAG_NAMES)
    for axes in panels.flat[len(frames):]:
        axes.set_axis_off()
    if pixel_size_um is not None:
        _draw_scale_bar(panels.flat[0], frames[0], pixel_size_um=pixel_size_um)
    note = "" if pixel_size_um is not None else " (pixel size unknown: no scale bar)"
    figure.suptitle(f"{title}: contours over time{note}", fontsize=12)
    return figure


def _font(size: int) -> object:
    """DejaVu Sans (shipped with matplotlib, has µ and ·) at `size` pixels."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def _label(draw: object, xy: tuple[float, float], text: str, *, fill: str, size: int) -> None:
    """Text with a black outline at `xy` (top-left)."""
    draw.text(xy, text, fill=fill, font=_font(size), stroke_width=2, stroke_fill="black")


def render_gif_frame(frame: Frame, *, size: int, header: str,
                     pixel_size_um: float | None) -> NDArray[np.uint8]:
    """One animation frame: image, contours (colour over black halo), caption, flags, scale bar.

    Parameters
    ----------
    frame : Frame
        From :func:`load_frames`.
    size : int
        Largest edge of the output in pixels.
    header : str
        Text before the frame caption (e.g. the position name).
    pixel_size_um : float or None
        Pixel size for the scale bar (none when unknown).

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
    """
    from PIL import Image, ImageDraw

    height, width = frame.shape
    scale = size / max(height, width)
    out_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(frame.image).resize(out_size, Image.Resampling.BILINEAR).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for object_id, rings, fragment in frame.bodies_last():
        widths = (3, 1) if fragment else (6, 3)
        colour = FRAGMENT_COLOUR if fragment else object_colour(object_id)
        for ring in rings:
            points = [(float(x) * scale, float(y) * scale) for x, y in ring]
            draw.line(points, fill="black", width=widths[0], joint="curve")
            draw.line(points, fill=colour, width=widths[1], joint="curve")
        if rings and len(rings[0]) and not fragment:
            x, y = rings[0][:, 0].mean() * scale, rings[0][:, 1].mean() * scale
            draw.text((x, y), str(object_id), fill=object_colour(object_id), anchor="mm",
                      font=_font(max(11, size // 24)), stroke_width=2, stroke_fill="black")
    text_size = max(11, size // 28)
    _label(draw, (6, 4), f"{header}  {frame.title}", fill="white", size=text_size)
    if frame.flags:
        names = ", ".join(FLAG_NAMES.get(f, f) for f in frame.flags)
        _label(draw, (6, 8 + text_size), f"QC: {names}", fill=FLAG_TEXT_COLOUR, size=text_size)
        draw.rectangle([0, 0, out_size[0] - 1, out_size[1] - 1], outline=FLAG_TEXT_COLOUR, width=3)
    if pixel_size_um is not None:
        length_um = scale_bar_um(width * pixel_size_um)
        length = length_um / pixel_size_um * scale
        x1, y = out_size[0] * 0.95, out_size[1] * 0.93
        draw.line([(x1 - length, y), (x1, y)], fill="black", width=7)
        draw.line([(x1 - length, y), (x1, y)], fill="white", width=3)
        _label(draw, (x1 - length, y - text_size - 6), f"{length_um:g} µm", fill="white",
               size=text_size)
    return np.asarray(picture)


def write_gif(images: Sequence[NDArray[np.uint8]], path: str | os.PathLike[str], *,
              frame_ms: int = 400) -> None:
    """Write RGB frames as a looping animated GIF atomically.

    Raises
    ------
    ValueError
        If `images` is empty or `frame_ms` < 20.
    """
    import imageio.v3 as iio

    from spheroseg.atomic import atomic_path

    if not images or frame_ms < 20:
        raise ValueError(f"images must be non-empty and frame_ms >= 20, got {len(images)} "
                         f"images and frame_ms={frame_ms!r} (in {path})")
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(images), extension=".gif", duration=frame_ms, loop=0)
