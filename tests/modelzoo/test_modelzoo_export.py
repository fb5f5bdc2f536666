"""``spheroseg export-bioimageio``: a valid, tested bioimage.io package, offline."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml

from zoo_helpers import REPO, write_tiny_model
from spheroseg.cli import main
from spheroseg.modelcard import ModelCardError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def read_rdf(package):
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml")), set(archive.namelist())


def test_unet_package_passes_bioimageio_core_test_model(unet_package, bioimageio_core):
    # The export already ran test_model; run it again here on the written zip, independently.
    summary = bioimageio_core.test_model(unet_package, devices=["cpu"])
    assert summary.status == "passed", summary.format()
    rdf, names = read_rdf(unet_package)
    assert {"rdf.yaml", "default.pt", "default.json", "test_input.npy", "test_output.npy", "cover.png",
            "README.md"} <= names
    assert rdf["format_version"].startswith("0.5")


def test_package_maps_the_card_onto_the_spec(unet_package, unet_model):
    import json

    card = json.loads(unet_model.with_suffix(".json").read_text())
    rdf, _ = read_rdf(unet_package)
    inputs, outputs = rdf["inputs"][0], rdf["outputs"][0]
    steps = [step for step in inputs["preprocessing"] if step["id"] != "ensure_dtype"]
    assert steps[0]["id"] == "scale_range"
    assert (steps[0]["kwargs"]["min_percentile"], steps[0]["kwargs"]["max_percentile"]) == (
        card["input"]["normalization"]["low"], card["input"]["normalization"]["high"])
    assert [step["id"] for step in outputs["postprocessing"]] == ["sigmoid", "ensure_dtype"]
    assert inputs["axes"][2]["size"]["step"] == card["spatial_divisor"]
    assert outputs["axes"][2]["halo"] == card["tile"]["halo"]
    assert inputs["axes"][3]["scale"] == card["input"]["pixel_size_um"]
    assert rdf["weights"]["torchscript"]["sha256"] == card["sha256"]


def test_readme_carries_the_card_figures_and_training_data(unet_package, unet_model):
    import json

    card = json.loads(unet_model.with_suffix(".json").read_text())
    with zipfile.ZipFile(unet_package) as archive:
        readme = archive.read("README.md").decode()
    for name, value in card["metrics"].items():
        if isinstance(value, float):
            assert f"| {name} | {value:.4g} |" in readme
    assert card["training"]["annotations"] in readme


def test_test_output_is_our_predict_path_on_the_test_input(unet_package, unet_model):
    import torch

    from spheroseg.inference.model import load_model
    from spheroseg.normalization import normalize_image

    with zipfile.ZipFile(unet_package) as archive:
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
    module, card = load_model(unet_model, device=torch.device("cpu"))
    normalized = normalize_image(test_input[0], card["input"]["normalization"])
    with torch.inference_mode():
        expected = torch.sigmoid(module(torch.from_numpy(normalized[None]))).numpy()
    assert test_input.dtype == np.float32 and test_input.shape[:2] == (1, 1)
    np.testing.assert_allclose(test_output, expected, atol=1e-6)


def test_export_goes_nowhere_online(tmp_path, offline, bioimageio_core):
    model = write_tiny_model(tmp_path / "model")
    from spheroseg.modelzoo.export import export_bioimageio

    summary = export_bioimageio(model, tmp_path / "tiny.zip", cite=[("Disks", "10.5281/zenodo.1234")])
    assert summary["test"]["status"] == "passed"
    assert offline == []


@pytest.mark.parametrize("kind", ["zscore", "none"], ids=["zscore", "none"])
def test_other_normalisations_and_probability_outputs_pass_test_model(tmp_path, kind, bioimageio_core):
    from spheroseg.modelzoo.export import export_bioimageio

    model = write_tiny_model(tmp_path / "model", normalization={"kind": kind}, output_kind="probabilities")
    summary = export_bioimageio(model, tmp_path / "tiny.zip")
    assert summary["test"]["status"] == "passed", summary
    rdf, _ = read_rdf(tmp_path / "tiny.zip")
    assert [step["id"] for step in rdf["outputs"][0]["postprocessing"]] == ["ensure_dtype"]


def test_a_sample_image_becomes_the_test_input(tmp_path, bioimageio_core):
    import tifffile

    from zoo_helpers import synthetic_frames
    from spheroseg.modelzoo.export import export_bioimageio

    model = write_tiny_model(tmp_path / "model")
    tifffile.imwrite(tmp_path / "sample.tif", synthetic_frames((1, 101, 90))[0])
    export_bioimageio(model, tmp_path / "tiny.zip", sample=tmp_path / "sample.tif", test=False)
    with zipfile.ZipFile(tmp_path / "tiny.zip") as archive:
        test_input = np.load(archive.open("test_input.npy"))
    assert test_input.shape == (1, 1, 96, 88)  # centre crop to multiples of the divisor 8


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"output": "x.tar"}, ValueError, r"output must be a .zip file, got '.*x.tar'"),
    ({"cite": [("Data", "https://example.org")]}, ValueError, r"cite reference must be a DOI"),
    ({"sample": "small"}, ValueError, r"sample must be at least 24 x 24 pixels for this model, got 20 x 20"),
    ({"tamper": True}, ModelCardError, r"does not match its card"),
], ids=["not-zip", "url-citation", "small-sample", "tampered-model"])
def test_bad_export_requests_fail_before_writing(tmp_path, change, error, message, bioimageio_core):
    import tifffile

    from spheroseg.modelzoo.export import export_bioimageio

    model = write_tiny_model(tmp_path / "model")
    output = tmp_path / change.get("output", "tiny.zip")
    options = {"cite": change.get("cite", ())}
    if "sample" in change:
        tifffile.imwrite(tmp_path / "small.tif", np.zeros((20, 20), np.uint16))
        options["sample"] = tmp_path / "small.tif"
    if change.get("tamper"):
        model.write_bytes(model.read_bytes() + b"x")
    with pytest.raises(error, match=message):
        export_bioimageio(model, output, **options)
    assert not output.exists() and list(tmp_path.glob("*.tmp-*")) == []


def test_an_unexpressible_card_is_refused_with_its_reason(tmp_path, monkeypatch):
    # A normalisation kind that other parts of spheroseg may add (e.g. "robust"): refused,
    # not described as some other zoo step.
    import spheroseg.modelzoo.export as export

    model = write_tiny_model(tmp_path / "model")
    card = export.read_verified_card(model)
    card["input"]["normalization"] = {"kind": "robust"}
    monkeypatch.setattr(export, "read_verified_card", lambda path: card)
    with pytest.raises(ValueError, match=r"normalization.kind must be one of .*got 'robust'"):
        export.export_bioimageio(model, tmp_path / "tiny.zip")


def test_the_shipped_default_is_refused_for_its_robust_normalisation(tmp_path):
    # models/default.pt normalises with `robust` (polarity, block-mean top): the zoo has no such step.
    import json

    from spheroseg.modelzoo.export import export_bioimageio

    assert json.loads((REPO / "models/default.json").read_text())["input"]["normalization"]["kind"] == "robust"
    with pytest.raises(ValueError, match=r"normalization.kind must be one of .*got 'robust'"):
        export_bioimageio(REPO / "models/default.pt", tmp_path / "default.zip")
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_and_reports_errors_in_one_line(tmp_path, capsys, bioimageio_core):
    model = write_tiny_model(tmp_path / "model")
    assert main(["export-bioimageio", str(model), str(tmp_path / "tiny.zip"), "--no-test",
                 "--cite", "Disks", "10.5281/zenodo.1234", "--license", "CC-BY-4.0"]) == 0
    rdf, _ = read_rdf(tmp_path / "tiny.zip")
    assert rdf["license"] == "CC-BY-4.0" and rdf["cite"] == [{"text": "Disks", "doi": "10.5281/zenodo.1234"}]
    assert main(["export-bioimageio", str(tmp_path / "missing.pt"), str(tmp_path / "x.zip")]) == 1
    assert "model file not found" in capsys.readouterr().err
