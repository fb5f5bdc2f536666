"""Export a trained U-Net: TorchScript file, model card, training log CSV and learning curve."""

from __future__ import annotations

import copy
import csv
import io
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spheroseg.atomic import atomic_path, write_text
from spheroseg.modelcard import ModelCardError, read_verified_card, sha256_file, write_card
from spheroseg.unet import UNet

EXPORT_TOLERANCE = 1e-5
LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "val_iou", "val_dice", "lr", "elapsed_s")


def export_torchscript(
    model: torch.nn.Module, path: str | os.PathLike[str], *, example_shape: tuple[int, int, int, int],
    seed: int = 0,
) -> float:
    """Script the eval-mode model, save it atomically, and check it reproduces the eager model.

    Parameters
    ----------
    model : torch.nn.Module
        Trained network (copied to CPU float32 eval mode; the argument is not changed).
    path : str or PathLike
        Output ``.pt`` file.
    example_shape : tuple of int
        NCHW shape of the random input used for the check.
    seed : int
        Seed of that input.

    Returns
    -------
    float
        Largest absolute difference between the reloaded scripted model and the eager model.

    Raises
    ------
    RuntimeError
        If the difference exceeds 1e-5 (the file is then not written).
    """
    eager = copy.deepcopy(model).cpu().float().eval()
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(example_shape, generator=generator)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the model contract
        torch.jit.script(eager).save(str(tmp))
        reloaded = torch.jit.load(str(tmp), map_location="cpu")
        with torch.no_grad():
            difference = float((reloaded(example) - eager(example)).abs().max())
        if not difference <= EXPORT_TOLERANCE:
            raise RuntimeError(
                f"exported model must equal the eager model within {EXPORT_TOLERANCE}, got a max difference "
                f"of {difference!r} (in {path})"
            )
    return difference


def load_init_model(path: str | os.PathLike[str]) -> tuple[UNet, dict[str, Any]]:
    """Load an exported model (TorchScript + card) as an eager UNet for fine-tuning.

    Raises
    ------
    ModelCardError
        If the card is missing, does not match the file, or does not describe a U-Net.
    """
    card = read_verified_card(path)
    architecture = card.get("architecture")
    if not isinstance(architecture, dict) or architecture.get("kind") != "unet":
        raise ModelCardError(
            f"architecture must be a U-Net description ({{'kind': 'unet', 'depth': ..., 'base_width': ...}}) "
            f"to fine-tune, got {architecture!r} (in {Path(path).with_suffix('.json')})"
        )
    if card["input"]["channels"] != 1:
        raise ModelCardError(f"input.channels must be 1 to fine-tune (training reads single-channel images), "
                             f"got {card['input']['channels']} (in {Path(path).with_suffix('.json')})")
    model = UNet(card["input"]["channels"], card["output"]["channels"] if "channels" in card["output"] else 1,
                 depth=architecture["depth"], base_width=architecture["base_width"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            scripted = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as err:
            detail = " ".join(str(err).split())[:200]
            raise ModelCardError(f"model must be a TorchScript file (torch.jit.save), got one torch cannot load "
                                 f"as such ({detail}) (in {path})") from err
    try:
        model.load_state_dict(scripted.state_dict())
    except RuntimeError as err:
        raise ModelCardError(f"model weights must match the card's architecture {architecture} (in {path}): {err}") from err
    return model, card


def file_records(paths: list[Path], root: Path) -> list[dict[str, str]]:
    """``[{"path": relative path, "sha256": digest}, ...]`` for the training data files."""
    return [{"path": p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p), "sha256": sha256_file(p)}
            for p in paths]


def versions() -> dict[str, str]:
    """Versions of the software that made the model."""
    import spheroseg

    return {"spheroseg": spheroseg.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def write_training_log(history: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    """Write the per-epoch history as CSV (one row per epoch)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k)) for k in LOG_COLUMNS})
    write_text(path, buffer.getvalue())


def plot_learning_curve(history: list[dict[str, float]], path: str | os.PathLike[str], *, title: str) -> None:
    """Plot losses and validation IoU/Dice against epochs as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [row["train_loss"] for row in history], label="training loss")
    left.plot(epochs, [row["val_loss"] for row in history], label="validation loss")
    right.plot(epochs, [row["val_iou"] for row in history], label="validation IoU")
    right.plot(epochs, [row["val_dice"] for row in history], label="validation Dice")
    for axis in (left, right):
        axis.set_xlabel("epoch")
        axis.legend()
        axis.grid(alpha=0.3)
    left.set_ylabel("BCE + soft Dice")
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def save_model(
    model: torch.nn.Module, output: str | os.PathLike[str], card: dict[str, Any], history: list[dict[str, float]],
    *, example_shape: tuple[int, int, int, int],
) -> dict[str, Path]:
    """Write NAME.pt, NAME.json (card), NAME.training_log.csv and NAME.learning_curve.png.

    The card gets ``export_max_abs_difference``; everything is written atomically, the
    card last (so a complete card means a complete model).
    """
    output = Path(output)
    stem = output.with_suffix("")
    paths = {"log": Path(f"{stem}.training_log.csv"), "curve": Path(f"{stem}.learning_curve.png")}
    write_training_log(history, paths["log"])
    plot_learning_curve(history, paths["curve"], title=output.name)
    difference = export_torchscript(model, output, example_shape=example_shape)
    card = dict(card, export={"max_abs_difference_vs_eager": difference, "tolerance": EXPORT_TOLERANCE})
    paths["model"] = output
    paths["card"] = write_card(card, output)
    return paths
