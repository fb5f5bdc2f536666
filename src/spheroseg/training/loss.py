"""Training loss: binary cross-entropy + soft Dice, with optional U-Net border weight maps."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def border_weight_map(mask: np.ndarray, *, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """U-Net weight map (Ronneberger et al. 2015, eq. 2) that stresses gaps between touching objects.

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))`` on background pixels, where
    ``d1`` and ``d2`` are the distances to the nearest and second-nearest object (connected
    component) and ``w_c`` balances the class frequencies (mean weight per class is equal).

    Each object's distances are computed only within :func:`border_reach` of its bounding box:
    beyond it the border term is below 1e-12 of ``w0``, far below the float32 resolution of
    ``w_c`` (at least 0.5 on background), so the map equals the whole-frame computation while
    its cost grows with the objects' size, not with their number times the frame's (a day-2
    spheroid mask with 217 shed fragments: about 11 CPU s whole-frame, under 0.1 s windowed;
    ``benchmarks/border_weights_speed_results.md``).

    Parameters
    ----------
    mask : ndarray of shape (Y, X), bool or {0, 1}
        Foreground mask.
    w0, sigma : float
        Border weight and its decay length in pixels.

    Returns
    -------
    ndarray of shape (Y, X), float32
        Weights, at least the class-balance weight everywhere.

    Examples
    --------
    >>> mask = np.zeros((1, 9), dtype=bool); mask[0, :3] = mask[0, 6:] = True
    >>> weights = border_weight_map(mask, w0=10, sigma=5)
    >>> bool(weights[0, 4] > weights[0, 0])
    True
    """
    from scipy import ndimage

    foreground = np.asarray(mask) > 0
    labels, count = ndimage.label(foreground)
    class_weight = class_balance_weights(foreground)
    if count < 2:
        return class_weight
    reach = border_reach(w0, sigma)
    nearest = np.full(foreground.shape, np.inf, dtype=np.float32)
    second = np.full(foreground.shape, np.inf, dtype=np.float32)
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        window = tuple(slice(max(part.start - reach, 0), min(part.stop + reach, size))
                       for part, size in zip(box, foreground.shape))
        distance = ndimage.distance_transform_edt(labels[window] != label).astype(np.float32)
        second[window] = np.minimum(second[window], np.maximum(nearest[window], distance))
        nearest[window] = np.minimum(nearest[window], distance)
    border = w0 * np.exp(-((nearest + second) ** 2) / (2.0 * sigma**2))
    return (class_weight + np.where(foreground, 0.0, border)).astype(np.float32)


def class_balance_weights(foreground: np.ndarray) -> np.ndarray:
    """Per-pixel weights, float32, that give each class the same total weight, mean 1.

    Examples
    --------
    >>> class_balance_weights(np.array([True, False, False, False])).tolist()
    [2.0, 0.6666666865348816, 0.6666666865348816, 0.6666666865348816]
    """
    fraction = foreground.mean()
    weight = np.where(foreground, 0.5 / max(fraction, 1e-6), 0.5 / max(1.0 - fraction, 1e-6))
    return (weight / weight.mean()).astype(np.float32)


def border_reach(w0: float, sigma: float, *, below: float = 1e-12) -> int:
    """Distance in pixels beyond which the border term ``w0 exp(-d**2 / (2 sigma**2))`` is under `below`.

    Examples
    --------
    >>> border_reach(10.0, 5.0)
    39
    """
    if w0 <= below:
        return 0
    return int(np.ceil(sigma * np.sqrt(2.0 * np.log(w0 / below))))


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """``1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)`` pooled over the batch, p = sigmoid(logits).

    Examples
    --------
    >>> t = torch.tensor([[[[1.0, 0.0]]]])
    >>> round(float(soft_dice_loss(torch.tensor([[[[50.0, -50.0]]]]), t)), 6)
    0.0
    """
    probability = torch.sigmoid(logits.float())
    target = target.float()
    overlap = (probability * target).sum()
    return 1.0 - (2.0 * overlap + eps) / (probability.sum() + target.sum() + eps)


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *, dice_weight: float = 1.0,
) -> torch.Tensor:
    """Weighted BCE (mean over pixels) plus `dice_weight` times soft Dice.

    Parameters
    ----------
    logits, target : Tensor of shape (N, 1, H, W), float
        Raw network output and binary target.
    weight : Tensor of shape (N, 1, H, W), optional
        Per-pixel BCE weights (for example border weight maps).
    dice_weight : float
        Weight of the Dice term (0: BCE only).

    Returns
    -------
    Tensor, scalar float32

    Raises
    ------
    ValueError
        If shapes differ.

    Examples
    --------
    >>> logits = torch.zeros(1, 1, 2, 2); target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    >>> round(float(segmentation_loss(logits, target, dice_weight=0.0)), 4)  # log(2)
    0.6931
    """
    if logits.shape != target.shape or (weight is not None and weight.shape != target.shape):
        raise ValueError(
            f"logits, target and weight must have the same shape, got {tuple(logits.shape)}, "
            f"{tuple(target.shape)}, {None if weight is None else tuple(weight.shape)}"
        )
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), weight=weight)
    if dice_weight == 0.0:
        return bce
    return bce + dice_weight * soft_dice_loss(logits, target)
