"""``spheroseg import-bioimageio``: a bioimage.io package as our TorchScript file + model card.

The package (a ``.zip``, or an ``rdf.yaml``/``bioimageio.yaml`` with its files beside it) is
parsed by ``bioimageio.spec`` without network access (older format versions are converted to
0.5), read into our card contract by :mod:`spheroseg.modelzoo.contract` or refused with the
reason, and its TorchScript weights are copied unchanged. The package's own test input is
then run through spheroseg's normalisation and the weights; the result must reproduce the
package's test output within the package's reproducibility tolerance, or nothing is
written. Predict then sees an ordinary model: TorchScript plus a card, verified by SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from spheroseg.atomic import atomic_path
from spheroseg.modelcard import write_card
from spheroseg.modelzoo._spec import require
from spheroseg.modelzoo.contract import PackageError, card_from_description, check_weights
from spheroseg.modelzoo.sample import predict_probabilities

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
DEFAULT_TOLERANCE = {"absolute_tolerance": 1e-3, "relative_tolerance": 1e-3, "mismatched_elements_per_million": 100}


def is_package(path: str | os.PathLike[str]) -> bool:
    """True if `path` names a bioimage.io package (.zip, rdf.yaml or *.bioimageio.yaml).

    Examples
    --------
    >>> is_package("models/unet.zip"), is_package("zoo/rdf.yaml"), is_package("models/default.pt")
    (True, True, False)
    """
    name = Path(path).name.lower()
    return name.endswith(".zip") or name in DESCRIPTION_NAMES or name.endswith(".bioimageio.yaml")


def read_description(package: str | os.PathLike[str]) -> Any:
    """Parse a package's description (format 0.5, converted from older ones), offline.

    Raises
    ------
    PackageError
        If the file is missing, not a package, or not a valid bioimage.io model description.
    RuntimeError
        If the ``bioimageio`` extra is not installed.
    """
    path = Path(package)
    if not is_package(path):
        raise PackageError(f"model package must be a .zip, rdf.yaml or *.bioimageio.yaml, got {str(path)!r}")
    if not path.is_file():
        raise PackageError(f"model package not found: {path}")
    if path.suffix != ".zip":
        _check_yaml(path)
    spec = require("bioimageio.spec")
    try:
        return spec.load_model_description(path, perform_io_checks=False, format_version="latest")
    except (ValueError, OSError) as err:
        reason = " ".join(str(err).split())
        raise PackageError(f"model package must be a valid bioimage.io model description, got: "
                           f"{reason} (in {path})") from err


def _check_yaml(path: Path) -> None:
    """Raise a PackageError naming `path` unless it is UTF-8 YAML (the spec's own parser
    raises errors of its YAML library that say neither)."""
    import yaml

    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())
        raise PackageError(f"model package must be a YAML model description, got a file that does "
                           f"not parse: {reason} (in {path})") from err


def _local_file(file_descr: Any, *, role: str, source: str) -> Any:
    """The package-local path (``zipp.Path`` or ``pathlib.Path``) of a file entry; never a URL."""
    absolute = file_descr.source.absolute() if hasattr(file_descr.source, "absolute") else file_descr.source
    if not hasattr(absolute, "read_bytes") or isinstance(absolute, str):
        raise PackageError(f"{role} must be a file inside the package (spheroseg downloads nothing), "
                           f"got {str(file_descr.source)!r} (in {source})")
    return absolute


def read_package_file(file_descr: Any, *, role: str, source: str) -> bytes:
    """The bytes of a package file, checked against the SHA-256 the description records.

    Raises
    ------
    PackageError
        If the file is remote, missing, or its digest differs.
    """
    path = _local_file(file_descr, role=role, source=source)
    try:
        data = path.read_bytes()
    except (OSError, KeyError) as err:
        raise PackageError(f"{role} must exist in the package, got a missing {str(file_descr.source)!r} "
                           f"(in {source})") from err
    expected = getattr(file_descr, "sha256", None)
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and str(expected) != actual:
        raise PackageError(f"{role} SHA-256 must be {expected} as the description says, got {actual} "
                           f"(in {source})")
    return data


def check_package(package: str | os.PathLike[str], *, name: str | None = None) -> dict[str, Any]:
    """Our card for a package, checked without loading weights (fast: for DAG building).

    Raises
    ------
    PackageError
        If the package cannot be run by spheroseg safely and exactly (the message says why).
    RuntimeError
        If the ``bioimageio`` extra is not installed.
    """
    source = str(package)
    descr = read_description(package)
    card = card_from_description(descr, name=name or Path(package).stem, source=source)
    _local_file(check_weights(descr, source=source), role="weights.torchscript.source", source=source)
    return card


def _tolerance(descr: Any) -> dict[str, float]:
    """The package's reproducibility tolerance for TorchScript weights (the spec's defaults otherwise)."""
    for entry in descr.config.bioimageio.reproducibility_tolerance:
        formats = [str(name) for name in entry.weights_formats]
        if not formats or "torchscript" in formats:
            return {key: float(getattr(entry, key)) for key in DEFAULT_TOLERANCE}
    return dict(DEFAULT_TOLERANCE)


def _load_array(descr_file: Any, *, role: str, source: str) -> np.ndarray:
    """A package's .npy test tensor (never unpickled)."""
    data = read_package_file(descr_file, role=role, source=source)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
        raise PackageError(f"{role} must be a .npy array without pickled objects, got: {err} (in {source})") from err


def verify_test_tensors(module: Any, card: dict[str, Any], descr: Any, *, source: str) -> dict[str, Any]:
    """Run the package's test input through our normalisation and the weights; compare with
    its test output.

    Returns
    -------
    dict
        ``max_abs_difference``, ``mismatched_elements`` and the tolerance used; ``{"skipped": reason}``
        where the package has no test tensors.

    Raises
    ------
    PackageError
        If the outputs differ beyond the package's tolerance: spheroseg would not run the
        model as its authors do.
    """
    inputs, output = descr.inputs[0].test_tensor, descr.outputs[0].test_tensor
    if inputs is None or output is None:
        return {"skipped": "the package has no test tensors"}
    test_input = _load_array(inputs, role="inputs[0].test_tensor", source=source)
    expected = _load_array(output, role="outputs[0].test_tensor", source=source).astype(np.float64)
    ours = predict_probabilities(module, card, test_input).astype(np.float64)
    if ours.shape != expected.shape:
        raise PackageError(f"model output for the test input must have the test output's shape "
                           f"{expected.shape}, got {ours.shape} (in {source})")
    tolerance = _tolerance(descr)
    difference = np.abs(ours - expected)
    beyond = int(np.count_nonzero(difference > tolerance["absolute_tolerance"]
                                  + tolerance["relative_tolerance"] * np.abs(expected)))
    result = {"max_abs_difference": float(difference.max()), "mismatched_elements": beyond, **tolerance}
    if beyond > tolerance["mismatched_elements_per_million"] * expected.size / 1e6:
        raise PackageError(
            f"spheroseg's run of the package's test input must match its test output within the "
            f"package's tolerance, got {beyond} of {expected.size} values beyond it (max |difference| "
            f"{result['max_abs_difference']:.3g}); the description does not say how the model was "
            f"fed (in {source})")
    return result


def _load_torchscript(data: bytes, *, source: str) -> Any:
    """Load TorchScript weights from bytes on the CPU (``torch.jit.load``: no pickled code runs)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError, EOFError, KeyError) as err:
            raise PackageError(f"weights.torchscript must be a TorchScript archive, got one that "
                               f"does not load: {str(err).strip().splitlines()[-1]} (in {source})") from err


def import_bioimageio(package: str | os.PathLike[str], output: str | os.PathLike[str]) -> dict[str, Any]:
    """Write a package's TorchScript weights to `output` (``.pt``) and our card beside it.

    Parameters
    ----------
    package : str or PathLike
        ``.zip`` package, or ``rdf.yaml`` / ``*.bioimageio.yaml`` with its files beside it.
    output : str or PathLike
        TorchScript file to write; the card goes beside it (``.json``), both atomically.

    Returns
    -------
    dict
        The card written.

    Raises
    ------
    PackageError
        If the package cannot be run safely and exactly (pickled weights, unsupported
        processing or axes, ...) or its test tensors are not reproduced; nothing is written.
    ValueError
        If `output` is not a ``.pt`` file.
    RuntimeError
        If the ``bioimageio`` extra is not installed.
    """
    output, source = Path(output), str(package)
    if output.suffix != ".pt":
        raise ValueError(f"output must be a .pt file, got {str(output)!r}")
    descr = read_description(package)
    card = card_from_description(descr, name=output.stem, source=source)
    weights = read_package_file(check_weights(descr, source=source), role="weights.torchscript.source", source=source)
    module = _load_torchscript(weights, source=source)
    card["bioimageio"]["test"] = verify_test_tensors(module, card, descr, source=source)
    card["bioimageio"]["package"] = {"file": Path(package).name,
                                     "sha256": hashlib.sha256(Path(package).read_bytes()).hexdigest()}
    with atomic_path(output) as tmp:
        tmp.write_bytes(weights)
    write_card(card, output)
    return card
