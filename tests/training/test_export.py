"""TorchScript export, fresh-process loading, model card, log/curve files and fine-tuning init."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from spheroseg.modelcard import ModelCardError, read_verified_card, write_card
from spheroseg.training.export import export_torchscript, load_init_model, save_model

HISTORY = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_iou": 0.5 + e / 10, "val_dice": 0.6,
            "lr": 1e-3, "elapsed_s": float(e)} for e in (1, 2, 3)]
FRESH = """
import sys, torch
model = torch.jit.load(sys.argv[1])
data = torch.load(sys.argv[2])
out = model(data["input"])
assert "spheroseg" not in sys.modules, "the model must load without spheroseg"
print(float((out - data["expected"]).abs().max()))
"""


@pytest.fixture
def trained():
    """A small U-Net with non-trivial batch-norm statistics, as after training."""
    from spheroseg.unet import UNet

    torch.manual_seed(0)
    model = UNet(depth=2, base_width=4)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 1, 16, 16) * 2 + 1)
    return model.eval()


def _card() -> dict:
    return {"input": {"channels": 1, "normalization": {"kind": "percentile"}, "pixel_size_um": 1.0},
            "output": {"kind": "logits", "channels": 1}, "spatial_divisor": 4,
            "architecture": {"kind": "unet", "depth": 2, "base_width": 4}}


def test_export_equals_eager_in_a_fresh_process(trained, tmp_path):
    path = tmp_path / "model.pt"
    assert export_torchscript(trained, path, example_shape=(1, 1, 16, 16)) <= 1e-5
    data = torch.randn(2, 1, 24, 20)
    with torch.no_grad():
        torch.save({"input": data, "expected": trained(data)}, tmp_path / "check.pt")
    result = subprocess.run([sys.executable, "-c", FRESH, str(path), str(tmp_path / "check.pt")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) <= 1e-5


def test_export_does_not_change_the_model(trained, tmp_path):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    export_torchscript(trained.train(), tmp_path / "m.pt", example_shape=(1, 1, 8, 8))
    assert trained.training and all(torch.equal(before[k], v) for k, v in trained.state_dict().items())


def test_save_model_writes_all_outputs(trained, tmp_path):
    paths = save_model(trained, tmp_path / "net.pt", _card(), HISTORY, example_shape=(1, 1, 16, 16))
    assert {p.name for p in paths.values()} == {"net.pt", "net.json", "net.training_log.csv",
                                                "net.learning_curve.png"}
    card = read_verified_card(tmp_path / "net.pt")
    assert card["export"]["max_abs_difference_vs_eager"] <= 1e-5
    lines = (tmp_path / "net.training_log.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss,val_iou,val_dice,lr,elapsed_s" and len(lines) == 4
    assert (tmp_path / "net.learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_init_model_round_trip(trained, tmp_path):
    save_model(trained, tmp_path / "net.pt", _card(), HISTORY, example_shape=(1, 1, 16, 16))
    model, card = load_init_model(tmp_path / "net.pt")
    assert card["architecture"]["depth"] == 2
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_init_model_without_architecture_is_an_error(trained, tmp_path):
    card = _card()
    del card["architecture"]
    save_model(trained, tmp_path / "net.pt", card, HISTORY, example_shape=(1, 1, 16, 16))
    with pytest.raises(ModelCardError, match="architecture must be a U-Net description"):
        load_init_model(tmp_path / "net.pt")


def test_init_model_with_wrong_architecture_is_an_error(trained, tmp_path):
    card = _card()
    card["architecture"]["base_width"] = 8
    save_model(trained, tmp_path / "net.pt", card, HISTORY, example_shape=(1, 1, 16, 16))
    with pytest.raises(ModelCardError, match="must match the card's architecture"):
        load_init_model(tmp_path / "net.pt")


def test_init_model_changed_after_card_is_refused(trained, tmp_path):
    save_model(trained, tmp_path / "net.pt", _card(), HISTORY, example_shape=(1, 1, 16, 16))
    card = json.loads((tmp_path / "net.json").read_text())
    (tmp_path / "net.json").write_text(json.dumps(dict(card, sha256="0" * 64)))
    with pytest.raises(ModelCardError, match="does not match its card"):
        load_init_model(tmp_path / "net.pt")


def test_init_model_that_is_not_torchscript_is_named(trained, tmp_path):
    torch.save(trained.state_dict(), tmp_path / "net.pt")  # a state dict, not torch.jit.save
    write_card(_card(), tmp_path / "net.pt")
    with pytest.raises(ModelCardError, match=r"model must be a TorchScript file .*\(in .*net\.pt\)"):
        load_init_model(tmp_path / "net.pt")


def test_init_model_with_several_input_channels_is_refused_before_training(trained, tmp_path):
    save_model(trained, tmp_path / "net.pt", _card(), HISTORY, example_shape=(1, 1, 16, 16))
    card = json.loads((tmp_path / "net.json").read_text())
    card["input"]["channels"] = 2
    (tmp_path / "net.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match=r"input\.channels must be 1 to fine-tune .*got 2 \(in .*net\.json\)"):
        load_init_model(tmp_path / "net.pt")
