from __future__ import annotations

import json

import pytest

from spheroseg.modelcard import ModelCardError, card_path_for, read_card, read_verified_card, write_card


def _card() -> dict:
    return {
        "name": "test",
        "input": {"channels": 1, "normalization": {"kind": "percentile", "low": 1, "high": 99}},
        "output": {"kind": "logits", "channels": 1},
        "spatial_divisor": 8,
    }


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"model bytes")
    write_card(_card(), path)
    return path


def test_write_then_verify(model):
    card = read_verified_card(model)
    assert card["model_file"] == "m.pt"
    assert card["input"]["normalization"] == {"kind": "percentile", "low": 1.0, "high": 99.0}


def test_tampered_model_is_refused(model):
    model.write_bytes(b"model bytes, changed")
    with pytest.raises(ModelCardError, match="does not match its card"):
        read_verified_card(model)


def test_missing_model_and_card(tmp_path, model):
    with pytest.raises(ModelCardError, match="model file not found"):
        read_verified_card(tmp_path / "absent.pt")
    card_path_for(model).unlink()
    with pytest.raises(ModelCardError, match="model card not found"):
        read_verified_card(model)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("input"), "'input'"),
        (lambda c: c.update(format="other"), "format must be"),
        (lambda c: c.update(spatial_divisor=0), "spatial_divisor must be >= 1"),
        (lambda c: c.update(spatial_divisor="8"), "spatial_divisor must be"),
        (lambda c: c["output"].update(kind="mask"), "output.kind must be one of"),
        (lambda c: c["input"].update(channels=0), "input.channels must be >= 1"),
        (lambda c: c["input"].update(normalization={"kind": "minmax"}), "normalization.kind"),
        (lambda c: c["input"].update(normalization={"kind": "percentile", "low": 90, "high": 10}), "percentiles"),
        (lambda c: c.update(tile={"size": 256, "halo": -5}), r"tile\.halo must be an integer >= 0, got -5 \(in .*m\.json\)"),
        (lambda c: c.update(tile={"size": "big"}), r"tile\.size must be an integer >= 1, got 'big'"),
        (lambda c: c.update(tile={"max_size": 0}), r"tile\.max_size must be an integer >= 1, got 0"),
        (lambda c: c.update(tile=[256]), r"tile must be a JSON object"),
    ],
    ids=["no-input", "format", "divisor-zero", "divisor-type", "output-kind", "channels", "norm-kind", "norm-order",
         "tile-halo-negative", "tile-size-text", "tile-max-zero", "tile-not-object"],
)
def test_invalid_cards(model, edit, message):
    path = card_path_for(model)
    card = json.loads(path.read_text())
    edit(card)
    path.write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match=message):
        read_card(path)


def test_not_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(ModelCardError, match=r"not valid JSON.*m\.json"):
        read_card(path)
