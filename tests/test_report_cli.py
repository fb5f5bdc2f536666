"""``spheroseg report ...``: each step end to end on tiny files, usage and error exits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spheroseg import ngff
from spheroseg.atomic import atomic_path
from spheroseg.cli import main
from spheroseg.modelcard import sha256_file, write_card

METRICS = pd.DataFrame({
    "experiment": "e", "position": ["p0", "p0", "p1", "p1"], "timepoint": [0, 1, 0, 1],
    "time_s": [0.0, 60.0, 0.0, 60.0], "object_id": 1, "area_um2": [100.0, 150.0, 80.0, 81.0],
    "perimeter_um": 40.0, "circularity": 0.8, "aspect_ratio": 1.1, "touches_border": "false"})


@pytest.fixture()
def experiment(tmp_path):
    """Metrics, probabilities, image and contours of two 2-frame positions."""
    for position, rows in METRICS.groupby("position"):
        folder = tmp_path / position
        folder.mkdir()
        rows.to_csv(folder / "metrics.csv", index=False)
        with atomic_path(folder / "probabilities.ome.zarr", directory=True) as tmp:
            ngff.create_image(tmp, shape=(2, 16, 16), dtype="float32", axes="tyx",
                              pixel_size_um=1.0, time_interval_s=60.0)[:] = np.float32(0.5)
        with atomic_path(folder / "image.ome.zarr", directory=True) as tmp:
            ngff.create_image(tmp, shape=(2, 16, 16), dtype="uint8", axes="tyx",
                              pixel_size_um=1.0, time_interval_s=60.0)[:, 4:10, 4:10] = 200
        feature = {"type": "Feature", "properties": {"timepoint": 0, "object_id": 1},
                   "geometry": {"type": "Polygon", "coordinates": [[[4, 4], [10, 4], [10, 10], [4, 4]]]}}
        (folder / "contours.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    METRICS.to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "samples.tsv").write_text("position\tcondition\tdose\np0\tctrl\t0\np1\tdrug\t5\n")
    return tmp_path


def test_qc_merge_position_experiment_samples(experiment, capsys):
    for position in ("p0", "p1"):
        folder = experiment / position
        assert main(["report", "qc", "--metrics", str(folder / "metrics.csv"), "--probabilities",
                     str(folder / "probabilities.ome.zarr"), "--experiment", "e", "--position", position,
                     "--area-jump-fraction", "0.3", "--uncertain-fraction", "0.5",
                     "--output", str(folder / "qc.csv")]) == 0
    assert main(["report", "merge-qc", "--output", str(experiment / "qc.csv"), "--html",
                 str(experiment / "qc.html"), str(experiment / "p0" / "qc.csv"),
                 str(experiment / "p1" / "qc.csv")]) == 0
    table = pd.read_csv(experiment / "qc.csv")
    # every pixel is 0.5 (unsure) in every frame; p0 jumps +50 % at frame 1
    assert sorted(zip(table["position"], table["timepoint"], table["flag"])) == [
        ("p0", 0, "uncertain_frame"), ("p0", 1, "area_jump"), ("p0", 1, "uncertain_frame"),
        ("p1", 0, "uncertain_frame"), ("p1", 1, "uncertain_frame")]
    assert main(["report", "position", "--metrics", str(experiment / "p0" / "metrics.csv"), "--qc",
                 str(experiment / "p0" / "qc.csv"), "--image", str(experiment / "p0" / "image.ome.zarr"),
                 "--contours", str(experiment / "p0" / "contours.geojson"), "--output-dir",
                 str(experiment / "p0" / "report"), "--title", "e / p0", "--gif-size", "64"]) == 0
    with Image.open(experiment / "p0" / "report" / "overlay.gif") as image:
        assert image.size == (64, 64) and image.n_frames == 2
    assert main(["report", "experiment", "--metrics", str(experiment / "metrics.csv"), "--samples",
                 str(experiment / "samples.tsv"), "--qc", str(experiment / "qc.csv"), "--title", "e",
                 "--output", str(experiment / "c.png"), str(experiment / "c.svg")]) == 0
    assert (experiment / "c.svg").read_text().lstrip().startswith("<?xml")
    assert main(["report", "samples", "--metrics", str(experiment / "metrics.csv"), "--samples",
                 str(experiment / "samples.tsv"), "--output", str(experiment / "annotated.csv")]) == 0
    lines = (experiment / "annotated.csv").read_text().splitlines()
    assert lines[0].startswith("experiment,position,condition,dose,timepoint")
    assert lines[1].startswith("e,p0,ctrl,0,0,0.0,1,100.0")  # metrics values copied verbatim


def test_parameters_page_shows_config_and_card(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"model")
    write_card({"format": "spheroseg-model-card/1", "sha256": sha256_file(model), "spatial_divisor": 8,
                "input": {"channels": 1, "normalization": {"kind": "none"}},
                "output": {"kind": "logits"}, "metrics": {"iou": 0.93}}, model)
    config = json.dumps({"segment": {"threshold": 0.5}})
    assert main(["report", "parameters", "--config-json", config, "--model", str(model),
                 "--output", str(tmp_path / "p.html")]) == 0
    page = (tmp_path / "p.html").read_text()
    assert "threshold: 0.5" in page and "&quot;iou&quot;: 0.93" in page


@pytest.mark.parametrize(("args", "message"), [
    (["parameters", "--config-json", "[1]", "--output", "x.html"], "must be a JSON object, got list"),
    (["parameters", "--config-json", "{", "--output", "x.html"], "must be a JSON object, got a JSON error"),
    (["samples", "--metrics", "METRICS", "--samples", "nope.tsv", "--output", "x.csv"],
     "sample sheet must be an existing file"),
    (["merge-qc", "--output", "x.csv", "missing.csv"], "QC table must be an existing file"),
], ids=["config-not-object", "config-not-json", "missing-samples", "missing-qc"])
def test_errors_exit_1_with_one_line(experiment, capsys, monkeypatch, args, message):
    monkeypatch.chdir(experiment)
    args = [str(experiment / "metrics.csv") if a == "METRICS" else a for a in args]
    assert main(["report", *args]) == 1
    error = capsys.readouterr().err
    assert error.startswith("spheroseg report: error: ") and message in error
    assert len(error.strip().splitlines()) == 1


QC_ARGS = ["report", "qc", "--metrics", "m", "--probabilities", "p", "--experiment", "e",
           "--position", "p", "--output", "o"]
POSITION_ARGS = ["report", "position", "--metrics", "m", "--qc", "q", "--image", "i", "--contours", "c",
                 "--output-dir", "o", "--title", "t"]


@pytest.mark.parametrize(("argv", "message"), [
    ([*QC_ARGS, "--area-jump-fraction", "0"], "area_jump_fraction must be > 0, got 0.0"),
    ([*QC_ARGS, "--uncertain-fraction", "1.5"], "uncertain_fraction must be in (0, 1], got 1.5"),
    ([*POSITION_ARGS, "--gif-frames", "0"], "gif_frames must be an integer >= 1, got 0"),
], ids=["zero-jump", "fraction-above-1", "no-gif-frames"])
def test_out_of_range_options_fail_before_reading_anything(argv, message, capsys):
    # The inputs do not exist: the option is checked first, with one line naming it.
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error == f"spheroseg report: error: {message}\n"


def test_option_that_is_not_a_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*QC_ARGS, "--uncertain-fraction", "x"])
    assert exit_info.value.code == 2
    assert "invalid float value: 'x'" in capsys.readouterr().err


@pytest.mark.parametrize("form", ["one-folder", "sources-list"])
def test_parameters_page_reads_both_forms_of_the_cards_annotations(tmp_path, form):
    """A card names one annotation folder (older cards) or a list of sources with pixel sizes."""
    from spheroseg.report.build import _annotation_folders

    folder = tmp_path / "annotations"
    folder.mkdir()
    recorded = str(folder) if form == "one-folder" else [
        {"annotations": str(folder), "pixel_size_um": 0.75},
        {"annotations": "spheroseg.synthetic.write_training_set(n_images=2)", "pixel_size_um": 2.0}]
    assert _annotation_folders({"training": {"annotations": recorded}}) == [folder]
    assert _annotation_folders(None) == [] and _annotation_folders({"training": {}}) == []


@pytest.mark.parametrize(("shape", "got"), [((3, 16, 16), "3 frames of 16 x 16"), ((2, 16, 12), "2 frames of 16 x 12")],
                         ids=["other-frames", "other-size"])
def test_qc_refuses_an_image_of_another_position(experiment, capsys, shape, got):
    other = experiment / "other.ome.zarr"
    with atomic_path(other, directory=True) as tmp:
        ngff.create_image(tmp, shape=shape, dtype="uint8", axes="tyx", pixel_size_um=1.0, time_interval_s=60.0)
    folder = experiment / "p0"
    assert main(["report", "qc", "--metrics", str(folder / "metrics.csv"), "--probabilities",
                 str(folder / "probabilities.ome.zarr"), "--image", str(other), "--experiment", "e",
                 "--position", "p0", "--output", str(folder / "qc.csv")]) == 1
    assert capsys.readouterr().err.strip().endswith(
        f"image must have 2 frames of 16 x 16 pixels like the probabilities, got {got} (in {other})")
    assert not (folder / "qc.csv").exists()
