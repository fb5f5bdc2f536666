"""Tiled inference, one concern per module:

``device``   torch device, autocast precision, allocator settings
``model``    loading a TorchScript model with its card, freezing it, `TileModel` (batches)
``store``    read-ahead and write-behind threads, the temporary tile store
``rescale``  physical scale: frames resampled to the model card's pixel size and back
``drivers``  `plan_for_image` (tile), `predict_tiles` (predict), `stitch_tiles` (stitch)

Normalisation lives in :mod:`spheroseg.normalization`, the tile geometry in
:mod:`spheroseg.tiling`. The names below are the package's public interface.
"""

from __future__ import annotations

from spheroseg.inference.device import resolve_device, resolve_precision
from spheroseg.inference.drivers import image_layout, plan_for_image, predict_tiles, stitch_tiles
from spheroseg.inference.model import TileModel, load_model, prepare_model, select_channels
from spheroseg.inference.store import BackgroundWriter, prefetch

__all__ = [
    "BackgroundWriter", "TileModel", "image_layout", "load_model", "plan_for_image", "predict_tiles",
    "prefetch", "prepare_model", "resolve_device", "resolve_precision", "select_channels",
    "stitch_tiles",
]
