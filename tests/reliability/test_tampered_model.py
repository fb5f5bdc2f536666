"""A model file changed after its card was written is refused by every command that loads it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from snakefile_runner import SPHEROSEG

# torch.jit is deprecated in torch >= 2.13 but is the model format spheroseg ships.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
CARD = {
    "input": {"channels": 1, "normalization": {"kind": "percentile", "low": 1.0, "high": 99.8}},
    "output": {"kind": "logits", "channels": 1},
    "tile": {"size": 64, "halo": 8},
}


def _export(path: Path, seed: int) -> None:
    """A tiny seeded U-Net as TorchScript with its card."""
    import torch

    from spheroseg.modelcard import write_card
    from spheroseg.training.export import export_torchscript
    from spheroseg.unet import UNet

    torch.manual_seed(seed)
    net = UNet(depth=1, base_width=2)
    export_torchscript(net, path, example_shape=(1, 1, 16, 16))
    write_card(dict(CARD, spatial_divisor=net.divisor,
                    architecture={"kind": "unet", "depth": 1, "base_width": 2}), path)


def _spheroseg(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SPHEROSEG, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    """A good model, another model, a 2-frame image and its tile plan (made with the good model)."""
    from spheroseg import ngff
    from spheroseg.atomic import atomic_path
    from spheroseg.inference import plan_for_image
    from spheroseg.tiling import write_plan

    if shutil.which(SPHEROSEG) is None:
        pytest.skip("the spheroseg command is not installed next to this Python")
    folder = tmp_path_factory.mktemp("tamper")
    _export(folder / "good.pt", seed=0)
    _export(folder / "other.pt", seed=1)
    image = folder / "image.ome.zarr"
    with atomic_path(image, directory=True) as tmp:
        array = ngff.create_image(tmp, shape=(2, 64, 64), dtype="uint16", axes="tyx",
                                   pixel_size_um=1.0, time_interval_s=60.0)
        array[:] = np.random.default_rng(0).integers(0, 4000, size=(2, 64, 64), dtype=np.uint16)
    write_plan(plan_for_image(image, folder / "good.pt"), folder / "tiles.json")
    return {"folder": folder, "image": image, "plan": folder / "tiles.json"}


def _tampered(setup: dict[str, Path], tmp_path: Path, how: str) -> Path:
    """A copy of the good model (and card) in `tmp_path`, changed `how`."""
    model = tmp_path / "model with space ü.pt"
    shutil.copy(setup["folder"] / "good.pt", model)
    shutil.copy(setup["folder"] / "good.json", model.with_suffix(".json"))
    data = bytearray(model.read_bytes())
    if how == "appended-byte":
        model.write_bytes(bytes(data) + b"\0")
    elif how == "flipped-bit":
        data[len(data) // 2] ^= 0x01
        model.write_bytes(bytes(data))
    elif how == "other-model":
        shutil.copy(setup["folder"] / "other.pt", model)
    elif how == "card-missing":
        model.with_suffix(".json").unlink()
    return model


def _assert_refused(result: subprocess.CompletedProcess[str], command: str, model: Path, expected: str) -> None:
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-2000:]}"
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"spheroseg {command}: error: "), result.stderr[-2000:]
    assert expected in lines[-1] and str(model.with_suffix("")) in lines[-1], lines[-1]
    assert "Traceback" not in result.stderr


def test_good_model_predicts(setup, tmp_path):
    output = tmp_path / "tiles.zarr"
    result = _spheroseg("predict", "--image", setup["image"], "--plan", setup["plan"],
                        "--model", setup["folder"] / "good.pt", "--device", "cpu", "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert output.is_dir()


@pytest.mark.parametrize("how", ["flipped-bit", "other-model"])
def test_predict_refuses_a_model_changed_after_its_card(setup, tmp_path, how):
    model = _tampered(setup, tmp_path, how)
    output = tmp_path / "tiles.zarr"
    result = _spheroseg("predict", "--image", setup["image"], "--plan", setup["plan"], "--model", model,
                        "--device", "cpu", "--output", output)
    _assert_refused(result, "predict", model, "does not match its card")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model.name, model.with_suffix(".json").name])


def test_predict_refuses_a_model_without_card(setup, tmp_path):
    model = _tampered(setup, tmp_path, "card-missing")
    result = _spheroseg("predict", "--image", setup["image"], "--plan", setup["plan"], "--model", model,
                        "--device", "cpu", "--output", tmp_path / "tiles.zarr")
    _assert_refused(result, "predict", model, "model card not found")
    assert not (tmp_path / "tiles.zarr").exists()


def test_tile_refuses_a_tampered_model(setup, tmp_path):
    model = _tampered(setup, tmp_path, "flipped-bit")
    result = _spheroseg("tile", "--image", setup["image"], "--model", model, "--output", tmp_path / "tiles.json")
    _assert_refused(result, "tile", model, "does not match its card")
    assert not (tmp_path / "tiles.json").exists()


def test_train_refuses_to_fine_tune_a_tampered_model(setup, tmp_path):
    model = _tampered(setup, tmp_path, "appended-byte")
    output = tmp_path / "out" / "retrained.pt"
    result = _spheroseg("train", "--synthetic", "2", "--synthetic-size", "64", "--patch-size", "64",
                        "--epochs", "1", "--steps-per-epoch", "1", "--device", "cpu", "--no-progress",
                        "--init", model, "--output", output)
    _assert_refused(result, "train", model, "does not match its card")
    assert not output.exists() and not output.with_suffix(".json").exists()


@pytest.mark.workflow
def test_workflow_stops_at_a_tampered_model(baseline, faults, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(baseline, workdir)
    model = tmp_path / "tampered.pt"
    shutil.copy(faults.model_file(), model)
    shutil.copy(faults.model_file().with_suffix(".json"), model.with_suffix(".json"))
    model.write_bytes(model.read_bytes() + b"tampered")
    position = workdir / "results" / "demo" / faults.POSITION
    before = {name: (position / name).read_bytes() for name in ("tiles.json", "logs/tile.log")}
    result = faults.run(workdir, faults.write_config(workdir, model=str(model)), "--forcerun", "tile", check=False)
    assert result.returncode != 0
    # refused when the DAG is built, before any job: no tile job ran, the earlier plan is untouched
    assert "does not match its card" in result.stderr and str(model) in result.stderr, result.stderr[-2000:]
    assert "(config key 'model')" in result.stderr
    assert "rule tile" not in result.stderr
    assert {name: (position / name).read_bytes() for name in before} == before
