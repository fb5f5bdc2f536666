"""Whole-image prediction by tiles and foreground IoU/Dice, for validation and benchmarks."""

from __future__ import annotations

import numpy as np
import torch


def _starts(length: int, core: int) -> list[int]:
    """Start offsets of cores of size `core` that cover `length`."""
    return list(range(0, max(length - core, 0) + 1, core)) + ([length - core] if length > core and length % core else [])


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, image: np.ndarray, *, divisor: int, tile: int = 512, halo: int = 32,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Run `model` over a whole normalised image by overlapping tiles; return logits.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, 1, H, W) to (N, 1, H, W); put in eval mode by the caller.
    image : ndarray of shape (Y, X), float32
        Normalised image.
    divisor : int
        Tile sides are made multiples of this (``2**depth`` for a U-Net).
    tile, halo : int
        Core tile side and the context added on each side (discarded from the output).
    device : torch.device or str

    Returns
    -------
    ndarray of shape (Y, X), float32

    Raises
    ------
    ValueError
        If `image` is not 2-D.
    """
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (Y, X), got shape {image.shape}")
    height, width = image.shape
    core_y, core_x = min(tile, height), min(tile, width)
    side_y = -(-(core_y + 2 * halo) // divisor) * divisor
    side_x = -(-(core_x + 2 * halo) // divisor) * divisor
    pad_y, pad_x = side_y - core_y - halo, side_x - core_x - halo
    mode = "reflect" if min(image.shape) > max(halo, pad_y, pad_x) else "symmetric"
    padded = np.pad(image.astype(np.float32), ((halo, pad_y), (halo, pad_x)), mode=mode)
    out = np.empty((height, width), dtype=np.float32)
    for top in _starts(height, core_y):
        for left in _starts(width, core_x):
            window = padded[top: top + side_y, left: left + side_x]
            logits = model(torch.from_numpy(np.ascontiguousarray(window))[None, None].to(device))
            out[top: top + core_y, left: left + core_x] = (
                logits[0, 0, halo: halo + core_y, halo: halo + core_x].float().cpu().numpy())
    return out


def foreground_scores(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Foreground IoU and Dice of two boolean masks (1.0 when both are empty).

    Examples
    --------
    >>> foreground_scores(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
    {'iou': 0.5, 'dice': 0.6666666666666666}
    """
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    overlap = float(np.logical_and(prediction, truth).sum())
    union = float(np.logical_or(prediction, truth).sum())
    total = float(prediction.sum() + truth.sum())
    return {"iou": overlap / union if union else 1.0, "dice": 2 * overlap / total if total else 1.0}
