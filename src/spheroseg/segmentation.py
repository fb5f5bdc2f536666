"""Probabilities to tracked labels: threshold, clean up, split, and link objects over time.

One frame at a time: :func:`segment_frame` turns a foreground-probability map of shape
``(Y, X)`` into an int32 label image (0 = background), and :class:`ObjectLinker` renumbers
each frame's labels so that an ``object_id`` names the same body at every timepoint
(matching by pixel overlap with the previous frame).

Why one module: it is the ``segment`` stage (stage = rule = CLI verb = module), and
:class:`SegmentationOptions` governs all of it, frame cleanup and linking alike, with one set
of checks; linking (about 120 lines) moves to a ``tracking`` module when it grows.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, optimize

METHODS = ("fixed", "otsu")
# A worker process's frame reader per image (it lives for one segment_store call).
_WORKER_SOURCES: dict[str, Any] = {}
# Probabilities may leave [0, 1] by this much through rounding (they are clipped).
_ROUNDING = 1e-3
# 8-connectivity: diagonal neighbours belong to the same object (matches the contours'
# fully connected foreground in spheroseg.measure.trace).
_CONNECTIVITY = np.ones((3, 3), dtype=bool)


@dataclasses.dataclass(frozen=True)
class SegmentationOptions:
    """How the ``segment`` stage turns probability maps into tracked labels.

    The defaults here are the library's; the workflow's live in its config schema
    (``workflow/schemas/config.schema.yaml``, section ``segment``), and the two agree
    (``tests/test_parameters.py``) except `min_area_um2`, which the workflow sets to suit
    spheroids while the library stays usable on images without a pixel size.

    Attributes
    ----------
    method : {"fixed", "otsu"}
        Fixed threshold, or Otsu's threshold computed per frame.
    threshold : float
        Foreground is ``probability > threshold`` (used when ``method == "fixed"``), in (0, 1).
    fill_holes : bool
        Fill background regions enclosed by an object.
    min_area_px : float
        Objects with fewer pixels are removed, >= 0.
    min_area_um2 : float or None
        Minimum object area in µm², >= 0; replaces `min_area_px` where given (needs an image
        with a pixel size, see :func:`segment_store`).
    split_touching : bool
        Split touching bodies along necks with a distance-transform watershed.
    split_depth : float
        With ``split_touching``: split where the neck is narrower than
        ``(1 - split_depth)`` times the width of the bodies it joins, in (0, 1).
    keep_largest : bool
        Keep only the largest object of each frame.
    max_gap : int
        Frames a body may be missing (out of focus, an empty frame) and keep its id when it
        reappears, >= 0 (see :class:`ObjectLinker`).
    """

    method: str = "fixed"
    threshold: float = 0.5
    fill_holes: bool = True
    min_area_px: float = 50.0
    min_area_um2: float | None = None
    split_touching: bool = False
    split_depth: float = 0.3
    keep_largest: bool = False
    max_gap: int = 2

    def __post_init__(self) -> None:
        """Check every field (ValueError/TypeError with the field's name)."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        check_threshold(self.threshold)
        _check_number("min_area_px", self.min_area_px, low=0.0, high=math.inf)
        if self.min_area_um2 is not None:
            _check_number("min_area_um2", self.min_area_um2, low=0.0, high=math.inf)
        _check_number("split_depth", self.split_depth, low=0.0, high=1.0, open_ends=True)
        _check_max_gap(self.max_gap)
        for name in ("fill_holes", "split_touching", "keep_largest"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")


def check_threshold(threshold: object) -> None:
    """Raise unless `threshold` is a probability level in (0, 1) (segment's and measure's).

    Raises
    ------
    TypeError
        If `threshold` is not a real number.
    ValueError
        If it is outside (0, 1).
    """
    _check_number("threshold", threshold, low=0.0, high=1.0, open_ends=True)


def _check_max_gap(max_gap: object) -> None:
    """Raise ValueError unless `max_gap` is an integer >= 0."""
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
        raise ValueError(f"max_gap must be an integer >= 0, got {max_gap!r}")


def _check_number(name: str, value: object, *, low: float, high: float,
                  open_ends: bool = False) -> None:
    """Raise unless `value` is a real number in [low, high] (or (low, high) if open_ends)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    inside = low < value < high if open_ends else low <= value <= high
    if not inside or math.isnan(float(value)):
        bounds = f"({low}, {high})" if open_ends else f"[{low}, {high}]"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")


def _check_frame(name: str, array: object, *, kind: str) -> NDArray:
    """Return `array` as a 2-D ndarray of dtype kind 'f' (floats/ints) or 'i' (ints)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (Y, X), got shape {array.shape!r}")
    allowed = "iu" if kind == "i" else "fiub"
    if array.dtype.kind not in allowed:
        raise TypeError(f"{name} must have {'an integer' if kind == 'i' else 'a numeric'} dtype, "
                        f"got {array.dtype!r}")
    return array


def threshold_frame(probabilities: NDArray, *, method: str = SegmentationOptions.method,
                    threshold: float = SegmentationOptions.threshold,
                    ) -> tuple[NDArray[np.bool_], float]:
    """Foreground mask of one probability map, and the threshold that made it.

    Parameters
    ----------
    probabilities : ndarray of shape (Y, X), float
        Foreground probability in [0, 1].
    method : {"fixed", "otsu"}
        ``"fixed"`` uses `threshold`; ``"otsu"`` computes Otsu's threshold on this frame
        (a frame with a single value has no foreground).
    threshold : float
        Threshold for ``method="fixed"``, in (0, 1).

    Returns
    -------
    mask : ndarray of shape (Y, X), bool
        ``probabilities > threshold_used``.
    threshold_used : float

    Raises
    ------
    ValueError
        If `method` is unknown, `threshold` is outside (0, 1) or the array is not 2-D.
    TypeError
        If `probabilities` is not a numeric numpy array.

    Examples
    --------
    >>> mask, t = threshold_frame(np.array([[0.2, 0.7]]), threshold=0.5)
    >>> mask.tolist(), t
    ([[False, True]], 0.5)
    """
    probabilities = _check_frame("probabilities", probabilities, kind="f")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_threshold(threshold)
    values = np.asarray(probabilities, dtype=np.float32)
    if method == "otsu":
        low, high = float(values.min()), float(values.max())
        if not high > low:  # a single value (or NaN): nothing to separate
            return np.zeros(values.shape, dtype=bool), high
        from skimage.filters import threshold_otsu

        threshold = float(threshold_otsu(values))
    return values > threshold, float(threshold)


def label_objects(mask: NDArray[np.bool_]) -> NDArray[np.int32]:
    """Label 8-connected objects 1..n in raster order (int32, 0 = background).

    Examples
    --------
    >>> label_objects(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], bool)).tolist()
    [[1, 0, 0], [0, 1, 0], [0, 0, 0], [2, 2, 0]]
    """
    labels, _ = ndimage.label(np.asarray(mask, dtype=bool), structure=_CONNECTIVITY)
    return labels.astype(np.int32, copy=False)


def remove_small_objects(labels: NDArray[np.integer], *, min_area_px: float) -> NDArray[np.int32]:
    """Set objects with fewer than `min_area_px` pixels to background (ids unchanged).

    Examples
    --------
    >>> remove_small_objects(np.array([[1, 0, 2, 2]]), min_area_px=2).tolist()
    [[0, 0, 2, 2]]
    """
    labels = np.asarray(labels, dtype=np.int32)
    areas = np.bincount(labels.ravel())
    small = areas < min_area_px
    small[0] = False
    if not small.any():
        return labels.copy()
    lookup = np.arange(areas.size, dtype=np.int32)  # one table lookup instead of a where
    lookup[small] = 0
    return lookup[labels]


def keep_largest_object(labels: NDArray[np.integer]) -> NDArray[np.int32]:
    """Keep only the object with the most pixels (the lowest id on ties).

    Examples
    --------
    >>> keep_largest_object(np.array([[1, 0, 2, 2]])).tolist()
    [[0, 0, 2, 2]]
    """
    labels = np.asarray(labels, dtype=np.int32)
    areas = np.bincount(labels.ravel())
    if areas.size <= 1:
        return labels.copy()
    largest = int(np.argmax(areas[1:])) + 1
    return np.where(labels == largest, labels, 0).astype(np.int32)


def relabel_sequential(labels: NDArray[np.integer]) -> NDArray[np.int32]:
    """Renumber the ids present to 1..n in increasing order of their old ids (a new array)."""
    labels = np.asarray(labels, dtype=np.int32)
    if labels.size and labels.min() < 0:
        present = np.unique(labels)
        present = present[present > 0]
    else:  # counting is 10x faster than np.unique on a frame
        present = np.flatnonzero(np.bincount(labels.ravel()))
        present = present[present > 0]
        if np.array_equal(present, np.arange(1, present.size + 1)):
            return labels.copy()
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int32)
    lookup[present] = np.arange(1, present.size + 1, dtype=np.int32)
    return lookup[labels]


def fill_holes(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """`scipy.ndimage.binary_fill_holes` with its default (4-connected) structure, 4x faster.

    A background pixel is a hole unless a 4-connected path of background joins it to the
    image border; the background is labelled once instead of dilated from the border pixel
    by pixel.

    Examples
    --------
    >>> fill_holes(np.array([[1, 1, 1], [1, 0, 1], [1, 1, 0]], bool)).astype(int).tolist()
    [[1, 1, 1], [1, 1, 1], [1, 1, 0]]
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.size == 0:
        return ndimage.binary_fill_holes(mask)
    background, count = ndimage.label(~mask)
    if count == 0:
        return mask.copy()
    outside = np.zeros(count + 1, dtype=bool)
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        outside[edge] = True
    outside[0] = True  # label 0 is the foreground itself
    return ~outside[background] | mask


def split_touching_objects(labels: NDArray[np.integer], *,
                           split_depth: float = SegmentationOptions.split_depth) -> NDArray[np.int32]:
    """Split objects at necks with a watershed of their distance transform.

    Each object's distance-to-background map gets one marker per regional maximum that
    rises at least ``split_depth * max(distance)`` above the saddle to its neighbours
    (h-maxima), and is flooded from those markers. Two disks of radius R joined by a neck
    of half-width w are split when ``w < (1 - split_depth) * R``; an ellipse is never split.

    Parameters
    ----------
    labels : ndarray of shape (Y, X), int
        Objects to split (0 = background).
    split_depth : float
        Relative depth of the neck, in (0, 1).

    Returns
    -------
    ndarray of shape (Y, X), int32
        Labels with split pieces numbered after the existing ids.

    Raises
    ------
    ValueError
        If `split_depth` is outside (0, 1).
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    _check_number("split_depth", split_depth, low=0.0, high=1.0, open_ends=True)
    labels = np.asarray(labels, dtype=np.int32).copy()
    next_id = int(labels.max(initial=0)) + 1
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        own = np.pad(labels[box] == index, 1)
        distance = ndimage.distance_transform_edt(own)
        markers, count = ndimage.label(h_maxima(distance, split_depth * distance.max()),
                                       structure=_CONNECTIVITY)
        if count < 2:
            continue
        pieces = watershed(-distance, markers, mask=own)[1:-1, 1:-1]
        inside = pieces > 0
        crop = labels[box]
        crop[inside] = np.where(pieces[inside] == 1, index, pieces[inside] - 2 + next_id)
        next_id += count - 1
    return labels


@dataclasses.dataclass(frozen=True)
class FrameSegmentation:
    """One frame segmented, with what the size filter took away.

    Attributes
    ----------
    labels : ndarray of shape (Y, X), int32
        Objects numbered 1..n in raster order of their first pixel, 0 = background.
    threshold : float
        The threshold used.
    objects : int
        Objects kept.
    removed_objects : int
        Objects the size filter (`min_area_px`) removed.
    largest_removed_px : float
        Pixel count of the largest of them (0 when none was removed).
    """

    labels: NDArray[np.int32]
    threshold: float
    objects: int
    removed_objects: int = 0
    largest_removed_px: float = 0.0

    @property
    def emptied(self) -> bool:
        """Whether the size filter removed every object of the frame."""
        return self.removed_objects > 0 and self.objects == 0

    def summary(self) -> dict[str, float | int]:
        """What :func:`segment_store` records per frame (everything but the labels)."""
        return {"threshold": float(self.threshold), "objects": self.objects,
                "removed_objects": self.removed_objects,
                "largest_removed_px": self.largest_removed_px}


def segment_frame(probabilities: NDArray, options: SegmentationOptions | None = None,
                  ) -> tuple[NDArray[np.int32], float]:
    """Labels of one probability map: threshold, fill, remove small, split, keep largest.

    Parameters
    ----------
    probabilities : ndarray of shape (Y, X), float
        Foreground probability in [0, 1].
    options : SegmentationOptions, optional
        Defaults to ``SegmentationOptions()``; `min_area_um2` and `max_gap` are not used here.

    Returns
    -------
    labels : ndarray of shape (Y, X), int32
        Objects numbered 1..n in raster order of their first pixel, 0 = background.
    threshold_used : float

    Raises
    ------
    ValueError
        If the array is not 2-D.
    TypeError
        If `probabilities` is not a numeric numpy array or `options` has the wrong type.

    Examples
    --------
    >>> p = np.zeros((4, 6)); p[1:3, 0:2] = 0.9; p[1:3, 4:6] = 0.8
    >>> segment_frame(p, SegmentationOptions(min_area_px=0))[0].tolist()
    [[0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 2, 2], [1, 1, 0, 0, 2, 2], [0, 0, 0, 0, 0, 0]]
    """
    result = segment_frame_details(probabilities, options)
    return result.labels, result.threshold


def segment_frame_details(probabilities: NDArray,
                          options: SegmentationOptions | None = None) -> FrameSegmentation:
    """:func:`segment_frame` with what the size filter removed (for QC: nothing vanishes silently).

    Raises
    ------
    ValueError, TypeError
        As :func:`segment_frame`.

    Examples
    --------
    >>> p = np.zeros((4, 6)); p[1:3, 0:2] = 0.9; p[1, 5] = 0.8
    >>> result = segment_frame_details(p, SegmentationOptions(min_area_px=5))
    >>> result.removed_objects, result.largest_removed_px, result.emptied
    (2, 4.0, True)
    """
    options = SegmentationOptions() if options is None else options
    if not isinstance(options, SegmentationOptions):
        raise TypeError(f"options must be a SegmentationOptions, got {type(options).__name__}")
    mask, threshold = threshold_frame(probabilities, method=options.method,
                                      threshold=options.threshold)
    if options.fill_holes:
        mask = fill_holes(mask)
    labels = label_objects(mask)
    areas = np.bincount(labels.ravel())
    removed = areas[1:][(areas[1:] > 0) & (areas[1:] < options.min_area_px)]
    if options.split_touching or options.keep_largest:
        if options.min_area_px > 0:
            labels = remove_small_objects(labels, min_area_px=options.min_area_px)
        if options.split_touching:
            labels = split_touching_objects(labels, split_depth=options.split_depth)
        if options.keep_largest:
            labels = keep_largest_object(labels)
        labels = relabel_sequential(labels)
    else:  # removing small objects and renumbering the rest 1..n is one table lookup
        labels = _keep_large_in_order(labels, areas, options.min_area_px)
    return FrameSegmentation(labels, threshold, int(labels.max(initial=0)), int(removed.size),
                             float(removed.max(initial=0)))


def _keep_large_in_order(labels: NDArray[np.int32], areas: NDArray[np.integer],
                         min_area_px: float) -> NDArray[np.int32]:
    """`relabel_sequential(remove_small_objects(labels, min_area_px=...))` in one pass;
    `areas` is ``np.bincount(labels.ravel())``."""
    kept = np.flatnonzero(areas >= min_area_px) if min_area_px > 0 else np.flatnonzero(areas)
    kept = kept[kept > 0]
    lookup = np.zeros(areas.size, dtype=np.int32)
    lookup[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
    return lookup[labels]


def border_object_ids(labels: NDArray[np.integer]) -> NDArray[np.int32]:
    """Sorted ids of the objects with a pixel in the first or last row or column.

    Examples
    --------
    >>> border_object_ids(np.array([[0, 0, 0], [0, 1, 0], [0, 0, 2]])).tolist()
    [2]
    """
    labels = _check_frame("labels", labels, kind="i")
    edges = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    ids = np.unique(edges)
    return ids[ids > 0].astype(np.int32)


def _overlaps(previous: NDArray[np.int32], current: NDArray[np.int32],
              ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Pairs (previous id, current id) that share pixels, and how many pixels they share."""
    both = (previous > 0) & (current > 0)
    width = np.int64(current.max(initial=0)) + 1
    keys, counts = np.unique(previous[both].astype(np.int64) * width + current[both],
                             return_counts=True)
    return keys // width, keys % width, counts


class ObjectLinker:
    """Give each object the id of the object it overlaps most in the previous frames.

    Call :meth:`link` once per frame, in time order. Objects of the first frame get ids
    1..n; afterwards the remembered and current objects are matched one to one, maximising
    the total intersection-over-union (Hungarian algorithm) among pairs that overlap. The
    memory holds every object's pixels in the last frame where it was seen, for up to
    `max_gap` frames after it vanished, so a body missed in a frame (out of focus, an empty
    frame) gets its id back. A matched object keeps its id; an unmatched one (new, or moved
    farther than its own size in one frame) gets the next unused id. When two bodies merge,
    the merged object keeps the id of the one it overlaps best; when one splits, the larger
    overlap keeps the id. Ids are never reused.

    Parameters
    ----------
    max_gap : int
        Frames an object may be missing and still be linked again, >= 0.

    Raises
    ------
    ValueError
        If `max_gap` is negative or not an integer.

    Examples
    --------
    >>> linker = ObjectLinker()
    >>> linker.link(np.array([[1, 0, 2, 2]])).tolist()
    [[1, 0, 2, 2]]
    >>> linker.link(np.array([[2, 2, 0, 1]])).tolist()  # input ids are arbitrary
    [[1, 1, 0, 2]]
    >>> linker.link(np.array([[0, 0, 0, 1]])).tolist()  # body 1 gone
    [[0, 0, 0, 2]]
    >>> linker.link(np.array([[1, 0, 0, 0]])).tolist()  # back where it was: same id
    [[1, 0, 0, 0]]
    >>> linker.link(np.array([[0, 0, 1, 0]])).tolist()  # no overlap: a new id
    [[0, 0, 3, 0]]
    """

    def __init__(self, *, max_gap: int = SegmentationOptions.max_gap) -> None:
        _check_max_gap(max_gap)
        self._max_gap = int(max_gap)
        self._previous: NDArray[np.int32] | None = None
        self._last_seen: dict[int, int] = {}
        self._frame = -1
        self._next_id = 1

    def link(self, labels: NDArray[np.integer]) -> NDArray[np.int32]:
        """Return `labels` (shape (Y, X), int) renumbered with tracked ids (int32).

        Raises
        ------
        ValueError
            If `labels` is not 2-D, has negative ids, or its shape differs from the
            previous frame's.
        TypeError
            If `labels` is not an integer numpy array.
        """
        labels = _check_frame("labels", labels, kind="i")
        if labels.min(initial=0) < 0:
            raise ValueError(f"labels must be >= 0, got {int(labels.min())!r}")
        labels = relabel_sequential(labels)
        if self._previous is not None and self._previous.shape != labels.shape:
            raise ValueError(f"labels must have the shape of the previous frame "
                             f"{self._previous.shape!r}, got {labels.shape!r}")
        count = int(labels.max(initial=0))
        lookup = np.zeros(count + 1, dtype=np.int32)
        if self._previous is not None and count:
            for old, new in self._match(self._previous, labels):
                lookup[new] = old
        for new in range(1, count + 1):
            if lookup[new] == 0:
                lookup[new] = self._next_id
                self._next_id += 1
        linked = lookup[labels]
        self._remember(linked)
        return linked

    def _remember(self, linked: NDArray[np.int32]) -> None:
        """Paint the current objects over the memory and forget objects lost too long."""
        self._frame += 1
        present = np.flatnonzero(np.bincount(linked.ravel()))
        present = present[present > 0].tolist()
        for object_id in present:
            self._last_seen[object_id] = self._frame
        expired = [i for i, seen in self._last_seen.items() if self._frame - seen > self._max_gap]
        for object_id in expired:
            del self._last_seen[object_id]
        memory = linked
        if self._previous is not None:
            forget = np.zeros(max([int(self._previous.max(initial=0)), *present, *expired]) + 1,
                              dtype=bool)
            forget[present + expired] = True
            memory = np.where(linked > 0, linked, np.where(forget[self._previous], 0, self._previous))
        self._previous = memory.astype(np.int32, copy=False)

    @staticmethod
    def _match(previous: NDArray[np.int32], current: NDArray[np.int32]) -> list[tuple[int, int]]:
        """(previous id, current id) pairs maximising the summed IoU; overlapping pairs only."""
        old_ids, new_ids, shared = _overlaps(previous, current)
        if shared.size == 0:
            return []
        old_area = np.bincount(previous.ravel())[old_ids]
        new_area = np.bincount(current.ravel())[new_ids]
        iou = shared / (old_area + new_area - shared)
        rows, row_of = np.unique(old_ids, return_inverse=True)
        cols, col_of = np.unique(new_ids, return_inverse=True)
        matrix = np.zeros((rows.size, cols.size))
        matrix[row_of, col_of] = iou
        chosen_rows, chosen_cols = optimize.linear_sum_assignment(matrix, maximize=True)
        return [(int(rows[r]), int(cols[c])) for r, c in zip(chosen_rows, chosen_cols, strict=True)
                if matrix[r, c] > 0]


def segment_store(probabilities_path: str | os.PathLike[str],
                  output_path: str | os.PathLike[str],
                  options: SegmentationOptions | None = None, *,
                  threads: int | None = None) -> list[float]:
    """Segment every frame of a probability image into a tracked NGFF label image.

    Frames are read and segmented (:func:`segment_frame`) in `threads` worker processes
    when the position is large (:func:`spheroseg.runtime.frame_workers`), then linked (:class:`ObjectLinker`) and written in time order in this process;
    a few frames are in memory at a time, and the result does not depend on `threads`. The label image has axes ``"tyx"``, dtype int32, the pixel size
    and frame interval of the probabilities, is marked as an NGFF label image
    (``"image-label"``), and records under the group attribute ``"spheroseg.segment"`` the
    options (``min_area_px`` as applied) and per frame the ``thresholds``, the ``objects``
    kept, and the ``removed_objects`` and ``largest_removed_px`` of the size filter (so that
    a frame it emptied can be flagged); it appears only when complete.

    Parameters
    ----------
    probabilities_path : str or PathLike
        NGFF image of foreground probabilities (axes ending in ``"yx"``; channel 0 used).
    output_path : str or PathLike
        Label image to write (replaced if it exists).
    options : SegmentationOptions, optional
        Defaults to ``SegmentationOptions()``. Its `min_area_um2`, where given, replaces
        `min_area_px` and needs a known pixel size; its `max_gap` goes to the linker.
    threads : int, optional
        Worker processes; by default the CPUs this process may use
        (:func:`spheroseg.runtime.job_threads`).

    Returns
    -------
    list of float
        Threshold used for each frame.

    Raises
    ------
    ValueError
        If the input is not an NGFF image, its values leave [0, 1], or ``min_area_um2`` is
        given for an image without pixel size.
    """
    from spheroseg import ngff
    from spheroseg.atomic import atomic_path
    from spheroseg.runtime import frame_workers
    from spheroseg.zarrio import seal_arrays

    options = SegmentationOptions() if options is None else options
    linker = ObjectLinker(max_gap=options.max_gap)
    metadata = ngff.read_metadata(probabilities_path)
    if options.min_area_um2 is not None:
        options = dataclasses.replace(options, min_area_px=_area_in_pixels(
            options.min_area_um2, metadata.pixel_size_um, probabilities_path))
    frames, _ = ngff.frames_and_plane(metadata)
    workers = frame_workers(threads, frames=frames, plane=metadata.shape[-2:])
    frames_done: list[dict[str, float | int]] = []
    with atomic_path(output_path, directory=True) as tmp:
        target = ngff.create_image(
            tmp, shape=(frames, *metadata.shape[-2:]), dtype=np.int32, axes="tyx",
            pixel_size_um=metadata.pixel_size_um, time_interval_s=metadata.time_interval_s,
            name="labels")
        for t, (labels, summary) in enumerate(
                _segmented_frames(probabilities_path, frames, options, workers)):
            ngff.write_frame(target, t, linker.link(labels))
            frames_done.append(summary)
        _record_segmentation(tmp, options, frames_done)
        seal_arrays(tmp)
    return [float(frame["threshold"]) for frame in frames_done]


def _segmented_frames(path: str | os.PathLike[str], frames: int, options: SegmentationOptions,
                      workers: int) -> Iterator[tuple[NDArray[np.int32], dict[str, float | int]]]:
    """(labels, :meth:`FrameSegmentation.summary`) of every frame in time order, from
    `workers` processes if > 1."""
    if workers <= 1:
        from spheroseg import ngff

        source = ngff.open_frames(path)
        for t in range(frames):
            result = _segment_one(source, str(path), options, t)
            yield result.labels, result.summary()
        return
    from spheroseg.runtime import ordered_map, process_pool, unpack_array

    with process_pool(workers, preload=[__name__]) as pool:
        calls = ((str(path), options, t) for t in range(frames))
        for packed, summary in ordered_map(pool, _segment_packed, calls, depth=2 * workers):
            yield unpack_array(packed), summary


def _segment_one(source: Any, path: str, options: SegmentationOptions,
                 t: int) -> FrameSegmentation:
    """Read, check and segment frame `t` of the probability image at `path`."""
    from spheroseg import ngff

    probabilities = _checked_probabilities(ngff.read_frame(source, t), t, path)
    return segment_frame_details(probabilities, options)


def _segment_packed(path: str, options: SegmentationOptions,
                    t: int) -> tuple[Any, dict[str, float | int]]:
    """`_segment_one` in a worker process, the labels compressed for the trip back."""
    from spheroseg import ngff
    from spheroseg.runtime import pack_array

    source = _WORKER_SOURCES.get(path)
    if source is None:  # a worker lives for one segment_store call: one image per path
        source = _WORKER_SOURCES[path] = ngff.open_frames(path)
    result = _segment_one(source, path, options, t)
    return pack_array(result.labels), result.summary()


def _area_in_pixels(min_area_um2: float, pixel_size_um: float | None,
                    path: str | os.PathLike[str]) -> float:
    """Convert a minimum area from µm² to pixels, or raise if the pixel size is unknown."""
    if pixel_size_um is None:
        raise ValueError(f"pixel size must be known to use min_area_um2, got None "
                         f"(in {path}); give the minimum area in pixels instead")
    return float(min_area_um2) / pixel_size_um ** 2


def _checked_probabilities(frame: NDArray, t: int, path: str | os.PathLike[str]) -> NDArray:
    """The frame as float32 clipped to [0, 1]; ValueError if it leaves [0, 1] by > 1e-3.

    The tolerance absorbs rounding in blended (stitched) probabilities.
    """
    values = np.asarray(frame, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if not (low >= -_ROUNDING and high <= 1.0 + _ROUNDING):
        raise ValueError(f"probabilities must lie in [0, 1], got values in [{low}, {high}] "
                         f"at t={t} (in {path})")
    return np.clip(values, 0.0, 1.0)


def _record_segmentation(path: str | os.PathLike[str], options: SegmentationOptions,
                         frames: list[dict[str, float | int]]) -> None:
    """Mark the image as an NGFF label image; record the options and, per frame, the
    threshold, the objects kept and the objects the size filter removed (count, largest)."""
    import zarr

    from spheroseg.ngff import image_label_metadata

    group = zarr.open_group(store=str(path), mode="r+")
    group.attrs["ome"] = {**group.attrs["ome"], "image-label": image_label_metadata()}
    group.attrs["spheroseg"] = {"segment": {
        **dataclasses.asdict(options),
        "thresholds": [frame["threshold"] for frame in frames],
        **{key: [frame[key] for frame in frames]
           for key in ("objects", "removed_objects", "largest_removed_px")}}}


def read_segmentation_record(labels_path: str | os.PathLike[str]) -> dict[str, object] | None:
    """The ``spheroseg.segment`` attributes :func:`segment_store` wrote, or None if absent."""
    import zarr

    try:
        attributes = zarr.open_group(store=str(labels_path), mode="r").attrs.asdict()
    except (FileNotFoundError, ValueError, zarr.errors.GroupNotFoundError):
        return None
    record = attributes.get("spheroseg", {}).get("segment")
    return record if isinstance(record, dict) else None


def read_thresholds(labels_path: str | os.PathLike[str]) -> list[float] | None:
    """Per-frame thresholds recorded by :func:`segment_store`, or None if absent."""
    thresholds = (read_segmentation_record(labels_path) or {}).get("thresholds")
    if not isinstance(thresholds, list) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in thresholds):
        return None
    return [float(t) for t in thresholds]


LABEL_NAME = "segmentation"


def segment_into_image(probabilities_path: str | os.PathLike[str],
                       image_path: str | os.PathLike[str],
                       options: SegmentationOptions | None = None, *,
                       record: str | os.PathLike[str] | None = None,
                       threads: int | None = None) -> list[float]:
    """:func:`segment_store` into ``IMAGE/labels/segmentation``, nested under its image.

    The label image is written atomically inside the image's ``labels`` group and then
    listed there (NGFF image-labels), so that viewers and readers open the image with its
    labels. `record`, written last, is a small JSON file saying where the labels are and
    what was recorded with them (options, thresholds): the workflow's sign that they are
    complete.

    Parameters
    ----------
    probabilities_path : str or PathLike
        NGFF image of foreground probabilities.
    image_path : str or PathLike
        The NGFF image the probabilities were computed from (same y and x size).
    options : SegmentationOptions, optional
        As :func:`segment_store`.
    record : str or PathLike, optional
        JSON file to write when the labels are complete.
    threads : int, optional
        Worker processes, as :func:`segment_store`.

    Returns
    -------
    list of float
        Threshold used for each frame.

    Raises
    ------
    ValueError
        As :func:`segment_store`, or if the image is not an NGFF image of the
        probabilities' y and x size.
    """
    import json

    from spheroseg import ngff
    from spheroseg.atomic import write_text

    image, probabilities = ngff.read_metadata(image_path), ngff.read_metadata(probabilities_path)
    if image.shape[-2:] != probabilities.shape[-2:]:
        raise ValueError(f"image must have the y, x size of the probabilities "
                         f"{probabilities.shape[-2:]}, got {image.shape[-2:]} (in {image_path})")
    if record is not None:  # a record that cannot be written fails now, not after the labels
        Path(record).parent.mkdir(parents=True, exist_ok=True)
    output = ngff.label_path(image_path, LABEL_NAME)
    thresholds = segment_store(probabilities_path, output, options, threads=threads)
    ngff.register_label(image_path, LABEL_NAME)
    if record is not None:
        recorded = ngff.read_attributes(output).get("spheroseg", {})
        where = os.path.relpath(output, os.path.dirname(os.path.abspath(record)))
        document = {"labels": where.replace(os.sep, "/"), **recorded}
        write_text(record, json.dumps(document, indent=2) + "\n")
    return thresholds
