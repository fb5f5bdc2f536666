"""The package side of issue 14 without Snakemake: pre-flight planning and checks, ingest of
multi-series, ambiguous, blank and non-finite inputs, aggregation across units, job error
lines, umask and '$' in plot titles. Tiny inputs written inline."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from spheroseg import ingest, joblog, ngff, preflight
from spheroseg.atomic import atomic_path
from spheroseg.cli import main
from spheroseg.cli.aggregate import align_rows, union_columns
from spheroseg.ingest import IngestError, PhysicalSizes
from messy_cases import write_bare_stack


def frames(count: int, *, size: int = 16, dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """(T, Y, X) random frames."""
    return np.random.default_rng(seed).integers(0, 1000, (count, size, size)).astype(dtype)


def multi_series(path: Path, names: tuple[str, ...], counts: tuple[int, ...],
                 pixel_sizes: tuple[float, ...] | None = None) -> Path:
    """An OME-TIFF with one series per name (`counts` frames each, optional pixel sizes)."""
    with tifffile.TiffWriter(path, ome=True) as writer:
        for index, (name, count) in enumerate(zip(names, counts)):
            metadata = {"axes": "TYX", "Name": name}
            if pixel_sizes is not None:
                metadata.update(PhysicalSizeX=pixel_sizes[index], PhysicalSizeY=pixel_sizes[index])
            writer.write(frames(count, seed=index), photometric="minisblack", metadata=metadata)
    return path


# --- plan_experiment -------------------------------------------------------------------


def test_plan_splits_series_into_positions_with_their_sizes(tmp_path: Path) -> None:
    multi_series(tmp_path / "plate.ome.tif", ("A1", "B 2/x"), (3, 2), pixel_sizes=(0.5, 2.0))
    tifffile.imwrite(tmp_path / "single.tif", frames(4), photometric="minisblack")
    plans = preflight.plan_experiment(tmp_path)
    assert list(plans) == ["plate_A1", "plate_B 2_x", "single"]
    assert [(p.series, p.frames, p.pixel_size_um) for p in plans.values()] == [
        (0, 3, 0.5), (1, 2, 2.0), (0, 4, None)]


@pytest.mark.parametrize(("names", "expected"), [(("", ""), ["f_s0", "f_s1"]),
                                                  (("X", "X"), ["f_s0", "f_s1"])],
                         ids=["unnamed", "repeated"])
def test_plan_names_series_by_index_when_names_do_not_tell(tmp_path, names, expected) -> None:
    multi_series(tmp_path / "f.ome.tif", names, (1, 1))
    assert list(preflight.plan_experiment(tmp_path)) == expected


def test_plan_refuses_a_series_name_that_collides_with_a_file(tmp_path: Path) -> None:
    multi_series(tmp_path / "p.ome.tif", ("A", "B"), (1, 1))
    tifffile.imwrite(tmp_path / "p_A.tif", frames(1), photometric="minisblack")
    with pytest.raises(ValueError, match="position names must be unique, got 'p_A'"):
        preflight.plan_experiment(tmp_path)


def test_plan_with_pattern_counts_files_as_frames(tmp_path: Path) -> None:
    for t in range(3):
        tifffile.imwrite(tmp_path / f"A_t{t}.tif", frames(1, seed=t), photometric="minisblack")
    plans = preflight.plan_experiment(tmp_path, pattern="{position}_t{timepoint}.tif")
    assert plans["A"].frames == 3 and len(plans["A"].files) == 3


@pytest.mark.parametrize(("odd", "match"), [
    (lambda path: tifffile.imwrite(path, frames(1, size=12), photometric="minisblack"),
     r"files of one position must share shape and dtype, got \(1, 12, 12\) uint16 but \(1, 16, 16\) "
     r"uint16 in 'A_t0.tif' \(in .*A_t2.tif\)"),
    (lambda path: tifffile.imwrite(path, frames(1, dtype="uint8"), photometric="minisblack"),
     r"share shape and dtype, got \(1, 16, 16\) uint8 but \(1, 16, 16\) uint16 .*A_t2.tif"),
    (lambda path: path.write_bytes(path.read_bytes()[:300]), r"A_t2.tif"),
], ids=["other-shape", "other-dtype", "truncated"])
def test_plan_with_pattern_reads_every_file_not_only_the_first(tmp_path: Path, odd, match) -> None:
    """A bad file in the middle of a time-lapse stops the plan (before any job), not the
    ingest job after every other position has run (workflow audit F4)."""
    for t in range(4):
        tifffile.imwrite(tmp_path / f"A_t{t}.tif", frames(1, seed=t), photometric="minisblack")
    odd(tmp_path / "A_t2.tif")
    with pytest.raises((ValueError, IngestError), match=match):
        preflight.plan_experiment(tmp_path, pattern="{position}_t{timepoint}.tif")


def test_plan_names_a_broken_link_in_the_folder(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "A.tif", frames(2), photometric="minisblack")
    (tmp_path / "B.tif").symlink_to(tmp_path / "moved" / "B.tif")
    with pytest.raises(IngestError, match=r"file must be readable, got a link to a missing file \(in .*B.tif\)"):
        preflight.plan_experiment(tmp_path)


def test_output_folders_must_not_be_files(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    preflight.check_output_folder(str(tmp_path / "new" / "results"), "results")
    with pytest.raises(ValueError, match=r"results must be a folder \(or not exist yet\), got .*afile/sub.*, where "
                                         r".*afile' is a file \(config key 'results'\)"):
        preflight.check_output_folder(str(tmp_path / "afile" / "sub"), "results")


def test_plan_cache_skips_unchanged_files_and_rereads_changed_ones(tmp_path, monkeypatch) -> None:
    folder, cache = tmp_path / "exp", tmp_path / "cache" / "preflight.json"
    folder.mkdir()
    tifffile.imwrite(folder / "A.tif", frames(2), photometric="minisblack")
    assert preflight.plan_experiment(folder, cache=cache)["A"].frames == 2
    calls = []
    real = preflight.plan.inspect_series
    monkeypatch.setattr(preflight.plan, "inspect_series",
                        lambda path, **kw: calls.append(path) or real(path, **kw))
    assert preflight.plan_experiment(folder, cache=cache)["A"].frames == 2
    assert calls == []
    tifffile.imwrite(folder / "A.tif", frames(5), photometric="minisblack")
    os.utime(folder / "A.tif", ns=(time.time_ns() + 10**9,) * 2)
    assert preflight.plan_experiment(folder, cache=cache)["A"].frames == 5
    assert len(calls) == 1


def test_plan_announces_a_long_header_read_once(tmp_path, monkeypatch) -> None:
    folder, cache = tmp_path / "exp", tmp_path / "preflight.json"
    folder.mkdir()
    for timepoint in range(3):
        tifffile.imwrite(folder / f"A_t{timepoint}.tif", frames(1)[0], photometric="minisblack")
    monkeypatch.setattr(preflight.plan, "ANNOUNCE_FILES", 3)
    lines: list[str] = []
    plan = preflight.plan_experiment(folder, pattern="{position}_t{timepoint}.tif", cache=cache,
                                     announce=lines.append)
    assert plan["A"].frames == 3
    assert lines == [f"reading the headers of 3 files before any job; later runs take them "
                     f"from {cache}"]
    preflight.plan_experiment(folder, pattern="{position}_t{timepoint}.tif", cache=cache,
                              announce=lines.append)
    assert len(lines) == 1  # all cached: nothing to say


def test_plan_keeps_the_headers_read_before_an_interruption(tmp_path, monkeypatch) -> None:
    folder, cache = tmp_path / "exp", tmp_path / "preflight.json"
    folder.mkdir()
    for name in "ABC":
        tifffile.imwrite(folder / f"{name}.tif", frames(2), photometric="minisblack")
    monkeypatch.setattr(preflight.plan, "SAVE_EVERY_S", 0.0)
    real = preflight.plan.inspect_series

    def interrupted_at_c(path, **kwargs):
        if path.endswith("C.tif"):
            raise KeyboardInterrupt
        return real(path, **kwargs)

    monkeypatch.setattr(preflight.plan, "inspect_series", interrupted_at_c)
    with pytest.raises(KeyboardInterrupt):
        preflight.plan_experiment(folder, cache=cache)
    saved = json.loads(cache.read_text(encoding="utf-8"))["files"]
    assert sorted(Path(name).name for name in saved) == ["A.tif", "B.tif"]


def test_plan_names_ingest_axes_for_an_ambiguous_stack(tmp_path: Path) -> None:
    write_bare_stack(tmp_path / "bare.tif", frames(4))  # one page, 4 separate samples
    with pytest.raises(IngestError, match=r"ingest.axes .* 'tyx' for timepoints or 'cyx'.*bare.tif"):
        preflight.plan_experiment(tmp_path)
    assert preflight.plan_experiment(tmp_path, axes="tyx")["bare"].shape == (4, 1, 16, 16)
    assert preflight.plan_experiment(tmp_path, axes="cyx")["bare"].shape == (1, 4, 16, 16)


def test_rgb_image_is_not_ambiguous(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "rgb.tif", frames(3).transpose(1, 2, 0).astype("uint8"),
                     photometric="rgb")
    assert preflight.plan_experiment(tmp_path)["rgb"].channels == 3


# --- resolve_position (spheroseg ingest) ----------------------------------------------


def test_resolve_position_finds_a_series_and_explains_the_file_name(tmp_path: Path) -> None:
    multi_series(tmp_path / "plate.ome.tif", ("A1", "B1"), (3, 2))
    assert preflight.resolve_position(tmp_path, "plate_B1").series == 1
    with pytest.raises(ValueError, match=r"one series of .*\['plate_A1', 'plate_B1'\]"):
        preflight.resolve_position(tmp_path, "plate")
    with pytest.raises(ValueError, match="position must be one of 'plate', got 'other'"):
        preflight.resolve_position(tmp_path, "other")


def test_ingest_cli_writes_the_requested_series_only(tmp_path: Path) -> None:
    path = multi_series(tmp_path / "plate.ome.tif", ("A1", "B1"), (3, 2))
    out = tmp_path / "B1.ome.zarr"
    assert main(["ingest", "--experiment", str(tmp_path), "--position", "plate_B1",
                 "--output", str(out), "--no-pyramid"]) == 0
    np.testing.assert_array_equal(ngff.open_array(out)[:, 0], tifffile.imread(path, series=1))


# --- ingest: axes, non-finite pixels, blank frames --------------------------------------


def test_ingest_axes_override_reads_a_bare_stack_as_time(tmp_path: Path) -> None:
    data = frames(4)
    write_bare_stack(tmp_path / "bare.tif", data)
    with pytest.raises(IngestError, match="ingest.axes"):
        ingest.ingest_position([tmp_path / "bare.tif"], tmp_path / "no.ome.zarr")
    assert not (tmp_path / "no.ome.zarr").exists()
    meta = ingest.ingest_position([tmp_path / "bare.tif"], tmp_path / "o.ome.zarr", axes="tyx",
                                  pyramid=False)
    assert meta.shape == (4, 1, 16, 16)
    np.testing.assert_array_equal(ngff.open_array(tmp_path / "o.ome.zarr")[:, 0], data)


@pytest.mark.parametrize(("axes", "match"), [("tcyx", r"one letter per axis of the file's shape \(4, 16, 16\), whose axes are "
                                                      r"[A-Z]{3} in tifffile's order, got 'tcyx'"),
                                             ("xy", "y before x"),
                                             ("ttyx", "at most once")],
                         ids=["wrong-length", "transposed", "repeated"])
def test_ingest_axes_errors(tmp_path: Path, axes: str, match: str) -> None:
    write_bare_stack(tmp_path / "bare.tif", frames(4))
    with pytest.raises(ValueError, match=match):
        ingest.inspect_tiff(tmp_path / "bare.tif", axes=axes)


def test_nonfinite_pixels_are_refused_or_filled(tmp_path: Path) -> None:
    data = frames(2, dtype="float32")
    data[1, :3, :3] = np.nan
    data[1, 5, 5] = np.inf
    tifffile.imwrite(tmp_path / "f.tif", data, photometric="minisblack")
    with pytest.raises(IngestError, match=r"must be finite, got 10 NaN .* timepoint 1; set "
                                          r"ingest.fill_nonfinite .*f.tif"):
        ingest.ingest_position([tmp_path / "f.tif"], tmp_path / "no.ome.zarr")
    assert not (tmp_path / "no.ome.zarr").exists()
    ingest.ingest_position([tmp_path / "f.tif"], tmp_path / "o.ome.zarr", fill_nonfinite=-1.0,
                           pyramid=False)
    stored = ngff.open_array(tmp_path / "o.ome.zarr")[1, 0]
    assert stored[0, 0] == -1 and stored[5, 5] == -1 and stored[8, 8] == data[1, 8, 8]


def test_blank_frames_are_recorded_and_flagged_in_qc(tmp_path: Path, caplog) -> None:
    from spheroseg.report.build import _blank_frames

    data = frames(3)
    data[2] = 65535
    tifffile.imwrite(tmp_path / "b.tif", data, photometric="minisblack")
    with caplog.at_level("WARNING", logger="spheroseg.ingest"):
        ingest.ingest_position([tmp_path / "b.tif"], tmp_path / "o.ome.zarr", pyramid=False)
    assert any("timepoint 2 (all 65535)" in record.getMessage() for record in caplog.records)
    assert _blank_frames(tmp_path / "o.ome.zarr") == [2]
    from spheroseg.report.qc import position_qc

    metrics = pd.DataFrame({"timepoint": [0, 1], "object_id": [1, 1], "area_px2": [10.0, 10.0],
                            "touches_border": [False, False]})
    table = position_qc(metrics, [0.0, 0.0, 0.0], experiment="e", position="p",
                        area_jump_fraction=0.2, uncertain_fraction=0.05, blank_frames=[2])
    assert ("blank_frame", 2) in set(zip(table["flag"], table["timepoint"]))


# --- aggregate across units ---------------------------------------------------------


def test_union_columns_and_single_frame_time() -> None:
    header = union_columns([["position", "timepoint", "time_s", "object_id", "area_um2"],
                            ["position", "timepoint", "time_frame", "object_id", "area_px2"]])
    assert header == ["position", "timepoint", "time_s", "time_frame", "object_id", "area_um2",
                      "area_px2"]
    single = align_rows(["position", "timepoint", "time_frame", "object_id", "area_px2"],
                        [["s", "0", "0", "1", "5.0"]], header)
    assert single == [["s", "0", "0.000000", "0", "1", "", "5.0"]]
    series = align_rows(["position", "timepoint", "time_frame", "object_id", "area_px2"],
                        [["s", "0", "0", "1", "5.0"], ["s", "1", "1", "1", "6.0"]], header)
    assert [row[2] for row in series] == ["", ""]  # no interval: no time in seconds


def test_aggregate_cli_mixes_units(tmp_path: Path) -> None:
    import csv

    from spheroseg.measure import metric_columns

    um = metric_columns(pixel_size_um=0.5, time_interval_s=60.0)
    px = metric_columns(pixel_size_um=None, time_interval_s=None)
    (tmp_path / "a.csv").write_text(",".join(um) + "\ne,A,1,60.000000,1,2.0"
                                    + ",1" * (len(um) - 6) + "\n")
    (tmp_path / "b.csv").write_text(",".join(px) + "\ne,B,0,0,1,8.0" + ",1" * (len(px) - 6) + "\n")
    assert main(["aggregate", "--output", str(tmp_path / "all.csv"),
                 str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) == 0
    with open(tmp_path / "all.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == union_columns([um, px])
    assert header[:6] == ["experiment", "position", "timepoint", "time_s", "time_frame", "object_id"]
    got = [{name: row[header.index(name)] for name in ("time_s", "time_frame", "area_um2", "area_px2")}
           for row in rows]
    assert got == [{"time_s": "60.000000", "time_frame": "", "area_um2": "2.0", "area_px2": ""},
                   {"time_s": "0.000000", "time_frame": "0", "area_um2": "", "area_px2": "8.0"}]


# --- checks of config keys against the data -----------------------------------------


def plan(name: str = "A", channels: int = 1, pixel: float | None = None,
         interval: float | None = None, frames_: int = 2) -> preflight.PositionPlan:
    """A position plan without files on disk."""
    return preflight.PositionPlan(name, (f"{name}.tif",), 0, (frames_, channels, 8, 8), pixel,
                                  interval)


def test_check_channel() -> None:
    assert preflight.check_channel({"A": plan(channels=2)}, 1) == {"A": 1}
    with pytest.raises(ValueError, match=r"ingest.channel must be below 2 .*'B'.*B.tif"):
        preflight.check_channel({"A": plan(channels=3), "B": plan("B", channels=2)}, 2)


def named(name: str, *names: str) -> preflight.PositionPlan:
    """A position plan whose file names its channels."""
    return preflight.PositionPlan(name, (f"{name}.nd2",), 0, (2, len(names), 8, 8), None, None, names)


def test_channel_by_name_chooses_each_positions_own_number() -> None:
    """Two microscopes put brightfield in different channels: one name finds it in both."""
    plans = {"A": named("A", "BF", "GFP"), "B": named("B", "mCherry", "GFP", "bf"), "C": plan("C")}
    assert preflight.check_channel(plans, "GFP") == {"A": 1, "B": 1, "C": 0}
    # exact first, then ignoring case; an unnamed single-channel file uses its only channel
    assert preflight.check_channel(plans, "BF") == {"A": 0, "B": 2, "C": 0}
    # several names: the first that a position has, in the order given
    plans["D"] = named("D", "Brightfield", "BF")
    assert preflight.check_channel(plans, ["Brightfield", "BF"]) == {"A": 0, "B": 2, "C": 0, "D": 0}
    assert preflight.check_channel({"D": plans["D"]}, ["TL", "bf"]) == {"D": 1}


@pytest.mark.parametrize(("plans", "channel", "match"), [
    ({"A": named("A", "BF", "GFP")}, "DAPI",
     r"^ingest.channel must name a channel of position 'A' \(0 'BF', 1 'GFP'\), got 'DAPI' \(in A.nd2\)$"),
    ({"A": named("A", "BF", "GFP")}, ["TL", "DAPI"],
     r"got \['TL', 'DAPI'\] \(in A.nd2\)$"),
    # 'bf' and 'BF' both match when case is ignored: neither is taken
    ({"A": named("A", "bf", "BF ", "Bf")}, "BF", r"0 'bf', 1 'BF ', 2 'Bf'\), got 'BF'"),
    ({"A": plan(channels=2)}, "BF",
     r"^ingest.channel must be a number for position 'A', whose file does not name its 2 channels, "
     r"got 'BF' \(in A.tif\)$"),
], ids=["missing", "none-of-several", "ambiguous-case", "unnamed"])
def test_channel_by_name_that_a_position_lacks_names_its_file_and_channels(plans, channel, match) -> None:
    with pytest.raises(ValueError, match=match):
        preflight.check_channel(plans, channel)


def test_the_several_channels_note_marks_the_named_channel_of_each_position(tmp_path: Path) -> None:
    plans = {"A": named("A", "BF", "GFP"), "B": named("B", "GFP", "BF")}
    (line,) = [line for line in preflight.folder_warnings(plans, results=tmp_path, channel="BF")
               if "several channels" in line]
    assert "'A' (2: 0 'BF' segmented, 1 'GFP'), 'B' (2: 0 'GFP', 1 'BF' segmented)" in line
    assert "Only the channel named 'BF' is segmented" in line
    record = preflight.write_experiment_record(tmp_path, name="e", source=tmp_path, positions=plans,
                                               channels=preflight.check_channel(plans, "BF"))
    positions = json.loads(record.read_text())["positions"]
    assert (positions["A"]["channel"], positions["B"]["channel"]) == (0, 1)


def test_check_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"got 'm.pt' \(config key 'model'\)"):
        preflight.check_model("m.pt")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"JSON model card .*'m.json'.*'training.init'"):
        preflight.check_model(tmp_path / "m.pt", key="training.init")
    shipped = Path(__file__).resolve().parents[2] / "models" / "default.pt"
    preflight.check_model(shipped)


@pytest.mark.parametrize(("spoil", "match"), [
    (lambda model, card: card.write_text("{not json"), r"model card is not valid JSON: .*m.json\) \(config key 'model'\)"),
    (lambda model, card: card.write_text("[1, 2]"), r"m.json.*\(config key 'model'\)"),
    (lambda model, card: model.write_bytes(model.read_bytes() + b"x"),
     r"model file .*m.pt does not match its card: SHA-256 is .* \(config key 'model'\)"),
    (lambda model, card: _recard(model, card, b"PK not a model"),
     r"model must be a TorchScript file \(torch.jit.save\), got a file that is not one \(config key 'model', in .*m.pt\)"),
    (lambda model, card: _recard(model, card, None, channels=3),
     r"input.channels must be 1 or the 1 channel\(s\) of position 'A', got 3 \(the model does not fit the data; "
     r"config key 'model', in .*m.json\)"),
], ids=["card-not-json", "card-a-list", "model-changed", "not-torchscript", "channels"])
def test_check_model_reads_the_card_and_the_model_before_any_job(tmp_path: Path, spoil, match) -> None:
    """A model that does not fit its card or the data stops the workflow when the DAG is
    built, naming `model` (workflow audit), not in the tile or predict job after ingest."""
    import shutil

    shipped = Path(__file__).resolve().parents[2] / "models"
    model, card = tmp_path / "m.pt", tmp_path / "m.json"
    shutil.copy(shipped / "default.pt", model)
    shutil.copy(shipped / "default.json", card)
    positions = {"A": preflight.PositionPlan("A", ("A.tif",), 0, (2, 1, 8, 8), None, None)}
    preflight.check_model(model, positions=positions)
    spoil(model, card)
    with pytest.raises(ValueError, match=match):
        preflight.check_model(model, positions=positions)


def _recard(model: Path, card: Path, content: bytes | None, *, channels: int | None = None) -> None:
    """Replace the model's bytes (if given) and rewrite its card to match, channels changed."""
    from spheroseg.modelcard import write_card

    if content is not None:
        model.write_bytes(content)
    document = json.loads(card.read_text())
    if channels is not None:
        document["input"]["channels"] = channels
    write_card(document, model)


@pytest.mark.parametrize(("make", "match"), [
    (lambda root: None, "training.annotations must name a folder .* got null"),
    (lambda root: str(root / "missing"), "training.annotations: annotations must be an existing"),
    (lambda root: str(root), "training.annotations: annotations must hold image/mask pairs"),
], ids=["null", "missing", "empty"])
def test_check_annotations(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        preflight.check_annotations(make(tmp_path))


def test_plan_refuses_a_gap_in_pattern_timepoints(tmp_path: Path) -> None:
    for t in (0, 1, 3):
        tifffile.imwrite(tmp_path / f"P1_t{t}.tif", frames(1, seed=t), photometric="minisblack")
    with pytest.raises(ValueError, match=r"files of position 'P1' must be consecutive timepoints "
                       r".*got no file for timepoint\(s\) 2 .*config key 'ingest.pattern'"):
        preflight.plan_experiment(tmp_path, pattern="{position}_t{timepoint}.tif")


SHEETS = {
    "good": "position\tcondition\nA\tctl\nB\tdrug\n",
    "wrong-columns": "well\tgroup\nA\tctl\nB\tdrug\n",
    "commas": "position,condition\nA,ctl\nB,drug\n",
    "duplicate": "position\tcondition\nA\tctl\nA\tdrug\nB\tdrug\n",
    "empty": "",
    "partial": "position\tcondition\nA\tctl\n",
    "ghosts": "position\tcondition\nX\tctl\nY\tdrug\n",
}


@pytest.mark.parametrize(("sheet", "match"), [
    (None, r"sample sheet must be an existing file, got no such file '.*missing.tsv' "
           r"\(config key 'samples'\)"),
    ("folder", r"sample sheet must be an existing file, got a folder .*\(config key 'samples'\)"),
    ("wrong-columns", r"columns must include \['position', 'condition'\], got \['well', 'group'\] "
                      r"\(config key 'samples', in .*wrong-columns.tsv\)"),
    ("commas", r"got \['position,condition'\] \(config key 'samples', in .*commas.tsv\)"),
    ("duplicate", r"once in the sample sheet, got 'A' more than once \(config key 'samples'"),
    ("empty", r"must have a header row, got an empty file \(config key 'samples', in .*empty"),
    ("partial", r"every position of the experiment must be in the sample sheet, got 1 of 2 "
                r"missing: 'B' \(config key 'samples', in .*partial.tsv\)"),
    ("ghosts", r"got 2 of 2 missing: 'A', 'B' \(config key 'samples', in .*ghosts.tsv\)"),
    ("latin-1", r"sample sheet must be UTF-8 text .*\(config key 'samples', in .*latin-1.tsv\)"),
], ids=["missing", "folder", "wrong-columns", "commas", "duplicate", "empty", "partial",
        "ghosts", "latin-1"])
def test_check_samples_refuses(tmp_path: Path, sheet: str | None, match: str) -> None:
    path = tmp_path / f"{sheet or 'missing'}.tsv"
    if sheet == "folder":
        path.mkdir()
    elif sheet == "latin-1":
        path.write_bytes("position\tcondition\nA\tcontr\u00f4le\nB\tdrug\n".encode("latin-1"))
    elif sheet is not None:
        path.write_text(SHEETS[sheet])
    with pytest.raises(ValueError, match=match):
        preflight.check_samples(path, {"A": plan("A"), "B": plan("B")})


@pytest.mark.parametrize(("text", "lines"), [
    (SHEETS["good"], []),
    ("\ufeffposition\tcondition\r\nA\tctl\r\nB\tdrug\r\n", []),
    (SHEETS["good"] + "C\tdrug\nA 1\tctl\n",
     ["the sample sheet lists 2 position(s) that the experiment does not have, ignored: "
      "'C', 'A 1' (config key 'samples', in {path})"]),
], ids=["good", "byte-order-mark", "unknown-positions"])
def test_check_samples_accepts(tmp_path: Path, text: str, lines: list[str]) -> None:
    path = tmp_path / "samples.tsv"
    path.write_text(text, encoding="utf-8")
    found = preflight.check_samples(path, {"A": plan("A"), "B": plan("B")})
    assert found == [line.format(path=path) for line in lines]


def test_check_snakemake_path() -> None:
    preflight.check_snakemake_path("results", "results")
    preflight.check_snakemake_path(None, "samples")
    with pytest.raises(ValueError, match=r"results must not contain .* got 'r\{1\}'"):
        preflight.check_snakemake_path("r{1}", "results")


def test_position_folders_replace_braces_and_refuse_clashes() -> None:
    assert list(preflight.position_folders({"x{p}": plan("x{p}")})) == ["x(p)"]
    with pytest.raises(ValueError, match="differ in more than braces"):
        preflight.position_folders({"a{1}": plan("a{1}"), "a(1)": plan("a(1)")})


def test_experiment_record_refuses_another_source(tmp_path: Path) -> None:
    results = tmp_path / "results" / "raw"
    first, second = tmp_path / "e1" / "raw", tmp_path / "e2" / "raw"
    preflight.check_experiment_record(results, source=first)  # nothing recorded yet
    preflight.write_experiment_record(results, name="raw", source=first, positions={"A": plan()})
    record = json.loads((results / "experiment.json").read_text())
    assert record["source"] == str(first) and record["positions"]["A"]["series"] == 0
    preflight.check_experiment_record(results, source=first)
    with pytest.raises(ValueError, match=r"got .*e2/raw; set experiment_name .*'e2_raw'"):
        preflight.check_experiment_record(results, source=second)


def test_experiment_record_follows_a_project_copied_with_its_data(tmp_path, monkeypatch) -> None:
    import shutil

    (tmp_path / "a" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    preflight.write_experiment_record("results/x", name="x", source="data", positions={})
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b")
    preflight.check_experiment_record("results/x", source="data")
    preflight.check_experiment_record("results/x", source=tmp_path / "a" / "data")  # the original
    with pytest.raises(ValueError, match="set experiment_name"):
        preflight.check_experiment_record("results/x", source="other")


def test_unit_warnings_name_the_positions_and_keys() -> None:
    plans = {"A": plan("A"), "B": plan("B", pixel=1.0, interval=60.0), "C": plan("C", frames_=1)}
    pixel, time_ = preflight.unit_warnings(plans)
    assert "2 of 3 position(s) have no pixel size" in pixel and "'A', 'C'" in pixel
    assert "ingest.pixel_size_um" in pixel and "segment.min_area_px" in pixel
    assert "1 of 2 time series" in time_ and "'A'" in time_ and "ingest.time_interval_s" in time_
    assert preflight.unit_warnings(plans, overrides=PhysicalSizes(1.0, 60.0)) == []


def test_unit_warnings_name_the_files_whose_own_value_an_override_replaces() -> None:
    """Vendor audit F1: a TIFF at 600 s beside an ND2 without an interval; the user sets
    ingest.time_interval_s for the ND2, and the TIFF's times changed without a word."""
    plans = {"A1": plan("A1", pixel=0.5, interval=600.0), "nd2": plan("nd2"),
             "one": plan("one", pixel=2.0, interval=5.0, frames_=1)}
    pixel, time_ = preflight.unit_warnings(plans, overrides=PhysicalSizes(2.0, 10.6))
    assert pixel == ("ingest.pixel_size_um (2 um) replaces the value in the metadata of 1 position(s): "
                     "'A1' (0.5 um). The key holds one value for every position; remove it to keep each "
                     "file's own.")
    assert time_.startswith("ingest.time_interval_s (10.6 s) replaces the value in the metadata of 1 "
                            "position(s): 'A1' (600 s).")  # a one-frame position has no times to change
    assert preflight.unit_warnings(plans, overrides=PhysicalSizes(0.5, 600.0)) == [
        "ingest.pixel_size_um (0.5 um) replaces the value in the metadata of 1 position(s): 'one' (2 um). "
        "The key holds one value for every position; remove it to keep each file's own."]


# --- job errors, umask, '$' in titles -----------------------------------------------


def test_job_errors_lists_logs_of_this_run(tmp_path: Path) -> None:
    old = tmp_path / "A" / "logs" / "segment.log"
    old.parent.mkdir(parents=True)
    old.write_text("spheroseg segment: error: old failure\n")
    os.utime(old, (time.time() - 100,) * 2)
    new = tmp_path / "B" / "logs" / "ingest.log"
    new.parent.mkdir(parents=True)
    new.write_text("spheroseg ingest: info\nspheroseg ingest: error: bad pixels (in B.tif)\n")
    crash = tmp_path / "logs" / "report.log"
    crash.parent.mkdir(parents=True)
    crash.write_text("Traceback (most recent call last):\n  File x\nZeroDivisionError: boom\n")
    assert joblog.job_errors([tmp_path, tmp_path / "missing"], since=time.time() - 10) == [
        f"{new}: spheroseg ingest: error: bad pixels (in B.tif)",
        f"{crash}: ZeroDivisionError: boom"]


def test_atomic_directories_keep_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "metrics", directory=True) as tmp:
            (tmp / "t0000.csv").write_text("x\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "metrics").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "metrics" / "t0000.csv").stat().st_mode & 0o777 == 0o640


def test_dollar_signs_in_titles_are_plain_text(tmp_path: Path) -> None:
    from spheroseg.report import plots

    metrics = pd.DataFrame({
        "experiment": "e", "position": ["a$b", "a$b", "c"], "timepoint": [0, 1, 0],
        "time_s": [0.0, 60.0, 0.0], "object_id": [1, 1, 1], "area_um2": [1.0, 2.0, 3.0],
        "perimeter_um": [4.0, 5.0, 6.0], "circularity": [0.9, 0.9, 0.8],
        "aspect_ratio": [1.0, 1.1, 1.2], "touches_border": [False] * 3})
    figure = plots.plot_experiment(metrics, title="run $1 / well $A")
    plots.save_figure(figure, [tmp_path / "c.png"])
    figure = plots.plot_position(metrics[metrics["position"] == "a$b"], title="x $ y $ z")
    plots.save_figure(figure, [tmp_path / "p.png"])
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "p.png").stat().st_size > 0


def _plan(name: str, shape: tuple[int, ...], pixel_size_um: float | None = None) -> preflight.PositionPlan:
    return preflight.PositionPlan(name, (f"{name}.tif",), 0, shape, pixel_size_um, None)


def test_folder_warnings_name_what_runs_but_may_not_be_meant(tmp_path: Path) -> None:
    """Workflow audit: an ImageJ time-lapse saved as slices (X42), a mask among the images
    (X35), a position whose file was deleted since the last run (R13): each ran without a word."""
    plans = {"A": _plan("A", (1, 1, 12, 64, 64)), "B_mask": _plan("B_mask", (1, 1, 64, 64)),
             "C": _plan("C", (5, 1, 64, 64))}
    preflight.write_experiment_record(tmp_path, name="e", source=tmp_path, positions=plans | {
        "D": _plan("D", (5, 1, 64, 64))})
    lines = preflight.folder_warnings(plans, results=tmp_path)
    assert len(lines) == 3
    # vendor audit F2: a z-stack over time was max-projected without a word
    stack = {"Z": _plan("Z", (3, 1, 10, 31, 38))}
    assert preflight.folder_warnings(stack, results=tmp_path / "new") == [
        "1 position(s) are z-stacks over time: 'Z' (10 planes). Their images keep every plane, but predict, "
        "segment and measure use each timepoint's maximum projection over z."]
    # vendor audit F8: channel 0 of a two-channel file was segmented without a word
    two = {"C2": _plan("C2", (3, 2, 31, 38)), "C1": _plan("C1", (3, 1, 31, 38))}
    assert preflight.folder_warnings(two, results=tmp_path / "new", channel=1) == [
        "1 position(s) have several channels: 'C2' (2). Only channel 1 (counting from 0) is segmented and "
        "measured; ingest.channel chooses it, by number or name."]
    # ... and where the file names its channels, the note names them and the segmented one
    named = {"C2": preflight.PositionPlan("C2", ("C2.czi",), 0, (3, 2, 31, 38), None, None, ("LED555", "LED470"))}
    assert preflight.folder_warnings(named, results=tmp_path / "new", channel=1) == [
        "1 position(s) have several channels: 'C2' (2: 0 'LED555', 1 'LED470' segmented). Only channel 1 "
        "(counting from 0) is segmented and measured; ingest.channel chooses it, by number or name."]
    assert lines[0].startswith("1 position(s) have z-slices and one timepoint: 'A'") and "ingest.axes" in lines[0]
    assert lines[1].startswith("1 position(s) are named like annotation masks: 'B_mask'")
    assert lines[2].startswith("1 position(s) of an earlier run are no longer in the experiment folder: 'D'")
    assert preflight.folder_warnings({"C": plans["C"]}, results=tmp_path / "new") == []
    # a pattern without {timepoint} on per-timepoint files: every file a one-frame position (X31)
    singles = {f"P1_t{t}": _plan(f"P1_t{t}", (1, 1, 64, 64)) for t in range(4)}
    lines = preflight.folder_warnings(singles, results=tmp_path / "new", pattern="{position}.tif")
    assert lines == ["ingest.pattern '{position}.tif' has no {timepoint}, so each of the 4 files is a position of "
                     "one frame ('P1_t0', 'P1_t1', 'P1_t2' and 1 more); if the files are the timepoints of fewer "
                     "positions, put {timepoint} in the pattern."]
    assert preflight.folder_warnings(singles, results=tmp_path / "new", pattern="{position}_t{timepoint}.tif") == []


@pytest.mark.parametrize(("pixel", "override", "warned"), [
    (2.0, None, False), (0.5, None, False), (0.1, None, True), (None, 0.1, True), (20.0, None, True), (None, None, False),
], ids=["same", "4x-finer", "20x-finer", "override", "10x-coarser", "unknown"])
def test_scale_warnings_flag_a_resampling_that_suggests_a_wrong_pixel_size(pixel, override, warned) -> None:
    """A pixel size 20 times too small shrank 128-px frames to 6 px with no word on the console (C47)."""
    plans = {"A": _plan("A", (4, 1, 512, 512), pixel)}
    lines = preflight.scale_warnings(plans, model_pixel_size_um=2.0,
                                     overrides=PhysicalSizes(pixel_size_um=override))
    assert bool(lines) == warned
    small = {"A": _plan("A", (4, 1, 32, 32), 2.0)}  # a small crop at the model's scale is not resampled
    assert preflight.scale_warnings(small, model_pixel_size_um=2.0) == []
    if warned:
        assert "ingest.pixel_size_um" in lines[0] and "'A' (512 x 512 px at" in lines[0]
