"""A bioimage.io model description (format 0.5, as parsed by ``bioimageio.spec``) read into
our model-card contract, or refused with the reason.

What is honoured: one input (batch, channel, y, x) and one output (batch, 1 channel, y, x)
of the same size and scale; TorchScript weights; preprocessing that is one of spheroseg's
normalisations (``scale_range`` -> percentile, ``zero_mean_unit_variance`` -> z-score,
nothing -> none) pooled over the whole frame; postprocessing ``sigmoid`` (logits) or
nothing (an output whose data range is [0, 1]); y/x sizes ``min + n * step`` with ``min``
a multiple of ``step``. Everything else is refused, never approximated: pickled
``pytorch_state_dict`` weights (unpickling can run code), fixed or data-dependent sizes,
3-D or time axes, per-channel or reference-tensor normalisation, clipping, binarising, ...
"""

from __future__ import annotations

from typing import Any

from spheroseg.tiling import round_up

MAX_EPS = 1e-6
DEFAULT_TILE = 256
UNIT_TO_UM = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "angstrom": 1e-4}
FLOAT_TYPES = ("float32", "float64", "float16")


class PackageError(ValueError):
    """A bioimage.io package that spheroseg cannot run safely or correctly (the reason says why)."""


def _refuse(what: str, got: Any, source: str) -> PackageError:
    """A PackageError in the house form ``"{what}, got {got!r} (in {source})"``."""
    return PackageError(f"{what}, got {got!r} (in {source})")


def check_weights(descr: Any, *, source: str) -> Any:
    """The TorchScript weights entry; refuse pickled state dicts and other formats.

    Raises
    ------
    PackageError
        If the package has no TorchScript weights.
    """
    weights = descr.weights
    if weights.torchscript is not None:
        return weights.torchscript
    present = [name for name in ("pytorch_state_dict", "onnx", "keras_hdf5", "keras_v3", "tensorflow_js",
                                 "tensorflow_saved_model_bundle") if getattr(weights, name, None) is not None]
    if "pytorch_state_dict" in present:
        raise _refuse("weights must include torchscript; pytorch_state_dict weights are pickled "
                      "and unpickling them can run arbitrary code, so spheroseg never loads them "
                      "(convert the model to TorchScript where you trust it)", present, source)
    raise _refuse("weights must include torchscript (the only format spheroseg runs)", present, source)


def _axis_kinds(tensor: Any) -> list[tuple[str, str]]:
    """(type, id) of each axis of a tensor description."""
    return [(str(axis.type), str(axis.id)) for axis in tensor.axes]


def _check_layout(tensor: Any, *, role: str, source: str) -> None:
    """Raise unless the axes are batch, channel, y, x in this order (2-D, one time point)."""
    expected = [("batch", "batch"), ("channel", "channel"), ("space", "y"), ("space", "x")]
    kinds = _axis_kinds(tensor)
    if [kind for kind, _ in kinds] != [kind for kind, _ in expected] or [i for _, i in kinds[2:]] != ["y", "x"]:
        raise _refuse(f"{role} axes must be (batch, channel, y, x): a 2-D model of NCHW tensors "
                      "(no z, time or index axes)", [axis_id for _, axis_id in kinds], source)


def input_size(tensor: Any, *, source: str) -> tuple[int, int]:
    """(min, step) of the y/x size of the input.

    Raises
    ------
    PackageError
        If the sizes are fixed, referenced, differ between y and x, or ``min`` is not a
        multiple of ``step`` (spheroseg tiles are multiples of one divisor).
    """
    sizes = {(getattr(axis.size, "min", None), getattr(axis.size, "step", None)) for axis in tensor.axes[2:]}
    minimum, step = sizes.pop() if len(sizes) == 1 else (None, None)
    if minimum is None or step is None:
        found = [axis.size if isinstance(axis.size, int) else type(axis.size).__name__ for axis in tensor.axes[2:]]
        raise _refuse("input y and x sizes must both be the same parameterized size (min, step): "
                      "spheroseg chooses the tile size", found, source)
    if minimum % step:
        raise _refuse(f"input size min must be a multiple of its step {step} (spheroseg tiles are "
                      "multiples of one divisor)", minimum, source)
    return int(minimum), int(step)


def pixel_size_um(tensor: Any) -> float | None:
    """The y/x scale in micrometers, or None when the unit is missing or y and x differ."""
    scales = {(getattr(axis, "unit", None), float(axis.scale)) for axis in tensor.axes[2:]}
    if len(scales) != 1:
        return None
    ((unit, scale),) = scales
    factor = UNIT_TO_UM.get(str(unit)) if unit is not None else None
    return None if factor is None else scale * factor


def _steps(processing: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(id, kwargs as a dict) of each processing step."""
    result = []
    for step in processing:
        kwargs = getattr(step, "kwargs", None)
        values = kwargs.model_dump(mode="json") if hasattr(kwargs, "model_dump") else dict(kwargs or {})
        result.append((str(step.id), values))
    return result


def _final_dtype(steps: list[tuple[str, dict[str, Any]]], data_type: str) -> str:
    """The data type after the last ``ensure_dtype`` step (the tensor's own type without one)."""
    casts = [kwargs.get("dtype") for name, kwargs in steps if name == "ensure_dtype"]
    return str(casts[-1]) if casts else data_type


def _data_type(tensor: Any) -> str:
    """The tensor's data type (of its first channel where it lists one per channel)."""
    data = tensor.data[0] if isinstance(tensor.data, (list, tuple)) else tensor.data
    return str(data.type)


def _check_pooled(name: str, kwargs: dict[str, Any], *, tensor_id: str, channels: int, source: str) -> None:
    """Raise unless a normalisation step pools channel, y and x of one frame as spheroseg does."""
    pooled = [None, {"channel", "y", "x"}, {"batch", "channel", "y", "x"}]
    if channels == 1:
        pooled += [{"y", "x"}, {"batch", "y", "x"}]
    axes = kwargs.get("axes")
    if (set(axes) if axes is not None else None) not in pooled:
        raise _refuse(f"preprocessing {name} axes must pool channel, y and x of a frame jointly "
                      "(spheroseg normalises each frame as a whole, not per channel)", axes, source)
    if kwargs.get("reference_tensor") not in (None, tensor_id):
        raise _refuse(f"preprocessing {name} reference_tensor must be the input itself",
                      kwargs.get("reference_tensor"), source)
    if float(kwargs.get("eps", 0.0)) > MAX_EPS:
        raise _refuse(f"preprocessing {name} eps must be <= {MAX_EPS} (spheroseg normalises without "
                      "an eps; a larger one would change the model's input)", kwargs.get("eps"), source)


def normalization_from(tensor: Any, *, channels: int, source: str) -> dict[str, Any]:
    """Our normalisation spec equal to the input's preprocessing.

    A leading ``ensure_dtype`` (the cast of the raw data to the described type) does not
    change the values spheroseg normalises; later casts must be to float32, the type the
    model receives.

    Raises
    ------
    PackageError
        If the preprocessing is not one of spheroseg's normalisations.
    """
    steps = _steps(tensor.preprocessing)
    final = _final_dtype(steps, _data_type(tensor))
    if final != "float32":
        raise _refuse("the model must receive float32 after preprocessing (spheroseg feeds "
                      "float32 frames)", final, source)
    later = steps[1:] if steps and steps[0][0] == "ensure_dtype" else steps
    rest = [(name, kwargs) for name, kwargs in later if name != "ensure_dtype"]
    if any(name == "ensure_dtype" and kwargs.get("dtype") != "float32" for name, kwargs in later):
        raise _refuse("preprocessing casts after the first step must be to float32",
                      [name for name, _ in steps], source)
    if not rest:
        return {"kind": "none"}
    (name, kwargs), *others = rest
    if others or name not in ("scale_range", "zero_mean_unit_variance"):
        raise _refuse("preprocessing must be at most one of scale_range (percentile) or "
                      "zero_mean_unit_variance (z-score), spheroseg's normalisations; clipping, "
                      "fixed scaling and other steps are not applied by spheroseg",
                      [name for name, _ in rest], source)
    _check_pooled(name, kwargs, tensor_id=str(tensor.id), channels=channels, source=source)
    if name == "zero_mean_unit_variance":
        return {"kind": "zscore"}
    return {"kind": "percentile", "low": float(kwargs.get("min_percentile", 0.0)),
            "high": float(kwargs.get("max_percentile", 100.0))}


def output_kind(tensor: Any, *, source: str) -> str:
    """``logits`` for a sigmoid postprocessing, ``probabilities`` for none on a [0, 1] output.

    Raises
    ------
    PackageError
        For other postprocessing, a non-float output, or raw scores of unknown range.
    """
    steps = _steps(tensor.postprocessing)
    final = _final_dtype(steps, _data_type(tensor))
    if final not in FLOAT_TYPES:
        raise _refuse("the output must be a float probability map", final, source)
    rest = [name for name, _ in steps if name != "ensure_dtype"]
    if rest == ["sigmoid"]:
        return "logits"
    if rest:
        raise _refuse("postprocessing must be sigmoid or nothing (spheroseg thresholds a "
                      "foreground probability itself)", rest, source)
    data = tensor.data[0] if isinstance(tensor.data, (list, tuple)) else tensor.data
    low, high = getattr(data, "range", (None, None))
    if low is None or high is None or low < 0 or high > 1:
        raise _refuse("an output without sigmoid postprocessing must declare its data range "
                      "within [0, 1] (probabilities); raw scores cannot be thresholded", (low, high), source)
    return "probabilities"


def output_halo(output: Any, inputs: Any, *, source: str) -> int:
    """The output's y/x halo (the larger of the two); checks it is one channel of the input's size.

    Raises
    ------
    PackageError
        If the output is not (batch, 1 channel, y, x) at the input's size and scale.
    """
    _check_layout(output, role="output", source=source)
    names = list(output.axes[1].channel_names)
    if len(names) != 1:
        raise _refuse("output must have exactly one channel (foreground)", names, source)
    halos = []
    for axis, reference in zip(output.axes[2:], inputs.axes[2:]):
        size = axis.size
        target = (str(getattr(size, "tensor_id", "")), str(getattr(size, "axis_id", "")), getattr(size, "offset", None))
        if target != (str(inputs.id), str(axis.id), 0) or float(axis.scale) != float(reference.scale):
            raise _refuse(f"output axis {axis.id} must have the size and scale of input axis "
                          f"{axis.id} (spheroseg stitches same-size tiles)", size, source)
        halos.append(int(getattr(axis, "halo", 0) or 0))
    return max(halos)


def provenance(descr: Any) -> dict[str, Any]:
    """Where the model came from, as the package says (for the card)."""
    cite = [{key: str(value) for key, value in (("text", c.text), ("doi", c.doi), ("url", c.url)) if value}
            for c in descr.cite]
    return {"name": str(descr.name), "id": None if descr.id is None else str(descr.id),
            "version": None if descr.version is None else str(descr.version),
            "license": None if descr.license is None else str(descr.license),
            "authors": [str(author.name) for author in descr.authors], "cite": cite,
            "input_data_type": _data_type(descr.inputs[0])}


def card_from_description(descr: Any, *, name: str, source: str) -> dict[str, Any]:
    """Our model card (without ``sha256``/``model_file``) for a bioimage.io model description.

    Parameters
    ----------
    descr : bioimageio.spec.model.v0_5.ModelDescr
    name : str
        The card's name.
    source : str
        The package, for messages.

    Raises
    ------
    PackageError
        If the model cannot be run by spheroseg safely and exactly as described.
    """
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise _refuse("model must have one input and one output", (len(descr.inputs), len(descr.outputs)), source)
    check_weights(descr, source=source)
    inputs, output = descr.inputs[0], descr.outputs[0]
    _check_layout(inputs, role="input", source=source)
    channels = len(inputs.axes[1].channel_names)
    minimum, step = input_size(inputs, source=source)
    halo = output_halo(output, inputs, source=source)
    return {
        "name": name,
        "input": {"channels": channels, "pixel_size_um": pixel_size_um(inputs),
                  "normalization": normalization_from(inputs, channels=channels, source=source)},
        "output": {"kind": output_kind(output, source=source), "channels": 1},
        "spatial_divisor": step,
        "tile": {"size": max(round_up(DEFAULT_TILE, step), minimum, round_up(4 * halo + 1, step)),
                 "halo": halo, "min_size": minimum},
        "bioimageio": provenance(descr),
    }
