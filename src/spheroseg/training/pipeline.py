"""From an annotation folder to an exported model: the whole ``spheroseg train`` job."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from spheroseg.normalization import validate_normalization
from spheroseg.training.augment import AugmentConfig
from spheroseg.training.data import AnnotationPair, AnnotationSource, find_source_pairs, load_samples, split_pairs
from spheroseg.training.export import file_records, load_init_model, save_model, versions
from spheroseg.training.loop import TrainConfig, TrainResult, resolve_device, train_model, validate_model
from spheroseg.unet import UNet

LOGGER = logging.getLogger("spheroseg.training")
DEFAULT_NORMALIZATION = {"kind": "percentile", "low": 1.0, "high": 99.8}
TILE_HALO = 40  # px; with the halo discarded, enough for UNet(depth=3) on the real spheroids (benchmarks/seam_halo_results.md)
#: Settings that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("max_minutes", "device", "amp")


@dataclass(frozen=True)
class TrainingJob:
    """Everything ``spheroseg train`` needs besides the optimisation settings.

    `annotations` is one folder (used as it is) or several :class:`AnnotationSource`
    (each resampled from its own pixel size to `pixel_size_um` where both are known).
    `init` names an exported model (``.pt`` with its card) to fine-tune; its architecture,
    normalisation and pixel size are then used. `val_fraction` of the pairs validate, but only
    when there are `val_min_pairs` pairs or more (fewer all train, for the whole schedule, with
    no early stopping), unless `val_names` names them. `normalization_scope` (``image`` or
    ``series``; None keeps the normalisation's own) is applied after the init model's
    normalisation is taken: with ``series``, each pair that ``propose`` wrote is normalised with
    its position's window (recorded in the folder's ``proposals.json``), the others alone.
    `provenance` is merged into the card's ``training`` entry (for example how synthetic data
    were made).
    """

    annotations: Path | tuple[AnnotationSource, ...]
    output: Path
    init: Path | None = None
    depth: int = 3
    base_width: int = 16
    normalization: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    normalization_scope: str | None = None
    pixel_size_um: float | None = None
    val_fraction: float = 0.2
    val_names: tuple[str, ...] = ()
    val_min_pairs: int = 2
    mask_kind: str = "auto"
    allow_empty: bool = False
    border_weights: bool = False
    checkpoint_dir: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def sources(self) -> tuple[AnnotationSource, ...]:
        """The annotation folders as sources."""
        if isinstance(self.annotations, tuple):
            return self.annotations
        return (AnnotationSource(Path(self.annotations)),)

    def describe_annotations(self) -> str | list[dict[str, object]]:
        """The card's ``annotations`` entry: the folder, or one description per source."""
        if isinstance(self.annotations, tuple):
            return [source.describe() for source in self.annotations]
        return str(self.annotations)


def _file_records(job: TrainingJob, pairs: list[AnnotationPair]) -> list[dict[str, Any]]:
    """Path (relative to its folder) and SHA-256 of every training file; with several folders, its index."""
    if not isinstance(job.annotations, tuple):
        return file_records([f for p in pairs for f in (p.image_path, p.mask_path)], Path(job.annotations))
    records = []
    for index, source in enumerate(job.annotations):
        paths = [f for p in pairs if p.source == index for f in (p.image_path, p.mask_path)]
        records += [{"source": index, **record} for record in file_records(paths, source.folder)]
    return records


def _fingerprint(job: TrainingJob, config: TrainConfig, augment: AugmentConfig, files: list[dict],
                 architecture: dict, init_sha: str | None, windows: dict | None = None) -> str:
    """Digest of data and settings: a checkpoint is resumed only if this matches."""
    settings = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    payload = {"files": files, "config": settings, "augment": augment.to_dict(), "architecture": architecture,
               "init": init_sha, "val": list(job.val_names), "val_fraction": job.val_fraction,
               "val_min_pairs": job.val_min_pairs,
               "mask_kind": job.mask_kind, "border_weights": job.border_weights,
               "normalization": job.normalization, "pixel_size_um": job.pixel_size_um,
               "sources": [source.pixel_size_um for source in job.sources()],
               "windows": sorted(f"{key}: {value}" for key, value in (windows or {}).items())}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _initial_model(job: TrainingJob, seed: int) -> tuple[UNet, dict[str, Any] | None, TrainingJob]:
    """A fresh seeded U-Net, or the `init` model; the job is updated from the init card."""
    if job.init is None:
        torch.manual_seed(seed)
        return UNet(depth=job.depth, base_width=job.base_width), None, job
    model, card = load_init_model(job.init)
    architecture = card["architecture"]
    if (architecture["depth"], architecture["base_width"]) != (job.depth, job.base_width):
        LOGGER.info("fine-tuning keeps the architecture of %s: depth %d, base width %d",
                    job.init, architecture["depth"], architecture["base_width"])
    pixel = job.pixel_size_um if job.pixel_size_um is not None else card["input"].get("pixel_size_um")
    job = replace(job, depth=architecture["depth"], base_width=architecture["base_width"],
                  normalization=card["input"]["normalization"], pixel_size_um=pixel)
    return model, card, job


def _with_scope(job: TrainingJob) -> TrainingJob:
    """The job with `normalization_scope` applied to its (or its init model's) normalisation."""
    if job.normalization_scope is None:
        return job
    if job.normalization_scope == "series" and job.normalization["kind"] not in ("percentile", "robust"):
        LOGGER.info("normalization scope series: kind %r has no window, normalised per image",
                    job.normalization["kind"])
        return job
    spec = {key: value for key, value in job.normalization.items() if key != "scope"}
    spec = validate_normalization(spec | {"scope": job.normalization_scope}, source="normalization_scope")
    return replace(job, normalization=spec)


def _series_windows(job: TrainingJob, pairs: list[AnnotationPair]) -> dict[tuple[int, str], dict] | None:
    """(source, name) -> the series window `propose` recorded for the pair, for a series-scope job;
    the pairs without one are normalised alone (logged)."""
    if job.normalization.get("scope") != "series":
        return None
    from spheroseg.propose import recorded_windows

    windows = {(index, name): window for index, source in enumerate(job.sources())
               for name, window in recorded_windows(source.folder, job.normalization).items()}
    alone = [pair.name for pair in pairs if (pair.source, pair.name) not in windows]
    if alone:
        LOGGER.info("normalization scope series: %d of %d pair(s) have no window of their time series "
                    "(not written by propose with this normalisation) and are normalised alone: %s",
                    len(alone), len(pairs), ", ".join(alone[:8]))
    return windows


def run_training(job: TrainingJob, config: TrainConfig, augment: AugmentConfig, *, progress: bool = True
                 ) -> dict[str, Path]:
    """Validate the annotations, train (or fine-tune, or resume), and export the model.

    Returns
    -------
    dict of Path
        ``model``, ``card``, ``log`` and ``curve`` output paths.

    Raises
    ------
    AnnotationError
        If the annotations are bad (before any training).
    ModelCardError
        If the `init` model or its card is unusable.
    ValueError
        If a setting is out of range.
    """
    config.validate()
    if job.pixel_size_um is not None and not job.pixel_size_um > 0:
        raise ValueError(f"pixel_size_um must be > 0, got {job.pixel_size_um!r}")
    validate_normalization(job.normalization, source="training settings")
    pairs = find_source_pairs(list(job.sources()))
    train_pairs, val_pairs = split_pairs(pairs, val_fraction=job.val_fraction, val_names=list(job.val_names),
                                         seed=config.seed, val_min_pairs=job.val_min_pairs)
    model, init_card, job = _initial_model(job, config.seed)
    job = _with_scope(job)
    windows = _series_windows(job, pairs)
    if job.pixel_size_um is None and any(p.pixel_size_um is not None for p in pairs):
        raise ValueError("pixel_size_um (the training pixel size) must be given when annotation folders have "
                         "pixel sizes, got None")
    load = dict(normalization=job.normalization, mask_kind=job.mask_kind, allow_empty=job.allow_empty,
                border_weights=job.border_weights, pixel_size_um=job.pixel_size_um, windows=windows)
    train_samples, val_samples = load_samples(train_pairs, **load), (load_samples(val_pairs, **load) if val_pairs else [])
    config = _fit_patch_size(config, train_samples, divisor=2**job.depth)
    files = _file_records(job, pairs)
    architecture = {"kind": "unet", "depth": job.depth, "base_width": job.base_width,
                    "in_channels": 1, "out_channels": 1}
    fingerprint = _fingerprint(job, config, augment, files, architecture, init_card and init_card["sha256"],
                               windows)
    LOGGER.info("training on %d pairs, validating on %d (%s)", len(train_pairs), len(val_pairs),
                ", ".join(p.name for p in val_pairs) or "none")
    before = _init_scores(model, val_samples, config, divisor=2**job.depth) if init_card else None
    started = time.monotonic()
    result = train_model(model, train_samples, val_samples, config, augment, divisor=2**job.depth,
                         checkpoint_dir=job.checkpoint_dir, fingerprint=fingerprint, progress=progress)
    card = _card(job, config, augment, result, files, architecture, init_card,
                 train=[p.name for p in train_pairs], val=[p.name for p in val_pairs],
                 wall_s=time.monotonic() - started)
    card["training"]["init_metrics"] = before
    side = config.patch_size
    return save_model(result.model, job.output, card, result.history, example_shape=(2, 1, side, side))


def _init_scores(model: torch.nn.Module, val_samples: list, config: TrainConfig, *, divisor: int
                 ) -> dict[str, float | None] | None:
    """Validation IoU/Dice of the init model before any training (the "before" of fine-tuning)."""
    if not val_samples:
        return None
    device = resolve_device(config.device)
    scores = validate_model(model.to(device), val_samples, divisor=divisor, tile=max(config.patch_size, 512),
                            device=device)
    model.to("cpu")
    return {key: _finite(scores[key]) for key in ("val_iou", "val_dice")}


def _card(job: TrainingJob, config: TrainConfig, augment: AugmentConfig, result: TrainResult, files: list[dict],
          architecture: dict, init_card: dict | None, *, train: list[str], val: list[str], wall_s: float
          ) -> dict[str, Any]:
    """The model card (sha256 and model_file are added by ``write_card``)."""
    init = None if init_card is None else {"model": str(job.init), "sha256": init_card["sha256"]}
    training = {
        "annotations": job.describe_annotations(), "files": files, "train_names": train, "val_names": val,
        "val_fraction": job.val_fraction, "val_min_pairs": job.val_min_pairs,
        "mask_kind": job.mask_kind, "border_weights": job.border_weights, "init": init,
        "config": asdict(config), "augment": augment.to_dict(), "best_epoch": result.best_epoch,
        "epochs_run": len(result.history), "stop_reason": result.stop_reason,
        "resumed_from_epoch": result.resumed_from_epoch,
        "training_time_s": round(result.history[-1]["elapsed_s"], 1) if result.history else 0.0,
        "wall_time_this_run_s": round(wall_s, 1), **job.provenance,
    }
    metrics = {k: _finite(result.best_metrics.get(k)) for k in ("val_iou", "val_dice", "val_loss", "train_loss")}
    return {
        "name": job.output.stem,
        "input": {"channels": 1, "normalization": job.normalization, "pixel_size_um": job.pixel_size_um},
        "output": {"kind": "logits", "channels": 1},
        "spatial_divisor": 2**job.depth,
        "tile": {"size": max(config.patch_size, 256), "halo": TILE_HALO},
        "architecture": architecture, "training": training, "metrics": metrics, "versions": versions(),
    }


def _finite(value: float | None) -> float | None:
    """`value` if it is a finite number, else None (JSON has no NaN)."""
    return value if isinstance(value, float) and math.isfinite(value) else None


def _fit_patch_size(config: TrainConfig, samples: list, *, divisor: int) -> TrainConfig:
    """Shrink the patch size to the largest training image (rounded up to `divisor`): no padded waste."""
    largest = max(max(sample.image.shape) for sample in samples)
    fitted = -(-largest // divisor) * divisor
    if fitted >= config.patch_size:
        return config
    LOGGER.info("patch size %d -> %d: the largest training image is %d px", config.patch_size, fitted, largest)
    return replace(config, patch_size=fitted)
