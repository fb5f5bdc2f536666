"""The embedded demo, end to end through the Snakefile (the README's quick start)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from spheroseg import ngff

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
POSITIONS = list(CONFIG["demo"]["positions"])
TIMEPOINTS = CONFIG["demo"]["timepoints"]


def _matched(demo_run, position):
    """Measured rows joined to the generator's truth via the label overlap."""
    results = demo_run / "results" / "demo" / position
    truth_dir = demo_run / "resources" / "demo" / "ground_truth"
    measured = pd.read_csv(results / "metrics.csv")
    truth = pd.read_csv(truth_dir / f"{position}.csv")
    truth_masks = tifffile.imread(truth_dir / f"{position}_masks.tif")
    labels = ngff.open_array(results / "image.ome.zarr" / "labels" / "segmentation")
    rows = []
    for row in measured.itertuples():
        under = truth_masks[row.timepoint][np.asarray(labels[row.timepoint]) == row.object_id]
        truth_id = np.bincount(under).argmax()
        rows.append({"timepoint": row.timepoint, "object_id": row.object_id, "truth_id": truth_id,
                     "area": row.area_um2, "perimeter": row.perimeter_um, "circularity": row.circularity})
    joined = pd.DataFrame(rows).merge(truth, left_on=["timepoint", "truth_id"], right_on=["timepoint", "object_id"],
                                      suffixes=("", "_truth"))
    return measured, truth, joined


def test_every_timepoint_csv_exists(demo_run):
    for position in POSITIONS:
        folder = demo_run / "results" / "demo" / position / "metrics"
        assert sorted(p.name for p in folder.glob("t*.csv")) == [f"t{t:04d}.csv" for t in range(TIMEPOINTS)]
    experiment = pd.read_csv(demo_run / "results" / "demo" / "metrics.csv")
    assert set(experiment["position"]) == set(POSITIONS)
    for column in ("experiment", "position", "timepoint", "time_s", "object_id", "area_um2", "perimeter_um",
                   "circularity"):
        assert column in experiment.columns


@pytest.mark.parametrize("position", POSITIONS)
def test_each_body_found_once_per_frame_with_stable_id(demo_run, position):
    measured, truth, joined = _matched(demo_run, position)
    assert len(measured) == len(truth), "one measured object per true body per frame"
    assert joined.groupby("truth_id")["object_id"].nunique().eq(1).all(), "ids must follow bodies over time"


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize(("metric", "tolerance"), [("area", 0.03), ("perimeter", 0.03), ("circularity", 0.03)])
def test_metrics_match_ground_truth(demo_run, position, metric, tolerance):
    _, _, joined = _matched(demo_run, position)
    truth_column = {"area": "area_um2", "perimeter": "perimeter_um", "circularity": "circularity_truth"}[metric]
    relative = (joined[metric] - joined[truth_column]).abs() / joined[truth_column]
    assert relative.max() <= tolerance, f"{metric} error up to {relative.max():.2%}"


def test_second_run_has_nothing_to_do(demo_run, run_snakemake):
    result = run_snakemake(demo_run, "-n", "--cores", "2")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("position", POSITIONS)
def test_every_store_validates_and_readers_find_labels_under_their_image(demo_run, position, caplog):
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image

    results = demo_run / "results" / "demo" / position
    image = Image.from_zarr(zarr.open_group(str(results / "image.ome.zarr"), mode="r"))
    labels = image.labels  # validated with the image: the labels group and each label image
    assert labels is not None and labels.label_paths == ["segmentation"]
    Image.from_zarr(zarr.open_group(str(results / "probabilities.ome.zarr"), mode="r"))
    caplog.set_level(logging.WARNING, logger="ome_zarr")
    nodes = list(Reader(parse_url(str(results / "image.ome.zarr")))())
    assert "no parent found" not in caplog.text, "the label must be found under its image"
    found = {Path(node.zarr.path).relative_to(results).as_posix(): node for node in nodes}
    assert list(found) == ["image.ome.zarr", "image.ome.zarr/labels",
                           "image.ome.zarr/labels/segmentation"]
    label = found["image.ome.zarr/labels/segmentation"]
    assert np.asarray(label.data[0]).shape == (TIMEPOINTS, *CONFIG["demo"]["size"])
    assert (results / "segment.json").is_file() and not (results / "labels.ome.zarr").exists()
