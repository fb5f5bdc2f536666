"""Intensity normalisation shared by training and prediction (described in the model card).

Kinds (the card's ``input.normalization`` entry):

- ``{"kind": "percentile", "low": 1.0, "high": 99.8}``: ``(x - p_low) / (p_high - p_low)``
  per frame. When the objects cover less than ``100 - high`` per cent of the frame (one
  body in a big empty field), ``p_high`` is background, the background noise is stretched
  over 0-1 and the objects become huge values.
- ``{"kind": "robust", "low": 1.0, "high": 99.8, "block": 8, "polarity": "auto"}``:
  first the polarity (``auto``: an image whose objects are darker than its background,
  such as bright field, is negated, so that objects are always brighter than the
  background; ``bright``: never); then ``(x - p_low) / (top - p_low)`` with
  ``top = max(p_high, largest mean of a block x block tile)``. A body larger than a block
  defines ``top`` however small a share of the frame it covers, and block means ignore
  hot pixels and noise.
- ``{"kind": "zscore"}``: ``(x - mean) / std``; ``{"kind": "none"}``: as is.

``percentile`` and ``robust`` take ``"scope": "series"``: the window (polarity, ``p_low``
and the top) is computed once over every frame of a position (:func:`series_window`) and
each frame is normalised with it, so that one raw intensity means one input value through a
time series; without it (``"image"``) each frame has its own window, whose top follows the
frame's brightest part (``benchmarks/loop_normalization_results.md``: day-0 spheroids that
saturate at 194-217 against 255 on day 2 came out 1.2-1.3x brighter).

Polarity detection (:func:`objects_are_dark`) looks at which side of the edges is convex:
compact objects lie inside their outlines whatever the shading, the object size or the
share of the frame they cover. A frame and its negative (``255 - x``) therefore normalise
to the same values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

NORMALIZATION_KINDS = ("percentile", "robust", "zscore", "none")
POLARITIES = ("auto", "bright")
SCOPES = ("image", "series")


def _percentile_range(spec: Any, kind: str, source: str) -> dict[str, Any]:
    """The checked ``low``/``high`` entries of a percentile-type spec."""
    low = float(spec.get("low", 1.0))
    high = float(spec.get("high", 99.8))
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(
            f"normalization percentiles must satisfy 0 <= low < high <= 100, "
            f"got low={low!r}, high={high!r} (in {source})"
        )
    return {"kind": kind, "low": low, "high": high}


def validate_normalization(spec: Any, *, source: str = "model card") -> dict[str, Any]:
    """Check a normalisation spec and return it with defaults filled in.

    Parameters
    ----------
    spec : dict
        ``{"kind": "percentile", "low": 1.0, "high": 99.8}``,
        ``{"kind": "robust", "low": 1.0, "high": 99.8, "block": 8, "polarity": "auto"}``,
        ``{"kind": "zscore"}`` or ``{"kind": "none"}``.
    source : str
        Where the spec came from, for error messages.

    Returns
    -------
    dict
        The spec with defaults.

    Raises
    ------
    ValueError
        If the kind or polarity is unknown, the percentiles are not
        ``0 <= low < high <= 100`` or the block is not a positive integer.
    TypeError
        If `spec` is not a mapping.

    Examples
    --------
    >>> validate_normalization({"kind": "percentile"})
    {'kind': 'percentile', 'low': 1.0, 'high': 99.8}
    >>> validate_normalization({"kind": "robust"})
    {'kind': 'robust', 'low': 1.0, 'high': 99.8, 'block': 8, 'polarity': 'auto'}
    """
    if not isinstance(spec, dict):
        raise TypeError(f"normalization must be a mapping, got {spec!r} (in {source})")
    kind = spec.get("kind")
    if kind not in NORMALIZATION_KINDS:
        raise ValueError(
            f"normalization.kind must be one of {NORMALIZATION_KINDS}, got {kind!r} (in {source})"
        )
    if kind in ("zscore", "none"):
        if spec.get("scope", "image") != "image":
            raise ValueError(f"normalization.scope 'series' needs kind 'percentile' or 'robust', got "
                             f"kind {kind!r} (in {source})")
        return {"kind": kind}
    checked = _percentile_range(spec, kind, source) | _scope(spec, source)
    if kind == "percentile":
        return checked
    block = spec.get("block", 8)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"normalization.block must be a positive integer, got {block!r} (in {source})")
    polarity = spec.get("polarity", "auto")
    if polarity not in POLARITIES:
        raise ValueError(f"normalization.polarity must be one of {POLARITIES}, got {polarity!r} (in {source})")
    return {**checked, "block": block, "polarity": polarity}


def _scope(spec: Any, source: str) -> dict[str, Any]:
    """``{"scope": "series"}`` for a series-wide window, else nothing (``image`` is the default)."""
    scope = spec.get("scope", "image")
    if scope not in SCOPES:
        raise ValueError(f"normalization.scope must be one of {SCOPES}, got {scope!r} (in {source})")
    return {"scope": scope} if scope == "series" else {}


def series_window(frames: Iterable[np.ndarray], spec: dict[str, Any]) -> dict[str, Any]:
    """The normalisation window of a whole time series, for ``"scope": "series"``.

    The same rule as one frame's (module docstring) on all frames pooled: the percentiles of
    every pixel, the top over every frame's blocks, and (robust, ``polarity: auto``) the
    polarity that most frames show. 8- and 16-bit integer frames are counted exactly (one
    histogram); other dtypes from every 16th pixel.

    Parameters
    ----------
    frames : iterable of ndarray of shape (..., Y, X)
        The frames (each optionally with a leading channel axis), read one at a time.
    spec : dict
        A ``percentile`` or ``robust`` spec (:func:`validate_normalization`).

    Returns
    -------
    dict
        ``{"low": float, "top": float, "negate": bool}`` for :func:`normalize_image`.

    Raises
    ------
    ValueError
        If there is no frame.

    Examples
    --------
    >>> spec = {"kind": "percentile", "low": 0.0, "high": 100.0}
    >>> series_window([np.array([[0, 10]], np.uint8), np.array([[5, 20]], np.uint8)], spec)
    {'low': 0.0, 'top': 20.0, 'negate': False}
    """
    pooled, tops, dark_votes, count = _Pool(), [], 0, 0
    for frame in frames:
        frame = np.asarray(frame)
        pooled.add(frame)
        count += 1
        if spec["kind"] == "robust":
            blocks = block_means(np.asarray(frame, dtype=np.float32), spec["block"])
            dark = spec["polarity"] == "auto" and objects_are_dark(blocks)
            dark_votes += dark
            tops.append((float(blocks.max()), float(-blocks.min())))
    if count == 0:
        raise ValueError("frames must hold at least one frame, got none")
    negate = 2 * dark_votes > count
    percents = (spec["low"], spec["high"])
    if negate:
        low, high = (-value for value in pooled.percentiles((100.0 - percents[0], 100.0 - percents[1])))
    else:
        low, high = pooled.percentiles(percents)
    top = max([high] + [pair[1] if negate else pair[0] for pair in tops])
    return {"low": float(low), "top": float(top), "negate": bool(negate)}


class _Pool:
    """Pixels of many frames for percentiles: a histogram (8/16-bit integers) or a sample."""

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None
        self.offset = 0
        self.samples: list[np.ndarray] = []

    def add(self, frame: np.ndarray) -> None:
        """Count one frame's pixels."""
        if frame.dtype.kind in "ui" and frame.dtype.itemsize <= 2 and not self.samples:
            self.offset = -(2 ** (8 * frame.dtype.itemsize - 1)) if frame.dtype.kind == "i" else 0
            counts = np.bincount(frame.ravel().astype(np.int64) - self.offset,
                                 minlength=2 ** (8 * frame.dtype.itemsize))
            self.counts = counts if self.counts is None or len(self.counts) != len(counts) else self.counts + counts
        else:
            self.samples.append(np.asarray(frame, dtype=np.float64).ravel()[::16])

    def percentiles(self, percents: tuple[float, float]) -> tuple[float, float]:
        """Linear-interpolated percentiles of the pooled pixels."""
        if self.samples:
            low, high = np.percentile(np.concatenate(self.samples), percents)
        else:
            low, high = _counted_percentiles(self.counts, self.offset, percents)
        return float(low), float(high)


def apply_window(image: np.ndarray, window: dict[str, Any]) -> np.ndarray:
    """``(x - low) / (top - low)`` (of ``-x`` if ``negate``) as float32; zeros if ``top <= low``."""
    data = np.asarray(image, dtype=np.float32)
    if window["negate"]:
        data = -data
    return _scaled(data, window["low"], window["top"])


def _scaled(data: np.ndarray, low: float, top: float) -> np.ndarray:
    """``(data - low) / (top - low)`` for float32 `data`; zeros if ``top <= low``."""
    scale = float(top) - float(low)
    if not scale > 0.0:
        return np.zeros(data.shape, dtype=np.float32)
    return (data - np.float32(low)) / np.float32(scale)


def block_means(image: np.ndarray, block: int) -> np.ndarray:
    """Means of the whole ``block x block`` tiles of the last two axes (the image itself if smaller).

    Parameters
    ----------
    image : ndarray of shape (..., Y, X), float32
    block : int

    Returns
    -------
    ndarray of shape (..., Y // block, X // block), float32

    Examples
    --------
    >>> block_means(np.arange(16, dtype=np.float32).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    height, width = image.shape[-2:]
    rows, columns = height // block, width // block
    if rows == 0 or columns == 0:
        return image
    crop = image[..., : rows * block, : columns * block]
    tiles = crop.reshape(*image.shape[:-2], rows, block, columns, block)
    return tiles.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def objects_are_dark(blocks: np.ndarray) -> bool:
    """True if the objects are darker than their surroundings (bright field), from block means.

    Compact objects are on the inner, convex side of their edges: the isophotes (lines of
    equal brightness) around a bright blob curve towards the brighter side, around a dark
    blob towards the darker side. The sign of the summed isophote curvature, weighted by
    the cube of the gradient magnitude (so sharp, strong edges count and smooth shading
    does not), decides: ``sum(Lxx Ly^2 - 2 Lxy Lx Ly + Lyy Lx^2) > 0`` means dark objects,
    with derivatives of a Gaussian of one block. Negating the image negates the sum.

    Parameters
    ----------
    blocks : ndarray of shape (..., Y, X), float
        Block means (:func:`block_means`); leading axes (channels) are summed over.

    Returns
    -------
    bool

    Examples
    --------
    >>> field = np.full((32, 32), 200.0); field[10:16, 10:16] = 50.0
    >>> objects_are_dark(field), objects_are_dark(255.0 - field)
    (True, False)
    """
    data = np.asarray(blocks, dtype=np.float64)
    if data.ndim > 2:
        return bool(sum(_curvature_score(plane) for plane in data.reshape(-1, *data.shape[-2:])) > 0)
    return bool(_curvature_score(data) > 0)


def _curvature_score(plane: np.ndarray) -> float:
    """``sum(Lxx Ly^2 - 2 Lxy Lx Ly + Lyy Lx^2)`` of a 2-D plane smoothed with a Gaussian of sigma 1."""
    from scipy import ndimage

    if min(plane.shape) < 3:
        return 0.0

    def derivative(order: tuple[int, int]) -> np.ndarray:
        return ndimage.gaussian_filter(plane, 1.0, order=order, mode="nearest")

    ly, lx = derivative((1, 0)), derivative((0, 1))
    lyy, lxx, lxy = derivative((2, 0)), derivative((0, 2)), derivative((1, 1))
    return float(np.sum(lxx * ly * ly - 2.0 * lxy * lx * ly + lyy * lx * lx))


def _counted_percentiles(counts: np.ndarray, offset: int, percents: tuple[float, float]) -> np.ndarray:
    """``np.percentile`` (linear) of the values whose histogram is `counts` (value = index + offset)."""
    cumulative = np.cumsum(counts)
    size = int(cumulative[-1])
    positions = np.asarray(percents, dtype=np.float64) / 100.0 * (size - 1)
    below = np.floor(positions)
    ranks = np.concatenate([below, np.minimum(below + 1, size - 1)])
    values = np.searchsorted(cumulative, ranks, side="right").astype(np.float64) + offset
    count = len(percents)
    return values[:count] + (values[count:] - values[:count]) * (positions - below)


def integer_percentiles(image: np.ndarray, percents: tuple[float, float]) -> np.ndarray:
    """``np.percentile(image, percents)`` (linear) for 8/16-bit integer data, from a histogram."""
    offset = int(image.min())
    return _counted_percentiles(np.bincount(image.ravel().astype(np.int64) - offset), offset, percents)


def _percentiles(raw: np.ndarray, data: np.ndarray, percents: tuple[float, float], *, negate: bool) -> np.ndarray:
    """Percentiles of `data` (``raw`` as float32, negated if `negate`); integer `raw` uses a histogram."""
    if raw.dtype.kind in "ui" and raw.dtype.itemsize <= 2:
        if negate:
            return -integer_percentiles(raw, (100.0 - percents[0], 100.0 - percents[1]))
        return integer_percentiles(raw, percents)
    return np.percentile(data, percents)


def _robust(raw: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """The ``robust`` kind (module docstring): polarity, then percentile low and block-aware top."""
    data = np.asarray(raw, dtype=np.float32)
    blocks = block_means(data, spec["block"])
    negate = spec["polarity"] == "auto" and objects_are_dark(blocks)
    if negate:
        data, blocks = -data, -blocks
    low, high = _percentiles(np.asarray(raw), data, (spec["low"], spec["high"]), negate=negate)
    return _scaled(data, float(low), max(float(high), float(blocks.max())))


def normalize_image(image: np.ndarray, spec: dict[str, Any], *,
                    window: dict[str, Any] | None = None) -> np.ndarray:
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
    window : dict, optional
        The series' window (:func:`series_window`) for a ``"scope": "series"`` spec; without
        it the image's own window is used.

    Returns
    -------
    ndarray of shape (..., Y, X), float32
        Percentile: ``(x - p_low) / (p_high - p_low)``; robust: see the module docstring;
        z-score: ``(x - mean) / std``. A constant image maps to zeros.

    Examples
    --------
    >>> normalize_image(np.array([[0, 50], [100, 100]]), {"kind": "percentile", "low": 0, "high": 100})
    array([[0. , 0.5],
           [1. , 1. ]], dtype=float32)
    >>> spec = validate_normalization({"kind": "robust", "low": 0, "high": 100, "block": 2})
    >>> bright = np.zeros((12, 12), dtype=np.uint8); bright[4:8, 4:8] = 200
    >>> np.array_equal(normalize_image(bright, spec), normalize_image(255 - bright, spec))
    True
    """
    if window is not None:
        return apply_window(image, window)
    image = np.asarray(image)
    kind = spec["kind"]
    if kind == "robust":
        return _robust(image, spec)
    if kind == "percentile" and image.dtype.kind in "ui" and image.dtype.itemsize <= 2:
        return _normalize_integers(image, spec)
    data = np.asarray(image, dtype=np.float32)
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


def percentiles_of_integers(image: np.ndarray, percents: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile(image, percents)`` (linear method) for an 8/16-bit integer image, in O(n).

    Examples
    --------
    >>> percentiles_of_integers(np.array([[0, 10], [20, 30]], dtype=np.uint8), (50.0, 100.0))
    (15.0, 30.0)
    """
    low, high = integer_percentiles(image, percents)
    return float(low), float(high)
