"""Training: annotation pairs in, TorchScript U-Net + model card out.

Modules: :mod:`~spheroseg.training.data` (discovery, validation, patch sampling),
:mod:`~spheroseg.training.augment`, :mod:`~spheroseg.training.loss`,
:mod:`~spheroseg.training.loop` (optimisation, checkpoints, resume),
:mod:`~spheroseg.training.evaluate` (tiled prediction, IoU/Dice),
:mod:`~spheroseg.training.export` (TorchScript, card, log, curve) and
:mod:`~spheroseg.training.pipeline` (the whole ``spheroseg train`` job).
"""

from __future__ import annotations
