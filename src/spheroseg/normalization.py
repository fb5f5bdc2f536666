"""Intensity normalisation shared by training and prediction (described in the model card)."""

from __future__ import annotations

from typing import Any

import numpy as np

NORMALIZATION_KINDS = ("percentile", "zscore", "none")


def validate_normalization(spec: Any, *, source: str = "model card") -> dict[str, Any]:
    """Check a normalisation spec and return it with defaults filled in.

    Parameters
    ----------
    spec : dict
        ``{"kind": "percentile", "low": 1.0, "high": 99.8}``, ``{"kind": "zscore"}`` or
        ``{"kind": "none"}``.
    source : str
        Where the spec came from, for error messages.

    Returns
    -------
    dict
        The spec with defaults.

    Raises
    ------
    ValueError
        If the kind is unknown or the percentiles are not ``0 <= low < high <= 100``.
    TypeError
        If `spec` is not a mapping.

    Examples
    --------
    >>> validate_normalization({"kind": "percentile"})
    {'kind': 'percentile', 'low': 1.0, 'high': 99.8}
    """
    if not isinstance(spec, dict):
        raise TypeError(f"normalization must be a mapping, got {spec!r} (in {source})")
    kind = spec.get("kind")
    if kind not in NORMALIZATION_KINDS:
        raise ValueError(
            f"normalization.kind must be one of {NORMALIZATION_KINDS}, got {kind!r} (in {source})"
        )
    if kind != "percentile":
        return {"kind": kind}
    low = float(spec.get("low", 1.0))
    high = float(spec.get("high", 99.8))
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(
            f"normalization percentiles must satisfy 0 <= low < high <= 100, "
            f"got low={low!r}, high={high!r} (in {source})"
        )
    return {"kind": "percentile", "low": low, "high": high}


def normalize_image(image: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Normalise one image (all axes pooled) to float32 as the model card says.

    The one normalisation of spheroseg: training normalises its annotation images and
    ``predict`` its frames with this function. Percentiles of 8- and 16-bit integer images
    (the usual camera data) come from a histogram (:func:`percentiles_of_integers`), ten
    times faster than sorting and equal to ``np.percentile`` to float32 rounding.

    Parameters
    ----------
    image : ndarray of shape (..., Y, X), any real dtype
        One frame (optionally with a leading channel axis).
    spec : dict
        A spec accepted by :func:`validate_normalization`.

    Returns
    -------
    ndarray of shape (..., Y, X), float32
        Percentile: ``(x - p_low) / (p_high - p_low)``; z-score: ``(x - mean) / std``.
        A constant image maps to zeros.

    Examples
    --------
    >>> normalize_image(np.array([[0, 50], [100, 100]]), {"kind": "percentile", "low": 0, "high": 100})
    array([[0. , 0.5],
           [1. , 1. ]], dtype=float32)
    """
    image = np.asarray(image)
    if spec["kind"] == "percentile" and image.dtype.kind in "ui" and image.dtype.itemsize <= 2:
        return _normalize_integers(image, spec)
    data = np.asarray(image, dtype=np.float32)
    kind = spec["kind"]
    if kind == "none":
        return data
    if kind == "percentile":
        low, high = np.percentile(data, [spec["low"], spec["high"]])
        offset, scale = float(low), float(high - low)
    else:
        offset, scale = float(data.mean()), float(data.std())
    if scale <= 0.0:
        return np.zeros_like(data)
    return (data - offset) / scale


def _normalize_integers(image: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Percentile normalisation of an 8/16-bit integer image, percentiles from a histogram."""
    low, high = percentiles_of_integers(image, (spec["low"], spec["high"]))
    if high - low <= 0.0:
        return np.zeros(image.shape, dtype=np.float32)
    data = image.astype(np.float32)
    data -= np.float32(low)
    data /= np.float32(high - low)
    return data


def _order_statistics(image: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Values at 0-based `ranks` of the sorted integer `image`, from a histogram (no sort)."""
    low = int(image.min())
    counts = np.bincount((image.ravel().astype(np.int64) - low), minlength=1)
    return np.searchsorted(np.cumsum(counts), ranks, side="right").astype(np.float64) + low


def percentiles_of_integers(image: np.ndarray, percents: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile(image, percents)`` (linear method) for an 8/16-bit integer image, in O(n).

    Examples
    --------
    >>> percentiles_of_integers(np.array([[0, 10], [20, 30]], dtype=np.uint8), (50.0, 100.0))
    (15.0, 30.0)
    """
    positions = np.asarray(percents, dtype=np.float64) / 100.0 * (image.size - 1)
    below = np.floor(positions)
    values = _order_statistics(image, np.concatenate([below, np.minimum(below + 1, image.size - 1)]))
    fraction = positions - below
    result = values[:2] + (values[2:] - values[:2]) * fraction
    return float(result[0]), float(result[1])
