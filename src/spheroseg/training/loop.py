"""The training loop: AdamW, warm-up + cosine schedule, mixed precision on GPU, validation,
early stopping, a checkpoint every epoch and resume after interruption.

Randomness is derived from ``(seed, epoch)`` at the start of every epoch, so a run resumed
from a checkpoint draws the same patches as an uninterrupted one, and two runs with the
same seed on CPU give the same weights.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spheroseg.atomic import atomic_path
from spheroseg.progress import Progress
from spheroseg.training.augment import AugmentConfig, augment_patch
from spheroseg.training.data import PatchSampler, Sample
from spheroseg.training.evaluate import foreground_scores, predict_logits
from spheroseg.training.loss import segmentation_loss

LOGGER = logging.getLogger("spheroseg.training")
CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; ``patience = 0`` disables early stopping; ``frozen_norm`` keeps the
    batch-norm statistics the model came with (its scale and shift still train);
    ``channels_last`` trains with NHWC-strided weights and batches (oneDNN's and cuDNN's fast
    convolution layout: on the 2-core CPU a training step of the default U-Net on 4 x 256^2
    patches took 1.42x less CPU time, the ``finetune`` recipe's process 1.29x less, and the
    models' probabilities differ by under 2e-5, ``benchmarks/train_step_speed_results.md``);
    the returned model is contiguous again, as exported models always are."""

    epochs: int = 40
    steps_per_epoch: int = 50
    batch_size: int = 8
    patch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    final_lr_fraction: float = 0.02
    patience: int = 10
    min_delta: float = 1e-4
    foreground_fraction: float = 0.5
    sampling: str = "area"
    dice_weight: float = 1.0
    seed: int = 0
    max_minutes: float | None = None
    device: str = "auto"
    amp: bool = True
    frozen_norm: bool = False
    channels_last: bool = True

    def validate(self) -> None:
        """Raise ValueError for a setting out of range."""
        for name in ("epochs", "steps_per_epoch", "batch_size", "patch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes!r}")
        if self.sampling not in ("area", "source"):
            raise ValueError(f"sampling must be one of ('area', 'source'), got {self.sampling!r}")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {self.patience!r}")


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`; `model` holds the best weights, in eval mode, on CPU."""

    model: torch.nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_metrics: dict[str, float]
    stop_reason: str
    resumed_from_epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` if torch sees it.

    Raises
    ------
    ValueError
        As `spheroseg.inference.device.resolve_device`, naming ``training.device``.
    """
    from spheroseg.inference.device import resolve_device as checked_device

    return checked_device(name, key="training.device")


def lr_factor(step: int, *, total: int, warmup: int, final: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to `final` at `total`.

    Examples
    --------
    >>> lr_factor(0, total=100, warmup=10, final=0.0), lr_factor(10, total=100, warmup=10, final=0.0)
    (0.1, 1.0)
    >>> round(lr_factor(100, total=100, warmup=10, final=0.02), 6)
    0.02
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_batch(
    sampler: PatchSampler, rng: np.random.Generator, augment: AugmentConfig, batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Draw and augment `batch_size` patches; return NCHW float32 image, mask and weight tensors."""
    patches = [augment_patch(*sampler.sample(rng), rng, augment) for _ in range(batch_size)]
    images = torch.from_numpy(np.stack([p[0] for p in patches]))[:, None]
    masks = torch.from_numpy(np.stack([p[1] for p in patches]))[:, None]
    weights = None
    if patches[0][2] is not None:
        weights = torch.from_numpy(np.stack([p[2] for p in patches]))[:, None]
    return images, masks, weights


@torch.no_grad()
def validate_model(
    model: torch.nn.Module, samples: list[Sample], *, divisor: int, tile: int, device: torch.device,
    dice_weight: float = 1.0,
) -> dict[str, float]:
    """Loss, foreground IoU and Dice (pixels pooled over all images, logit > 0) on whole images."""
    model.eval()
    losses, predictions, truths = [], [], []
    for sample in samples:
        logits = predict_logits(model, sample.image, divisor=divisor, tile=tile, device=device)
        target = torch.from_numpy(sample.mask)[None, None]
        losses.append(float(segmentation_loss(torch.from_numpy(logits)[None, None], target, dice_weight=dice_weight)))
        predictions.append((logits > 0).ravel())
        truths.append((sample.mask > 0.5).ravel())
    scores = foreground_scores(np.concatenate(predictions), np.concatenate(truths))
    return {"val_loss": float(np.mean(losses)), "val_iou": scores["iou"], "val_dice": scores["dice"]}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a killed job never leaves a truncated one)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """Load a checkpoint with ``weights_only=True`` if it exists and belongs to this run, else None."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        LOGGER.warning("ignoring unreadable checkpoint %s: %s", path, err)
        return None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
        LOGGER.warning("ignoring checkpoint %s: it belongs to other data or settings; starting over", path)
        return None
    return state


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's state dict."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclass
class _Run:
    """Mutable state of one training run (everything a checkpoint holds)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_score: float = -math.inf
    best_epoch: int = 0
    stale_epochs: int = 0
    elapsed_s: float = 0.0
    stop_reason: str = ""

    def state(self, fingerprint: str) -> dict[str, Any]:
        """Checkpoint dict (tensors and plain Python values only)."""
        return {
            "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epoch": self.epoch,
            "model": _cpu_state(self.model), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "history": self.history, "best_state": self.best_state, "best_score": self.best_score,
            "best_epoch": self.best_epoch, "stale_epochs": self.stale_epochs, "elapsed_s": self.elapsed_s,
            "stop_reason": self.stop_reason,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a checkpoint dict produced by :meth:`state`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        for name in ("epoch", "history", "best_state", "best_score", "best_epoch", "stale_epochs",
                     "elapsed_s", "stop_reason"):
            setattr(self, name, state[name])


def _train_epoch(
    run: _Run, sampler: PatchSampler, augment: AugmentConfig, config: TrainConfig, device: torch.device,
    progress: Progress, deadline: float | None,
) -> tuple[float, bool]:
    """One epoch of optimisation; return (mean loss, whether the time budget ran out)."""
    rng = np.random.default_rng([config.seed, run.epoch])
    torch.manual_seed(config.seed * 1_000_003 + run.epoch)
    use_amp = config.amp and device.type == "cuda"
    run.model.train()
    if config.frozen_norm:
        for module in run.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    losses: list[float] = []
    for _ in range(config.steps_per_epoch):
        images, masks, weights = make_batch(sampler, rng, augment, config.batch_size)
        images, masks = images.to(device), masks.to(device)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        weights = None if weights is None else weights.to(device)
        run.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = run.model(images)
        loss = segmentation_loss(logits, masks, weights, dice_weight=config.dice_weight)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        losses.append(float(loss.detach()))
        last_iou = run.history[-1]["val_iou"] if run.history else float("nan")
        progress.update(1, {"epoch": f"{run.epoch + 1}/{config.epochs}", "loss": f"{np.mean(losses[-20:]):.4f}",
                            "val IoU": f"{last_iou:.3f}"})
        if deadline is not None and time.monotonic() > deadline:
            return float(np.mean(losses)), True
    return float(np.mean(losses)), False


def _record_epoch(run: _Run, metrics: dict[str, float], config: TrainConfig, has_validation: bool) -> None:
    """Append the epoch to the history and update best weights and early-stopping counters."""
    run.history.append({"epoch": run.epoch, **metrics, "lr": run.optimizer.param_groups[0]["lr"],
                        "elapsed_s": round(run.elapsed_s, 2)})
    score = metrics["val_iou"] if has_validation else float(run.epoch)
    if score > run.best_score + (config.min_delta if has_validation else 0.0):
        run.best_score, run.best_epoch, run.stale_epochs = score, run.epoch, 0
        run.best_state = _cpu_state(run.model)
    else:
        run.stale_epochs += 1


def _make_run(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> _Run:
    """Optimizer, schedule and gradient scaler for `model` (already on `device`)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total = config.epochs * config.steps_per_epoch
    warmup = max(1, int(config.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total=total, warmup=warmup, final=config.final_lr_fraction))
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")
    return _Run(model, optimizer, scheduler, scaler)


def train_model(
    model: torch.nn.Module, train_samples: list[Sample], val_samples: list[Sample], config: TrainConfig,
    augment: AugmentConfig, *, divisor: int, checkpoint_dir: str | os.PathLike[str] | None = None,
    fingerprint: str = "", progress: bool = True,
) -> TrainResult:
    """Train `model` on patches of `train_samples`, validating on whole `val_samples` images.

    Parameters
    ----------
    model : torch.nn.Module
        Freshly initialised or pre-trained network mapping (N, 1, H, W) to (N, 1, H, W) logits.
    train_samples, val_samples : list of Sample
        Training and validation data (`val_samples` may be empty: then no early stopping,
        and the last epoch's weights are kept).
    config : TrainConfig
    augment : AugmentConfig
    divisor : int
        Input sides must be multiples of this (``2**depth``).
    checkpoint_dir : str or PathLike, optional
        Where ``last.pt`` is written after every epoch; a matching checkpoint found there is
        resumed from (same `fingerprint`), a finished one is reused without training, and one
        stopped by the time budget (``config.max_minutes``, counted per call) goes on.
    fingerprint : str
        Identifies data and settings; a checkpoint with another fingerprint is ignored.
    progress : bool
        Report progress (tqdm on a terminal, log lines otherwise).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        If a setting is out of range or the patch size is not a multiple of `divisor`.
    """
    config.validate()
    if config.patch_size % divisor:
        raise ValueError(f"patch_size must be a multiple of {divisor}, got {config.patch_size!r}")
    device = resolve_device(config.device)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    run = _make_run(model, config, device)
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    state = None if checkpoint is None else load_checkpoint(checkpoint, fingerprint)
    if state is not None:
        run.restore(state)
        if run.stop_reason.startswith("time budget"):
            run.stop_reason = ""  # a time-limited run goes on when rerun
        LOGGER.info("resuming from checkpoint %s after epoch %d of %d", checkpoint, run.epoch, config.epochs)
    resumed_from = run.epoch
    sampler = PatchSampler(train_samples, size=config.patch_size, foreground_fraction=config.foreground_fraction,
                           sampling=config.sampling)
    bar = Progress(config.epochs * config.steps_per_epoch, description="step", unit="step",
                   initial=run.epoch * config.steps_per_epoch, enabled=progress)
    deadline = None if config.max_minutes is None else time.monotonic() + config.max_minutes * 60
    try:
        while not run.stop_reason:
            started = time.monotonic()
            train_loss, out_of_time = _train_epoch(run, sampler, augment, config, device, bar, deadline)
            run.epoch += 1
            metrics = {"train_loss": train_loss, **(
                validate_model(run.model, val_samples, divisor=divisor, tile=max(config.patch_size, 512),
                               device=device, dice_weight=config.dice_weight)
                if val_samples else {"val_loss": math.nan, "val_iou": math.nan, "val_dice": math.nan})}
            run.elapsed_s += time.monotonic() - started
            _record_epoch(run, metrics, config, bool(val_samples))
            run.stop_reason = _stop_reason(run, config, out_of_time, bool(val_samples))
            if checkpoint is not None:
                save_checkpoint(checkpoint, run.state(fingerprint))
            LOGGER.info("epoch %d/%d: train loss %.4f, val loss %.4f, val IoU %.4f, val Dice %.4f",
                        run.epoch, config.epochs, metrics["train_loss"], metrics["val_loss"],
                        metrics["val_iou"], metrics["val_dice"])
    finally:
        bar.close()
    LOGGER.info("stopped: %s; best epoch %d", run.stop_reason, run.best_epoch)
    model = run.model.cpu().to(memory_format=torch.contiguous_format)
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    best = next((h for h in run.history if h["epoch"] == run.best_epoch), run.history[-1])
    return TrainResult(model.eval(), run.history, run.best_epoch, dict(best), run.stop_reason, resumed_from)


def _stop_reason(run: _Run, config: TrainConfig, out_of_time: bool, has_validation: bool) -> str:
    """Why training stops after this epoch, or "" to go on."""
    if run.epoch >= config.epochs:
        return f"reached {config.epochs} epochs"
    if out_of_time:
        return f"time budget of {config.max_minutes} minutes used"
    if has_validation and config.patience and run.stale_epochs >= config.patience:
        return f"early stopping: no validation IoU gain for {config.patience} epochs"
    return ""


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain dict of a TrainConfig (for cards and fingerprints)."""
    return asdict(config)
