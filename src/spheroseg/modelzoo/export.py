"""``spheroseg export-bioimageio``: a model with its card as a bioimage.io model package.

The package (format 0.5, a zip) holds the TorchScript file unchanged, the card, test input
and output tensors (.npy) computed with spheroseg's own normalisation, a cover image and a
README with the card's validation figures and training data. It is validated with
``bioimageio.spec`` and, unless told otherwise, tested with ``bioimageio.core``
(`test_model`) before it is written; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spheroseg import __version__
from spheroseg.atomic import atomic_path
from spheroseg.modelcard import card_path_for, read_verified_card
from spheroseg.modelzoo._spec import require
from spheroseg.modelzoo.describe import tensor_descriptions
from spheroseg.modelzoo.readme import documentation, training_data_citation, training_data_digest
from spheroseg.modelzoo.sample import cover_image, predict_probabilities, sample_input

TAGS = ["spheroseg", "spheroids", "gastruloids", "organoids", "semantic-segmentation", "2d",
        "pytorch", "torchscript"]
AUTHOR = "spheroseg project"
DOI = re.compile(r"^10\.\d{4,9}/\S+$")


def package_name(card: dict[str, Any], model_path: Path) -> str:
    """A bioimage.io model name (letters, digits, ``_+- ()``) from the card's name.

    Examples
    --------
    >>> package_name({"name": "unet.3f2a"}, Path("x.pt"))
    'spheroseg unet-3f2a'
    """
    raw = str(card.get("name") or model_path.stem)
    return "spheroseg " + re.sub(r"[^A-Za-z0-9_+\- ()]", "-", raw)[:100]


def cite_entries(cite: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """bioimage.io ``cite`` entries from (text, DOI) pairs.

    Only DOIs: bioimageio.spec checks a URL by fetching it, and spheroseg stays offline.

    Raises
    ------
    ValueError
        If a reference is not a DOI.

    Examples
    --------
    >>> cite_entries([("Data set", "10.5281/zenodo.1")])
    [{'text': 'Data set', 'doi': '10.5281/zenodo.1'}]
    """
    for text, ref in cite:
        if not DOI.match(ref):
            raise ValueError(f"cite reference must be a DOI such as 10.5281/zenodo.1234 (URLs would be "
                             f"checked online), got {ref!r} (for {text!r})")
    return [{"text": text, "doi": ref} for text, ref in cite]


def _pytorch_version(card: dict[str, Any]) -> str:
    """The torch version the card records (training), else the running one, without a local tag."""
    import torch

    version = str((card.get("versions") or {}).get("torch") or torch.__version__)
    return version.split("+")[0]


def package_rdf(card: dict[str, Any], *, model_path: Path, license_id: str,
                cite: list[dict[str, str]], files: dict[str, str]) -> dict[str, Any]:
    """The rdf.yaml content of the package (file entries are names inside the package)."""
    spec = require("bioimageio.spec.model.v0_5")
    inputs, outputs = tensor_descriptions(card, source=str(card_path_for(model_path)))
    inputs["test_tensor"] = {"source": files["test_input"]}
    outputs["test_tensor"] = {"source": files["test_output"]}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    return {
        "type": "model", "format_version": spec.ModelDescr.implemented_format_version,
        "name": package_name(card, model_path),
        "description": "Foreground probability of spheroids, gastruloids and organoids in 2-D "
                       f"microscopy frames (spheroseg model {card.get('name') or model_path.stem!r}).",
        "authors": [{"name": AUTHOR}], "license": license_id,
        "tags": TAGS + (["unet"] if (card.get("architecture") or {}).get("kind") == "unet" else []),
        "cite": cite, "documentation": {"source": files["readme"]},
        "covers": [{"source": files["cover"]}],
        "attachments": [{"source": files["card"]}],
        "inputs": [inputs], "outputs": [outputs],
        "weights": {"torchscript": {"source": files["weights"], "pytorch_version": _pytorch_version(card)}},
        "config": {"spheroseg": {
            "card_sha256": card["sha256"], "exported_with": __version__,
            "training_data": training_data_citation(card),
            "training_files_sha256": training_data_digest(training)}},
    }


def _write_files(staging: Path, card: dict[str, Any], model_path: Path, *, test_input: np.ndarray,
                 test_output: np.ndarray, minimum: int, license_id: str,
                 cite: list[dict[str, str]]) -> dict[str, Any]:
    """Write the package's files and its rdf.yaml into the private folder `staging`; return the rdf."""
    import imageio.v3 as iio

    files = {"weights": model_path.name, "card": card_path_for(model_path).name,
             "test_input": "test_input.npy", "test_output": "test_output.npy",
             "cover": "cover.png", "readme": "README.md"}
    shutil.copyfile(model_path, staging / files["weights"])
    shutil.copyfile(card_path_for(model_path), staging / files["card"])
    np.save(staging / files["test_input"], test_input)
    np.save(staging / files["test_output"], test_output)
    iio.imwrite(staging / files["cover"], cover_image(test_input[0, 0], test_output[0, 0]))
    (staging / files["readme"]).write_text(
        documentation(card, model_name=package_name(card, model_path), minimum=minimum), encoding="utf-8")
    rdf = package_rdf(card, model_path=model_path, license_id=license_id, cite=cite, files=files)
    (staging / "rdf.yaml").write_text(json.dumps(rdf, indent=2), encoding="utf-8")
    return rdf


def _validated(rdf_path: Path) -> Any:
    """Load the description from `rdf_path` with every check (files, hashes, test tensors).

    Raises
    ------
    ValueError
        If bioimage.io validation fails; the message lists the errors.
    """
    io = require("bioimageio.spec")
    try:
        return io.load_model_description(rdf_path, perform_io_checks=True, format_version="latest")
    except ValueError as err:
        reason = " ".join(str(err).split())
        raise ValueError(f"package description must pass bioimage.io validation, got: {reason} "
                         f"(in {rdf_path})") from err


def run_test_model(package: str | os.PathLike[str]) -> dict[str, Any]:
    """Run ``bioimageio.core.test_model`` on a package (CPU); return its status and details.

    Returns
    -------
    dict
        ``status`` ("passed" or "failed") and ``failures``: one line per failed check.
    """
    core = require("bioimageio.core")
    summary = core.test_model(Path(package), devices=["cpu"])
    failures = [f"{detail.name}: {'; '.join(str(e.msg) for e in detail.errors)}"
                for detail in summary.details if detail.status == "failed"]
    return {"status": summary.status, "failures": failures}


def export_bioimageio(
    model_path: str | os.PathLike[str], output: str | os.PathLike[str], *,
    sample: str | os.PathLike[str] | None = None, license_id: str = "MIT",
    cite: Sequence[tuple[str, str]] = (), test: bool = True,
) -> dict[str, Any]:
    """Write a bioimage.io model package (format 0.5, zip) for a TorchScript model with its card.

    Parameters
    ----------
    model_path : str or PathLike
        TorchScript file; its card must lie beside it and match its SHA-256.
    output : str or PathLike
        The ``.zip`` to write (atomically).
    sample : str or PathLike, optional
        TIFF (Y, X) or (C, Y, X), or NGFF image, whose first frame becomes the test input
        (centre crop, at most 512 px a side); by default a synthetic spheroid frame.
    license_id : str
        SPDX licence identifier of the weights (the project's own is MIT).
    cite : sequence of (text, DOI)
        Citations, e.g. of the training data when it has a DOI.
    test : bool
        Run ``bioimageio.core.test_model`` on the package before writing it.

    Returns
    -------
    dict
        ``output``, ``format_version``, ``test`` (status and failures, or None).

    Raises
    ------
    ModelCardError
        If the model or its card is missing, invalid, or they disagree.
    DescriptionError
        If the card's normalisation has no bioimage.io equivalent.
    ValueError
        If the output is not a .zip, the sample does not suit the model, validation fails
        or the package test fails (no package is written then).
    RuntimeError
        If the ``bioimageio`` extra is not installed.
    """
    import torch

    from spheroseg.inference.model import load_model

    model_path, output = Path(model_path), Path(output)
    if output.suffix != ".zip":
        raise ValueError(f"output must be a .zip file, got {str(output)!r}")
    citations = cite_entries(cite)
    card = read_verified_card(model_path)
    inputs, _ = tensor_descriptions(card, source=str(card_path_for(model_path)))
    require("bioimageio.spec")
    module, card = load_model(model_path, device=torch.device("cpu"))
    minimum = inputs["axes"][2]["size"]["min"]
    test_input = sample_input(card, minimum=minimum, sample=sample)
    test_output = predict_probabilities(module, card, test_input)
    # Staged in a private folder; the zip appears under its name only once validated and tested.
    with atomic_path(output) as target, tempfile.TemporaryDirectory(prefix="spheroseg-bioimageio-") as folder:
        staging = Path(folder) / "package"
        staging.mkdir()
        rdf = _write_files(staging, card, model_path, test_input=test_input, test_output=test_output,
                           minimum=minimum, license_id=license_id, cite=citations)
        descr = _validated(staging / "rdf.yaml")
        packed = Path(folder) / "package.zip"
        require("bioimageio.spec").save_bioimageio_package(descr, output_path=packed)
        result = run_test_model(packed) if test else None
        if result is not None and result["status"] != "passed":
            raise ValueError(f"package must pass bioimageio.core test_model, got {result['status']}: "
                             f"{' | '.join(result['failures'])} (for {model_path})")
        shutil.copyfile(packed, target)
    return {"output": str(output), "format_version": rdf["format_version"], "test": result}
