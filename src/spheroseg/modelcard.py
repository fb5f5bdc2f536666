"""Model cards: the JSON file beside a TorchScript model that says how to feed it.

A card looks like::

    {
      "format": "spheroseg-model-card/1",
      "name": "default",
      "model_file": "default.pt",
      "sha256": "<hex digest of default.pt>",
      "input": {"channels": 1, "normalization": {"kind": "percentile", "low": 1, "high": 99.8},
                "pixel_size_um": 1.0},
      "output": {"kind": "logits", "channels": 1},
      "spatial_divisor": 8,
      "tile": {"size": 256, "halo": 32},
      "architecture": {"kind": "unet", "depth": 3, "base_width": 16},
      "training": {...}, "metrics": {...}, "versions": {...}
    }

Only ``format``, ``sha256``, ``input``, ``output`` and ``spatial_divisor`` are required;
``training``, ``metrics``, ``versions`` and ``architecture`` are provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from spheroseg.atomic import write_text
from spheroseg.normalization import validate_normalization

CARD_FORMAT = "spheroseg-model-card/1"
OUTPUT_KINDS = ("logits", "probabilities")


class ModelCardError(ValueError):
    """A model card is missing, unreadable, invalid, or disagrees with its model file."""


def card_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Return the card path beside a model file (``x.pt`` -> ``x.json``)."""
    return Path(model_path).with_suffix(".json")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require(card: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    """Return card[key] if present and of the right type, else raise ModelCardError."""
    if key not in card:
        raise ModelCardError(f"model card must have a {key!r} entry (in {path})")
    value = card[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelCardError(f"{key} must be {kind}, got {value!r} (in {path})")
    return value


def validate_card(card: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate a parsed model card and return it with normalisation defaults filled in.

    Parameters
    ----------
    card : dict
        Parsed JSON.
    path : str or PathLike
        Where the card came from, for messages.

    Returns
    -------
    dict
        The validated card.

    Raises
    ------
    ModelCardError
        If a required entry is missing or has a bad value.
    """
    path = Path(path)
    if not isinstance(card, dict):
        raise ModelCardError(f"model card must be a JSON object, got {type(card).__name__} (in {path})")
    if card.get("format") != CARD_FORMAT:
        raise ModelCardError(f"format must be {CARD_FORMAT!r}, got {card.get('format')!r} (in {path})")
    _require(card, "sha256", str, path)
    divisor = _require(card, "spatial_divisor", int, path)
    if divisor < 1:
        raise ModelCardError(f"spatial_divisor must be >= 1, got {divisor!r} (in {path})")
    spec_in = _require(card, "input", dict, path)
    channels = _require(spec_in, "channels", int, path)
    if channels < 1:
        raise ModelCardError(f"input.channels must be >= 1, got {channels!r} (in {path})")
    try:
        spec_in["normalization"] = validate_normalization(spec_in.get("normalization"), source=str(path))
    except (TypeError, ValueError) as err:
        raise ModelCardError(str(err)) from err
    spec_out = _require(card, "output", dict, path)
    if spec_out.get("kind") not in OUTPUT_KINDS:
        raise ModelCardError(
            f"output.kind must be one of {OUTPUT_KINDS}, got {spec_out.get('kind')!r} (in {path})"
        )
    _check_tile(card.get("tile"), path)
    return card


#: Optional ``tile`` entries of a card and their least value.
TILE_MINIMA = {"size": 1, "min_size": 1, "max_size": 1, "halo": 0}


def _check_tile(tile: Any, path: Path) -> None:
    """Raise ModelCardError if the card's optional ``tile`` block has a bad entry."""
    if tile is None:
        return
    if not isinstance(tile, dict):
        raise ModelCardError(f"tile must be a JSON object, got {tile!r} (in {path})")
    for key, least in TILE_MINIMA.items():
        value = tile.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise ModelCardError(f"tile.{key} must be an integer >= {least}, got {value!r} (in {path})")


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a model card.

    Raises
    ------
    ModelCardError
        If the file is missing, is not JSON, or is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ModelCardError(f"model card not found: {path} (every model needs its JSON card beside it)") from err
    except OSError as err:
        raise ModelCardError(f"could not read model card {path}: {err}") from err
    try:
        card = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelCardError(f"model card is not valid JSON: {err} (in {path})") from err
    return validate_card(card, path)


def read_verified_card(model_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the card beside `model_path` and check the model file's SHA-256 against it.

    Raises
    ------
    ModelCardError
        If the model file is missing, the card is invalid, or the digest differs (the
        model was modified after its card was written).
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelCardError(f"model file not found: {model_path}")
    card = read_card(card_path_for(model_path))
    actual = sha256_file(model_path)
    if actual != card["sha256"]:
        raise ModelCardError(
            f"model file {model_path} does not match its card: SHA-256 is {actual}, the card "
            f"says {card['sha256']} (the model was changed after the card was written; refusing it)"
        )
    return card


def write_card(card: dict[str, Any], model_path: str | os.PathLike[str]) -> Path:
    """Fill in ``sha256`` and ``model_file`` from `model_path`, validate, and write the card beside it."""
    model_path = Path(model_path)
    card = dict(card, format=CARD_FORMAT, model_file=model_path.name, sha256=sha256_file(model_path))
    validate_card(card, card_path_for(model_path))
    target = card_path_for(model_path)
    write_text(target, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return target
