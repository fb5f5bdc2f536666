"""One frame measured: every labelled object traced (:mod:`~spheroseg.measure.trace`) and its
shape metrics computed (:mod:`~spheroseg.measure.shapes`), with mean intensity and border
contact. Pure: arrays in, :class:`ObjectMeasurement` out."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from spheroseg.measure.shapes import METRICS, ObjectContour, polygon_metrics
from spheroseg.measure.trace import DEFAULT_LEVEL, check_trace_inputs, trace_in_box


@dataclasses.dataclass(frozen=True)
class ObjectMeasurement:
    """Contour and metrics of one object in one frame.

    Attributes
    ----------
    object_id : int
    contour : ObjectContour
    metrics : dict of str to float
        :data:`METRICS` in pixel units (see :func:`polygon_metrics`).
    mean_intensity : float
        Mean raw image value over the object's pixels (NaN without an image).
    touches_border : bool
        Whether a pixel of the object lies in the first or last row or column.
    """

    object_id: int
    contour: ObjectContour
    metrics: dict[str, float]
    mean_intensity: float
    touches_border: bool


def measure_frame(labels: NDArray[np.integer], probabilities: NDArray,
                  image: NDArray | None = None, *, threshold: float = DEFAULT_LEVEL,
                  smoothing: str | float | None = "auto") -> list[ObjectMeasurement]:
    """Trace and measure every object of one frame.

    Parameters
    ----------
    labels : ndarray of shape (Y, X), int
        Label image, 0 = background.
    probabilities : ndarray of shape (Y, X), float
        Foreground probability the labels came from.
    image : ndarray of shape (Y, X), optional
        Raw image for ``mean_intensity``.
    threshold, smoothing
        See :func:`trace_object`.

    Returns
    -------
    list of ObjectMeasurement
        Sorted by object id; empty for a frame without objects.

    Raises
    ------
    ValueError
        If shapes differ or `threshold`/`smoothing` are invalid.
    TypeError
        If `labels` is not an integer array.

    Examples
    --------
    >>> labels = np.zeros((9, 9), np.int32); labels[2:7, 2:7] = 3
    >>> [(m.object_id, round(m.metrics["area"], 2)) for m in measure_frame(labels, labels / 3)]
    [(3, 24.36)]
    """
    check_trace_inputs(probabilities, labels, threshold, smoothing)
    if image is not None and np.shape(image) != labels.shape:
        raise ValueError(f"image must have the shape of labels {labels.shape!r}, "
                         f"got {np.shape(image)!r}")
    from spheroseg.segmentation import border_object_ids

    border = set(border_object_ids(labels).tolist())
    measurements = []
    boxes = ndimage.find_objects(labels)
    for object_id in np.unique(labels[labels > 0]).tolist():
        box = boxes[object_id - 1]
        contour = trace_in_box(probabilities, labels, object_id, box, threshold=threshold,
                                smoothing=smoothing)
        metrics = polygon_metrics(contour) if contour.outers else dict.fromkeys(METRICS,
                                                                                math.nan)
        intensity = math.nan if image is None else float(
            np.mean(np.asarray(image)[box][labels[box] == object_id], dtype=np.float64))
        measurements.append(ObjectMeasurement(int(object_id), contour, metrics, intensity,
                                              object_id in border))
    return measurements
