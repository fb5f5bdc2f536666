"""Our model card as a bioimage.io model description (format 0.5): pure mapping, no I/O.

The card says how to feed the network; a bioimage.io description says the same in the
zoo's words. The mapping, one line each:

=====================================  =========================================================
card                                   bioimage.io 0.5
=====================================  =========================================================
``input.normalization`` percentile     preprocessing ``scale_range`` over channel, y, x jointly
``input.normalization`` zscore         preprocessing ``zero_mean_unit_variance`` over c, y, x
``input.normalization`` none           no preprocessing
``output.kind`` logits                 postprocessing ``sigmoid``
``output.kind`` probabilities          no postprocessing, output data range [0, 1]
``spatial_divisor``                    input y/x size ``step`` (``min``: the smallest multiple
                                       of the step that leaves one pixel inside the halo)
``tile.halo``                          output y/x ``halo``
``input.pixel_size_um``                y/x axis ``scale`` in micrometers
(tiles padded by reflection)           input ``pad: reflect``
=====================================  =========================================================

A normalisation kind without a line here is refused (`DescriptionError`), never guessed.
The zoo's ``scale_range`` divides by ``(p_high - p_low + eps)`` with the smallest ``eps`` the
spec allows (1e-6); spheroseg divides by ``(p_high - p_low)``: a relative difference of
``1e-6 / (p_high - p_low)``, below float32 resolution for camera data.
"""

from __future__ import annotations

from typing import Any

from spheroseg.tiling import round_up

INPUT_ID = "raw"
OUTPUT_ID = "probability"
EPS = 1e-6
SPATIAL_AXES = ("y", "x")


class DescriptionError(ValueError):
    """A model card that a bioimage.io description cannot express faithfully."""


def preprocessing_for(normalization: dict[str, Any], *, source: str) -> list[dict[str, Any]]:
    """bioimage.io preprocessing steps equal to a card's normalisation.

    Raises
    ------
    DescriptionError
        If the normalisation kind has no bioimage.io equivalent.

    Examples
    --------
    >>> preprocessing_for({"kind": "percentile", "low": 1.0, "high": 99.8}, source="m.json")[0]["id"]
    'scale_range'
    """
    kind = normalization.get("kind")
    joint = ["channel", *SPATIAL_AXES]
    if normalization.get("scope") == "series":
        raise DescriptionError(
            f"input.normalization.scope must be 'image' to be described for bioimage.io, got "
            f"'series': the zoo's steps normalise each input tensor alone, not with its time "
            f"series' window (in {source})")
    if kind == "percentile":
        return [{"id": "scale_range", "kwargs": {
            "axes": joint, "min_percentile": float(normalization["low"]),
            "max_percentile": float(normalization["high"]), "eps": EPS}}]
    if kind == "zscore":
        return [{"id": "zero_mean_unit_variance", "kwargs": {"axes": joint, "eps": EPS}}]
    if kind == "none":
        return []
    raise DescriptionError(
        f"input.normalization.kind must be one of ('percentile', 'zscore', 'none') to be "
        f"described for bioimage.io, got {kind!r}: the zoo has no preprocessing step that "
        f"computes it, and a package must not promise another normalisation (in {source})"
    )


def postprocessing_for(output_kind: str) -> list[dict[str, Any]]:
    """``[sigmoid]`` for logits, nothing for probabilities."""
    return [{"id": "sigmoid"}] if output_kind == "logits" else []


def minimum_size(divisor: int, halo: int) -> int:
    """Smallest input side: a multiple of `divisor` that leaves one pixel inside the halo.

    Examples
    --------
    >>> minimum_size(8, 32)
    72
    """
    return round_up(2 * halo + 1, divisor)


def _space_axes(*, pixel_size_um: float | None, size: Any, halo: int | None) -> list[dict[str, Any]]:
    """The y and x axis entries (with physical scale where the card knows it)."""
    axes = []
    for name in SPATIAL_AXES:
        axis: dict[str, Any] = {"type": "space", "id": name, "size": size(name)}
        if pixel_size_um is not None:
            axis.update(unit="micrometer", scale=float(pixel_size_um))
        if halo:
            axis["halo"] = halo
        axes.append(axis)
    return axes


def tensor_descriptions(card: dict[str, Any], *, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The input and output tensor entries of the description (test tensors left out).

    Returns
    -------
    (input, output) : tuple of dict
    """
    divisor = card["spatial_divisor"]
    tile = card.get("tile") if isinstance(card.get("tile"), dict) else {}
    halo = int(tile.get("halo") or 0)
    pixel = card["input"].get("pixel_size_um")
    channels = card["input"]["channels"]
    size = {"min": minimum_size(divisor, halo), "step": divisor}
    inputs = {
        "id": INPUT_ID,
        "description": "raw frame, one time point; normalised by the preprocessing",
        "axes": [{"type": "batch"},
                 {"type": "channel", "channel_names": [f"channel{i}" for i in range(channels)]},
                 *_space_axes(pixel_size_um=pixel, size=lambda name: size, halo=None)],
        "data": {"type": "float32"},
        "pad": {"mode": "reflect"},
        "preprocessing": preprocessing_for(card["input"]["normalization"], source=source),
    }
    outputs = {
        "id": OUTPUT_ID,
        "description": "foreground probability",
        "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["foreground"]},
                 *_space_axes(pixel_size_um=pixel, halo=halo,
                              size=lambda name: {"tensor_id": INPUT_ID, "axis_id": name})],
        "data": {"type": "float32", "range": [0.0, 1.0]},
        "postprocessing": postprocessing_for(card["output"]["kind"]),
    }
    return inputs, outputs
