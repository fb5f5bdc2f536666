"""Our model card as a bioimage.io description: the pure mapping (no bioimageio extra needed)."""

from __future__ import annotations

import pytest

from spheroseg.modelzoo.describe import (
    DescriptionError,
    minimum_size,
    postprocessing_for,
    preprocessing_for,
    tensor_descriptions,
)
from spheroseg.modelzoo.readme import metrics_table, training_data_citation

CARD = {
    "input": {"channels": 1, "normalization": {"kind": "percentile", "low": 1.0, "high": 99.8},
              "pixel_size_um": 0.65},
    "output": {"kind": "logits", "channels": 1}, "spatial_divisor": 16, "tile": {"size": 256, "halo": 24},
    "sha256": "0" * 64,
}


@pytest.mark.parametrize(("normalization", "expected"), [
    ({"kind": "percentile", "low": 2.0, "high": 99.0},
     [{"id": "scale_range", "kwargs": {"axes": ["channel", "y", "x"], "min_percentile": 2.0,
                                       "max_percentile": 99.0, "eps": 1e-6}}]),
    ({"kind": "zscore"}, [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["channel", "y", "x"], "eps": 1e-6}}]),
    ({"kind": "none"}, []),
], ids=["percentile", "zscore", "none"])
def test_each_normalisation_kind_maps_to_its_zoo_step(normalization, expected):
    assert preprocessing_for(normalization, source="m.json") == expected


@pytest.mark.parametrize("kind", ["robust", "minmax", None], ids=["robust", "minmax", "missing"])
def test_a_normalisation_without_zoo_equivalent_is_refused_not_mis_mapped(kind):
    with pytest.raises(DescriptionError, match=rf"normalization.kind must be one of .*got {kind!r}.*\(in m.json\)"):
        preprocessing_for({"kind": kind}, source="m.json")


def test_a_series_scope_normalisation_is_refused():
    spec = {"kind": "percentile", "low": 1.0, "high": 99.8, "scope": "series"}
    with pytest.raises(DescriptionError, match=r"scope must be 'image' .* got 'series'.*\(in m.json\)"):
        preprocessing_for(spec, source="m.json")


@pytest.mark.parametrize(("kind", "steps"), [("logits", [{"id": "sigmoid"}]), ("probabilities", [])],
                         ids=["logits", "probabilities"])
def test_output_kind_maps_to_postprocessing(kind, steps):
    assert postprocessing_for(kind) == steps


@pytest.mark.parametrize(("divisor", "halo", "expected"), [(8, 32, 72), (16, 0, 16), (16, 24, 64), (1, 5, 11)],
                         ids=["default", "no-halo", "halo-24", "divisor-1"])
def test_minimum_size_leaves_one_pixel_inside_the_halo(divisor, halo, expected):
    size = minimum_size(divisor, halo)
    assert size == expected and size % divisor == 0 and size - 2 * halo >= 1


def test_tensor_descriptions_carry_divisor_halo_and_pixel_size():
    inputs, outputs = tensor_descriptions(CARD, source="m.json")
    assert [axis["type"] for axis in inputs["axes"]] == ["batch", "channel", "space", "space"]
    assert inputs["axes"][2] == {"type": "space", "id": "y", "size": {"min": 64, "step": 16},
                                 "unit": "micrometer", "scale": 0.65}
    assert outputs["axes"][3] == {"type": "space", "id": "x", "size": {"tensor_id": "raw", "axis_id": "x"},
                                  "unit": "micrometer", "scale": 0.65, "halo": 24}
    assert outputs["postprocessing"] == [{"id": "sigmoid"}]
    assert outputs["data"]["range"] == [0.0, 1.0]


def test_unknown_pixel_size_leaves_the_axes_without_unit():
    card = {**CARD, "input": {**CARD["input"], "pixel_size_um": None}}
    inputs, _ = tensor_descriptions(card, source="m.json")
    assert "unit" not in inputs["axes"][2] and "scale" not in inputs["axes"][2]


def test_readme_lists_validation_figures_and_training_data():
    card = {**CARD, "metrics": {"val_iou": 0.91, "real": {"day2_iou": 0.93}},
            "training": {"annotations": "/data/spheroids", "files": [{"path": "images/a.tif", "sha256": "1"}],
                         "train_names": ["a"], "val_names": []}}
    table = metrics_table(card)
    assert "| real.day2_iou | 0.93 |" in table and "| val_iou | 0.91 |" in table
    text = training_data_citation(card)
    assert "`/data/spheroids`" in text and "1 image and mask files" in text and "1 training and 0 validation" in text


def test_without_the_extra_the_message_names_it(monkeypatch, tmp_path):
    import sys

    from spheroseg.modelzoo.importer import check_package

    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    (tmp_path / "model.zip").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r'bioimageio.spec must be installed .*pip install -e "\.\[bioimageio\]"'):
        check_package(tmp_path / "model.zip")
