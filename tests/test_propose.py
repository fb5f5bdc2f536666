"""spheroseg.propose and `spheroseg propose`: ranking, writing pairs, never overwriting a mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from spheroseg import ngff
from spheroseg.cli import main
from spheroseg.propose import (
    FrameCandidate,
    Layout,
    neighbour_disagreement,
    proposal_status,
    propose_frames,
    rank_frames,
    read_record,
    recorded_windows,
)
from spheroseg.modelcard import write_card
from spheroseg.normalization import series_window, validate_normalization
from spheroseg.training.data import find_annotation_pairs


def _store(path: Path, frames: np.ndarray, axes: str = "tyx") -> None:
    """An NGFF image of `frames` (T, Y, X) with a 2 µm pixel size."""
    data = frames if axes == "tyx" else frames[:, None]
    array = ngff.create_image(path, shape=data.shape, dtype=data.dtype, axes=axes, pixel_size_um=2.0,
                              time_interval_s=60.0)
    for t in range(data.shape[0]):
        ngff.write_frame(array, t, data[t])


def _position(folder: Path, *, unsure_frame: int | None, n_frames: int = 4) -> Path:
    """Results of one position: a disk that grows; `unsure_frame` has a grey (p = 0.5) field."""
    yy, xx = np.indices((32, 32))
    disks = np.stack([((yy - 16) ** 2 + (xx - 16) ** 2 <= (6 + t) ** 2) for t in range(n_frames)])
    probabilities = np.where(disks, 0.95, 0.02).astype(np.float32)
    if unsure_frame is not None:
        probabilities[unsure_frame, :8] = 0.5
    _store(folder / "image.ome.zarr", (40 + 150 * disks).astype(np.uint16), axes="tcyx")
    _store(folder / "probabilities.ome.zarr", probabilities)
    _store(folder / "image.ome.zarr" / "labels" / "segmentation", disks.astype(np.int32))  # nested, as segment writes
    return folder


def test_neighbour_disagreement_of_a_steady_series_is_zero():
    masks = [np.ones((4, 4))] * 3
    assert neighbour_disagreement(masks) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("frames", "expected"), [
    ([FrameCandidate("a", 0, 0.5), FrameCandidate("a", 1, 0.4), FrameCandidate("b", 0, 0.3)],
     ["a_t0000", "b_t0000", "a_t0001"]),
    ([FrameCandidate("a", 0, 0.5, condition="x"), FrameCandidate("b", 0, 0.4, condition="x"),
      FrameCandidate("c", 0, 0.25, condition="y")], ["a_t0000", "c_t0000", "b_t0000"]),
    ([FrameCandidate("a", 0, 0.5, condition="x"), FrameCandidate("b", 0, 0.4, condition="x"),
      FrameCandidate("c", 0, 0.01, condition="y"), FrameCandidate("d", 0, 0.02, condition="y")],
     ["a_t0000", "b_t0000", "d_t0000", "c_t0000"]),
    ([FrameCandidate("a", 0, 0.5), FrameCandidate("a", 1, 0.4), FrameCandidate("b", 0, 0.0)],
     ["a_t0000", "a_t0001", "b_t0000"]),
    ([FrameCandidate("a", 0, 0.0), FrameCandidate("b", 0, 0.0), FrameCandidate("a", 1, 0.0)],
     ["a_t0000", "b_t0000", "a_t0001"]),
    ([FrameCandidate("a", 0, 0.0, flags=("area_jump",)), FrameCandidate("a", 1, 0.05)], ["a_t0000", "a_t0001"]),
], ids=["needy-positions-covered-first", "needy-conditions-covered-first", "confident-condition-waits",
        "confident-position-waits", "all-equal-covers-positions", "flags-count"])
def test_rank_frames(frames, expected):
    assert [f.name for f in rank_frames(frames)] == expected


@pytest.mark.parametrize(("share", "expected"), [
    (0.0, ["a_t0000", "c_t0000", "b_t0000"]),
    (0.5, ["a_t0000", "b_t0000", "c_t0000"]),
    (1.0, ["a_t0000", "b_t0000", "c_t0000"]),
], ids=["coverage-whatever-need", "coverage-among-needy", "need-alone"])
def test_coverage_share_decides_when_coverage_beats_need(share, expected):
    frames = [FrameCandidate("a", 0, 0.5, condition="x"), FrameCandidate("b", 0, 0.4, condition="x"),
              FrameCandidate("c", 0, 0.05, condition="y")]
    assert [f.name for f in rank_frames(frames, coverage_share=share)] == expected


@pytest.mark.parametrize("share", [-0.1, 1.5], ids=["negative", "above-one"])
def test_coverage_share_out_of_range_is_refused(share):
    with pytest.raises(ValueError, match=r"coverage_share must be in \[0, 1\], got"):
        rank_frames([FrameCandidate("a", 0, 0.5)], coverage_share=share)


def test_propose_writes_the_neediest_frames_in_the_training_layout(tmp_path):
    position = _position(tmp_path / "results" / "pos0", unsure_frame=2)
    proposal = propose_frames([position], tmp_path / "ann", n=1, model="models/default.pt")
    assert [entry["frame"] for entry in proposal.written] == ["pos0_t0002"]
    pairs = find_annotation_pairs(tmp_path / "ann")
    assert [p.name for p in pairs] == ["pos0_t0002"]
    with tifffile.TiffFile(pairs[0].mask_path) as tif:
        mask = tif.asarray()
        x_resolution = tif.pages[0].tags["XResolution"].value
    assert set(np.unique(mask)) == {0, 1} and mask.shape == (32, 32)
    assert x_resolution[0] / x_resolution[1] == pytest.approx(0.5)  # pixels per µm: 2 µm pixels
    assert tifffile.imread(pairs[0].image_path).dtype == np.uint16
    record = read_record(tmp_path / "ann")["proposals"]["pos0_t0002"]
    assert record["position"] == "pos0" and record["timepoint"] == 2 and record["model"] == "models/default.pt"


def test_a_corrected_mask_is_never_overwritten(tmp_path):
    position = _position(tmp_path / "results" / "pos0", unsure_frame=2)
    propose_frames([position], tmp_path / "ann", n=1)
    mask_path = Layout.of(tmp_path / "ann").mask_path("pos0_t0002")
    corrected = np.zeros((32, 32), np.uint8)
    corrected[4:20, 4:20] = 1
    tifffile.imwrite(mask_path, corrected)
    proposal = propose_frames([position], tmp_path / "ann", n=1)
    assert proposal.skipped == ["pos0_t0002"] and len(proposal.written) == 1
    assert proposal.written[0]["frame"] != "pos0_t0002"
    assert np.array_equal(tifffile.imread(mask_path), corrected)
    states = {row["frame"]: row["state"] for row in proposal_status(tmp_path / "ann")}
    assert states == {"pos0_t0002": "corrected", proposal.written[0]["frame"]: "as proposed"}


def test_a_flat_annotation_folder_gets_flat_pairs(tmp_path):
    position = _position(tmp_path / "results" / "pos0", unsure_frame=None)
    (tmp_path / "ann").mkdir()
    tifffile.imwrite(tmp_path / "ann" / "old.tif", np.ones((8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "ann" / "old_mask.tif", np.ones((8, 8), np.uint8))
    propose_frames([position], tmp_path / "ann", n=2)
    assert len(find_annotation_pairs(tmp_path / "ann")) == 3
    assert not (tmp_path / "ann" / "images").exists()


@pytest.mark.parametrize("n", [0, -1, 1.5, True], ids=["zero", "negative", "float", "bool"])
def test_a_bad_count_is_refused_with_its_key(tmp_path, n):
    position = _position(tmp_path / "pos0", unsure_frame=None)
    with pytest.raises(ValueError, match=r"propose\.n"):
        propose_frames([position], tmp_path / "ann", n=n)
    assert not (tmp_path / "ann").exists()


def test_missing_results_name_the_position(tmp_path):
    (tmp_path / "pos9").mkdir()
    with pytest.raises(ValueError, match=r"position 'pos9'.*run the workflow first"):
        propose_frames([tmp_path / "pos9"], tmp_path / "ann", n=1)


def test_cli_says_what_it_skipped(tmp_path, capsys):
    position = _position(tmp_path / "pos0", unsure_frame=1, n_frames=2)
    args = ["propose", str(position), "--annotations", str(tmp_path / "ann"), "--n", "2"]
    assert main([*args, "--output", str(tmp_path / "first.json")]) == 0
    assert main([*args, "--output", str(tmp_path / "second.json")]) == 0
    err = capsys.readouterr().err
    assert "proposed 2 frame(s)" in err and "skipped 2 frame(s) whose mask exists" in err
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["written"] == [] and sorted(second["skipped"]) == ["pos0_t0000", "pos0_t0001"]


def _two_channel_position(folder: Path, *, marked: int) -> Path:
    """Results like :func:`_position`'s (2 frames) with two image channels; channel `marked`
    holds 7 + 1000 t."""
    yy, xx = np.indices((32, 32))
    disks = np.stack([((yy - 16) ** 2 + (xx - 16) ** 2 <= (6 + t) ** 2) for t in range(2)])
    image = np.repeat((40 + 150 * disks).astype(np.uint16)[:, None], 2, axis=1)
    image[:, marked] = 7 + 1000 * np.arange(2)[:, None, None]
    array = ngff.create_image(folder / "image.ome.zarr", shape=image.shape, dtype=image.dtype, axes="tcyx",
                              pixel_size_um=2.0, time_interval_s=60.0)
    for t in range(2):
        ngff.write_frame(array, t, image[t])
    _store(folder / "probabilities.ome.zarr", np.where(disks, 0.95, 0.02).astype(np.float32))
    _store(folder / "image.ome.zarr" / "labels" / "segmentation", disks.astype(np.int32))
    return folder


def test_cli_writes_each_positions_own_channel(tmp_path):
    """ingest.channel by name can choose channel 1 in one position and 0 in another: the
    workflow passes one number per position, and each pair's image is that channel."""
    first = _two_channel_position(tmp_path / "A", marked=1)
    second = _two_channel_position(tmp_path / "B", marked=0)
    assert main(["propose", str(first), str(second), "--annotations", str(tmp_path / "ann"), "--n", "4",
                 "--channel", "1", "0", "--output", str(tmp_path / "out.json")]) == 0
    layout = Layout.of(tmp_path / "ann")
    for name in ("A_t0000", "A_t0001", "B_t0000", "B_t0001"):
        assert np.all(tifffile.imread(layout.image_path(name)) == 7 + 1000 * int(name[-1])), name
    with pytest.raises(ValueError, match=r"channel must be one number, or one per position \(2\), got 3"):
        propose_frames([first, second], tmp_path / "other", n=1, channel=[1, 0, 0])


def test_proposals_record_their_position_s_normalisation_window(tmp_path):
    """A fine-tune with "scope": "series" must see a corrected frame as predict will: normalised
    with the window of its whole time series, which only propose can see (issue 18)."""
    position = _position(tmp_path / "results" / "pos0", unsure_frame=2)
    robust = validate_normalization({"kind": "robust"})
    propose_frames([position], tmp_path / "ann", n=1, normalization=robust)
    series = {**robust, "scope": "series"}
    image = ngff.open_array(position / "image.ome.zarr")
    expected = series_window([ngff.read_frame(image, t)[np.newaxis] for t in range(4)], series)
    assert recorded_windows(tmp_path / "ann", series) == {"pos0_t0002": expected}
    assert expected["top"] == 190.0  # the series' brightest block, not frame 2's alone
    assert recorded_windows(tmp_path / "ann", {**series, "high": 99.0}) == {}  # another normalisation
    # without a model card (or with a kind that has no window) nothing is recorded
    propose_frames([position], tmp_path / "plain", n=1)
    assert "normalization_window" not in read_record(tmp_path / "plain")["proposals"]["pos0_t0002"]


def test_cli_records_the_model_card_s_normalisation(tmp_path):
    position = _position(tmp_path / "pos0", unsure_frame=1, n_frames=2)
    model = tmp_path / "m.pt"
    model.write_bytes(b"not read")
    write_card({"name": "m", "input": {"channels": 1, "normalization": {"kind": "percentile"}},
                "output": {"kind": "logits", "channels": 1}, "spatial_divisor": 8}, model)
    assert main(["propose", str(position), "--annotations", str(tmp_path / "ann"), "--n", "1", "--model",
                 str(model), "--output", str(tmp_path / "out.json")]) == 0
    (entry,) = read_record(tmp_path / "ann")["proposals"].values()
    assert entry["normalization_window"]["normalization"] == {"kind": "percentile", "low": 1.0, "high": 99.8,
                                                              "scope": "series"}
