"""Synthetic gastruloid time-lapses with exact ground truth, for the demo, tests and training.

Each body is an ellipse that grows and elongates over time (gastruloids elongate after
symmetry breaking). The image adds what makes real data hard: shed cells and debris around
the body, textured interiors, uneven illumination, blur, and Poisson plus read noise. The
ground truth is analytic: the mask holds the pixels whose centre lies inside the ellipse,
and area, perimeter (complete elliptic integral) and circularity come from the ellipse
itself, not from the mask.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy import ndimage, special

from spheroseg.atomic import atomic_path, write_text

log = logging.getLogger(__name__)

SUPERSAMPLING = 4
GROUND_TRUTH_FOLDER = "ground_truth"
# The demo experiment (config section ``demo`` restates these as the workflow's defaults).
DEMO_POSITIONS: Mapping[str, int] = MappingProxyType({"pos0": 1, "pos1": 2})
TRAINING_SHAPE = (256, 256)


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in pixel coordinates: centre, semi-axes (major >= minor) and angle in radians."""

    center_y: float
    center_x: float
    semi_major: float
    semi_minor: float
    angle: float

    def area(self) -> float:
        """Exact area in px^2."""
        return math.pi * self.semi_major * self.semi_minor

    def perimeter(self) -> float:
        """Exact perimeter in px, ``4 a E(1 - b^2/a^2)``."""
        return 4.0 * self.semi_major * float(special.ellipe(1.0 - (self.semi_minor / self.semi_major) ** 2))

    def normalized_radius(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """Return ``sqrt((u/a)^2 + (v/b)^2)`` at the given points: < 1 inside, 1 on the boundary."""
        dy, dx = yy - self.center_y, xx - self.center_x
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        u = dx * cos + dy * sin
        v = -dx * sin + dy * cos
        return np.sqrt((u / self.semi_major) ** 2 + (v / self.semi_minor) ** 2)


@dataclass(frozen=True)
class Body:
    """A growing, elongating, drifting body: its ellipse at t=0 and its rates per frame."""

    start: Ellipse
    growth_per_frame: float
    elongation_per_frame: float
    drift_y: float
    drift_x: float
    rotation_per_frame: float

    def at(self, timepoint: int) -> Ellipse:
        """The body's ellipse at `timepoint`."""
        scale = (1.0 + self.growth_per_frame) ** timepoint
        stretch = (1.0 + self.elongation_per_frame) ** timepoint
        return replace(
            self.start,
            center_y=self.start.center_y + self.drift_y * timepoint,
            center_x=self.start.center_x + self.drift_x * timepoint,
            semi_major=self.start.semi_major * scale * stretch,
            semi_minor=self.start.semi_minor * scale / math.sqrt(stretch),
            angle=self.start.angle + self.rotation_per_frame * timepoint,
        )


@dataclass(frozen=True)
class SyntheticPosition:
    """One synthetic position: frames, exact masks and per-body truth table."""

    images: np.ndarray  # (T, Y, X) uint16
    masks: np.ndarray  # (T, Y, X) uint16 labels, body k has label k + 1
    truth: pd.DataFrame  # timepoint, time_s, object_id, area_um2, perimeter_um, circularity


def _coverage(ellipse: Ellipse, shape: tuple[int, int]) -> np.ndarray:
    """Fraction of each pixel covered by the ellipse (supersampled), float32 (Y, X)."""
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING - 0.5
    yy = np.arange(shape[0])[:, None, None, None] + offsets[None, None, :, None]
    xx = np.arange(shape[1])[None, :, None, None] + offsets[None, None, None, :]
    inside = ellipse.normalized_radius(yy, xx) <= 1.0
    return inside.mean(axis=(2, 3)).astype(np.float32)


def _mask(ellipse: Ellipse, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside the ellipse, bool (Y, X)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ellipse.normalized_radius(yy.astype(float), xx.astype(float)) <= 1.0


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to [0, 1], float32 (Y, X)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    field -= field.min()
    return (field / max(float(field.max()), 1e-12)).astype(np.float32)


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth multiplicative illumination field between about 0.7 and 1.3, float32 (Y, X)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    gy, gx = rng.uniform(-0.3, 0.3, size=2)
    field = 1.0 + gy * (yy / shape[0] - 0.5) * 2 + gx * (xx / shape[1] - 0.5) * 2
    return (field * (0.9 + 0.2 * _smooth_noise(rng, shape, shape[0] / 4))).astype(np.float32)


def _disk(shape: tuple[int, int], cy: float, cx: float, radius: float) -> np.ndarray:
    """Anti-aliased disk coverage, float32 (Y, X)."""
    return _coverage(Ellipse(cy, cx, radius, radius, 0.0), shape)


def _debris(rng: np.random.Generator, bodies: list[Ellipse], shape: tuple[int, int], count: int) -> np.ndarray:
    """Shed cells near the bodies and loose debris, never touching a body; float32 (Y, X)."""
    layer = np.zeros(shape, dtype=np.float32)
    placed = 0
    for _ in range(count * 20):
        if placed >= count:
            break
        body = bodies[int(rng.integers(len(bodies)))]
        radius = float(rng.uniform(1.5, 4.5))
        reach = float(rng.uniform(1.2, 2.0))
        theta = float(rng.uniform(0, 2 * math.pi))
        cy = body.center_y + reach * body.semi_major * math.sin(theta)
        cx = body.center_x + reach * body.semi_major * math.cos(theta)
        if not (radius < cy < shape[0] - radius and radius < cx < shape[1] - radius):
            continue
        gap = min((b.normalized_radius(np.array(cy), np.array(cx)) - 1.0) * b.semi_minor for b in bodies)
        if gap < radius + 3.0:
            continue
        layer += float(rng.uniform(0.5, 1.0)) * _disk(shape, cy, cx, radius)
        placed += 1
    return np.minimum(layer, 1.0)


def render_frame(
    rng: np.random.Generator,
    bodies: list[Ellipse],
    *,
    shape: tuple[int, int],
    n_debris: int,
    illumination: np.ndarray,
    artefact: Ellipse | None = None,
) -> np.ndarray:
    """Render one noisy fluorescence-like frame of the given bodies.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (texture, debris, noise).
    bodies : list of Ellipse
        Bodies in pixel coordinates.
    shape : tuple of int
        Frame shape (Y, X).
    n_debris : int
        Number of shed cells and debris particles.
    illumination : ndarray of shape (Y, X), float32
        Multiplicative illumination field.
    artefact : Ellipse, optional
        A bright blob drawn on top (for QC tests); not part of the ground truth.

    Returns
    -------
    ndarray of shape (Y, X), uint16
    """
    signal = np.zeros(shape, dtype=np.float32)
    texture = 0.75 + 0.25 * _smooth_noise(rng, shape, 2.0)
    for body in bodies:
        signal = np.maximum(signal, _coverage(body, shape) * texture)
    signal = np.maximum(signal, 0.8 * _debris(rng, bodies, shape, n_debris))
    if artefact is not None:
        signal = np.maximum(signal, 1.1 * _coverage(artefact, shape))
    signal = ndimage.gaussian_filter(signal, 1.0)
    expected = (150.0 + 1800.0 * signal) * illumination
    counts = rng.poisson(expected).astype(np.float32) + rng.normal(0.0, 20.0, size=shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _inflated(ellipse: Ellipse, margin: float) -> Ellipse:
    """The ellipse with both semi-axes grown by `margin` px."""
    return replace(ellipse, semi_major=ellipse.semi_major + margin, semi_minor=ellipse.semi_minor + margin)


def _fits(bodies: list[Body], shape: tuple[int, int], n_timepoints: int, *, margin: float) -> bool:
    """True if the bodies stay apart and inside the frame (with `margin` px) at every timepoint."""
    for t in range(n_timepoints):
        occupied = np.zeros(shape, dtype=np.int32)
        for body in bodies:
            region = _mask(_inflated(body.at(t), margin), shape)
            if region.sum() < _inflated(body.at(t), margin).area() * 0.98:
                return False  # clipped by the frame border
            occupied += region
        if occupied.max() > 1:
            return False
    return True


def random_bodies(
    rng: np.random.Generator, *, shape: tuple[int, int], n_bodies: int, n_timepoints: int,
    radius_range: tuple[float, float] | None = None,
) -> list[Body]:
    """Draw `n_bodies` non-touching growing bodies that stay inside the frame.

    Raises
    ------
    ValueError
        If no placement is found (frame too small for the bodies).
    """
    if n_bodies < 1:
        raise ValueError(f"n_bodies must be >= 1, got {n_bodies!r}")
    size = min(shape)
    low, high = radius_range or (0.09 * size / math.sqrt(n_bodies), 0.14 * size / math.sqrt(n_bodies))
    for _ in range(500):
        bodies = []
        for _ in range(n_bodies):
            radius = float(rng.uniform(low, high))
            start = Ellipse(
                center_y=float(rng.uniform(0.2, 0.8) * shape[0]),
                center_x=float(rng.uniform(0.2, 0.8) * shape[1]),
                semi_major=radius * float(rng.uniform(1.0, 1.25)),
                semi_minor=radius,
                angle=float(rng.uniform(0, math.pi)),
            )
            bodies.append(Body(
                start=start,
                growth_per_frame=float(rng.uniform(0.01, 0.035)),
                elongation_per_frame=float(rng.uniform(0.01, 0.05)),
                drift_y=float(rng.uniform(-0.6, 0.6)),
                drift_x=float(rng.uniform(-0.6, 0.6)),
                rotation_per_frame=float(rng.uniform(-0.02, 0.02)),
            ))
        if _fits(bodies, shape, n_timepoints, margin=10.0):
            return bodies
    raise ValueError(
        f"could not place {n_bodies} bodies in a {shape} frame for {n_timepoints} timepoints; "
        "use a larger frame, fewer bodies or fewer timepoints"
    )


def _artefact_for(body: Ellipse, rng: np.random.Generator) -> Ellipse:
    """A bright blob stuck to the body's edge, big enough to make its area jump by about 25%."""
    theta = float(rng.uniform(0, 2 * math.pi))
    radius = 0.8 * body.semi_minor
    reach = body.semi_minor + 0.3 * radius
    return Ellipse(body.center_y + reach * math.sin(theta), body.center_x + reach * math.cos(theta),
                   radius, radius, 0.0)


def generate_position(
    *, seed: int | np.random.SeedSequence, n_timepoints: int, shape: tuple[int, int] = (256, 256),
    n_bodies: int = 1, pixel_size_um: float = 2.0, time_interval_s: float = 3600.0,
    artefact_timepoint: int | None = None,
) -> SyntheticPosition:
    """Generate one position's time-lapse with exact ground truth.

    Parameters
    ----------
    seed : int or SeedSequence
        Everything is deterministic given the seed.
    n_timepoints : int
        Number of frames.
    shape : tuple of int
        Frame shape (Y, X).
    n_bodies : int
        Number of bodies (gastruloids) in the field.
    pixel_size_um, time_interval_s : float
        Physical pixel size and frame interval, used for the truth table's units.
    artefact_timepoint : int, optional
        Frame that gets a sudden bright blob stuck to the first body (QC must flag it).

    Returns
    -------
    SyntheticPosition
        ``images`` (T, Y, X) uint16, ``masks`` (T, Y, X) uint16 labels, ``truth`` table.

    Raises
    ------
    ValueError
        If a count is not positive or the bodies do not fit.
    """
    if n_timepoints < 1:
        raise ValueError(f"n_timepoints must be >= 1, got {n_timepoints!r}")
    rng = np.random.default_rng(seed)
    bodies = random_bodies(rng, shape=shape, n_bodies=n_bodies, n_timepoints=n_timepoints)
    illumination = _illumination(rng, shape)
    images = np.zeros((n_timepoints, *shape), dtype=np.uint16)
    masks = np.zeros((n_timepoints, *shape), dtype=np.uint16)
    rows = []
    for t in range(n_timepoints):
        ellipses = [body.at(t) for body in bodies]
        artefact = _artefact_for(ellipses[0], rng) if t == artefact_timepoint else None
        images[t] = render_frame(rng, ellipses, shape=shape, n_debris=6 + 3 * t, illumination=illumination,
                                 artefact=artefact)
        for label, ellipse in enumerate(ellipses, start=1):
            masks[t][_mask(ellipse, shape)] = label
            area, perimeter = ellipse.area(), ellipse.perimeter()
            rows.append({
                "timepoint": t, "time_s": t * time_interval_s, "object_id": label,
                "area_um2": area * pixel_size_um**2, "perimeter_um": perimeter * pixel_size_um,
                "circularity": 4 * math.pi * area / perimeter**2,
            })
    return SyntheticPosition(images=images, masks=masks, truth=pd.DataFrame(rows))


def write_ome_tiff(path: str | os.PathLike[str], images: np.ndarray, *, pixel_size_um: float,
                   time_interval_s: float) -> None:
    """Write a (T, Y, X) stack as OME-TIFF with pixel size and frame interval, atomically."""
    import tifffile

    metadata = {
        "axes": "TYX",
        "PhysicalSizeX": pixel_size_um, "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel_size_um, "PhysicalSizeYUnit": "µm",
        "TimeIncrement": time_interval_s, "TimeIncrementUnit": "s",
    }
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, images, ome=True, photometric="minisblack", metadata=metadata,
                         resolution=(1.0 / pixel_size_um, 1.0 / pixel_size_um), resolutionunit="MICROMETER")


def write_demo_experiment(
    folder: str | os.PathLike[str], *, positions: Mapping[str, int] = DEMO_POSITIONS,
    n_timepoints: int = 8, shape: tuple[int, int] = (256, 256), seed: int = 0, pixel_size_um: float = 2.0,
    time_interval_s: float = 3600.0, artefact: tuple[str, int] | None = None,
) -> list[Path]:
    """Write a demo experiment: one OME-TIFF per position plus ground truth.

    Parameters
    ----------
    folder : str or PathLike
        Experiment folder. Receives ``<position>.ome.tif`` and ``ground_truth/<position>.csv``
        (truth table) and ``ground_truth/<position>_masks.tif`` (exact label masks).
    positions : mapping of str to int
        Position name -> number of bodies in it.
    n_timepoints : int
        Frames per position.
    shape : tuple of int
        Frame shape (Y, X).
    seed : int
        Master seed; each position gets its own stream derived from it and its index.
    pixel_size_um, time_interval_s : float
        Written into the TIFF metadata.
    artefact : tuple of (str, int), optional
        ``(position, timepoint)`` that gets a sudden artefact (see :func:`generate_position`).

    Returns
    -------
    list of Path
        The written image files.

    Raises
    ------
    ValueError
        If `positions` is empty or a body count is invalid.
    """
    if not positions:
        raise ValueError("positions must name at least one position, got {}")
    folder = Path(folder)
    truth_folder = folder / GROUND_TRUTH_FOLDER
    truth_folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (name, n_bodies) in enumerate(positions.items()):
        artefact_t = artefact[1] if artefact is not None and artefact[0] == name else None
        position = generate_position(
            seed=np.random.SeedSequence([seed, index]), n_timepoints=n_timepoints, shape=shape,
            n_bodies=n_bodies, pixel_size_um=pixel_size_um, time_interval_s=time_interval_s,
            artefact_timepoint=artefact_t,
        )
        _write_truth(truth_folder, name, position)
        image_path = folder / f"{name}.ome.tif"
        write_ome_tiff(image_path, position.images, pixel_size_um=pixel_size_um, time_interval_s=time_interval_s)
        written.append(image_path)
        log.info("wrote %s (%d frames, %d bodies)", image_path, n_timepoints, n_bodies)
    return written


def _write_truth(folder: Path, name: str, position: SyntheticPosition) -> None:
    """Write a position's truth table and exact masks into the ground-truth folder."""
    import tifffile

    write_text(folder / f"{name}.csv", position.truth.to_csv(index=False, float_format="%.6f"))
    with atomic_path(folder / f"{name}_masks.tif") as tmp:
        tifffile.imwrite(tmp, position.masks, photometric="minisblack")


def _crowd(rng: np.random.Generator, *, shape: tuple[int, int], n_bodies: int, n_timepoints: int) -> list[Body]:
    """Place up to `n_bodies` bodies, fewer if the frame is too small for them."""
    for count in range(n_bodies, 1, -1):
        try:
            return random_bodies(rng, shape=shape, n_bodies=count, n_timepoints=n_timepoints)
        except ValueError:
            continue
    return random_bodies(rng, shape=shape, n_bodies=1, n_timepoints=n_timepoints)


def write_training_set(
    folder: str | os.PathLike[str], *, n_images: int, shape: tuple[int, int] = TRAINING_SHAPE, seed: int = 0,
) -> None:
    """Write `n_images` annotated synthetic frames as ``images/NNN.tif`` + ``masks/NNN.tif`` (0/1).

    Frames vary in body count (1-3), size, elongation, debris density, illumination and
    noise, and bodies sometimes touch the frame border, so that a model trained on them
    generalises beyond the demo.

    Raises
    ------
    ValueError
        If `n_images` is not positive.
    """
    import tifffile

    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images!r}")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for index in range(n_images):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1000 + index]))
        t_final = int(rng.integers(1, 12))
        bodies = _crowd(rng, shape=shape, n_bodies=int(rng.integers(1, 4)), n_timepoints=t_final + 1)
        ellipses = [body.at(t_final) for body in bodies]
        if rng.random() < 0.25:  # push a body across the frame border
            ellipses[0] = replace(ellipses[0], center_x=ellipses[0].center_x * 0.15)
        image = render_frame(rng, ellipses, shape=shape, n_debris=int(rng.integers(0, 40)),
                             illumination=_illumination(rng, shape))
        mask = np.zeros(shape, dtype=np.uint8)
        for ellipse in ellipses:
            mask[_mask(ellipse, shape)] = 1
        name = f"{index:03d}.tif"
        with atomic_path(folder / "images" / name) as tmp:
            tifffile.imwrite(tmp, image, photometric="minisblack")
        with atomic_path(folder / "masks" / name) as tmp:
            tifffile.imwrite(tmp, mask, photometric="minisblack")
