"""The package's documentation (README.md): what the model does, how to feed it, its
validation figures and training data, all taken from the model card."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from spheroseg import __version__


def _flat_numbers(values: Any, prefix: str = "") -> list[tuple[str, float]]:
    """(dotted name, number) for every number in a nested mapping, in key order."""
    if isinstance(values, bool):
        return []
    if isinstance(values, (int, float)):
        return [(prefix, float(values))]
    if isinstance(values, dict):
        return [item for key in sorted(values) for item in _flat_numbers(values[key], f"{prefix}.{key}".strip("."))]
    return []


def metrics_table(card: dict[str, Any]) -> str:
    """Markdown table of the card's ``metrics`` (every number, nested names dotted).

    Examples
    --------
    >>> print(metrics_table({"metrics": {"val_iou": 0.9, "val_dice": 0.95}}))
    | metric | value |
    | --- | --- |
    | val_dice | 0.95 |
    | val_iou | 0.9 |
    """
    rows = _flat_numbers(card.get("metrics") or {})
    if not rows:
        return "The model card records no validation figures."
    return "\n".join(["| metric | value |", "| --- | --- |", *(f"| {name} | {value:.4g} |" for name, value in rows)])


def training_data_digest(training: dict[str, Any]) -> str | None:
    """SHA-256 over the card's list of training files (path and digest each), or None."""
    files = training.get("files")
    if not isinstance(files, list) or not files:
        return None
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def training_data_citation(card: dict[str, Any]) -> str:
    """One paragraph naming the training data as the card records it."""
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    source = training.get("annotations")
    if isinstance(source, list):  # several sources, each {"annotations": ..., "pixel_size_um": ...}
        source = "; ".join(str(item.get("annotations") if isinstance(item, dict) else item) for item in source)
    if not source:
        return "The model card does not record its training data."
    text = f"Annotations: `{source}`"
    files = training.get("files") if isinstance(training.get("files"), list) else []
    if files:
        text += (f"; {len(files)} image and mask files, SHA-256 of their list "
                 f"(path and SHA-256 of each, as JSON) `{training_data_digest(training)}`")
    counts = [f"{len(training[key])} {label}" for key, label in (("train_names", "training"),
              ("val_names", "validation")) if isinstance(training.get(key), list)]
    return text + (f" ({' and '.join(counts)} pairs)." if counts else ".")


def _training_lines(card: dict[str, Any]) -> list[str]:
    """Bullet lines of the training run's facts that the card records."""
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    facts = [("epochs run", training.get("epochs_run")), ("best epoch", training.get("best_epoch")),
             ("stopped because", training.get("stop_reason")),
             ("training time (s)", training.get("training_time_s")),
             ("initialised from", training.get("init"))]
    return [f"- {name}: {value}" for name, value in facts if value is not None]


def documentation(card: dict[str, Any], *, model_name: str, minimum: int) -> str:
    """The README.md text of the package."""
    norm = card["input"]["normalization"]
    architecture = card.get("architecture") or {}
    versions = card.get("versions") or {}
    lines = [
        f"# {model_name}", "",
        "Foreground probability of spheroids, gastruloids and organoids in 2-D microscopy frames, "
        f"from the spheroseg workflow (model file `{card.get('model_file', '?')}`, SHA-256 `{card['sha256']}`).", "",
        "## Input and output", "",
        f"- input `raw`: (batch, {card['input']['channels']} channel(s), y, x) float32 raw intensities; "
        f"y and x multiples of {card['spatial_divisor']}, at least {minimum}",
        f"- normalisation: `{json.dumps(norm, sort_keys=True)}` over channel, y and x of one frame "
        "(bioimage.io preprocessing in rdf.yaml)",
        f"- output `probability`: (batch, 1, y, x) foreground probability; the network gives "
        f"{card['output']['kind']}" + (", hence the sigmoid postprocessing" if card["output"]["kind"] == "logits" else ""),
        f"- pixel size the model was trained at: {card['input'].get('pixel_size_um') or 'not recorded'} um",
        f"- suggested tile: {json.dumps(card.get('tile'))}; the halo is the output border to discard", "",
        "## Validation figures (from the model card)", "", metrics_table(card), "",
        "## Training data", "", training_data_citation(card), "", *_training_lines(card), "",
        "## Provenance", "",
        f"- architecture: `{json.dumps(architecture, sort_keys=True)}`",
        f"- versions at training: `{json.dumps(versions, sort_keys=True)}`",
        f"- exported by spheroseg {__version__} (`spheroseg export-bioimageio`); the test output was "
        "computed with spheroseg's own normalisation and the TorchScript file in float32", "",
        "## Limitations", "",
        "Authors are given as the spheroseg project: the card does not name people. Check the "
        "licence terms of the training data before reuse. Judge the model on your own images "
        "before trusting its measurements.",
    ]
    return "\n".join(lines) + "\n"
