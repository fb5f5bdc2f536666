"""Loss values on known inputs and U-Net border weight maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spheroseg.training.loss import border_weight_map, segmentation_loss, soft_dice_loss

TARGET = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])


def test_bce_of_zero_logits_is_log2():
    assert float(segmentation_loss(torch.zeros(1, 1, 2, 2), TARGET, dice_weight=0.0)) == pytest.approx(math.log(2))


def test_soft_dice_of_half_probabilities():
    # p = 0.5 everywhere: 1 - (2 * 0.5 + 1) / (2 + 1 + 1) = 0.5
    assert float(soft_dice_loss(torch.zeros(1, 1, 2, 2), TARGET)) == pytest.approx(0.5)


def test_combined_loss_adds_dice():
    value = float(segmentation_loss(torch.zeros(1, 1, 2, 2), TARGET, dice_weight=2.0))
    assert value == pytest.approx(math.log(2) + 2 * 0.5)


def test_perfect_logits_give_near_zero_loss():
    logits = (TARGET * 2 - 1) * 30
    assert float(segmentation_loss(logits, TARGET)) == pytest.approx(0.0, abs=1e-6)


def test_weights_scale_bce_per_pixel():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]]]])
    weight = torch.tensor([[[[1.0, 3.0], [0.0, 2.0]]]])
    p = torch.sigmoid(logits)
    expected = -(weight * (TARGET * torch.log(p) + (1 - TARGET) * torch.log(1 - p))).mean()
    assert float(segmentation_loss(logits, TARGET, weight, dice_weight=0.0)) == pytest.approx(float(expected), rel=1e-6)


def test_loss_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        segmentation_loss(torch.zeros(1, 1, 2, 3), TARGET)


def test_border_weight_known_answer():
    mask = np.array([[1, 1, 1, 0, 0, 0, 1, 1, 1]], bool)
    weights = border_weight_map(mask, w0=10, sigma=5)
    # class balance: 6 foreground (0.75) and 3 background (1.5) pixels, mean 1
    # gap centre (index 4): d1 = d2 = 2 -> 10 * exp(-16 / 50)
    assert weights[0, 4] == pytest.approx(1.5 + 10 * math.exp(-16 / 50), rel=1e-6)
    assert weights[0, 3] == pytest.approx(1.5 + 10 * math.exp(-(1 + 3) ** 2 / 50), rel=1e-6)
    np.testing.assert_allclose(weights[0, :3], 0.75)


def test_single_object_gets_class_weights_only():
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    weights = border_weight_map(mask)
    assert weights.mean() == pytest.approx(1.0) and len(np.unique(weights)) == 2


def whole_frame_border_weights(mask, *, w0=10.0, sigma=5.0):
    """The eq. 2 map with every object's distances over the whole frame (the reference)."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    fraction = mask.mean()
    class_weight = np.where(mask, 0.5 / fraction, 0.5 / (1.0 - fraction))
    class_weight = (class_weight / class_weight.mean()).astype(np.float32)
    distances = np.sort(np.stack([ndimage.distance_transform_edt(labels != label) for label in range(1, count + 1)]),
                        axis=0).astype(np.float32)
    border = w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2.0 * sigma**2))
    return (class_weight + np.where(mask, 0.0, border)).astype(np.float32)


@pytest.mark.parametrize(("w0", "sigma"), [(10.0, 5.0), (5.0, 12.0)])
def test_border_weights_equal_the_whole_frame_computation(w0, sigma):
    """Distances kept within reach of each object give the same map as whole-frame ones, to the
    bit: many small fragments (as shed cells), objects touching the frame's edges, one large body."""
    rng = np.random.default_rng(3)
    mask = np.zeros((300, 340), bool)
    yy, xx = np.mgrid[:300, :340]
    mask |= (yy - 150) ** 2 + (xx - 170) ** 2 < 60**2
    for y, x, r in zip(rng.integers(0, 300, 60), rng.integers(0, 340, 60), rng.integers(1, 6, 60)):
        mask |= (yy - y) ** 2 + (xx - x) ** 2 <= r**2
    mask[:, :3] = True  # an object along the left edge
    np.testing.assert_array_equal(border_weight_map(mask, w0=w0, sigma=sigma),
                                  whole_frame_border_weights(mask, w0=w0, sigma=sigma))
