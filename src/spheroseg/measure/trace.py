"""Sub-pixel tracing of labelled objects on the foreground-probability map.

Each object's boundary is traced with marching squares on the probability map restricted to
the object (:func:`trace_object`), so the contour lies between pixel centres where the
probability crosses the threshold, not on the pixel staircase of the label mask. Binary
(hard 0/1) maps are Gaussian-smoothed first, and the polygon's pixel-scale zigzag is removed
by a non-shrinking (Taubin) low-pass (:func:`spheroseg.measure.shapes.smooth_polygon`).

Coordinates are pixel indices ``(y, x)`` of pixel centres (row, column) unless stated.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from spheroseg.measure.shapes import ObjectContour, signed_area, smooth_polygon
from spheroseg.segmentation import SegmentationOptions, check_threshold

# Fraction of boundary probabilities that must be exactly 0 or 1 for a map to count as binary.
_BINARY_FRACTION = 0.9
# Gaussian sigma (pixels) used to smooth binary masks before tracing.
BINARY_SMOOTHING_SIGMA = 1.0
_CLAMP = 1e-6
# The contour level defaults to the level segment cuts objects at.
DEFAULT_LEVEL = SegmentationOptions.threshold


def _is_binary(values: NDArray) -> bool:
    """True if most values are exactly 0 or 1 (a hard mask, not a probability map)."""
    if values.size == 0:
        return False
    hard = np.count_nonzero((values == 0) | (values == 1))
    return hard >= _BINARY_FRACTION * values.size


def _boundary_values(probabilities: NDArray, own: NDArray[np.bool_]) -> NDArray:
    """Probabilities of the object's edge pixels and of the background pixels around it."""
    grown = square_dilation(own)
    edge = own & ~square_erosion(own)
    return probabilities[(grown & ~own) | edge]


def square_dilation(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``ndimage.binary_dilation(mask, np.ones((3, 3)))``, as two 1-D passes of shifted ORs.

    Exactly equal, five times faster on an object's crop.

    Examples
    --------
    >>> square_dilation(np.array([[1, 0, 0, 0]] + [[0] * 4] * 2, bool)).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    """
    return ~square_erosion(~np.asarray(mask, dtype=bool), outside=True)


def square_erosion(mask: NDArray[np.bool_], *, outside: bool = False) -> NDArray[np.bool_]:
    """``ndimage.binary_erosion(mask, np.ones((3, 3)), border_value=outside)``, exactly."""
    padded = np.pad(np.asarray(mask, dtype=bool), 1, constant_values=outside)
    rows = padded[:-2] & padded[1:-1] & padded[2:]
    return rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]


def object_field(probabilities: NDArray, own: NDArray[np.bool_], *, threshold: float,
                 sigma: float | None, others: NDArray[np.bool_] | None = None,
                 ) -> NDArray[np.float64]:
    """Scalar field whose `threshold` level set is the object's boundary.

    With ``sigma=None`` the probability map is clamped so that it is above `threshold` on
    every pixel of `own` (filled holes stay filled) and below it on the pixels around it;
    pixels of touching objects are mirrored about the threshold (``2 * threshold - p``) so
    that the cut between two objects lies midway between their pixels; farther pixels are
    0. With a `sigma`, the field is the Gaussian-smoothed indicator of `own`, rescaled so
    that 0.5 maps to `threshold`.

    Parameters
    ----------
    probabilities : ndarray of shape (Y, X), float
        Probability crop with at least one pixel of margin around the object.
    own : ndarray of shape (Y, X), bool
        The object's pixels in the same crop.
    threshold : float
        Level of the boundary, in (0, 1).
    sigma : float or None
        Gaussian sigma in pixels for binary masks.
    others : ndarray of shape (Y, X), bool, optional
        Pixels of other objects in the crop.

    Returns
    -------
    ndarray of shape (Y, X), float64
    """
    if sigma is not None:
        smooth = ndimage.gaussian_filter(own.astype(np.float64), sigma, mode="constant")
        return smooth * (threshold / 0.5) if threshold <= 0.5 else \
            1 - (1 - smooth) * ((1 - threshold) / 0.5)
    values = probabilities.astype(np.float64)
    ring = square_dilation(own) & ~own
    field = np.zeros(own.shape, dtype=np.float64)
    field[own] = np.maximum(values[own], threshold + _CLAMP)
    if others is not None:
        values = np.where(others, 2 * threshold - values, values)
    field[ring] = np.minimum(values[ring], threshold - _CLAMP)
    return field


def _split_contours(contours: list[NDArray]) -> tuple[list[NDArray], list[NDArray]]:
    """Sort closed contours into outer boundaries and holes by orientation; smooth them."""
    outers, holes = [], []
    for contour in contours:
        if len(contour) < 4 or not np.allclose(contour[0], contour[-1]):
            continue
        repeated = np.all(contour[1:] == contour[:-1], axis=1)
        contour = smooth_polygon(contour[np.concatenate([[False], repeated]) == 0])
        area = signed_area(contour)
        if area > 0:
            outers.append(contour)
        elif area < 0:
            holes.append(contour)
    return outers, holes


def trace_object(probabilities: NDArray, labels: NDArray[np.integer], object_id: int, *,
                 threshold: float = DEFAULT_LEVEL, smoothing: str | float | None = "auto",
                 ) -> ObjectContour:
    """Trace the sub-pixel boundary of one labelled object.

    Parameters
    ----------
    probabilities : ndarray of shape (Y, X), float
        Foreground probability in [0, 1] (a binary mask works too).
    labels : ndarray of shape (Y, X), int
        Label image; the object is ``labels == object_id``.
    object_id : int
        Id of the object to trace.
    threshold : float
        Probability level of the boundary, in (0, 1); the one used to segment.
    smoothing : "auto", float or None
        Gaussian sigma in pixels applied to the object's mask before tracing; ``"auto"``
        smooths with :data:`BINARY_SMOOTHING_SIGMA` only when the probabilities around the
        object are (90 % or more) exactly 0 or 1; None never smooths.

    Returns
    -------
    ObjectContour
        Empty lists if the object is absent.

    Raises
    ------
    ValueError
        If shapes differ, `threshold` is outside (0, 1) or `smoothing` is invalid.

    Examples
    --------
    >>> labels = np.zeros((5, 5), np.int32); labels[1:4, 1:4] = 1
    >>> contour = trace_object(labels * 0.9, labels, 1, smoothing=None)
    >>> round(signed_area(contour.outers[0]), 3), len(contour.holes)
    (7.951, 0)
    """
    check_trace_inputs(probabilities, labels, threshold, smoothing)
    rows, cols = np.nonzero(labels == object_id)
    if rows.size == 0:
        return ObjectContour([], [])
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    return trace_in_box(probabilities, labels, object_id, box, threshold=threshold,
                         smoothing=smoothing)


def trace_in_box(probabilities: NDArray, labels: NDArray, object_id: int,
                  box: tuple[slice, slice], *, threshold: float,
                  smoothing: str | float | None) -> ObjectContour:
    """trace_object for an object whose bounding box is known (inputs already checked)."""
    from skimage.measure import find_contours

    box = _grown(box, labels.shape, margin=2 + _smoothing_margin(smoothing))
    own = np.pad(labels[box] == object_id, 1)
    others = np.pad(labels[box] != 0, 1) & ~own
    crop = np.pad(np.asarray(probabilities[box]), 1)
    sigma = _choose_sigma(smoothing, crop, own)
    field = object_field(crop, own, threshold=threshold, sigma=sigma, others=others)
    outers, holes = _split_contours(find_contours(field, threshold, fully_connected="high"))
    if not outers and sigma is not None:  # smoothed away (a few pixels): trace the mask
        field = object_field(crop, own, threshold=threshold, sigma=None, others=others)
        outers, holes = _split_contours(find_contours(field, threshold, fully_connected="high"))
        sigma = None
    offset = np.array([box[0].start - 1, box[1].start - 1], dtype=np.float64)
    return ObjectContour([c + offset for c in outers], [c + offset for c in holes], sigma)


def _smoothing_margin(smoothing: str | float | None) -> int:
    """Pixels of margin the Gaussian needs around an object."""
    sigma = BINARY_SMOOTHING_SIGMA if smoothing == "auto" else smoothing
    return 0 if sigma is None else math.ceil(4 * float(sigma))


def _choose_sigma(smoothing: str | float | None, crop: NDArray, own: NDArray) -> float | None:
    """The Gaussian sigma to apply to this object, or None."""
    if smoothing == "auto":
        return BINARY_SMOOTHING_SIGMA if _is_binary(_boundary_values(crop, own)) else None
    return None if smoothing is None or smoothing == 0 else float(smoothing)


def _grown(box: tuple[slice, slice], shape: tuple[int, ...], *,
           margin: int) -> tuple[slice, slice]:
    """A bounding box grown by `margin` pixels on every side, clipped to the image."""
    return (slice(max(box[0].start - margin, 0), min(box[0].stop + margin, shape[0])),
            slice(max(box[1].start - margin, 0), min(box[1].stop + margin, shape[1])))


def check_trace_inputs(probabilities: NDArray, labels: NDArray, threshold: float,
                        smoothing: str | float | None) -> None:
    """Raise ValueError/TypeError for inputs trace_object cannot use."""
    for name, array in (("probabilities", probabilities), ("labels", labels)):
        if not isinstance(array, np.ndarray) or array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D numpy array, got "
                             f"{getattr(array, 'shape', type(array).__name__)!r}")
    if probabilities.shape != labels.shape:
        raise ValueError(f"labels must have the shape of probabilities {probabilities.shape!r}, "
                         f"got {labels.shape!r}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype!r}")
    check_threshold(threshold)
    check_smoothing(smoothing)


def check_smoothing(smoothing: object) -> None:
    """Raise ValueError unless `smoothing` is ``"auto"``, None or a sigma in [0, 50) pixels."""
    valid = smoothing is None or smoothing == "auto" or (
        isinstance(smoothing, (int, float)) and not isinstance(smoothing, bool)
        and 0 <= smoothing < 50)
    if not valid:
        raise ValueError(f"smoothing must be 'auto', None or a sigma in [0, 50) pixels, "
                         f"got {smoothing!r}")
