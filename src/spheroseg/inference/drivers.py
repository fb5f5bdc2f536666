"""The ``tile``, ``predict`` and ``stitch`` drivers: plan tiles for an image and a model, stream
frames through the model into a tile store, and blend that store into probabilities.

``predict_tiles`` runs a TorchScript model (its card beside it) over the tiles of a plan and
writes foreground probabilities per tile to a temporary Zarr store; ``stitch_tiles`` blends
that store into a probabilities OME-Zarr. Frames are streamed: a background thread reads and
normalises the next frames while the model runs, another writes finished frames, so memory
stays at a few frames and the device does not wait on disk.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from spheroseg.atomic import atomic_path
from spheroseg.inference.device import precision_name, resolve_device, resolve_precision
from spheroseg.inference.model import TileModel, load_model, prepare_model, select_channels
from spheroseg.inference.precision import decide_precision
from spheroseg.inference.rescale import (
    check_rescale,
    plan_on_grid,
    rescale_for_image,
    rescale_record,
    to_image_grid,
    to_model_grid,
)
from spheroseg.inference.store import (
    TILES_FORMAT,
    BackgroundWriter,
    FrameAssembler,
    create_tile_store,
    open_tile_store,
    prefetch,
)
from spheroseg.modelcard import read_verified_card
from spheroseg.normalization import normalize_image, series_window
from spheroseg.progress import Progress, progress
from spheroseg.runtime import configure_allocator
from spheroseg.tiling import Stitcher, TilePlan, pad_frame, read_plan, tile_slices
from spheroseg.zarrio import seal_arrays

log = logging.getLogger(__name__)

REFERENCE_TILE_PIXELS = 256 * 256
FITTED_MAX_TILE = 768  # px; a 768^2 tile of UNet(base_width=16) peaks at about 0.5 GB (fp32)
DEFAULT_HALO = 32  # px; the halo of a card without a tile suggestion
CHECK_TILE = 64  # px; side of the blank tile the model is checked on before freezing
AUTO_BATCH = {"cpu": 4, "cuda": 32}



def image_layout(axes: str, shape: tuple[int, ...]) -> tuple[int, int, tuple[int, int]]:
    """(frames, channels, (Y, X)) of an image with NGFF `axes` and `shape`.

    Examples
    --------
    >>> image_layout("tcyx", (5, 2, 30, 40))
    (5, 2, (30, 40))
    """
    sizes = dict(zip(axes, shape))
    return sizes.get("t", 1), sizes.get("c", 1), (sizes["y"], sizes["x"])


def plan_for_image(
    image: str | os.PathLike[str], model_path: str | os.PathLike[str], *,
    tile_size: int | None = None, overlap: float | None = None, rescale: str = "auto",
) -> TilePlan:
    """Tile plan for an NGFF image and a model; tiles are never smaller than the card's
    ``tile.min_size`` (imported bioimage.io models).

    With neither `tile_size` nor `overlap`, the tiles are fitted to the image
    (`spheroseg.tiling.fit_tiles`): the fewest tiles of at most the card's ``tile.max_size``
    (else 768 px, which keeps one tile's activations of the default-sized U-Net within about
    half a GB) that give every pixel the card's ``tile.halo`` of context (else 32 px).
    Otherwise fixed tiles: `tile_size` (else the card's ``tile.size``, else 256) with
    `overlap` (else twice the card's halo over the tile size, else 0.25).

    With ``rescale="auto"`` and an image whose pixel size differs from the model card's, the
    plan is made for the frames resampled to the model's pixel size (its ``source_shape``
    is the image's frame shape; see :mod:`spheroseg.inference.rescale`); ``"off"`` plans
    for the image as it is.

    Raises
    ------
    ValueError
        If the image or the model card is invalid, or the sizes or `rescale` are.
    """
    from spheroseg import ngff
    from spheroseg.tiling import fit_tiles, plan_tiles

    check_rescale(rescale)
    card = read_verified_card(model_path)
    meta = ngff.read_metadata(image)
    frames, _, _ = image_layout(meta.axes, meta.shape)
    grid = rescale_for_image(meta, card, rescale=rescale, image=image)
    suggested = card.get("tile") or {}  # checked with the card (modelcard.TILE_MINIMA)
    min_tile = suggested.get("min_size") or 1
    halo = suggested.get("halo")
    if tile_size is None and overlap is None:
        return plan_on_grid(fit_tiles(grid.model_shape, frames=frames,
                                      max_tile=suggested.get("max_size") or FITTED_MAX_TILE,
                                      halo=DEFAULT_HALO if halo is None else halo,
                                      divisor=card["spatial_divisor"], min_tile=min_tile), grid)
    if tile_size is None:
        tile_size = suggested.get("size") or 256
    if overlap is None:
        overlap = 2 * halo / tile_size if halo is not None and 2 * halo < tile_size else 0.25
    return plan_on_grid(plan_tiles(grid.model_shape, frames=frames, tile_size=tile_size,
                                   overlap=overlap, divisor=card["spatial_divisor"],
                                   min_tile=min_tile), grid)


def _check_plan(plan: TilePlan, meta: Any, card: dict[str, Any], *, image: Path, model: Path) -> None:
    """Raise ValueError if the plan does not fit the image or the model's divisor."""
    frames, _, image_shape = image_layout(meta.axes, meta.shape)
    if (plan.frames, plan.source_grid) != (frames, image_shape):
        raise ValueError(
            f"plan must match the image ({frames} frames of {image_shape}), got {plan.frames} "
            f"frames of {plan.source_grid} (in {image})"
        )
    divisor = card["spatial_divisor"]
    if any(side % divisor for side in plan.tile_shape):
        raise ValueError(
            f"tile sides must be multiples of the model's spatial_divisor {divisor}, got "
            f"{plan.tile_shape} (in {model})"
        )


def _raw_frames(array: Any, frames: int, channels: list[int]) -> Iterator[np.ndarray]:
    """The raw frames of the image, (C, Y, X) each."""
    from spheroseg.ngff import read_frame

    for t in range(frames):
        yield np.stack([read_frame(array, t, channel=channel) for channel in channels])


def _read_frames(
    array: Any, plan: TilePlan, *, channels: list[int], normalization: dict[str, Any],
    window: dict[str, Any] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (t, normalised frame padded for the plan) of shape (C, Y', X')."""
    for t, frame in enumerate(_raw_frames(array, plan.frames, channels)):
        normalized = normalize_image(frame, normalization, window=window)
        yield t, pad_frame(to_model_grid(normalized, plan), plan)


def _tile_batches(
    frames: Iterable[tuple[int, np.ndarray]], plan: TilePlan, batch_size: int
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """Group the tiles of successive frames into batches of (keys (t, tile), array (N, C, H, W))."""
    keys: list[tuple[int, int]] = []
    batch = np.empty(0, dtype=np.float32)
    for t, padded in frames:
        for index in range(len(plan.origins)):
            if not keys:
                batch = np.empty((batch_size, padded.shape[0], *plan.tile_shape), dtype=np.float32)
            batch[len(keys)] = padded[(slice(None), *tile_slices(plan, index))]
            keys.append((t, index))
            if len(keys) == batch_size:
                yield keys, batch
                keys = []
    if keys:
        yield keys, batch[: len(keys)]


def _auto_batch_size(plan: TilePlan, device: Any) -> int:
    """Starting batch size: a fixed pixel budget per device type."""
    pixels = plan.tile_shape[0] * plan.tile_shape[1]
    return max(1, round(AUTO_BATCH.get(device.type, 4) * REFERENCE_TILE_PIXELS / pixels))


def _run_plan(runner: TileModel, array: Any, plan: TilePlan, store: Any, *, channels: list[int],
              normalization: dict[str, Any], window: dict[str, Any] | None = None) -> None:
    """Stream frames through the model: read ahead, compute, write behind."""
    writer = BackgroundWriter()
    assembler = FrameAssembler(store, plan, writer)
    bar = Progress(plan.frames * len(plan.origins), description="tiles", unit="tile",
                   pixels_per_item=plan.tile_shape[0] * plan.tile_shape[1])
    frames = prefetch(_read_frames(array, plan, channels=channels, normalization=normalization,
                                   window=window))
    try:
        for keys, batch in _tile_batches(frames, plan, runner.batch_size):
            assembler.add(keys, runner(batch))
            bar.update(len(keys))
    finally:
        bar.close()
        frames.close()
        writer.close()


def predict_tiles(
    image: str | os.PathLike[str], plan_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str], output: str | os.PathLike[str], *, channel: int = 0,
    device: str = "auto", precision: str = "auto", batch_size: int | None = None,
    channels_last: bool = True,
) -> dict[str, Any]:
    """Predict foreground probabilities for every tile of a plan and store them.

    Parameters
    ----------
    image : str or PathLike
        NGFF image (axes ``t``, ``c``, ``y``, ``x``; ``z`` is max-projected).
    plan_path : str or PathLike
        Tile plan from `plan_for_image` / ``spheroseg tile``.
    model_path : str or PathLike
        TorchScript model with its card beside it.
    output : str or PathLike
        Tile store to create (Zarr v3 array of shape (T, tiles, H, W), float16
        probabilities), written atomically.
    channel : int
        Image channel for a one-channel model.
    device : {"auto", "cuda", "cpu"}
    precision : {"auto", "bf16", "fp16", "fp32"}
        ``auto`` uses reduced precision where the device supports it and falls back to
        float32 if it moves a probability of the model's fixed test tiles by more than 0.02
        (`spheroseg.inference.precision`): the same decision for every image.
    batch_size : int, optional
        Tiles per batch; by default about 4 (CPU) or 32 (CUDA) 256-px tiles' worth.
    channels_last : bool
        Run convolutions on NHWC-strided tensors.

    Returns
    -------
    dict
        What ran: device, precision and how it was decided (``precision_decision``),
        batch size, tiles, the normalisation window of a ``"scope": "series"`` card
        (``normalization_window``, computed over all frames first; None: per frame),
        seconds; also stored as the tile store's ``spheroseg`` attribute.

    Raises
    ------
    ModelCardError
        If the model or its card is missing or invalid, or they disagree.
    ValueError
        If the model does not load or disagrees with the data, or the plan does not fit.
    """
    from spheroseg import ngff

    configure_allocator()
    start = time.perf_counter()
    image, model_path = Path(image), Path(model_path)
    plan = read_plan(plan_path)
    meta = ngff.read_metadata(image)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    runner, card, channels, decision = _load_runner(
        model_path, plan, meta, image=image, channel=channel, device=device,
        precision=precision, batch_size=batch_size, channels_last=channels_last)
    normalization, frames = card["input"]["normalization"], ngff.open_frames(image)
    window = (series_window(_raw_frames(frames, plan.frames, channels), normalization)
              if normalization.get("scope") == "series" else None)
    with atomic_path(output, directory=True) as tmp:
        store = create_tile_store(tmp, plan)
        _run_plan(runner, frames, plan, store, channels=channels, normalization=normalization,
                  window=window)
        summary = {
            "format": TILES_FORMAT, "device": str(runner.device),
            "precision": precision_name(runner.precision), "precision_decision": decision,
            "batch_size": runner.batch_size, "channels": channels, "tiles": plan.frames * len(plan.origins),
            "model": {"file": model_path.name, "sha256": card["sha256"], "name": card.get("name")},
            "image": {"pixel_size_um": meta.pixel_size_um, "time_interval_s": meta.time_interval_s,
                      "name": meta.name},
            "rescale": rescale_record(plan, image_pixel_size_um=meta.pixel_size_um,
                                      model_pixel_size_um=card["input"].get("pixel_size_um")),
            "normalization_window": window,
            "seconds": round(time.perf_counter() - start, 3),
        }
        store.attrs["spheroseg"] = summary
        seal_arrays(tmp)
    log.info("predicted %d tiles on %s (%s) in %.1f s", summary["tiles"], summary["device"],
             summary["precision"], summary["seconds"])
    return summary


def _load_runner(model_path: Path, plan: TilePlan, meta: Any, *, image: Path, channel: int,
                 device: str, precision: str, batch_size: int | None,
                 channels_last: bool) -> tuple[TileModel, dict[str, Any], list[int], dict[str, Any]]:
    """Load, check and freeze the model; settle its precision (see `decide_precision`)."""
    from spheroseg.modelcard import card_path_for
    from spheroseg.tiling import round_up

    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    module, card = load_model(model_path, device=torch_device)
    _check_plan(plan, meta, card, image=image, model=model_path)
    _, image_channels, _ = image_layout(meta.axes, meta.shape)
    channels = select_channels(card, image_channels, channel, path=str(card_path_for(model_path)), image=str(image))
    divisor = card["spatial_divisor"]
    # The check before freezing needs only the channels and the output shape: a small tile
    # does (a 752-px one costs half a second of a 4-frame job).
    check_shape = tuple(min(side, round_up(CHECK_TILE, divisor)) for side in plan.tile_shape)
    module = prepare_model(module, channels=len(channels), tile_shape=check_shape,
                           device=torch_device, channels_last=channels_last)
    runner = TileModel(module, output_kind=card["output"]["kind"], device=torch_device,
                       precision=dtype, batch_size=batch_size or _auto_batch_size(plan, torch_device),
                       channels_last=channels_last)
    decision = decide_precision(runner, card, requested=precision, channels=len(channels),
                                divisor=divisor)
    return runner, card, channels, decision


def stitch_tiles(
    plan_path: str | os.PathLike[str], tiles_path: str | os.PathLike[str],
    output: str | os.PathLike[str], *, window: str = "gaussian", dtype: str = "float16",
) -> None:
    """Blend a tile store into a probabilities OME-Zarr (axes ``tyx``), one frame at a time.

    Parameters
    ----------
    plan_path : str or PathLike
        The tile plan the store was predicted with.
    tiles_path : str or PathLike
        Tile store from `predict_tiles`.
    output : str or PathLike
        Probabilities image to create atomically; pixel size and frame interval are the
        input image's.
    window : {"cosine", "gaussian", "flat"}
    dtype : {"float16", "float32"}

    Raises
    ------
    ValueError
        If the store does not match the plan, or an option is unknown.
    """
    from spheroseg import ngff
    from spheroseg.tiling import WINDOW_KINDS

    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    if window not in WINDOW_KINDS:
        raise ValueError(f"window must be one of {WINDOW_KINDS}, got {window!r}")
    plan = read_plan(plan_path)
    store, info = open_tile_store(Path(tiles_path), plan)
    stitcher = Stitcher(plan, window)
    image = info.get("image", {})
    with atomic_path(output, directory=True) as tmp:
        target = ngff.create_image(
            tmp, shape=(plan.frames, *plan.source_grid), dtype=dtype, axes="tyx",
            pixel_size_um=image.get("pixel_size_um"), time_interval_s=image.get("time_interval_s"),
            name=image.get("name"),
        )
        # Provenance: how the probabilities were predicted (model, device, precision decision)
        # and whether frames were resampled to the model's pixel size.
        ngff.update_attributes(tmp, {"spheroseg": {"predict": info,
                                                   "rescale": info.get("rescale")}})
        writer = BackgroundWriter()
        frames = prefetch((t, store[t]) for t in range(plan.frames))
        try:
            for t, tiles in progress(frames, total=plan.frames, description="frames", unit="frame",
                                     pixels_per_item=plan.image_shape[0] * plan.image_shape[1]):
                blended = np.clip(to_image_grid(stitcher.stitch(tiles), plan), 0.0, 1.0).astype(dtype)
                writer.submit(ngff.write_frame, target, t, blended)
        finally:
            frames.close()
            writer.close()
        seal_arrays(tmp)
