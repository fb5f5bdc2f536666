"""Synthetic gastruloid time-lapses with exact ground truth, for the demo, tests and training.

Each body is an ellipse that grows and elongates over time (gastruloids elongate after
symmetry breaking). The image adds what makes real data hard: shed cells and debris around
the body, textured interiors, uneven illumination, blur, and Poisson plus read noise. The
ground truth is analytic: the mask holds the pixels whose centre lies inside the ellipse,
and area, perimeter (complete elliptic integral) and circularity come from the ellipse
itself, not from the mask. The second half draws annotated training frames in several
microscope modalities (fluorescence, invasive, bright field, phase contrast).

Why one module: it is the one place that draws synthetic ground truth; the demo's bodies and
the training modalities share the ellipse geometry, the supersampled rasterisation and the
noise fields, and the demo's training set (``write_training_set``) dispatches to either.
Splitting the modalities into their own module is a candidate once a third user appears.
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


def parse_artefact(text: str) -> tuple[str, int]:
    """``POSITION:TIMEPOINT`` (the demo's ``artefact`` setting) as ``(position, timepoint)``.

    Examples
    --------
    >>> parse_artefact("well A1:3")
    ('well A1', 3)
    """
    name, _, timepoint = text.rpartition(":")
    if not name or not timepoint.isdigit():
        raise ValueError(f"artefact must be POSITION:TIMEPOINT, got {text!r}")
    return name, int(timepoint)


def check_demo_settings(positions: Mapping[str, int], *, n_timepoints: int,
                        artefact: tuple[str, int] | None = None) -> None:
    """Raise unless the demo's positions are plain file names and `artefact` names one of
    them and one of its timepoints (the workflow checks this before any job).

    Examples
    --------
    >>> check_demo_settings({"pos0": 1}, n_timepoints=8, artefact=("pos1", 3))
    Traceback (most recent call last):
    ...
    ValueError: artefact must name one of the positions ['pos0'] and a timepoint in [0, 7], got pos1:3 (config key 'demo.artefact')
    """
    if not positions:
        raise ValueError("positions must name at least one position, got {}")
    for name in positions:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"position names must be plain file names, got {name!r} (config key 'demo.positions')")
    if artefact is not None and (artefact[0] not in positions or not 0 <= artefact[1] < n_timepoints):
        raise ValueError(f"artefact must name one of the positions {sorted(positions)} and a timepoint in "
                         f"[0, {n_timepoints - 1}], got {artefact[0]}:{artefact[1]} (config key 'demo.artefact')")


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
        If `positions` is empty, a name is not a plain file name, a body count is invalid, or
        `artefact` names a position or timepoint the demo does not have.
    """
    check_demo_settings(positions, n_timepoints=n_timepoints, artefact=artefact)
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
    modalities: tuple[str, ...] | None = None,
) -> None:
    """Write `n_images` annotated synthetic frames as ``images/NAME.tif`` + ``masks/NAME.tif`` (0/1).

    Without `modalities` (the original recipe, names ``NNN.tif``): the demo's rendering;
    frames vary in body count (1-3), size, elongation, debris density, illumination and
    noise, and bodies sometimes touch the frame border; the debris is background. With
    `modalities` (names ``<modality>_NNN.tif``): the given kinds in turn; a modality of
    :data:`TRAINING_MODALITIES` is :func:`training_frame` (random polarity, every in-focus cell
    foreground), ``"demo"`` is :func:`demo_training_frame` (the demo's rendering).

    Raises
    ------
    ValueError
        If `n_images` is not positive or a modality is unknown.
    """
    import tifffile

    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images!r}")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    if modalities is not None:
        _write_modality_frames(folder, n_images=n_images, shape=shape, seed=seed, modalities=tuple(modalities))
        return
    for index in range(n_images):
        image, mask = demo_training_frame(np.random.SeedSequence([seed, 1000 + index]), shape=shape)
        name = f"{index:03d}.tif"
        with atomic_path(folder / "images" / name) as tmp:
            tifffile.imwrite(tmp, image, photometric="minisblack")
        with atomic_path(folder / "masks" / name) as tmp:
            tifffile.imwrite(tmp, mask, photometric="minisblack")


def demo_training_frame(seed: int | np.random.SeedSequence, *, shape: tuple[int, int] = TRAINING_SHAPE
                        ) -> tuple[np.ndarray, np.ndarray]:
    """One annotated frame in the demo's rendering: 1-3 bodies (exact ellipse outlines) with
    debris, uneven illumination and noise; the debris is background. Returns (uint16 image,
    uint8 0/1 mask); deterministic given `seed`."""
    rng = np.random.default_rng(seed)
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
    return image, mask


# --- Training frames in several microscope modalities ---------------------------------------
#
# The demo above renders one look (fluorescence-like bodies with detached debris that the
# ground truth leaves out). Training a model that should serve real microscopes needs more:
# the frames below draw irregular bodies, shed and invading cells, and render them as
# fluorescence, bright field (dark bodies, bright halo) or phase contrast (bright halo),
# with random polarity, gain, offset, saturation and bit depth. Their masks follow the
# convention of the annotated real spheroids: the body and every in-focus cell around it
# are foreground (the segment step's size filter separates the main body from small
# fragments); out-of-focus cells, haze and halos are background.

TRAINING_MODALITIES = ("fluorescence", "invasive", "brightfield", "phase")
#: What ``write_training_set(modalities=...)`` accepts: the modalities above and ``"demo"``, the
#: demo's own rendering (:func:`demo_training_frame`: exact ellipse outlines, debris as background).
#: A kind named twice gets twice the frames (kinds are drawn in turn).
SYNTHETIC_KINDS = ("demo", *TRAINING_MODALITIES)
SYNTHETIC_PIXEL_SIZE_UM = 2.0  # the physical scale the synthetic bodies and cells are drawn at
POLARITIES = ("bright", "dark")
CELL_RADIUS_PX = (1.6, 3.2)  # a 6-13 um cell at 2 um/px


@dataclass(frozen=True)
class Outline:
    """A star-shaped body: an ellipse whose radius is modulated by harmonics k = 2, 3, ...

    ``amplitudes[i]`` and ``phases[i]`` belong to harmonic ``k = i + 2``; the outline is
    where :meth:`normalized_radius` equals 1.
    """

    ellipse: Ellipse
    amplitudes: tuple[float, ...] = ()
    phases: tuple[float, ...] = ()

    def normalized_radius(self, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """< 1 inside the outline, 1 on it; linear in the distance along any ray from the centre."""
        ellipse = self.ellipse
        dy, dx = yy - ellipse.center_y, xx - ellipse.center_x
        cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
        u = (dx * cos + dy * sin) / ellipse.semi_major
        v = (-dx * sin + dy * cos) / ellipse.semi_minor
        theta = np.arctan2(v, u)
        radius = np.ones_like(theta)
        for harmonic, (amplitude, phase) in enumerate(zip(self.amplitudes, self.phases), start=2):
            radius = radius + amplitude * np.cos(harmonic * theta + phase)
        return np.sqrt(u * u + v * v) / radius

    def reach(self) -> float:
        """An upper bound of the distance from the centre to the outline, px."""
        return self.ellipse.semi_major * (1.0 + sum(abs(a) for a in self.amplitudes))

    def boundary_distance(self, angle: float) -> float:
        """Distance from the centre to the outline in direction `angle` (radians, image axes), px."""
        probe = self.normalized_radius(np.array(self.ellipse.center_y + math.sin(angle)),
                                       np.array(self.ellipse.center_x + math.cos(angle)))
        return 1.0 / max(float(probe), 1e-9)


@dataclass(frozen=True)
class Cell:
    """A small round object: in focus (part of the mask) or out of focus (haze only)."""

    shape: Ellipse
    brightness: float
    in_focus: bool = True


@dataclass(frozen=True)
class TrainingScene:
    """What one training frame shows: bodies and cells, before rendering."""

    shape: tuple[int, int]
    bodies: list[Outline]
    cells: list[Cell]
    invasive: bool = False


def _box(center_y: float, center_x: float, reach: float, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """Pixel box that holds a shape of radius `reach` around a centre (None if outside the frame)."""
    top, left = max(int(center_y - reach) - 1, 0), max(int(center_x - reach) - 1, 0)
    bottom, right = min(int(center_y + reach) + 3, shape[0]), min(int(center_x + reach) + 3, shape[1])
    if top >= bottom or left >= right:
        return None
    return slice(top, bottom), slice(left, right)


def _rasterise(outline: Outline | Ellipse, reach: float, shape: tuple[int, int]
               ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """(box, coverage, centre mask) of a shape inside its box: supersampled coverage, exact mask."""
    centre = outline.ellipse if isinstance(outline, Outline) else outline
    box = _box(centre.center_y, centre.center_x, reach, shape)
    if box is None:
        return None
    ys = np.arange(box[0].start, box[0].stop, dtype=np.float64)
    xs = np.arange(box[1].start, box[1].stop, dtype=np.float64)
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING - 0.5
    yy = ys[:, None, None, None] + offsets[None, None, :, None]
    xx = xs[None, :, None, None] + offsets[None, None, None, :]
    coverage = (outline.normalized_radius(yy, xx) <= 1.0).mean(axis=(2, 3)).astype(np.float32)
    mask = outline.normalized_radius(ys[:, None], xs[None, :]) <= 1.0
    return box, coverage, mask


def _random_outline(rng: np.random.Generator, center_y: float, center_x: float, radius: float) -> Outline:
    """An irregular, sometimes elongated body of about `radius` px."""
    stretch = float(rng.uniform(1.0, 1.7)) if rng.random() < 0.6 else 1.0
    ellipse = Ellipse(center_y, center_x, radius * math.sqrt(stretch), radius / math.sqrt(stretch),
                      float(rng.uniform(0, math.pi)))
    count = int(rng.integers(0, 4))
    amplitudes = tuple(float(rng.uniform(0.0, 0.09)) / (k + 1) for k in range(count))
    return Outline(ellipse, amplitudes, tuple(float(p) for p in rng.uniform(0, 2 * math.pi, count)))


def _place_bodies(rng: np.random.Generator, shape: tuple[int, int], count: int) -> list[Outline]:
    """Up to `count` non-touching bodies (radius 12-100 px); the first one always fits."""
    largest = max(12.5, min(100.0, 0.38 * min(shape)))
    bodies: list[Outline] = []
    for _ in range(30 * count):
        if len(bodies) == count:
            break
        radius = float(np.exp(rng.uniform(math.log(12.0), math.log(largest))))
        if rng.random() < 0.2:  # across the frame border
            cy, cx = float(rng.uniform(0, shape[0])), float(rng.choice([0.05, 0.95]) * shape[1])
        else:
            cy, cx = (float(rng.uniform(0.15, 0.85) * side) for side in shape)
        outline = _random_outline(rng, cy, cx, radius)
        if all(math.hypot(cy - b.ellipse.center_y, cx - b.ellipse.center_x) > outline.reach() + b.reach() + 12
               for b in bodies):
            bodies.append(outline)
    return bodies


def _cell_at(rng: np.random.Generator, y: float, x: float, brightness: float, in_focus: bool = True) -> Cell:
    """A cell of random size centred at (y, x)."""
    radius = float(rng.uniform(*CELL_RADIUS_PX))
    shape = Ellipse(y, x, radius * float(rng.uniform(1.0, 1.3)), radius, float(rng.uniform(0, math.pi)))
    return Cell(shape, brightness, in_focus)


def _shed_cells(rng: np.random.Generator, body: Outline, count: int, spread: float) -> list[Cell]:
    """Cells scattered outside a body, denser near it (distance beyond the outline ~ exponential)."""
    cells = []
    for _ in range(count):
        angle = float(rng.uniform(0, 2 * math.pi))
        distance = body.boundary_distance(angle) + float(rng.exponential(spread)) + 1.0
        y = body.ellipse.center_y + distance * math.sin(angle)
        x = body.ellipse.center_x + distance * math.cos(angle)
        in_focus = rng.random() < 0.85
        brightness = float(rng.uniform(0.35, 1.0) if in_focus else rng.uniform(0.1, 0.3))
        cells.append(_cell_at(rng, y, x, brightness, in_focus))
    return cells


def _strand(rng: np.random.Generator, body: Outline) -> list[Cell]:
    """A chain of touching cells invading outwards from the body's edge."""
    angle = float(rng.uniform(0, 2 * math.pi))
    distance = body.boundary_distance(angle) - 1.0
    cells = []
    for _ in range(int(rng.integers(3, 14))):
        distance += float(rng.uniform(2.5, 4.0))
        angle += float(rng.normal(0.0, 0.04))
        y = body.ellipse.center_y + distance * math.sin(angle)
        x = body.ellipse.center_x + distance * math.cos(angle)
        cells.append(_cell_at(rng, y, x, float(rng.uniform(0.5, 1.0))))
    return cells


def training_scene(rng: np.random.Generator, *, shape: tuple[int, int], invasive: bool) -> TrainingScene:
    """Draw the bodies and cells of one training frame.

    Invasive scenes (day-2 spheroids) have one to two bodies with strands and up to a few
    hundred shed cells; the others (gastruloids, day-0 spheroids) have one to three bodies
    and a few dead cells or debris around them and anywhere in the field.
    """
    bodies = _place_bodies(rng, shape, int(rng.integers(1, 3 if invasive else 4)))
    cells: list[Cell] = []
    for body in bodies:
        radius = body.ellipse.semi_minor
        if invasive:
            for _ in range(int(rng.integers(0, 12))):
                cells += _strand(rng, body)
            cells += _shed_cells(rng, body, int(rng.integers(20, 260)), float(rng.uniform(0.15, 0.7)) * radius)
        else:
            cells += _shed_cells(rng, body, int(rng.integers(0, 12)), float(rng.uniform(0.1, 0.5)) * radius)
    for _ in range(int(rng.integers(0, 10))):
        y, x = (float(rng.uniform(0, side)) for side in shape)
        cells.append(_cell_at(rng, y, x, float(rng.uniform(0.35, 1.0)), rng.random() < 0.8))
    return TrainingScene(shape, bodies, cells, invasive)


def _paint_bodies(rng: np.random.Generator, scene: TrainingScene, signal: np.ndarray, mask: np.ndarray) -> None:
    """Draw the textured bodies into `signal` (max) and their exact masks into `mask`."""
    texture = 1.0 - float(rng.uniform(0.0, 0.5)) * _smooth_noise(rng, scene.shape, float(rng.uniform(1.5, 6.0)))
    for body in scene.bodies:
        drawn = _rasterise(body, body.reach() + 1.0, scene.shape)
        if drawn is None:
            continue
        box, coverage, inside = drawn
        level = texture[box]
        if scene.invasive:  # dense core: brighter towards the centre
            ys = np.arange(box[0].start, box[0].stop, dtype=np.float64)[:, None]
            xs = np.arange(box[1].start, box[1].stop, dtype=np.float64)[None, :]
            centre = np.clip(1.0 - body.normalized_radius(ys, xs), 0.0, 1.0)
            level = level * (0.6 + 0.8 * centre).astype(np.float32)
        signal[box] = np.maximum(signal[box], coverage * level)
        mask[box] |= inside


def _paint_cells(scene: TrainingScene, signal: np.ndarray, haze: np.ndarray, mask: np.ndarray) -> None:
    """Draw in-focus cells into `signal` and `mask`, out-of-focus ones into `haze`."""
    for cell in scene.cells:
        drawn = _rasterise(cell.shape, cell.shape.semi_major + 1.0, scene.shape)
        if drawn is None:
            continue
        box, coverage, inside = drawn
        if cell.in_focus:
            signal[box] = np.maximum(signal[box], cell.brightness * coverage)
            mask[box] |= inside
        else:
            haze[box] += cell.brightness * coverage


def scene_maps(rng: np.random.Generator, scene: TrainingScene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object signal, out-of-focus haze (both float32 (Y, X), about 0-1) and the exact mask (bool)."""
    signal = np.zeros(scene.shape, dtype=np.float32)
    haze = np.zeros(scene.shape, dtype=np.float32)
    mask = np.zeros(scene.shape, dtype=bool)
    _paint_bodies(rng, scene, signal, mask)
    _paint_cells(scene, signal, haze, mask)
    haze = ndimage.gaussian_filter(haze, float(rng.uniform(2.0, 4.0)))
    if scene.invasive and mask.any():  # diffuse glow around the invading front
        outside = ndimage.distance_transform_edt(~mask).astype(np.float32)
        reach = float(rng.uniform(4.0, 25.0))
        haze += float(rng.uniform(0.0, 0.25)) * np.exp(-outside / reach) * (outside > 0)
    return signal, haze, mask


def _render_fluorescence(rng: np.random.Generator, signal: np.ndarray, haze: np.ndarray, mask: np.ndarray
                         ) -> np.ndarray:
    """Bright objects on a dark background: blur, background, shading, shot and read noise."""
    blurred = ndimage.gaussian_filter(signal, float(rng.uniform(0.5, 1.8))) + haze
    expected = (float(rng.uniform(0.02, 0.3)) + blurred) * _shading(rng, signal.shape)
    photons = float(np.exp(rng.uniform(math.log(20.0), math.log(3000.0))))
    counts = rng.poisson(expected * photons).astype(np.float32) / photons
    return counts + rng.normal(0.0, float(rng.uniform(0.0, 0.02)), signal.shape).astype(np.float32)


def _shading(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Uneven illumination of a training frame: a gentle gradient and vignetting, 0.7-1.2, float32 (Y, X)."""
    yy, xx = (axis / max(shape) - 0.5 for axis in np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32))
    slope_y, slope_x = rng.uniform(-0.2, 0.2, size=2)
    vignetting = float(rng.uniform(0.0, 0.6))
    field = 1.0 + slope_y * yy + slope_x * xx - vignetting * (yy * yy + xx * xx)
    return (field * (0.97 + 0.06 * _smooth_noise(rng, shape, max(shape) / 6))).astype(np.float32)


def _halo(mask: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Decaying bands just outside and just inside the mask's edges, float32 (Y, X)."""
    outside = ndimage.distance_transform_edt(~mask).astype(np.float32)
    inside = ndimage.distance_transform_edt(mask).astype(np.float32)
    return np.exp(-outside / width) * (outside > 0), np.exp(-inside / width) * (inside > 0)


def _render_transmitted(rng: np.random.Generator, signal: np.ndarray, haze: np.ndarray, mask: np.ndarray,
                        *, phase: bool) -> np.ndarray:
    """Dark objects on a light background with a bright halo (bright field), or phase contrast.

    Phase contrast: objects only a little darker than the background, a strong bright halo.
    """
    width = float(rng.uniform(1.0, 4.0))
    ring, rim = _halo(mask, width)
    if phase:
        absorb, halo, dark_rim = rng.uniform(0.05, 0.35), rng.uniform(0.25, 0.8), rng.uniform(0.0, 0.3)
    else:
        absorb, halo, dark_rim = rng.uniform(0.25, 0.75), rng.uniform(0.0, 0.35), rng.uniform(0.0, 0.2)
    light = 1.0 - absorb * signal - 0.5 * absorb * haze + halo * ring - dark_rim * rim
    light = ndimage.gaussian_filter(light.astype(np.float32), float(rng.uniform(0.5, 1.8)))
    light = light * _shading(rng, signal.shape)
    return light + rng.normal(0.0, float(rng.uniform(0.003, 0.03)), signal.shape).astype(np.float32)


def _to_camera(rng: np.random.Generator, image: np.ndarray, *, invert: bool) -> np.ndarray:
    """Quantise like a camera: random gain and offset, saturation, 8 or 16 bits; optionally negated."""
    if invert:
        image = -image
    low, high = float(image.min()), float(image.max())
    unit = (image - low) / max(high - low, 1e-9)
    if rng.random() < 0.5:
        top, offset, dtype = rng.uniform(150.0, 330.0), rng.uniform(-30.0, 40.0), np.uint8
    else:
        top, offset, dtype = np.exp(rng.uniform(math.log(400.0), math.log(40000.0))), rng.uniform(0.0, 2000.0), np.uint16
    counts = np.rint(offset + top * unit)
    return np.clip(counts, 0, np.iinfo(dtype).max).astype(dtype)


def training_frame(seed: int | np.random.SeedSequence, *, shape: tuple[int, int] = (256, 256),
                   modality: str = "fluorescence", polarity: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one annotated training frame in a microscope modality.

    Parameters
    ----------
    seed : int or SeedSequence
        Everything is deterministic given the seed; the same seed with the other `polarity`
        gives the same scene, rendering and camera, negated before quantisation.
    shape : tuple of int
        Frame shape (Y, X); bodies have radii of 12-100 px (a 2 um/px scale).
    modality : {"fluorescence", "invasive", "brightfield", "phase"}
        Fluorescent bodies with a few cells around them; fluorescent spheroids invading
        the surrounding (strands, hundreds of shed cells, glow); bright field (dark
        bodies, bright halo, dark rim); phase contrast (slightly dark bodies, strong halo).
    polarity : {"bright", "dark"}, optional
        Whether the objects end up brighter or darker than the background; random if None
        (fluorescence is naturally bright, bright field and phase contrast dark).

    Returns
    -------
    image : ndarray of shape (Y, X), uint8 or uint16
    mask : ndarray of shape (Y, X), bool
        Bodies and in-focus cells.

    Raises
    ------
    ValueError
        If `modality` or `polarity` is unknown.
    """
    if modality not in TRAINING_MODALITIES:
        raise ValueError(f"modality must be one of {TRAINING_MODALITIES}, got {modality!r}")
    if polarity is not None and polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES} or None, got {polarity!r}")
    rng = np.random.default_rng(seed)
    scene = training_scene(rng, shape=tuple(shape), invasive=modality == "invasive")
    signal, haze, mask = scene_maps(rng, scene)
    if modality in ("fluorescence", "invasive"):
        image, natural = _render_fluorescence(rng, signal, haze, mask), "bright"
    else:
        image, natural = _render_transmitted(rng, signal, haze, mask, phase=modality == "phase"), "dark"
    drawn = POLARITIES[int(rng.integers(2))]
    invert = (polarity or drawn) != natural
    return _to_camera(rng, image, invert=invert), mask


def _write_pair(folder: Path, name: str, image: np.ndarray, mask: np.ndarray) -> None:
    """Write ``images/NAME`` and ``masks/NAME`` (0/1) atomically."""
    import tifffile

    with atomic_path(folder / "images" / name) as tmp:
        tifffile.imwrite(tmp, image, photometric="minisblack")
    with atomic_path(folder / "masks" / name) as tmp:
        tifffile.imwrite(tmp, mask.astype(np.uint8), photometric="minisblack")


def _write_modality_frames(folder: Path, *, n_images: int, shape: tuple[int, int], seed: int,
                           modalities: tuple[str, ...]) -> None:
    """Write :func:`training_frame` pairs named ``<modality>_NNN.tif``, modalities in turn."""
    unknown = sorted(set(modalities) - set(SYNTHETIC_KINDS))
    if not modalities or unknown:
        raise ValueError(f"modalities must be a non-empty selection of {SYNTHETIC_KINDS}, got {list(modalities)}")
    for index in range(n_images):
        modality = modalities[index % len(modalities)]
        frame_seed = np.random.SeedSequence([seed, 5000 + index])
        if modality == "demo":
            image, mask = demo_training_frame(frame_seed, shape=shape)
        else:
            image, mask = training_frame(frame_seed, shape=shape, modality=modality)
        _write_pair(folder, f"{modality}_{index:03d}.tif", image, mask)
