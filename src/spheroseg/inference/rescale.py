"""Physical scale for prediction: frames go to the model's pixel size and come back.

A model learns bodies at one pixel size (its card's ``input.pixel_size_um``). When an
image's pixel size is known and differs from the model's by more than
:data:`RESCALE_TOLERANCE`, the tile plan is made for the image resampled to the model's
pixel size (``TilePlan.source_shape`` keeps the image's own frame shape), predict resamples
each normalised frame to that grid before cutting tiles, and stitch resamples the blended
probabilities back to the image's grid, as nnU-Net does with its target spacing. Segment and
measure then work on the image's own pixels, so areas stay in the image's units.

Resampling keeps pixel edges aligned (pixel ``(i, j)`` of either grid covers the same area of
the field): shrinking first smooths with a Gaussian of sigma ``(1 / zoom - 1) / 2`` (as
scikit-image's anti-aliasing), images are interpolated with cubic splines and probabilities
linearly (so they stay in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spheroseg.tiling import TilePlan

log = logging.getLogger(__name__)

RESCALE_MODES = ("auto", "off")
# Pixel sizes within this relative difference of the model's are used as they are.
RESCALE_TOLERANCE = 0.05
IMAGE_ORDER = 3
PROBABILITY_ORDER = 1


@dataclasses.dataclass(frozen=True)
class Rescale:
    """The grid predict runs the model on, and why.

    Attributes
    ----------
    image_shape : tuple of int
        (Y, X) of the image's frames.
    model_shape : tuple of int
        (Y, X) of the frames the model sees; `image_shape` when nothing is resampled.
    image_pixel_size_um, model_pixel_size_um : float or None
        Pixel sizes of the image and of the model's training data (None: unknown).
    reason : str
        Why the frames are or are not resampled, for logs and provenance.
    """

    image_shape: tuple[int, int]
    model_shape: tuple[int, int]
    image_pixel_size_um: float | None
    model_pixel_size_um: float | None
    reason: str

    @property
    def active(self) -> bool:
        """Whether frames are resampled."""
        return self.model_shape != self.image_shape

    @property
    def factor(self) -> float:
        """Model pixels per image pixel along an axis (image / model pixel size), 1 if off."""
        if not self.active or self.image_pixel_size_um is None or self.model_pixel_size_um is None:
            return 1.0
        return self.image_pixel_size_um / self.model_pixel_size_um

    def to_dict(self) -> dict[str, Any]:
        """Provenance record (tile store and probabilities attributes)."""
        return {"rescaled": self.active, "factor": self.factor, "reason": self.reason,
                "image_shape": list(self.image_shape), "model_shape": list(self.model_shape),
                "image_pixel_size_um": self.image_pixel_size_um,
                "model_pixel_size_um": self.model_pixel_size_um}


def check_rescale(rescale: object) -> None:
    """Raise ValueError unless `rescale` is one of :data:`RESCALE_MODES`."""
    if rescale not in RESCALE_MODES:
        raise ValueError(f"rescale must be one of {RESCALE_MODES}, got {rescale!r}")


def choose_rescale(image_shape: tuple[int, int], *, image_pixel_size_um: float | None,
                   model_pixel_size_um: float | None, rescale: str = "auto") -> Rescale:
    """Decide the model's grid for frames of `image_shape`.

    Parameters
    ----------
    image_shape : tuple of int
        (Y, X) of the image's frames.
    image_pixel_size_um, model_pixel_size_um : float or None
        Pixel size of the image and the model card's ``input.pixel_size_um``.
    rescale : {"auto", "off"}
        ``auto`` resamples when both sizes are known and differ by more than
        :data:`RESCALE_TOLERANCE`; ``off`` never does.

    Returns
    -------
    Rescale

    Raises
    ------
    ValueError
        If `rescale` is not a known mode or a pixel size is not positive.

    Examples
    --------
    >>> choose_rescale((100, 60), image_pixel_size_um=8.0, model_pixel_size_um=2.0).model_shape
    (400, 240)
    >>> choose_rescale((100, 60), image_pixel_size_um=2.05, model_pixel_size_um=2.0).active
    False
    """
    check_rescale(rescale)
    for name, size in (("image pixel size", image_pixel_size_um),
                       ("model pixel size", model_pixel_size_um)):
        if size is not None and not (math.isfinite(size) and size > 0):
            raise ValueError(f"{name} must be a positive number of micrometres, got {size!r}")
    shape = (int(image_shape[0]), int(image_shape[1]))
    sizes = dict(image_pixel_size_um=image_pixel_size_um, model_pixel_size_um=model_pixel_size_um)
    if rescale == "off":
        return Rescale(shape, shape, **sizes, reason="predict.rescale is off")
    if image_pixel_size_um is None:
        return Rescale(shape, shape, **sizes, reason="the image's pixel size is unknown")
    if model_pixel_size_um is None:
        return Rescale(shape, shape, **sizes, reason="the model card gives no input.pixel_size_um")
    ratio = image_pixel_size_um / model_pixel_size_um
    if abs(ratio - 1) <= RESCALE_TOLERANCE:
        return Rescale(shape, shape, **sizes,
                       reason=f"pixel sizes within {RESCALE_TOLERANCE:.0%} of each other")
    model_shape = (max(1, round(shape[0] * ratio)), max(1, round(shape[1] * ratio)))
    return Rescale(shape, model_shape, **sizes, reason="resampled to the model's pixel size")


def rescale_for_image(metadata: Any, card: Mapping[str, Any], *, rescale: str,
                      image: object = "image") -> Rescale:
    """`choose_rescale` for an NGFF image's metadata and a model card; logs the decision.

    An unknown image pixel size under ``auto`` is a warning: the model sees the frames at
    their own scale, which is right only if it matches the model's.
    """
    sizes = dict(zip(metadata.axes, metadata.shape))
    image_shape = (int(sizes["y"]), int(sizes["x"]))
    model_size = (card.get("input") or {}).get("pixel_size_um")
    model_size = float(model_size) if isinstance(model_size, (int, float)) else None
    grid = choose_rescale(image_shape, image_pixel_size_um=metadata.pixel_size_um,
                          model_pixel_size_um=model_size, rescale=rescale)
    if rescale == "auto" and metadata.pixel_size_um is None:
        log.warning("%s has no pixel size: the model (trained at %s µm/px) sees it at its own "
                    "scale; set ingest.pixel_size_um so that predict can match the model's "
                    "scale", image, model_size if model_size is not None else "an unknown")
    elif grid.active:
        log.info("resampling %s from %s to %s px (%.3g µm/px to the model's %.3g µm/px)",
                 image, grid.image_shape, grid.model_shape, grid.image_pixel_size_um,
                 grid.model_pixel_size_um)
    return grid


def plan_on_grid(plan: TilePlan, grid: Rescale) -> TilePlan:
    """The plan made for `grid.model_shape`, marked with the image's shape when resampled."""
    return dataclasses.replace(plan, source_shape=grid.image_shape) if grid.active else plan


def rescale_record(plan: TilePlan, *, image_pixel_size_um: float | None,
                   model_pixel_size_um: float | None) -> dict[str, Any]:
    """Provenance of the resampling that a plan implies (see :meth:`Rescale.to_dict`)."""
    reason = "resampled to the model's pixel size" if plan.source_shape else "not resampled"
    return Rescale(plan.source_grid, plan.image_shape, image_pixel_size_um, model_pixel_size_um,
                   reason).to_dict()


def resample_plane(plane: NDArray, shape: tuple[int, int], *, order: int) -> NDArray[np.float32]:
    """Resample a 2-D plane to `shape`, pixel edges aligned, anti-aliased when shrinking.

    Parameters
    ----------
    plane : ndarray of shape (Y, X)
    shape : tuple of int
        (Y', X') of the result.
    order : int
        Spline order of the interpolation (1 linear, 3 cubic).

    Returns
    -------
    ndarray of shape (Y', X'), float32

    Examples
    --------
    >>> plane = np.zeros((4, 4)); plane[:, 2:] = 1.0
    >>> small = resample_plane(plane, (2, 2), order=1)
    >>> small.shape, float(small.mean()), bool(small[0, 1] > small[0, 0])
    ((2, 2), 0.5, True)
    """
    from scipy import ndimage  # here, not at the top: tile, predict and stitch import this module

    values = np.asarray(plane, dtype=np.float32)
    zoom = (shape[0] / values.shape[0], shape[1] / values.shape[1])
    if zoom == (1.0, 1.0):
        return values
    sigmas = [max(0.0, (1 / z - 1) / 2) for z in zoom]
    if any(sigmas):
        values = ndimage.gaussian_filter(values, sigmas, mode="reflect")
    result = ndimage.zoom(values, zoom, order=order, mode="reflect", grid_mode=True)
    return result[: shape[0], : shape[1]].astype(np.float32, copy=False)


def to_model_grid(frame: NDArray, plan: TilePlan) -> NDArray[np.float32]:
    """A normalised frame of shape (C, Y, X) on the plan's grid, (C, Y', X') float32."""
    if plan.source_shape is None:
        return frame
    return np.stack([resample_plane(channel, plan.image_shape, order=IMAGE_ORDER)
                     for channel in frame])


def to_image_grid(probabilities: NDArray, plan: TilePlan) -> NDArray[np.float32]:
    """Blended probabilities of shape (Y', X') back on the image's grid, (Y, X) float32."""
    if plan.source_shape is None:
        return probabilities
    return np.clip(resample_plane(probabilities, plan.source_shape, order=PROBABILITY_ORDER),
                   0.0, 1.0)
