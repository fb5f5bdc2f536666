"""The precision decision: whether ``precision: auto`` runs a model at reduced precision.

``auto`` asks for bfloat16 (float16 on CUDA devices without bfloat16) where the device has
native support, and keeps it only if it moves no probability by more than the tolerance
against float32. The check runs on fixed test tiles made here from the model card (two
deterministic synthetic bodies, normalised the card's way), never on the image being
predicted: the decision is then a function of the model, the device and the configuration
alone, so every position of an experiment, whatever its size or content, runs at the same
precision. It costs two small forward passes per job, and `decide_precision` returns the
record that ``predict`` stores with its outputs (tile store and probabilities).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spheroseg.inference.model import AUTO_PRECISION_TOLERANCE as TOLERANCE
from spheroseg.normalization import normalize_image

TEST_TILE_SIZE = 256
TEST_TILE_COUNT = 2
TEST_TILE_SEED = 0


def precision_test_tiles(card: dict[str, Any], *, channels: int, divisor: int,
                         count: int = TEST_TILE_COUNT) -> np.ndarray:
    """Deterministic test tiles for the precision check, normalised as the card says.

    Each tile holds a textured bright body with a soft edge (where probabilities cross
    0.5, which is where reduced precision shows) and a few small blobs on a dim background
    with Poisson noise, as 12-bit camera counts; every channel gets the same image.

    Returns
    -------
    ndarray of shape (count, channels, S, S), float32
        S is 256 rounded up to a multiple of `divisor`.

    Examples
    --------
    >>> card = {"input": {"normalization": {"kind": "percentile", "low": 1.0, "high": 99.8}}}
    >>> precision_test_tiles(card, channels=1, divisor=8).shape
    (2, 1, 256, 256)
    """
    size = -(-TEST_TILE_SIZE // divisor) * divisor
    rng = np.random.default_rng(TEST_TILE_SEED)
    yy, xx = np.mgrid[:size, :size].astype(np.float64) / size
    tiles = []
    for index in range(count):
        cy, cx = rng.uniform(0.35, 0.65, size=2)
        a, b = rng.uniform(0.18, 0.3), rng.uniform(0.12, 0.22)
        angle = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        radius = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        body = 1.0 / (1.0 + np.exp(np.clip((radius - 1.0) * 25.0, -50, 50)))
        texture = 0.8 + 0.2 * np.sin(40 * xx + 3 * index) * np.cos(37 * yy)
        blobs = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 2e-4)
                    for y, x in rng.uniform(0.05, 0.95, size=(4, 2)))
        counts = rng.poisson(150.0 + 1500.0 * body * texture + 700.0 * blobs)
        raw = np.clip(counts, 0, 4095).astype(np.uint16)
        normalized = normalize_image(raw, card["input"]["normalization"])
        tiles.append(np.repeat(normalized[None], channels, axis=0))
    return np.stack(tiles).astype(np.float32)


def decide_precision(runner: Any, card: dict[str, Any], *, requested: str, channels: int,
                     divisor: int, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Settle `runner`'s precision for ``precision: auto`` and describe the decision.

    Parameters
    ----------
    runner : TileModel
        Its `precision` is the candidate from `resolve_precision`; it is set to float32
        when the candidate moves a probability of the test tiles by more than `tolerance`.
    card : dict
        The model card (normalisation of the test tiles).
    requested : {"auto", "bf16", "fp16", "fp32"}
        What the configuration asked for; only ``auto`` is checked.
    channels, divisor : int
        Input channels and spatial divisor of the model.
    tolerance : float
        Largest acceptable absolute probability difference.

    Returns
    -------
    dict
        ``requested``, ``precision`` (the one used), ``checked_on`` (the test tiles, or
        None when nothing was checked), ``max_difference`` and ``tolerance``.
    """
    from spheroseg.inference.device import precision_name

    record: dict[str, Any] = {"requested": requested, "candidate": precision_name(runner.precision),
                              "checked_on": None, "max_difference": None, "tolerance": tolerance}
    if requested == "auto" and runner.precision is not None:
        tiles = precision_test_tiles(card, channels=channels, divisor=divisor)
        difference = runner.check_precision(tiles, tolerance=tolerance)
        record.update(checked_on=f"{len(tiles)} synthetic test tiles of {tiles.shape[-1]} x "
                      f"{tiles.shape[-1]} px (spheroseg.inference.precision, seed "
                      f"{TEST_TILE_SEED})", max_difference=round(difference, 6))
    record["precision"] = precision_name(runner.precision)
    return record
