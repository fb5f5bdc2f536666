"""``spheroseg import-bioimageio``: a package read into our card contract and run through
tile -> predict -> stitch with the same probabilities as the TorchScript path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo_helpers import synthetic_frames, unpacked, write_tiny_model
from spheroseg.cli import main
from spheroseg.modelcard import read_verified_card, sha256_file

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def probabilities(model, image, folder, tile_size=None):
    """Stitched float32 probabilities of an NGFF image through the library's three drivers
    (tiles fitted to the image unless `tile_size` is given)."""
    from spheroseg import ngff
    from spheroseg.inference import plan_for_image, predict_tiles, stitch_tiles
    from spheroseg.tiling import write_plan

    plan = plan_for_image(image, model, tile_size=tile_size)
    write_plan(plan, folder / "tiles.json")
    predict_tiles(image, folder / "tiles.json", model, folder / "tiles.zarr", device="cpu", precision="fp32")
    stitch_tiles(folder / "tiles.json", folder / "tiles.zarr", folder / "probabilities.ome.zarr", dtype="float32")
    return np.asarray(ngff.open_array(folder / "probabilities.ome.zarr")[:]), plan


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """Two odd-sized frames (one channel) as NGFF."""
    from spheroseg import ngff

    path = tmp_path_factory.mktemp("image") / "image.ome.zarr"
    frames = synthetic_frames((2, 173, 301))
    array = ngff.create_image(path, shape=(2, 1, 173, 301), dtype="uint16", axes="tcyx", pixel_size_um=2.0,
                               time_interval_s=None)
    array[:] = frames[:, None]
    return path


def test_own_package_gives_the_torchscript_path_probabilities(unet_package, image, tmp_path, unet_model):
    from spheroseg.modelzoo.importer import import_bioimageio

    card = import_bioimageio(unet_package, tmp_path / "zoo" / "default.pt")
    original = json.loads(unet_model.with_suffix(".json").read_text())
    assert sha256_file(tmp_path / "zoo" / "default.pt") == original["sha256"]  # weights unchanged
    assert card["input"]["normalization"] == original["input"]["normalization"]
    assert (card["output"]["kind"], card["spatial_divisor"], card["tile"]["halo"]) == (
        original["output"]["kind"], original["spatial_divisor"], original["tile"]["halo"])
    assert card["input"]["pixel_size_um"] == original["input"]["pixel_size_um"]
    assert card["bioimageio"]["test"]["max_abs_difference"] <= 1e-5
    ours, plan_ours = probabilities(unet_model, image, tmp_path / "direct")
    theirs, plan_theirs = probabilities(tmp_path / "zoo" / "default.pt", image, tmp_path / "imported")
    assert plan_theirs == plan_ours
    assert float(np.abs(theirs - ours).max()) <= 1e-5


def core_prediction(core, descr, array):
    """bioimage.io.core's prediction of a whole (1, C, Y, X) array, as its test_model runs it
    (no padding by the halo: the normalisation sees exactly the array)."""
    from bioimageio.core.digest_spec import create_sample_for_model

    pipeline = core.create_prediction_pipeline(descr)
    sample = create_sample_for_model(descr, inputs={"raw": array})
    result = pipeline.predict_sample_without_blocking(sample, skip_input_padding=True, skip_output_cropping=True)
    return next(iter(result.members.values())).data.values


def foreign_package(folder, core):
    """A package written by hand (not by our exporter): z-score input, probability output
    without postprocessing, test output computed by bioimageio.core itself."""
    from spheroseg.modelzoo.export import export_bioimageio

    model = write_tiny_model(folder / "model", normalization={"kind": "zscore"}, output_kind="probabilities",
                             divisor=16, halo=8, seed=3)
    export_bioimageio(model, folder / "seed.zip", test=False)

    def edit(rdf):
        rdf["inputs"][0]["preprocessing"] = [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"]}},
                                             {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
        rdf["inputs"][0]["data"] = {"type": "uint16"}
        for axis in rdf["inputs"][0]["axes"][2:]:
            axis["size"] = {"min": 32, "step": 16}
        rdf["outputs"][0]["postprocessing"] = []
        for entry in [rdf["inputs"][0]["test_tensor"], rdf["outputs"][0]["test_tensor"], rdf["weights"]["torchscript"]]:
            entry.pop("sha256", None)
        rdf["name"], rdf["config"] = "hand written", {}

    rdf = unpacked(folder / "seed.zip", folder / "package", edit)
    raw = synthetic_frames((1, 96, 128), seed=5)[None]
    np.save(rdf.parent / "test_input.npy", raw)
    descr = core.load_description(rdf, perform_io_checks=False)
    np.save(rdf.parent / "test_output.npy", core_prediction(core, descr, raw))
    return rdf, raw


def test_foreign_package_reproduces_bioimageio_core_prediction(tmp_path, bioimageio_core):
    from spheroseg import ngff
    from spheroseg.modelzoo.importer import import_bioimageio

    rdf, raw = foreign_package(tmp_path, bioimageio_core)
    card = import_bioimageio(rdf, tmp_path / "imported.pt")
    assert card["input"]["normalization"] == {"kind": "zscore"}
    assert (card["output"]["kind"], card["spatial_divisor"], card["tile"]["min_size"]) == ("probabilities", 16, 32)
    assert card["bioimageio"]["input_data_type"] == "uint16"
    assert card["bioimageio"]["test"]["max_abs_difference"] <= 1e-5
    # Frames whose size the package accepts as a whole, so that bioimageio.core normalises
    # exactly the frame spheroseg normalises; ours go through tiles and a float16 store.
    frames = synthetic_frames((2, 160, 304), seed=7)
    image = tmp_path / "image.ome.zarr"
    ngff.create_image(image, shape=(2, 1, 160, 304), dtype="uint16", axes="tcyx", pixel_size_um=1.5,
                      time_interval_s=None)[:] = frames[:, None]
    # The card's suggested tile size: fitted tiles would take this small frame whole.
    ours, plan = probabilities(tmp_path / "imported.pt", image, tmp_path / "run",
                               tile_size=card["tile"]["size"])
    assert len(plan.origins) > 1  # really tiled
    descr = bioimageio_core.load_description(rdf, perform_io_checks=False)
    for t in range(2):
        theirs = core_prediction(bioimageio_core, descr, frames[t][None, None])[0, 0]
        # The network pads with zeros where spheroseg reflects the frame: compare the interior.
        interior = (slice(4, -4), slice(4, -4))
        assert float(np.abs(ours[t][interior] - theirs[interior]).max()) <= 1e-3


def test_imported_card_is_verified_by_sha256_like_every_model(unet_package, tmp_path):
    from spheroseg.modelzoo.importer import import_bioimageio

    import_bioimageio(unet_package, tmp_path / "m.pt")
    assert read_verified_card(tmp_path / "m.pt")["bioimageio"]["package"]["file"] == "default.zip"
    with open(tmp_path / "m.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match="does not match its card"):
        read_verified_card(tmp_path / "m.pt")


def test_minimum_size_keeps_tiles_large_enough_for_small_images(tmp_path, unet_package, unet_model):
    from spheroseg import ngff
    from spheroseg.inference import plan_for_image
    from spheroseg.modelzoo.importer import import_bioimageio

    def edit(rdf):
        for axis in rdf["inputs"][0]["axes"][2:]:
            axis["size"] = {"min": 128, "step": 8}

    rdf = unpacked(unet_package, tmp_path / "package", edit)
    import_bioimageio(rdf, tmp_path / "m.pt")
    small = tmp_path / "small.ome.zarr"
    ngff.create_image(small, shape=(1, 1, 40, 50), dtype="uint16", axes="tcyx", pixel_size_um=None,
                      time_interval_s=None)
    # y: 40 + 2 x the card's halo 40 = 120 px, raised to the package's min 128; x: 50 + 80 -> 136
    assert plan_for_image(small, tmp_path / "m.pt").tile_shape == (128, 136)
    assert min(plan_for_image(small, unet_model).tile_shape) < 128  # without min_size


def test_cli_imports_checks_and_refuses(tmp_path, unet_package, capsys):
    assert main(["import-bioimageio", str(unet_package)]) == 0
    assert not list(tmp_path.iterdir())
    assert json.loads(capsys.readouterr().out)["spatial_divisor"] == 8
    assert main(["import-bioimageio", str(unet_package), str(tmp_path / "m.pt")]) == 0
    assert (tmp_path / "m.json").is_file()
    assert main(["import-bioimageio", str(tmp_path / "none.zip"), str(tmp_path / "n.pt")]) == 1
    assert "model package not found" in capsys.readouterr().err


RDF_0_4 = """
format_version: 0.4.10
type: model
name: format 0.4 model
description: a description in the older format, as many zoo models still have
authors: [{name: someone}]
cite: [{text: a paper, doi: 10.1000/xyz123}]
license: MIT
documentation: README.md
tags: [unet]
timestamp: "2023-01-01T00:00:00"
test_inputs: [test_input.npy]
test_outputs: [test_output.npy]
inputs:
  - name: input0
    axes: bcyx
    data_type: float32
    data_range: [-.inf, .inf]
    shape: {min: [1, 1, 24, 24], step: [0, 0, 8, 8]}
    preprocessing:
      - name: scale_range
        kwargs: {mode: per_sample, axes: cyx, min_percentile: 1.0, max_percentile: 99.8}
outputs:
  - name: output0
    axes: bcyx
    data_type: float32
    data_range: [0, 1]
    shape: {reference_tensor: input0, scale: [1, 1, 1, 1], offset: [0, 0, 0, 0]}
    halo: [0, 0, 8, 8]
    postprocessing:
      - name: sigmoid
weights:
  torchscript:
    source: tiny.pt
    pytorch_version: "2.4"
"""


def test_format_0_4_package_is_converted_and_imported(tiny_package, tmp_path, offline):
    from spheroseg.modelzoo.importer import import_bioimageio

    rdf = unpacked(tiny_package, tmp_path / "package")
    rdf.write_text(RDF_0_4)
    card = import_bioimageio(rdf, tmp_path / "m.pt")
    assert card["input"]["normalization"] == {"kind": "percentile", "low": 1.0, "high": 99.8}
    assert (card["output"]["kind"], card["spatial_divisor"], card["tile"]["halo"], card["tile"]["min_size"]) == (
        "logits", 8, 8, 24)
    assert card["bioimageio"]["cite"] == [{"text": "a paper", "doi": "10.1000/xyz123"}]
    assert card["bioimageio"]["test"]["max_abs_difference"] <= 1e-5
    assert offline == []
