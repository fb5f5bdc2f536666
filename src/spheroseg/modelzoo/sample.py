"""Test tensors and cover of a package: a sample frame, the model's probabilities on it
through spheroseg's own normalisation, and the picture of both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spheroseg.normalization import normalize_image
from spheroseg.tiling import round_up

SAMPLE_SIDE = 256
MAX_SAMPLE_SIDE = 512


def valid_side(side: int, *, divisor: int, minimum: int) -> int:
    """The largest input side <= `side` that the description accepts (a multiple of `divisor`
    and at least `minimum`); `minimum` itself when `side` is smaller.

    Examples
    --------
    >>> valid_side(300, divisor=8, minimum=72)
    296
    """
    return max(minimum, side - side % divisor)


def synthetic_sample(*, channels: int, side: int, pixel_size_um: float | None) -> np.ndarray:
    """A synthetic spheroid frame (``spheroseg.synthetic``) of shape (channels, side, side), float32."""
    from spheroseg.synthetic import generate_position

    frame = generate_position(seed=0, n_timepoints=1, shape=(side, side),
                              pixel_size_um=pixel_size_um or 2.0).images[0]
    return np.repeat(frame[None].astype(np.float32), channels, axis=0)


def read_sample(path: str | os.PathLike[str], *, channels: int) -> np.ndarray:
    """First frame of a TIFF (Y, X) / (C, Y, X) or of an NGFF image, as (C, Y, X) float32.

    Raises
    ------
    ValueError
        If the image is not 2-D per channel or has another channel count than the model.
    """
    path = Path(path)
    if path.is_dir():
        from spheroseg import ngff

        array = ngff.open_array(path)
        image = np.stack([ngff.read_frame(array, 0, channel=c) for c in range(channels)])
    else:
        import tifffile

        image = np.asarray(tifffile.imread(path))
        image = image[None] if image.ndim == 2 else image
    if image.ndim != 3 or image.shape[0] != channels:
        raise ValueError(f"sample must be an image of shape ({channels}, Y, X) for this model, got "
                         f"shape {image.shape} (in {path})")
    return image.astype(np.float32)


def crop_sample(image: np.ndarray, *, divisor: int, minimum: int, path: str) -> np.ndarray:
    """Centre crop of a (C, Y, X) image to sides the description accepts, at most 512 px.

    Raises
    ------
    ValueError
        If the image is smaller than the model's minimum input side.
    """
    if min(image.shape[1:]) < minimum:
        raise ValueError(f"sample must be at least {minimum} x {minimum} pixels for this model, "
                         f"got {image.shape[1]} x {image.shape[2]} (in {path})")
    sides = [valid_side(min(size, MAX_SAMPLE_SIDE), divisor=divisor, minimum=minimum)
             for size in image.shape[1:]]
    starts = [(size - side) // 2 for size, side in zip(image.shape[1:], sides)]
    return image[:, starts[0]:starts[0] + sides[0], starts[1]:starts[1] + sides[1]]


def sample_input(card: dict[str, Any], *, minimum: int, sample: str | os.PathLike[str] | None) -> np.ndarray:
    """The package's test input: (1, C, Y, X) float32 raw intensities (not normalised).

    Raises
    ------
    ValueError
        If the sample does not suit the model, or a multi-channel model has no sample.
    """
    channels, divisor = card["input"]["channels"], card["spatial_divisor"]
    if sample is not None:
        image = crop_sample(read_sample(sample, channels=channels), divisor=divisor,
                            minimum=minimum, path=str(sample))
        return image[None]
    if channels != 1:
        raise ValueError(f"sample must be given for a model with {channels} input channels "
                         "(the synthetic sample has one channel), got none")
    side = max(minimum, round_up(SAMPLE_SIDE, divisor))
    return synthetic_sample(channels=1, side=side, pixel_size_um=card["input"].get("pixel_size_um"))[None]


def predict_probabilities(module: Any, card: dict[str, Any], batch: np.ndarray) -> np.ndarray:
    """Probabilities of shape (N, 1, Y, X), float32, for raw input (N, C, Y, X).

    Each image is normalised with :func:`spheroseg.normalization.normalize_image` as the
    card says (as ``spheroseg predict`` does per frame), run through the TorchScript module
    in float32, and passed through a sigmoid for a logits model.
    """
    import torch

    normalized = np.stack([normalize_image(image, card["input"]["normalization"]) for image in batch])
    with torch.inference_mode():
        outputs = module(torch.from_numpy(np.ascontiguousarray(normalized, dtype=np.float32))).float()
    if card["output"]["kind"] == "logits":
        outputs = torch.sigmoid(outputs)
    return outputs.clamp(0.0, 1.0).numpy().astype(np.float32)


def cover_image(image: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """A 2:1 RGB picture: the sample (1st-99.8th percentile stretch) beside its probability.

    Parameters
    ----------
    image : ndarray of shape (Y, X)
    probability : ndarray of shape (Y, X), values in [0, 1]

    Returns
    -------
    ndarray of shape (S, 2 S, 3), uint8
        Both halves cropped to a centred S x S square, S = min(Y, X).
    """
    side = min(image.shape)
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    window = (slice(top, top + side), slice(left, left + side))
    shown = np.clip(normalize_image(image[window], {"kind": "percentile", "low": 1.0, "high": 99.8}), 0, 1)
    prob = np.clip(probability[window], 0, 1)
    raw = np.repeat(shown[..., None], 3, axis=2)
    heat = np.stack([prob, 0.35 * prob + 0.15 * shown, 0.25 * shown], axis=2)
    return np.round(np.concatenate([raw, heat], axis=1) * 255).astype(np.uint8)
