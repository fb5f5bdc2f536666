"""Tiled inference through the CLI: tile -> predict -> stitch, model and option errors, plans."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from spheroseg import ngff
from spheroseg.cli import main
from spheroseg.inference import load_model
from spheroseg.modelcard import write_card
from spheroseg.normalization import normalize_image
from spheroseg.unet import UNet

PERCENTILE = {"kind": "percentile", "low": 1.0, "high": 99.8}


class PointwiseLogits(torch.nn.Module):
    """A fixed pointwise function of the input, as logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(3.0 * x) - 0.5 * x


class PointwiseProbabilities(torch.nn.Module):
    """A fixed pointwise function of the input, already in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.1 + 0.8 * torch.sigmoid(4.0 * x - 2.0)


class TwoChannelOutput(torch.nn.Module):
    """Returns two output channels where the contract wants one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1)


def save_model(module: torch.nn.Module, path: Path, *, kind: str = "logits", channels: int = 1,
               divisor: int = 8, normalization: dict | None = None, tile: dict | None = None) -> Path:
    """Script `module`, save it with a card beside it, return the model path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(module.eval()).save(str(path))
    card = {"name": path.stem,
            "input": {"channels": channels, "normalization": normalization or PERCENTILE},
            "output": {"kind": kind, "channels": 1}, "spatial_divisor": divisor}
    if tile is not None:
        card["tile"] = tile
    write_card(card, path)
    return path


def save_image(path: Path, data: np.ndarray, axes: str = "tcyx") -> Path:
    """Write `data` as an NGFF image with known pixel size and frame interval."""
    array = ngff.create_image(path, shape=data.shape, dtype=data.dtype, axes=axes,
                              pixel_size_um=0.65, time_interval_s=60.0)
    array[...] = data
    return path


def textured_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint16 image with smooth structure plus noise (so tile borders matter)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    base = 1000 + 400 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    return (base + rng.normal(0, 80, shape)).clip(0, 65535).astype(np.uint16)


def run_cli(*argv: object) -> int:
    return main([str(arg) for arg in argv])


def run_chain(tmp_path: Path, image: Path, model: Path, *, tile: int, overlap: float,
              predict: tuple = (), stitch: tuple = ()) -> Path:
    """tile -> predict -> stitch through the CLI; return the probabilities path."""
    plan, tiles, probabilities = tmp_path / "tiles.json", tmp_path / "tiles.zarr", tmp_path / "p.ome.zarr"
    assert run_cli("tile", "--image", image, "--model", model, "--tile-size", tile,
                   "--overlap", overlap, "--output", plan) == 0
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model,
                   "--output", tiles, *predict) == 0
    assert run_cli("stitch", "--plan", plan, "--tiles", tiles, "--output", probabilities, *stitch) == 0
    return probabilities


@pytest.mark.parametrize(
    ("tile", "overlap", "kind", "stitch"),
    [(128, 0.25, "logits", ()), (200, 0.1, "probabilities", ("--dtype", "float32")),
     (96, 0.45, "logits", ("--window", "cosine")), (2048, 0.0, "probabilities", ("--window", "flat"))],
    ids=["128-quarter", "200-tenth-float32", "96-large-overlap-cosine", "one-tile-flat"],
)
def test_pointwise_model_is_reproduced_through_tile_predict_stitch(tmp_path, tile, overlap, kind, stitch):
    data = textured_image((2, 2, 517, 1031))
    image = save_image(tmp_path / "image.ome.zarr", data)
    module = PointwiseLogits() if kind == "logits" else PointwiseProbabilities()
    model = save_model(module, tmp_path / "model.pt", kind=kind)
    probabilities = run_chain(tmp_path, image, model, tile=tile, overlap=overlap,
                              predict=("--channel", "1"), stitch=stitch)
    meta = ngff.read_metadata(probabilities)
    assert meta.axes == "tyx" and meta.shape == (2, 517, 1031)
    assert (meta.pixel_size_um, meta.time_interval_s) == (0.65, 60.0)
    result = ngff.open_array(probabilities)
    for t in range(2):
        with torch.no_grad():
            expected = module(torch.from_numpy(normalize_image(data[t, 1], PERCENTILE)))
        if kind == "logits":
            expected = torch.sigmoid(expected)
        np.testing.assert_allclose(np.asarray(result[t], dtype=np.float32), expected.numpy(), atol=1e-3)


def test_series_scope_normalises_every_frame_with_the_series_window(tmp_path):
    """A time series whose second frame is twice as bright: with ``"scope": "series"`` both frames
    use one window (the series' top), so a raw intensity gives one model input in both."""
    data = textured_image((2, 1, 96, 120))
    data[1] = data[1] * 2
    image = save_image(tmp_path / "image.ome.zarr", data)
    series = {"kind": "percentile", "low": 0.0, "high": 100.0, "scope": "series"}
    module = PointwiseProbabilities()
    model = save_model(module, tmp_path / "model.pt", kind="probabilities", normalization=series)
    probabilities = run_chain(tmp_path, image, model, tile=64, overlap=0.25)
    low, top = float(data.min()), float(data.max())
    result = ngff.open_array(probabilities)
    for t in range(2):
        with torch.no_grad():
            expected = module(torch.from_numpy(((data[t, 0] - low) / (top - low)).astype(np.float32)))
        np.testing.assert_allclose(np.asarray(result[t], dtype=np.float32), expected.numpy(), atol=1e-3)
    summary = json.loads((tmp_path / "tiles.zarr" / "zarr.json").read_text())["attributes"]["spheroseg"]
    assert summary["normalization_window"] == {"low": low, "top": top, "negate": False}


def calibrated_unet(seed: int = 0) -> torch.nn.Module:
    """A random U-Net whose batch-norm statistics are fitted to a textured image, in eval mode.

    Plain random init gives a near-constant output (nothing to see at seams); fitting the
    BN statistics makes every layer respond, so the output varies strongly with context.
    """
    torch.manual_seed(seed)
    net = UNet(depth=3, base_width=4)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    sample = normalize_image(textured_image((256, 256), seed=seed + 1), PERCENTILE)
    with torch.no_grad():
        net.train()(torch.from_numpy(sample)[None, None])
        net.head.weight.mul_(4.0)
    return net.eval()


def test_stitched_unet_matches_whole_frame_prediction_beyond_the_halo(tmp_path):
    data = textured_image((1, 1, 288, 360), seed=3)
    image = save_image(tmp_path / "image.ome.zarr", data)
    net = calibrated_unet()
    model = save_model(net, tmp_path / "unet.pt")
    probabilities = run_chain(tmp_path, image, model, tile=256, overlap=0.4)
    halo = json.loads((tmp_path / "tiles.json").read_text())["halo"]
    assert json.loads((tmp_path / "tiles.json").read_text())["origins"].__len__() > 1
    with torch.no_grad():
        frame = torch.from_numpy(normalize_image(data[0, 0], PERCENTILE))[None, None]
        whole = torch.sigmoid(net(frame))[0, 0].numpy()
    stitched = np.asarray(ngff.open_array(probabilities)[0], dtype=np.float32)
    assert whole.std() > 0.1, "the test network must respond to its input"
    difference = np.abs(stitched - whole)[halo:-halo, halo:-halo]
    assert difference.max() <= 0.02


def test_mixed_precision_records_what_ran(tmp_path):
    image = save_image(tmp_path / "image.ome.zarr", textured_image((1, 1, 64, 64)))
    model = save_model(calibrated_unet(), tmp_path / "unet.pt")
    # --device cpu: with auto the test would depend on the machine (found on an H200)
    run_chain(tmp_path, image, model, tile=64, overlap=0.25, predict=("--device", "cpu", "--precision", "fp32"))
    import zarr

    info = zarr.open_array(store=str(tmp_path / "tiles.zarr"), mode="r").attrs["spheroseg"]
    assert info["precision"] == "fp32" and info["device"] == "cpu"
    assert info["model"]["sha256"] == json.loads(model.with_suffix(".json").read_text())["sha256"]


def test_auto_precision_is_one_decision_for_images_of_different_sizes(tmp_path):
    model = save_model(calibrated_unet(), tmp_path / "unet.pt")
    decisions = []
    for name, shape in (("small", (1, 1, 64, 96)), ("large", (2, 1, 200, 328))):
        folder = tmp_path / name
        folder.mkdir()
        image = save_image(folder / "image.ome.zarr", textured_image(shape, seed=len(name)))
        plan, tiles, probabilities = folder / "t.json", folder / "t.zarr", folder / "p.ome.zarr"
        assert run_cli("tile", "--image", image, "--model", model, "--output", plan) == 0
        assert run_cli("predict", "--image", image, "--plan", plan, "--model", model,
                       "--precision", "auto", "--output", tiles) == 0
        assert run_cli("stitch", "--plan", plan, "--tiles", tiles, "--output", probabilities) == 0
        provenance = ngff.read_attributes(probabilities)["spheroseg"]["predict"]
        assert provenance["precision"] == provenance["precision_decision"]["precision"]
        assert provenance["model"]["sha256"] == json.loads(model.with_suffix(".json").read_text())["sha256"]
        decisions.append(provenance["precision_decision"])
    assert decisions[0] == decisions[1]
    assert decisions[0]["requested"] == "auto"
    if decisions[0]["candidate"] != "fp32":  # reduced precision available: it was checked
        assert "synthetic test tiles" in decisions[0]["checked_on"]


# --- bad input: one clear line, exit status 1, no output --------------------------------


@pytest.fixture
def chain_inputs(tmp_path):
    image = save_image(tmp_path / "image.ome.zarr", textured_image((1, 48, 40)), axes="tyx")
    model = save_model(PointwiseLogits(), tmp_path / "model.pt")
    plan = tmp_path / "tiles.json"
    assert run_cli("tile", "--image", image, "--model", model, "--tile-size", 32,
                   "--overlap", 0.25, "--output", plan) == 0
    return image, model, plan


@pytest.mark.parametrize(("store", "verb"), [("tiles.zarr", "stitch"), ("p.ome.zarr/0", "segment")],
                         ids=["tile-store", "probabilities"])
def test_a_chunk_file_missing_from_a_finished_store_stops_the_next_stage(tmp_path, capsys, store, verb):
    image = save_image(tmp_path / "image.ome.zarr", textured_image((2, 48, 40)), axes="tyx")
    model = save_model(PointwiseLogits(), tmp_path / "model.pt")
    run_chain(tmp_path, image, model, tile=32, overlap=0.25)
    next(path for path in sorted((tmp_path / store).iterdir()) if path.name.startswith("c")).unlink()
    command = (["stitch", "--plan", tmp_path / "tiles.json", "--tiles", tmp_path / "tiles.zarr", "--output",
                tmp_path / "again.ome.zarr"] if verb == "stitch" else
               ["segment", "--probabilities", tmp_path / "p.ome.zarr", "--image", image])
    capsys.readouterr()
    assert run_cli(*command) == 1
    assert "chunk files it was written with" in capsys.readouterr().err
    assert not (tmp_path / "again.ome.zarr").exists() and not (image / "labels" / "segmentation").exists()


def _corrupt_model(model: Path) -> Path:
    model.write_bytes(b"not a torchscript archive")
    card = json.loads(model.with_suffix(".json").read_text())
    write_card({key: card[key] for key in ("input", "output", "spatial_divisor")}, model)
    return model


def _wrong_channels(model: Path) -> Path:
    card = json.loads(model.with_suffix(".json").read_text())
    card["input"]["channels"] = 2
    write_card(card, model)
    return model


def _edit_card(model: Path, text: str) -> Path:
    model.with_suffix(".json").write_text(text)
    return model


BAD_MODELS = {
    "missing-model": (lambda m: m.parent / "absent.pt", "model file not found"),
    "corrupt-model": (_corrupt_model, "model file must be a TorchScript archive"),
    "missing-card": (lambda m: (m.with_suffix(".json").unlink(), m)[1], "model card not found"),
    "card-not-json": (lambda m: _edit_card(m, "{oops"), "model card is not valid JSON"),
    "card-invalid": (lambda m: _edit_card(m, json.dumps({"format": "spheroseg-model-card/1"})),
                     "model card must have a 'sha256' entry"),
    "card-wrong-channels": (_wrong_channels, "input.channels must match the image's channel count 1"),
    "model-changed": (lambda m: (m.write_bytes(m.read_bytes() + b"x"), m)[1], "does not match its card"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS), ids=str)
def test_predict_rejects_bad_models_with_one_line_and_no_output(tmp_path, chain_inputs, capsys, case):
    image, model, plan = chain_inputs
    spoil, message = BAD_MODELS[case]
    model = spoil(model)
    capsys.readouterr()
    output = tmp_path / "out" / "tiles.zarr"
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model, "--output", output) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("spheroseg predict: error:") and "\n" not in error
    assert message in error
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [(("--device", "gpu"), "device must be one of"),
     (("--batch-size", "0"), "batch_size must be a positive integer"),
     (("--channel", "1"), "channel must be an integer in \\[0, 0\\]")],
    ids=["unknown-device", "batch-zero", "channel-out-of-range"],
)
def test_predict_rejects_bad_options(tmp_path, chain_inputs, capsys, argv, message):
    image, model, plan = chain_inputs
    output = tmp_path / "tiles.zarr"
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model,
                   "--output", output, *argv) == 1
    assert message.replace("\\", "") in capsys.readouterr().err
    assert not output.exists()


def test_predict_names_the_image_for_a_channel_it_lacks(tmp_path, chain_inputs, capsys):
    image, model, plan = chain_inputs
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model,
                   "--output", tmp_path / "tiles.zarr", "--channel", "3") == 1
    assert capsys.readouterr().err.strip().endswith(
        f"channel must be an integer in [0, 0] (the image's channels), got 3 (in {image})")


def test_predict_rejects_a_plan_for_another_image(tmp_path, chain_inputs, capsys):
    _, model, plan = chain_inputs
    other = save_image(tmp_path / "other.ome.zarr", textured_image((2, 48, 40)), axes="tyx")
    assert run_cli("predict", "--image", other, "--plan", plan, "--model", model,
                   "--output", tmp_path / "tiles.zarr") == 1
    assert "plan must match the image (2 frames of (48, 40))" in capsys.readouterr().err
    assert not (tmp_path / "tiles.zarr").exists()


def test_predict_rejects_a_model_that_breaks_the_output_contract(tmp_path, chain_inputs, capsys):
    image, _, plan = chain_inputs
    model = save_model(TwoChannelOutput(), tmp_path / "two.pt")
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model,
                   "--output", tmp_path / "tiles.zarr") == 1
    assert "model output must have shape" in capsys.readouterr().err
    assert not (tmp_path / "tiles.zarr").exists()


def test_predict_rejects_a_model_that_fails_on_the_input(tmp_path, chain_inputs, capsys):
    image, _, plan = chain_inputs
    model = save_model(torch.nn.Conv2d(3, 1, 1), tmp_path / "rgb.pt")
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model,
                   "--output", tmp_path / "tiles.zarr") == 1
    assert "model must accept input of shape" in capsys.readouterr().err
    assert not (tmp_path / "tiles.zarr").exists()


def test_stitch_rejects_missing_unfinished_and_mismatched_tile_stores(tmp_path, chain_inputs, capsys):
    image, model, plan = chain_inputs
    output = tmp_path / "p.ome.zarr"
    assert run_cli("stitch", "--plan", plan, "--tiles", tmp_path / "absent.zarr", "--output", output) == 1
    assert "tiles must be a tile store written by spheroseg predict" in capsys.readouterr().err
    import zarr

    zarr.create_array(store=str(tmp_path / "raw.zarr"), shape=(1, 1, 8, 8), dtype="float16")
    assert run_cli("stitch", "--plan", plan, "--tiles", tmp_path / "raw.zarr", "--output", output) == 1
    assert "tiles must be a finished tile store" in capsys.readouterr().err
    tiles = tmp_path / "tiles.zarr"
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model, "--output", tiles) == 0
    other = tmp_path / "other.json"
    assert run_cli("tile", "--image", image, "--model", model, "--tile-size", 16, "--overlap", 0,
                   "--output", other) == 0
    assert run_cli("stitch", "--plan", other, "--tiles", tiles, "--output", output) == 1
    assert "tile store shape must match the plan" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize(
    ("tile", "options", "tile_shape", "count"),
    [({"size": 64, "halo": 8}, [], [120, 152], 1),
     ({"size": 64, "halo": 8, "max_size": 64}, [], [56, 64], 9),
     ({"size": 64, "halo": 8}, ["--tile-size", "64"], [64, 64], 9),
     ({"size": 64, "halo": 8}, ["--overlap", "0.25"], [64, 64], 9)],
    ids=["fitted-to-the-image", "fitted-under-the-card-max-size", "fixed-size",
         "fixed-card-size-given-overlap"])
def test_tile_plan_from_the_model_card(tmp_path, tile, options, tile_shape, count):
    image = save_image(tmp_path / "image.ome.zarr", textured_image((1, 100, 130)), axes="tyx")
    model = save_model(PointwiseLogits(), tmp_path / "model.pt", tile=tile)
    assert run_cli("tile", "--image", image, "--model", model, *options,
                   "--output", tmp_path / "t.json") == 0
    plan = json.loads((tmp_path / "t.json").read_text())
    assert plan["tile_shape"] == tile_shape and plan["halo"] == 8 and plan["frames"] == 1
    assert len(plan["origins"]) == count


def test_load_model_works_with_warnings_as_errors(tmp_path):
    model = save_model(calibrated_unet(), tmp_path / "unet.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module, card = load_model(model, device=torch.device("cpu"))
    assert card["output"]["kind"] == "logits"
    assert module(torch.zeros(1, 1, 16, 16)).shape == (1, 1, 16, 16)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_predict_on_cuda_matches_cpu_float32(tmp_path):
    data = textured_image((1, 1, 200, 300))
    image = save_image(tmp_path / "image.ome.zarr", data)
    model = save_model(calibrated_unet(), tmp_path / "unet.pt")
    results = []
    for device, precision in (("cpu", "fp32"), ("cuda", "auto")):
        folder = tmp_path / device
        folder.mkdir()
        path = run_chain(folder, image, model, tile=128, overlap=0.25,
                         predict=("--device", device, "--precision", precision))
        results.append(np.asarray(ngff.open_array(path)[0], dtype=np.float32))
    assert np.abs(results[0] - results[1]).max() <= 0.02


def test_predict_refuses_a_torch_export_program(tmp_path, capsys):
    # Loading a .pt2 unpickles its contents (code can run), so only TorchScript is accepted.
    data = textured_image((1, 1, 40, 56))
    image = save_image(tmp_path / "image.ome.zarr", data)
    program = torch.export.export(PointwiseLogits(), (torch.zeros(2, 1, 16, 16),))
    model = tmp_path / "model.pt2"
    torch.export.save(program, str(model))
    write_card({"input": {"channels": 1, "normalization": PERCENTILE},
                "output": {"kind": "logits", "channels": 1}, "spatial_divisor": 8}, model)
    plan, tiles = tmp_path / "tiles.json", tmp_path / "tiles.zarr"
    assert run_cli("tile", "--image", image, "--model", model, "--tile-size", 32, "--output", plan) == 0
    assert run_cli("predict", "--image", image, "--plan", plan, "--model", model, "--output", tiles) == 1
    assert "must be a TorchScript archive (.pt), got a torch.export program" in capsys.readouterr().err
    assert not tiles.exists()


@pytest.mark.parametrize(
    ("options", "tile_shape"),
    [([], [368, 664]), (["--overlap", "0.25"], [256, 256])],
    ids=["fitted-with-halo-32-up-to-768", "fixed-256"])
def test_tile_defaults_without_card_suggestion(tmp_path, options, tile_shape):
    image = save_image(tmp_path / "image.ome.zarr", textured_image((2, 300, 600)), axes="tyx")
    model = save_model(PointwiseLogits(), tmp_path / "model.pt")
    assert run_cli("tile", "--image", image, "--model", model, *options,
                   "--output", tmp_path / "t.json") == 0
    plan = json.loads((tmp_path / "t.json").read_text())
    assert plan["tile_shape"] == tile_shape and plan["halo"] == 32 and plan["frames"] == 2
    assert plan["image_shape"] == [300, 600]


def test_tile_rejects_an_overlap_of_one_half(tmp_path, capsys):
    image = save_image(tmp_path / "image.ome.zarr", textured_image((1, 30, 60)), axes="tyx")
    model = save_model(PointwiseLogits(), tmp_path / "model.pt")
    assert run_cli("tile", "--image", image, "--model", model, "--overlap", 0.5,
                   "--output", tmp_path / "t.json") == 1
    assert "overlap must be in [0, 0.5)" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
