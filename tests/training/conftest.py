"""Tiny synthetic annotation folders for the training tests (32x32 disks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def disk_pair(seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A noisy uint8 image of a bright disk and its 0/1 mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(0.15, 0.3) ** 2 * size**2).astype(np.uint8)
    image = np.clip(40 + 150 * mask + rng.normal(0, 10, mask.shape), 0, 255).astype(np.uint8)
    return image, mask


def write_plane(path: Path, data: np.ndarray) -> None:
    """Write a TIFF or PNG plane."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        import imageio.v3 as iio

        iio.imwrite(path, data)
    else:
        import tifffile

        tifffile.imwrite(path, data)


def write_pairs(folder: Path, count: int, *, layout: str = "folders", suffix: str = ".tif",
                mask_folder: str = "masks", scale: int = 1) -> Path:
    """Write `count` disk pairs in the "folders" (images/ + masks/) or "side" (X + X_mask) layout."""
    for index in range(count):
        image, mask = disk_pair(index)
        name = f"{index:03d}"
        if layout == "folders":
            write_plane(folder / "images" / f"{name}{suffix}", image)
            write_plane(folder / mask_folder / f"{name}{suffix}", (mask * scale).astype(np.uint8))
        else:
            write_plane(folder / f"{name}{suffix}", image)
            write_plane(folder / f"{name}_mask{suffix}", (mask * scale).astype(np.uint8))
    return folder


@pytest.fixture
def annotations(tmp_path: Path) -> Path:
    """Six 32x32 pairs in the images/ + masks/ layout."""
    return write_pairs(tmp_path / "annotations", 6)


@pytest.fixture
def pairs_writer():
    """The :func:`write_pairs` helper (tests are not a package, so helpers come as fixtures)."""
    return write_pairs


@pytest.fixture
def plane_writer():
    """The :func:`write_plane` helper."""
    return write_plane
