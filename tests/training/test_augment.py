"""Augmentation keeps image, mask and weight map aligned, and masks binary."""

from __future__ import annotations

import numpy as np
import pytest

from spheroseg.training.augment import AugmentConfig, augment_patch, geometric_augment, intensity_augment

OFF = dict(p_flip=0.0, p_rot90=0.0, p_affine=0.0, p_elastic=0.0, p_intensity=0.0, p_gamma=0.0,
           p_illumination=0.0, p_blur=0.0, p_noise=0.0)
GEOMETRIC = {
    "flips": dict(OFF, p_flip=1.0),
    "rot90": dict(OFF, p_rot90=1.0),
    "affine": dict(OFF, p_affine=1.0),
    "elastic": dict(OFF, p_elastic=1.0),
    "all": dict(OFF, p_flip=1.0, p_rot90=1.0, p_affine=1.0, p_elastic=1.0),
}


def _blob() -> np.ndarray:
    """A 32x32 asymmetric binary shape (an L), so every transform changes it."""
    mask = np.zeros((32, 32), np.float32)
    mask[6:26, 8:14] = 1
    mask[20:26, 8:24] = 1
    return mask


@pytest.mark.parametrize("settings", list(GEOMETRIC.values()), ids=list(GEOMETRIC))
@pytest.mark.parametrize("seed", [0, 1, 2], ids=["seed0", "seed1", "seed2"])
def test_geometry_moves_image_mask_and_weight_together(settings, seed):
    mask = _blob()
    image, warped_mask, weight = geometric_augment([mask * 1.0, mask, mask * 3.0], np.random.default_rng(seed),
                                                   AugmentConfig(**settings))
    assert set(np.unique(warped_mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(warped_mask, (image > 0.5).astype(np.float32))
    np.testing.assert_allclose(weight, image * 3.0, atol=1e-5)


def test_geometry_changes_the_patch():
    mask = _blob()
    _, warped, _ = geometric_augment([mask, mask, None], np.random.default_rng(0), AugmentConfig(**GEOMETRIC["all"]))
    assert not np.array_equal(warped, mask) and warped.sum() > 0.5 * mask.sum()


def test_disabled_augmentation_is_identity():
    mask = _blob()
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    out_image, out_mask, out_weight = augment_patch(image, mask, None, np.random.default_rng(0), AugmentConfig(**OFF))
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_mask, mask)
    assert out_weight is None


@pytest.mark.parametrize("name", ["p_intensity", "p_gamma", "p_illumination", "p_blur", "p_noise", "p_invert"],
                         ids=lambda n: n[2:])
def test_intensity_changes_only_the_image(name):
    image = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    config = AugmentConfig(**dict(OFF, **{name: 1.0}))
    out = intensity_augment(image, np.random.default_rng(5), config)
    assert out.shape == image.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    assert not np.allclose(out, image)
    _, mask, _ = augment_patch(image, _blob(), None, np.random.default_rng(5), config)
    np.testing.assert_array_equal(mask, _blob())


def test_invert_flips_normalised_intensities():
    image = np.array([[0.0, 0.25], [1.0, 0.5]], np.float32)
    out = intensity_augment(image, np.random.default_rng(0), AugmentConfig(**dict(OFF, p_invert=1.0)))
    np.testing.assert_allclose(out, 1.0 - image)


def _intensity_spread(config: AugmentConfig, trials: int = 200) -> float:
    """Largest change of a mid-grey pixel (0.5) over many random intensity augmentations."""
    image = np.full((16, 16), 0.5, np.float32)
    rng = np.random.default_rng(0)
    return max(float(np.abs(intensity_augment(image, rng, config) - 0.5).max()) for _ in range(trials))


def test_intensity_levels_order_the_strength():
    full, mild, none = (_intensity_spread(AugmentConfig.with_intensity(level)) for level in ("full", "mild", "none"))
    assert none == 0.0 < mild < 0.25 < full, (full, mild, none)


def test_intensity_level_keeps_geometry_and_inversion():
    config = AugmentConfig.with_intensity("none", p_invert=0.3)
    assert config.p_elastic == AugmentConfig().p_elastic and config.p_affine == AugmentConfig().p_affine
    assert config.p_invert == 0.3


def test_unknown_intensity_level_is_refused():
    with pytest.raises(ValueError, match="intensity augmentation must be one of"):
        AugmentConfig.with_intensity("strong")
