"""Data augmentation that keeps image, mask and weight map aligned.

Geometric transforms (flips, 90-degree rotations, a small affine transform and an elastic
deformation) are applied identically to the image, the mask and the weight map; intensity
transforms (contrast/brightness, gamma, uneven illumination, blur, noise, optional
inversion) touch the image only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation probabilities and magnitudes (all ``p_*`` in [0, 1]).

    ``elastic_alpha`` is the displacement amplitude in pixels and ``elastic_sigma`` the
    smoothing length of the random displacement field; ``rotation_deg``, ``scale`` and
    ``shear`` bound the affine transform; ``contrast`` and ``brightness`` bound the linear
    intensity change, ``gamma`` the gamma range, ``noise`` the Gaussian noise standard
    deviation (in normalised units), ``blur`` the Gaussian blur sigma and ``illumination``
    the amplitude of a smooth multiplicative shading.
    """

    p_flip: float = 0.5
    p_rot90: float = 0.75
    p_affine: float = 0.5
    rotation_deg: float = 180.0
    scale: tuple[float, float] = (0.8, 1.25)
    shear: float = 0.1
    p_elastic: float = 0.5
    elastic_alpha: float = 8.0
    elastic_sigma: float = 10.0
    p_intensity: float = 0.8
    contrast: tuple[float, float] = (0.6, 1.4)
    brightness: float = 0.2
    p_gamma: float = 0.5
    gamma: tuple[float, float] = (0.6, 1.6)
    p_illumination: float = 0.3
    illumination: float = 0.3
    p_blur: float = 0.2
    blur: tuple[float, float] = (0.5, 1.5)
    p_noise: float = 0.3
    noise: tuple[float, float] = (0.01, 0.1)
    p_invert: float = 0.0

    def to_dict(self) -> dict:
        """Plain dict (for the model card)."""
        return asdict(self)

    @classmethod
    def with_intensity(cls, level: str = "full", *, p_invert: float = 0.0) -> AugmentConfig:
        """The default geometric augmentation with one of the intensity levels.

        Parameters
        ----------
        level : {"full", "mild", "none"}
            ``full``: strong contrast, brightness, gamma, shading, blur and noise changes, for
            data whose annotations follow shapes and texture (electron microscopy, bright
            field). ``mild``: contrast within 10%, no gamma, weak shading and noise, for
            fluorescence whose annotations follow the brightness itself (the label is, in
            effect, "brighter than the background by so much"); strong intensity changes would
            contradict such labels. ``none``: no intensity change at all.
        p_invert : float
            Chance of inverting a patch's contrast (any level).

        Returns
        -------
        AugmentConfig

        Raises
        ------
        ValueError
            If `level` is not one of :data:`INTENSITY_LEVELS`.

        Examples
        --------
        >>> AugmentConfig.with_intensity("none").p_gamma
        0.0
        """
        if level not in INTENSITY_LEVELS:
            raise ValueError(f"intensity augmentation must be one of {INTENSITY_LEVELS}, got {level!r}")
        config = cls(p_invert=p_invert)
        if level == "mild":
            return replace(config, contrast=(0.9, 1.1), brightness=0.03, p_gamma=0.0, illumination=0.1,
                           noise=(0.005, 0.03))
        if level == "none":
            return replace(config, p_intensity=0.0, p_gamma=0.0, p_illumination=0.0, p_blur=0.0, p_noise=0.0)
        return config


INTENSITY_LEVELS = ("full", "mild", "none")


def _affine_coordinates(shape: tuple[int, int], rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Sampling coordinates (2, Y, X) of a random rotation/scale/shear about the centre."""
    angle = np.deg2rad(rng.uniform(-config.rotation_deg, config.rotation_deg))
    scale = np.exp(rng.uniform(np.log(config.scale[0]), np.log(config.scale[1])))
    shear = rng.uniform(-config.shear, config.shear)
    cos, sin = np.cos(angle), np.sin(angle)
    matrix = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]]) / scale
    centre = (np.array(shape, dtype=np.float64) - 1) / 2
    grid = np.indices(shape, dtype=np.float64).reshape(2, -1) - centre[:, None]
    return (matrix @ grid + centre[:, None]).reshape(2, *shape)


def _elastic_displacement(shape: tuple[int, int], rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Smooth random displacement field (2, Y, X) with maximum amplitude about `elastic_alpha`."""
    field = np.stack([ndimage.gaussian_filter(rng.uniform(-1, 1, shape), config.elastic_sigma, mode="reflect")
                      for _ in range(2)])
    peak = float(np.abs(field).max()) or 1.0
    return field / peak * config.elastic_alpha


def geometric_augment(
    arrays: list[np.ndarray | None], rng: np.random.Generator, config: AugmentConfig,
) -> list[np.ndarray | None]:
    """Apply one random geometric transform to every array of a patch (image first, then mask, ...).

    Masks (second entry) are resampled with linear interpolation and re-binarised at 0.5.
    """
    present = [a for a in arrays if a is not None]
    shape = present[0].shape
    if rng.random() < config.p_flip:
        arrays = [None if a is None else a[:, ::-1] for a in arrays]
    if rng.random() < config.p_flip:
        arrays = [None if a is None else a[::-1, :] for a in arrays]
    if rng.random() < config.p_rot90 and shape[0] == shape[1]:
        turns = int(rng.integers(1, 4))
        arrays = [None if a is None else np.rot90(a, turns) for a in arrays]
    coordinates = None
    if rng.random() < config.p_affine:
        coordinates = _affine_coordinates(shape, rng, config)
    if rng.random() < config.p_elastic:
        base = np.indices(shape, dtype=np.float64) if coordinates is None else coordinates
        coordinates = base + _elastic_displacement(shape, rng, config)
    out: list[np.ndarray | None] = []
    for index, array in enumerate(arrays):
        if array is None or coordinates is None:
            out.append(None if array is None else np.ascontiguousarray(array, dtype=np.float32))
            continue
        warped = ndimage.map_coordinates(np.asarray(array, dtype=np.float32), coordinates, order=1, mode="reflect")
        out.append((warped > 0.5).astype(np.float32) if index == 1 else warped.astype(np.float32))
    return out


def intensity_augment(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Random contrast/brightness, gamma, shading, blur, noise and inversion of a normalised image."""
    image = np.asarray(image, dtype=np.float32)
    if rng.random() < config.p_invert:
        image = 1.0 - image
    if rng.random() < config.p_gamma:
        clipped = np.clip(image, 0.0, 1.0)
        image = image - clipped + clipped ** np.float32(rng.uniform(*config.gamma))
    if rng.random() < config.p_intensity:
        image = image * np.float32(rng.uniform(*config.contrast)) + np.float32(
            rng.uniform(-config.brightness, config.brightness))
    if rng.random() < config.p_illumination:
        yy, xx = np.indices(image.shape, dtype=np.float32) / np.float32(max(image.shape))
        slope = rng.uniform(-config.illumination, config.illumination, size=2).astype(np.float32)
        image = image * (1.0 + slope[0] * (yy - 0.5) + slope[1] * (xx - 0.5))
    if rng.random() < config.p_blur:
        image = ndimage.gaussian_filter(image, rng.uniform(*config.blur))
    if rng.random() < config.p_noise:
        image = image + rng.normal(0.0, rng.uniform(*config.noise), image.shape).astype(np.float32)
    return image.astype(np.float32)


def augment_patch(
    image: np.ndarray, mask: np.ndarray, weight: np.ndarray | None, rng: np.random.Generator, config: AugmentConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Augment one training patch.

    Parameters
    ----------
    image : ndarray of shape (Y, X), float32
        Normalised image.
    mask : ndarray of shape (Y, X), float32 in {0, 1}
    weight : ndarray of shape (Y, X), float32, or None
    rng : numpy Generator
    config : AugmentConfig

    Returns
    -------
    tuple of ndarray of shape (Y, X), float32
        Augmented image, mask (still binary) and weight (or None), aligned.
    """
    image, mask, weight = geometric_augment([image, mask, weight], rng, config)
    return intensity_augment(image, rng, config), mask, weight
