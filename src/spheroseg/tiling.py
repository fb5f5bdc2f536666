"""Tile plans, reflection padding, blending windows and stitching (pure numpy, no model).

A frame of shape (Y, X) is cut into tiles of a fixed shape whose sides are multiples of the
model's spatial divisor. Adjacent tiles overlap by ``2 * halo`` pixels; the first and last
tiles along each axis reach ``halo`` pixels beyond the image, where the frame is padded by
reflection, so every image pixel lies at least ``halo`` pixels inside some tile. Tile
outputs are blended back with a smooth window whose outer ``halo`` pixels are discarded
(weights floored: there the network saw zero padding instead of image within its reach),
and the weighted sum is divided by the summed weights, so any window gives an exact average.

Coordinates: a tile's ``origin`` is its top-left pixel in image coordinates; it may be
negative or reach past the image, which is where reflection padding fills in. When predict
resamples frames to the model's pixel size (:mod:`spheroseg.inference.rescale`), the plan
is made for the resampled frame and ``source_shape`` keeps the image's own (Y, X).

Why one module: planning (fixed or fitted tiles), padding and stitching share one geometry
(origins on the divisor grid, the halo, the reflection padding); the stitcher must invert
exactly what the planner and the padding did, so they are read and tested together.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spheroseg.atomic import write_text

PLAN_FORMAT = "spheroseg-tile-plan/1"
WINDOW_KINDS = ("cosine", "gaussian", "flat")
GAUSSIAN_SIGMA_SCALE = 0.125
WINDOW_FLOOR = 1e-6
HALO_FLOOR = 1e-12  # weight of a discarded halo pixel: positive (a sum never 0), negligible


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of every frame of one position lie.

    Attributes
    ----------
    frames : int
        Number of timepoints; every frame uses the same tiles.
    image_shape : tuple of int
        (Y, X) of a frame as the model sees it (resampled when `source_shape` is set).
    tile_shape : tuple of int
        (height, width) of every tile, multiples of `divisor`.
    halo : int
        Context in pixels: half the overlap between adjacent tiles.
    divisor : int
        Spatial divisor of the model the plan was made for.
    origins : tuple of (int, int)
        Top-left corner of each tile in image coordinates, row-major order.
    source_shape : tuple of int, optional
        (Y, X) of the image's own frames when they are resampled to `image_shape` for the
        model (see :mod:`spheroseg.inference.rescale`); None when the model sees them as
        they are.
    """

    frames: int
    image_shape: tuple[int, int]
    tile_shape: tuple[int, int]
    halo: int
    divisor: int
    origins: tuple[tuple[int, int], ...]
    source_shape: tuple[int, int] | None = None

    @property
    def source_grid(self) -> tuple[int, int]:
        """(Y, X) of the image's frames: `source_shape`, else `image_shape`."""
        return self.source_shape or self.image_shape

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) reflection padding that holds every tile."""
        result = []
        for axis in (0, 1):
            starts = [origin[axis] for origin in self.origins]
            low = max(0, -min(starts))
            high = max(0, max(starts) + self.tile_shape[axis] - self.image_shape[axis])
            result.append((low, high))
        return result[0], result[1]

    @property
    def computed_fraction(self) -> float:
        """Pixels the model computes per image pixel (1.0 = no overlap cost)."""
        tile_pixels = self.tile_shape[0] * self.tile_shape[1] * len(self.origins)
        return tile_pixels / (self.image_shape[0] * self.image_shape[1])


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return `value` if it is an int >= minimum, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def axis_origins(length: int, *, tile: int, halo: int, divisor: int = 1) -> list[int]:
    """Tile starts along one axis, on multiples of `divisor`, from before ``-halo`` to past the end.

    Starts are multiples of `divisor` so that every tile sees the image at the same phase of
    the network's pooling grid as a whole-frame prediction would (a U-Net with 2x poolings
    is only shift-equivariant by multiples of its divisor).

    Parameters
    ----------
    length : int
        Image size along the axis.
    tile : int
        Tile size along the axis, a multiple of `divisor` of at least ``2 * halo + divisor``.
    halo : int
        Context reach; adjacent tiles overlap by at least ``2 * halo``.
    divisor : int
        Grid the starts lie on.

    Returns
    -------
    list of int
        Increasing starts; the first is at most ``-halo``, the last tile ends at or after
        ``length + halo``, and consecutive starts differ by at most ``tile - 2 * halo``.

    Raises
    ------
    ValueError
        If the tile is too small for the halo and divisor.

    Examples
    --------
    >>> axis_origins(100, tile=64, halo=8)
    [-8, 18, 44]
    >>> axis_origins(100, tile=64, halo=8, divisor=8)
    [-8, 16, 48]
    """
    stride = (tile - 2 * halo) // divisor * divisor
    if stride < divisor or tile % divisor:
        raise ValueError(
            f"tile must be a multiple of {divisor} and >= 2 * halo + {divisor}, got "
            f"tile={tile!r}, halo={halo!r}"
        )
    first = -round_up(halo, divisor)
    span = max(0, round_up(length + halo - tile - first, divisor))
    count = -(-span // stride) + 1
    steps = [k * span // ((count - 1) or 1) // divisor * divisor for k in range(count)]
    return [first + step for step in steps]


def round_up(value: int, divisor: int) -> int:
    """Smallest multiple of `divisor` that is >= `value`.

    Examples
    --------
    >>> round_up(250, 8), round_up(256, 8)
    (256, 256)
    """
    return -(-value // divisor) * divisor


def plan_tiles(
    image_shape: Sequence[int], *, frames: int, tile_size: int, overlap: float, divisor: int,
    min_tile: int = 1,
) -> TilePlan:
    """Plan tiles for frames of `image_shape`.

    Parameters
    ----------
    image_shape : sequence of int
        (Y, X) of one frame.
    frames : int
        Number of timepoints.
    tile_size : int
        Wanted tile side; rounded up to a multiple of `divisor`, and shrunk (per axis) to the
        padded image when the image is smaller.
    overlap : float
        Overlap of adjacent tiles as a fraction of `tile_size`, in [0, 0.5); the halo is half
        of it in pixels.
    divisor : int
        The model's spatial divisor (input sides must be multiples of it).
    min_tile : int
        The model's smallest input side (a bioimage.io size ``min``); tiles are never
        smaller, even for a smaller image.

    Returns
    -------
    TilePlan

    Raises
    ------
    ValueError
        If a size is not positive or `overlap` is outside [0, 0.5).
    TypeError
        If a size is not an integer or `overlap` not a number.

    Examples
    --------
    >>> plan = plan_tiles((517, 1031), frames=2, tile_size=256, overlap=0.25, divisor=8)
    >>> plan.tile_shape, plan.halo, len(plan.origins)
    ((256, 256), 32, 18)
    """
    if len(image_shape) != 2:
        raise ValueError(f"image_shape must be (Y, X), got {image_shape!r}")
    height, width = (_positive_int("image size", size) for size in image_shape)
    frames = _positive_int("frames", frames)
    divisor = _positive_int("divisor", divisor)
    tile_size = round_up(_positive_int("tile_size", tile_size), divisor)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)):
        raise TypeError(f"overlap must be a number, got {overlap!r}")
    if not 0.0 <= overlap < 0.5:
        raise ValueError(f"overlap must be in [0, 0.5), got {overlap!r}")
    halo = int(round(overlap * tile_size / 2))
    smallest = max(round_up(2 * halo, divisor) + divisor,
                   round_up(_positive_int("min_tile", min_tile), divisor))
    shape = tuple(
        max(min(tile_size, round_up(size + 2 * round_up(halo, divisor), divisor)), smallest)
        for size in (height, width)
    )
    starts_y = axis_origins(height, tile=shape[0], halo=halo, divisor=divisor)
    starts_x = axis_origins(width, tile=shape[1], halo=halo, divisor=divisor)
    origins = tuple((y, x) for y in starts_y for x in starts_x)
    return TilePlan(frames, (height, width), (shape[0], shape[1]), halo, divisor, origins)


def fit_tiles(
    image_shape: Sequence[int], *, frames: int, max_tile: int, halo: int, divisor: int,
    min_tile: int = 1,
) -> TilePlan:
    """Plan the fewest tiles of at most `max_tile` px a side, each as small as that count allows.

    Each axis gets the fewest tiles of side <= `max_tile` that cover it with `halo` px of
    context (as in `plan_tiles`), then the smallest side that keeps that count: the model
    computes few pixels twice. A 2048 x 2048 frame with halo 32 takes 3 x 3 tiles of 752
    px (1.21x its pixels) instead of 11 x 11 tiles of 256 px at 25 % overlap (1.89x).

    Parameters
    ----------
    image_shape : sequence of int
        (Y, X) of one frame.
    frames : int
        Number of timepoints.
    max_tile : int
        Largest tile side in pixels (what one tile's activations may take in memory).
    halo : int
        Context in pixels every image pixel keeps; adjacent tiles overlap by ``2 * halo``.
    divisor : int
        The model's spatial divisor.
    min_tile : int
        The model's smallest input side (a bioimage.io size ``min``); tiles are never
        smaller, even for a smaller image.

    Returns
    -------
    TilePlan

    Raises
    ------
    ValueError
        If a size is not positive, `halo` is negative, or `max_tile` leaves no room
        for ``2 * halo`` of overlap or is below `min_tile`.
    TypeError
        If a size is not an integer.

    Examples
    --------
    >>> plan = fit_tiles((2048, 2048), frames=1, max_tile=768, halo=32, divisor=8)
    >>> plan.tile_shape, len(plan.origins), round(plan.computed_fraction, 2)
    ((752, 752), 9, 1.21)
    """
    if len(image_shape) != 2:
        raise ValueError(f"image_shape must be (Y, X), got {image_shape!r}")
    height, width = (_positive_int("image size", size) for size in image_shape)
    frames = _positive_int("frames", frames)
    divisor = _positive_int("divisor", divisor)
    halo = _positive_int("halo", halo, minimum=0)
    max_tile = _positive_int("max_tile", max_tile)
    min_tile = round_up(_positive_int("min_tile", min_tile), divisor)
    sides = [_fitted_side(size, max_tile=max_tile, halo=halo, divisor=divisor, min_tile=min_tile)
             for size in (height, width)]
    starts_y = axis_origins(height, tile=sides[0], halo=halo, divisor=divisor)
    starts_x = axis_origins(width, tile=sides[1], halo=halo, divisor=divisor)
    origins = tuple((y, x) for y in starts_y for x in starts_x)
    return TilePlan(frames, (height, width), (sides[0], sides[1]), halo, divisor, origins)


def _fitted_side(length: int, *, max_tile: int, halo: int, divisor: int, min_tile: int) -> int:
    """Smallest tile side covering `length` with as few tiles as `max_tile` allows."""
    smallest = max(round_up(2 * halo, divisor) + divisor, min_tile)
    largest = max(min(max_tile // divisor * divisor,
                      round_up(length + 2 * round_up(halo, divisor), divisor)), min_tile)
    if max_tile // divisor * divisor < smallest:
        raise ValueError(f"max_tile must be >= {smallest} (2 * halo + the divisor {divisor}, "
                         f"and the model's smallest tile {min_tile}), got {max_tile!r}")
    fewest = len(axis_origins(length, tile=largest, halo=halo, divisor=divisor))
    for side in range(smallest, largest, divisor):
        if len(axis_origins(length, tile=side, halo=halo, divisor=divisor)) <= fewest:
            return side
    return largest


def pad_frame(frame: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Pad a frame by reflection so that every tile of `plan` lies inside it.

    Parameters
    ----------
    frame : ndarray of shape (C, Y, X)
        One frame, any dtype.
    plan : TilePlan

    Returns
    -------
    ndarray of shape (C, Y + top + bottom, X + left + right)

    Raises
    ------
    ValueError
        If the frame's (Y, X) differs from the plan's image shape.
    """
    if frame.ndim != 3 or tuple(frame.shape[1:]) != plan.image_shape:
        raise ValueError(
            f"frame must have shape (C, {plan.image_shape[0]}, {plan.image_shape[1]}), "
            f"got {frame.shape!r}"
        )
    (top, bottom), (left, right) = plan.padding
    mode = "reflect" if min(plan.image_shape) > 1 else "edge"
    return np.pad(frame, ((0, 0), (top, bottom), (left, right)), mode=mode)


def tile_slices(plan: TilePlan, index: int) -> tuple[slice, slice]:
    """Slices of tile `index` in the padded frame of `pad_frame`."""
    (top, _), (left, _) = plan.padding
    y, x = plan.origins[index]
    height, width = plan.tile_shape
    return slice(y + top, y + top + height), slice(x + left, x + left + width)


def _ramp(length: int, halo: int, kind: str) -> np.ndarray:
    """One-dimensional blending weights along a tile side."""
    position = np.arange(length, dtype=np.float64) + 0.5
    if kind == "flat" or halo == 0:
        return np.ones(length)
    if kind == "gaussian":
        sigma = GAUSSIAN_SIGMA_SCALE * length
        return np.exp(-0.5 * ((position - length / 2) / sigma) ** 2)
    reach = 2 * halo
    distance = np.minimum(position, length - position)
    return np.where(distance < reach, np.sin(0.5 * np.pi * distance / reach) ** 2, 1.0)


def blending_window(tile_shape: Sequence[int], *, halo: int, kind: str = "cosine") -> np.ndarray:
    """Weights for blending overlapping tiles: 1 in the core, falling towards the edges.

    ``cosine`` rises as ``sin^2`` over the ``2 * halo`` overlap (so two neighbours at the
    nominal overlap sum to exactly 1); ``gaussian`` is MONAI's (sigma = 0.125 of the side);
    ``flat`` is constant. Weights are floored at a tiny positive value.

    Parameters
    ----------
    tile_shape : sequence of int
        (height, width).
    halo : int
        Half the nominal overlap in pixels.
    kind : {"cosine", "gaussian", "flat"}

    Returns
    -------
    ndarray of shape (height, width), float32

    Raises
    ------
    ValueError
        If `kind` is unknown.

    Examples
    --------
    >>> window = blending_window((16, 16), halo=2)
    >>> float(window[4, 4]), bool(window[0, 0] < 0.01)
    (1.0, True)
    """
    if kind not in WINDOW_KINDS:
        raise ValueError(f"window must be one of {WINDOW_KINDS}, got {kind!r}")
    rows = _ramp(int(tile_shape[0]), halo, kind)
    cols = _ramp(int(tile_shape[1]), halo, kind)
    return np.maximum(np.outer(rows, cols), WINDOW_FLOOR).astype(np.float32)


def discard_halo(window: np.ndarray, *, halo: int) -> np.ndarray:
    """`window` with the outer `halo` pixels of each side set to a negligible weight
    (`HALO_FLOOR`): the halo is context only.

    A tile's output within `halo` px of its edge was computed with less context than the
    network's reach (zero padding at the tile edge instead of image); a plan's tiles always
    hold every image pixel at least `halo` px inside some tile, so flooring these weights
    leaves every pixel its well-fed tiles and takes the others out of its mean.

    Parameters
    ----------
    window : ndarray of shape (height, width)
        Blending weights, see `blending_window`.
    halo : int
        Pixels to discard along each side.

    Returns
    -------
    ndarray of shape (height, width), float32

    Examples
    --------
    >>> window = discard_halo(np.ones((8, 8), dtype=np.float32), halo=2)
    >>> float(window[2, 2]), bool(window[1, 4] < 1e-11), float(window[5, 5])
    (1.0, True, 1.0)
    """
    keep = [(np.arange(side) >= halo) & (np.arange(side) < side - halo) for side in window.shape]
    return np.where(np.outer(*keep), window, HALO_FLOOR).astype(np.float32)


def weight_sum(plan: TilePlan, window: np.ndarray) -> np.ndarray:
    """Sum of the windows of all tiles on the padded canvas, shape of `pad_frame`'s (Y, X)."""
    (top, bottom), (left, right) = plan.padding
    height = plan.image_shape[0] + top + bottom
    width = plan.image_shape[1] + left + right
    total = np.zeros((height, width), dtype=np.float32)
    for index in range(len(plan.origins)):
        total[tile_slices(plan, index)] += window
    return total


class Stitcher:
    """Blend the tiles of one frame at a time into the full frame.

    Each tile's outer ``plan.halo`` pixels are discarded (`discard_halo`): they are the
    context the plan gives the pixels inside, and the network's answer there is the least
    reliable. Within that, tiles are blended with the window.

    Parameters
    ----------
    plan : TilePlan
    window : str
        Blending window kind, see `blending_window`.

    Examples
    --------
    >>> plan = plan_tiles((5, 7), frames=1, tile_size=8, overlap=0.25, divisor=4)
    >>> tiles = np.full((len(plan.origins), *plan.tile_shape), 0.5, dtype=np.float32)
    >>> frame = Stitcher(plan).stitch(tiles)
    >>> frame.shape, bool(np.allclose(frame, 0.5))
    ((5, 7), True)
    """

    def __init__(self, plan: TilePlan, window: str = "gaussian") -> None:
        self.plan = plan
        self.window = discard_halo(blending_window(plan.tile_shape, halo=plan.halo, kind=window),
                                   halo=plan.halo)
        self._canvas = np.zeros_like(weight_sum(plan, self.window))
        (top, _), (left, _) = plan.padding
        height, width = plan.image_shape
        self._crop = (slice(top, top + height), slice(left, left + width))
        self._inverse = 1.0 / weight_sum(plan, self.window)[self._crop]

    def stitch(self, tiles: np.ndarray) -> np.ndarray:
        """Blend tiles of shape (n_tiles, height, width) into a float32 frame of shape (Y, X).

        Raises
        ------
        ValueError
            If `tiles` does not match the plan.
        """
        expected = (len(self.plan.origins), *self.plan.tile_shape)
        if tuple(tiles.shape) != expected:
            raise ValueError(f"tiles must have shape {expected!r}, got {tiles.shape!r}")
        canvas = self._canvas
        canvas.fill(0.0)
        for index, tile in enumerate(tiles):
            canvas[tile_slices(self.plan, index)] += self.window * tile
        return canvas[self._crop] * self._inverse


def plan_to_dict(plan: TilePlan) -> dict[str, Any]:
    """JSON-ready form of a plan (see `read_plan`); ``source_shape`` only when set."""
    document = {
        "format": PLAN_FORMAT,
        "frames": plan.frames,
        "image_shape": list(plan.image_shape),
        "tile_shape": list(plan.tile_shape),
        "halo": plan.halo,
        "divisor": plan.divisor,
        "computed_fraction": round(plan.computed_fraction, 4),
        "origins": [list(origin) for origin in plan.origins],
    }
    if plan.source_shape is not None:
        document["source_shape"] = list(plan.source_shape)
    return document


def write_plan(plan: TilePlan, path: str | os.PathLike[str], **extra: Any) -> None:
    """Write a plan as JSON atomically; `extra` entries (provenance) are added."""
    document = dict(plan_to_dict(plan), **extra)
    write_text(path, json.dumps(document, indent=1) + "\n")


def _int_pair(document: dict[str, Any], key: str, path: Path) -> tuple[int, int]:
    """Read a [a, b] list of positive ints from a plan document."""
    value = document.get(key)
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"{key} must be a list of two positive integers, got {value!r} (in {path})")
    return value[0], value[1]


def plan_from_dict(document: Any, path: str | os.PathLike[str]) -> TilePlan:
    """Validate a parsed plan and return it.

    Raises
    ------
    ValueError
        If an entry is missing or inconsistent.
    """
    path = Path(path)
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        found = document.get("format") if isinstance(document, dict) else document
        raise ValueError(f"format must be {PLAN_FORMAT!r}, got {found!r} (in {path})")
    image_shape = _int_pair(document, "image_shape", path)
    tile_shape = _int_pair(document, "tile_shape", path)
    source_shape = _int_pair(document, "source_shape", path) if "source_shape" in document else None
    numbers = {}
    for key in ("frames", "halo", "divisor"):
        value = document.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (key != "halo"):
            raise ValueError(f"{key} must be a non-negative integer, got {value!r} (in {path})")
        numbers[key] = value
    origins = document.get("origins")
    if not (isinstance(origins, list) and origins and all(
            isinstance(o, list) and len(o) == 2 and all(type(v) is int for v in o) for o in origins)):
        raise ValueError(f"origins must be a non-empty list of [y, x] integers, got {origins!r:.80} (in {path})")
    return TilePlan(numbers["frames"], image_shape, tile_shape, numbers["halo"],
                    numbers["divisor"], tuple((o[0], o[1]) for o in origins), source_shape)


def read_plan(path: str | os.PathLike[str]) -> TilePlan:
    """Read a tile plan written by `write_plan`.

    Raises
    ------
    ValueError
        If the file is missing, not JSON, or not a valid plan.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ValueError(f"plan must be an existing tile plan file, got {str(path)!r}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"plan must be a readable JSON tile plan, got {err} (in {path})") from err
    return plan_from_dict(document, path)
