"""Helpers of the bioimage.io tests: tiny TorchScript models with cards, package edits,
synthetic frames (a module of its own: `conftest` names clash between test folders)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]


def train_percentile_unet(output: Path) -> Path:
    """A real U-Net (the default's architecture, depth 3, base width 16) with percentile
    normalisation, trained for two steps on synthetic pairs: the shipped default uses robust
    normalisation, which bioimage.io cannot describe (its export is refused, see the tests)."""
    from spheroseg.cli import main

    assert main(["train", "--synthetic", "4", "--synthetic-size", "64", "--patch-size", "64", "--batch-size", "2",
                 "--epochs", "1", "--steps-per-epoch", "2", "--pixel-size-um", "2.0", "--device", "cpu",
                 "--no-progress", "--output", str(output)]) == 0
    return output


def write_tiny_model(folder: Path, *, channels: int = 1, output_kind: str = "logits",
                     normalization: dict | None = None, divisor: int = 8, halo: int = 8,
                     seed: int = 0) -> Path:
    """A scripted two-layer convolution net with its card: (N, C, H, W) -> (N, 1, H, W)."""
    import torch

    from spheroseg.modelcard import write_card

    torch.manual_seed(seed)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = torch.nn.Conv2d(channels, 4, 3, padding=1)
            self.second = torch.nn.Conv2d(4, 1, 3, padding=1)
            self.sigmoid = output_kind == "probabilities"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.second(torch.relu(self.first(x)))
            return torch.sigmoid(y) if self.sigmoid else y

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny().eval()), str(path))
    write_card({
        "name": "tiny",
        "input": {"channels": channels, "pixel_size_um": 1.5,
                  "normalization": normalization or {"kind": "percentile", "low": 1.0, "high": 99.8}},
        "output": {"kind": output_kind, "channels": 1}, "spatial_divisor": divisor,
        "tile": {"size": 64, "halo": halo}, "metrics": {"val_iou": 0.5},
        "training": {"annotations": "synthetic disks (test)"},
    }, path)
    return path


def unpacked(package: Path, folder: Path, edit=None) -> Path:
    """The package unzipped into `folder`, its rdf.yaml changed by `edit(rdf)`; returns rdf.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    rdf_path = folder / "rdf.yaml"
    rdf = yaml.safe_load(rdf_path.read_text(encoding="utf-8"))
    if edit is not None:
        edit(rdf)
    rdf_path.write_text(json.dumps(rdf, indent=1), encoding="utf-8")
    return rdf_path


def synthetic_frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint16 frames of bright disks on a noisy background, shape (T, Y, X)."""
    rng = np.random.default_rng(seed)
    frames, height, width = shape
    yy, xx = np.indices((height, width))
    images = []
    for t in range(frames):
        disk = (yy - height * 0.45) ** 2 + (xx - width * 0.55) ** 2 <= (0.25 * min(height, width) + 2 * t) ** 2
        images.append(np.clip(200 + 1500 * disk + rng.normal(0, 40, (height, width)), 0, 65535))
    return np.asarray(images, dtype=np.uint16)
