"""Tests for spheroseg.ingest and ``spheroseg ingest``: round trips, metadata, bad input."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from spheroseg import ingest, ngff
from spheroseg.cli import main
from spheroseg.ingest import IngestError, PhysicalSizes

RNG = np.random.default_rng(9)


def _stack(shape, dtype="uint16"):
    return RNG.integers(0, 4096, size=shape).astype(dtype)


def _plain_zarr(path: Path) -> np.ndarray:
    return zarr.open_array(store=str(path / "0"), mode="r")[...]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def ome_stack(tmp_path):
    """The issue's OME-TIFF: T=5, C=2, 700x1026, uint16, 0.65 um, 300 s."""
    data = _stack((5, 2, 700, 1026))
    path = tmp_path / "exp" / "well A1 (ctrl) ü.ome.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, data, ome=True, photometric="minisblack", metadata={
        "axes": "TCYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65,
        "TimeIncrement": 300, "TimeIncrementUnit": "s"})
    return path, data


def test_ome_tiff_round_trip(ome_stack, tmp_path):
    path, data = ome_stack
    out = tmp_path / "res" / "image.ome.zarr"
    meta = ingest.ingest_position([path], out, name="well A1 (ctrl) ü")
    np.testing.assert_array_equal(_plain_zarr(out), data)
    assert _plain_zarr(out).dtype == np.uint16
    assert (meta.axes, meta.shape) == ("tcyx", (5, 2, 700, 1026))
    assert meta.pixel_size_um == 0.65 and meta.time_interval_s == 300.0
    assert meta.name == "well A1 (ctrl) ü"


def test_ome_tiff_metadata_valid_for_ome_zarr_reader(ome_stack, tmp_path):
    reader = pytest.importorskip("ome_zarr.reader")
    io = pytest.importorskip("ome_zarr.io")
    path, data = ome_stack
    out = tmp_path / "image.ome.zarr"
    ingest.ingest_position([path], out)
    node = list(reader.Reader(io.parse_url(str(out)))())[0]
    axes = node.metadata["axes"]
    assert [(a["name"], a.get("unit")) for a in axes] == [
        ("t", "second"), ("c", None), ("y", "micrometer"), ("x", "micrometer")]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales[0] == [300.0, 1.0, 0.65, 0.65]
    assert scales[1] == [300.0, 1.0, 1.3, 1.3]
    assert node.data[1].shape == (5, 2, 350, 513)
    np.testing.assert_array_equal(np.asarray(node.data[0]), data)


@pytest.mark.parametrize(
    ("axes", "shape", "expected_axes"),
    [("TCYX", (3, 2, 20, 30), "tcyx"), ("TZCYX", (2, 3, 2, 10, 12), "tczyx"),
     ("TYX", (4, 10, 12), "tcyx")],
    ids=["tcyx", "tzcyx", "tyx"],
)
def test_imagej_hyperstack_round_trip(tmp_path, axes, shape, expected_axes):
    data = _stack(shape)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.65, 1 / 0.65), metadata={
        "axes": axes, "unit": "um", "finterval": 300, "spacing": 2.5})
    meta = ingest.ingest_position([path], tmp_path / "image.ome.zarr")
    stored = _plain_zarr(tmp_path / "image.ome.zarr")
    assert meta.axes == expected_axes
    expected = {"TCYX": lambda: data, "TYX": lambda: data[:, None],
                "TZCYX": lambda: data.transpose(0, 2, 1, 3, 4)}[axes]()
    np.testing.assert_array_equal(stored, expected)
    assert meta.pixel_size_um == pytest.approx(0.65, rel=1e-9)
    assert meta.time_interval_s == 300.0
    assert meta.z_step_um == (2.5 if "Z" in axes else None)


def test_per_timepoint_series_round_trip(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    frames = _stack((12, 9, 11))
    for t, frame in enumerate(frames):  # t10, t11 sort after t9 numerically
        tifffile.imwrite(folder / f"B2_t{t}.tif", frame, resolution=(10000 / 0.5, 10000 / 0.5),
                         resolutionunit="CENTIMETER")
    tifffile.imwrite(folder / "C3_t0.tif", frames[0])
    positions = ingest.discover_positions(folder, pattern="{position}_t{timepoint}.tif")
    assert list(positions) == ["B2", "C3"]
    assert [p.name for p in positions["B2"]][-3:] == ["B2_t9.tif", "B2_t10.tif", "B2_t11.tif"]
    out = tmp_path / "image.ome.zarr"
    meta = ingest.ingest_position(positions["B2"], out,
                                  overrides=PhysicalSizes(time_interval_s=60.0))
    np.testing.assert_array_equal(_plain_zarr(out), frames[:, None])
    assert meta.shape == (12, 1, 9, 11)
    assert meta.pixel_size_um == 0.5 and meta.time_interval_s == 60.0


def test_rgb_samples_become_channels(tmp_path):
    data = _stack((6, 7, 3), "uint8")
    tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb")
    ingest.ingest_position([tmp_path / "rgb.tif"], tmp_path / "o.ome.zarr", pyramid=False)
    np.testing.assert_array_equal(_plain_zarr(tmp_path / "o.ome.zarr"),
                                  data.transpose(2, 0, 1)[None])


def test_plain_multipage_is_time_and_warns_missing_metadata(tmp_path, caplog):
    data = _stack((3, 5, 6))
    tifffile.imwrite(tmp_path / "p.tif", data, photometric="minisblack")
    with caplog.at_level(logging.WARNING, logger="spheroseg.ingest"):
        meta = ingest.ingest_position([tmp_path / "p.tif"], tmp_path / "o.ome.zarr", name="p")
    np.testing.assert_array_equal(_plain_zarr(tmp_path / "o.ome.zarr")[:, 0], data)
    assert meta.pixel_size_um is None and meta.time_interval_s is None
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("pixel_size_um unknown" in m and "--pixel-size-um" in m for m in messages)
    assert any("time_interval_s unknown" in m for m in messages)


def test_overrides_replace_file_metadata(ome_stack, tmp_path):
    path, _ = ome_stack
    meta = ingest.ingest_position([path], tmp_path / "o.ome.zarr", pyramid=False,
                                  overrides=PhysicalSizes(pixel_size_um=1.3))
    assert meta.pixel_size_um == 1.3 and meta.time_interval_s == 300.0


@pytest.mark.parametrize(
    ("resolution", "unit", "expected"),
    [((72, 72), "INCH", None), ((25400 / 2, 25400 / 2), "INCH", 2.0), ((1, 1), "NONE", None),
     ((20000, 20000), "CENTIMETER", 0.5)],
    ids=["default-72dpi", "inch", "no-unit", "centimeter"],
)
def test_resolution_tags(tmp_path, resolution, unit, expected):
    tifffile.imwrite(tmp_path / "r.tif", np.zeros((4, 4), "uint8"), resolution=resolution,
                     resolutionunit=unit)
    assert ingest.inspect_tiff(tmp_path / "r.tif").sizes.pixel_size_um == expected


def test_ome_delta_t_and_units():
    xml = (
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image><Pixels '
        'PhysicalSizeX="650" PhysicalSizeXUnit="nm" PhysicalSizeZ="2">'
        '<Plane TheT="0" TheC="0" TheZ="0" DeltaT="0" DeltaTUnit="min"/>'
        '<Plane TheT="1" TheC="0" TheZ="0" DeltaT="5" DeltaTUnit="min"/>'
        '<Plane TheT="2" TheC="0" TheZ="0" DeltaT="10.2" DeltaTUnit="min"/>'
        '<Plane TheT="3" TheC="0" TheZ="0" DeltaT="15" DeltaTUnit="min"/>'
        '</Pixels></Image></OME>'
    )
    sizes = ingest.metadata._ome_sizes(xml)
    assert sizes.pixel_size_um == pytest.approx(0.65)
    assert sizes.z_step_um == 2.0
    assert sizes.time_interval_s == pytest.approx(300.0)
    assert ingest.metadata._ome_sizes("<not xml") == PhysicalSizes()


def test_discover_without_pattern(tmp_path):
    for name in ["well A1 (ctrl) ü.ome.tif", "b[2].TIFF", "c.tif", ".hidden.tif", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "ground_truth").mkdir()
    (tmp_path / "ground_truth" / "c_mask.tif").write_bytes(b"")
    positions = ingest.discover_positions(tmp_path)
    assert list(positions) == ["b[2]", "c", "well A1 (ctrl) ü"]
    assert positions["well A1 (ctrl) ü"] == [tmp_path / "well A1 (ctrl) ü.ome.tif"]


def test_discover_pattern_in_subfolders(tmp_path):
    for position in ["A 1", "B2"]:
        (tmp_path / position).mkdir()
        for t in (2, 1):
            (tmp_path / position / f"img_t{t:03d}.tif").write_bytes(b"")
    positions = ingest.discover_positions(tmp_path, pattern="{position}/img_t{timepoint}.tif")
    assert [p.name for p in positions["A 1"]] == ["img_t001.tif", "img_t002.tif"]
    assert list(positions) == ["A 1", "B2"]


def test_compile_pattern_escapes_literals():
    regex = ingest.compile_pattern("{position} (x).tif")
    assert regex.fullmatch("A1 (x).tif")["position"] == "A1"
    assert regex.fullmatch("A1 xx.tif") is None


@pytest.mark.parametrize(
    ("pattern", "error", "match"),
    [("{timepoint}.tif", ValueError, "must contain {position}"),
     ("{position}_{position}.tif", ValueError, "at most once each"),
     ("{position}_{well}.tif", ValueError, "at most once each"),
     (5, TypeError, "pattern must be a string")],
    ids=["no-position", "repeated", "unknown", "not-string"],
)
def test_compile_pattern_rejects(pattern, error, match):
    with pytest.raises(error, match=match):
        ingest.compile_pattern(pattern)


def test_discover_errors(tmp_path):
    with pytest.raises(ValueError, match="experiment must be an existing folder"):
        ingest.discover_positions(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"at least one image file \(\.tif, \.tiff, \.nd2, \.czi, \.lif\), got none \(in "):
        ingest.discover_positions(tmp_path)
    for well in ("A1", "B1"):  # vendor files in per-well subfolders (audit V28)
        (tmp_path / well).mkdir()
        (tmp_path / well / "img.nd2").write_bytes(b"")
    with pytest.raises(ValueError, match=r"got none directly in it, but 2 in its subfolders; "
                                         r"ingest\.pattern \(spheroseg ingest --pattern\) such as "
                                         r"'\{position\}/img\.nd2' reads them \(in "):
        ingest.discover_positions(tmp_path)
    assert list(ingest.discover_positions(tmp_path, pattern="{position}/img.nd2")) == ["A1", "B1"]
    (tmp_path / "B1" / "other.ome.tif").write_bytes(b"")
    with pytest.raises(ValueError, match=r"but 3 in its subfolders; .* such as '\{position\}/NAME\.nd2'"):
        ingest.discover_positions(tmp_path)
    (tmp_path / "a.tif").write_bytes(b"")
    (tmp_path / "a.tiff").write_bytes(b"")
    with pytest.raises(ValueError, match="position names must be unique, got 'a'"):
        ingest.discover_positions(tmp_path)
    with pytest.raises(ValueError, match="pattern must match at least one file, got none"):
        ingest.discover_positions(tmp_path, pattern="{position}_t{timepoint}.tif")
    (tmp_path / "a_t1.tif").write_bytes(b"")
    (tmp_path / "a_t01.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="one file per timepoint"):
        ingest.discover_positions(tmp_path, pattern="{position}_t{timepoint}.tif")


def _write_bad_inputs(folder: Path) -> dict[str, tuple[list[Path], str]]:
    folder.mkdir(parents=True, exist_ok=True)
    good = _stack((3, 8, 8))
    tifffile.imwrite(folder / "full.tif", good, imagej=True, metadata={"axes": "TYX"})
    data = (folder / "full.tif").read_bytes()
    (folder / "truncated.tif").write_bytes(data[: len(data) - 100])
    tifffile.imwrite(folder / "two.ome.tif", _stack((2, 64, 64)), ome=True, photometric="minisblack",
                     metadata={"axes": "TYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    data = (folder / "two.ome.tif").read_bytes()
    (folder / "half.ome.tif").write_bytes(data[: len(data) // 2])  # tifffile reads 1 frame, no metadata
    (folder / "text.tif").write_text("this is not an image\n")
    (folder / "empty.tif").write_bytes(b"")
    tifffile.imwrite(folder / "m_t0.tif", good[0])
    tifffile.imwrite(folder / "m_t1.tif", good[0, :4])
    tifffile.imwrite(folder / "d_t0.tif", good[0])
    tifffile.imwrite(folder / "d_t1.tif", good[0].astype("uint8"))
    tifffile.imwrite(folder / "s_t0.tif", good, photometric="minisblack")
    tifffile.imwrite(folder / "s_t1.tif", good, photometric="minisblack")
    tifffile.imwrite(folder / "odd.tif", np.zeros((2, 3, 4, 4), "uint8"), metadata={"axes": "EPYX"})
    tifffile.imwrite(folder / "five.tif", np.zeros((2, 3, 4, 8, 8), "uint16"), photometric="rgb",
                     planarconfig="separate")  # axes QQSYX: a bare 5-D stack of 4-sample planes
    tifffile.imwrite(folder / "bits.tif", good[:, :, :] > 500)  # a 1-bit (bilevel) stack: a mask
    return {
        "truncated": ([folder / "truncated.tif"], r"(truncated|corrupt).*\(in .*truncated\.tif\)"),
        "truncated-half": ([folder / "half.ome.tif"], r"complete TIFF, got a truncated or corrupt file.*half\.ome\.tif"),
        "non-image": ([folder / "text.tif"], r"readable TIFF image.*not a TIFF.*text\.tif"),
        "empty-file": ([folder / "empty.tif"], r"readable TIFF image.*empty\.tif"),
        "mixed-shapes": ([folder / "m_t0.tif", folder / "m_t1.tif"],
                         r"share shape and dtype, got \(1, 4, 8\).*m_t1\.tif"),
        "mixed-dtypes": ([folder / "d_t0.tif", folder / "d_t1.tif"], r"share shape and dtype"),
        "stacks-as-timepoints": ([folder / "s_t0.tif", folder / "s_t1.tif"],
                                 r"must hold one timepoint, got 3; without ingest\.pattern .*each "
                                 r"file is read as a time series of its own \(config key "
                                 r"'ingest\.pattern', in .*s_t0\.tif\)"),
        "unsupported-axes": ([folder / "odd.tif"], r"axes must be among T, C, Z, Y, X"),
        "ambiguous-5d": ([folder / "five.tif"], r"Set ingest\.axes .* to one letter per file axis \(5 axes\) from "
                                                r"t, c, z, y, x, each at most once \(in .*five\.tif\)"),
        "no-files": ([], "at least one image file"),
        "one-bit": ([folder / "bits.tif"], r"image must have 8 or more bits per sample, got 1-bit planes .*bits\.tif"),
    }


BAD_CASES = ["truncated", "truncated-half", "non-image", "empty-file", "mixed-shapes", "mixed-dtypes",
             "stacks-as-timepoints", "unsupported-axes", "ambiguous-5d", "no-files", "one-bit"]


@pytest.mark.parametrize("case", BAD_CASES, ids=BAD_CASES)
def test_bad_input_errors_and_leaves_nothing(tmp_path, case):
    files, match = _write_bad_inputs(tmp_path / "raw")[case]
    out_dir = tmp_path / "res"
    with pytest.raises(IngestError, match=match):
        ingest.ingest_position(files, out_dir / "image.ome.zarr")
    assert _leftovers(out_dir) == []


def test_failure_while_writing_leaves_nothing(ome_stack, tmp_path, monkeypatch):
    path, _ = ome_stack

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest.write, "_write_frame", broken)
    with pytest.raises(OSError, match=r"could not write .*image\.ome\.zarr: No space left"):
        ingest.ingest_position([path], tmp_path / "res" / "image.ome.zarr")
    assert _leftovers(tmp_path / "res") == []


def test_failure_keeps_previous_output(ome_stack, tmp_path):
    path, _ = ome_stack
    out = tmp_path / "image.ome.zarr"
    ingest.ingest_position([path], out, pyramid=False)
    (tmp_path / "bad.tif").write_text("no")
    with pytest.raises(IngestError):
        ingest.ingest_position([tmp_path / "bad.tif"], out)
    assert ngff.read_metadata(out).shape == (5, 2, 700, 1026)


def test_cli_ingests_named_position(ome_stack, tmp_path):
    path, data = ome_stack
    out = tmp_path / "results" / "exp" / "well A1 (ctrl) ü" / "image.ome.zarr"
    status = main(["ingest", "--experiment", str(path.parent), "--position",
                   "well A1 (ctrl) ü", "--output", str(out), "--time-interval-s", "60",
                   "--no-pyramid"])
    assert status == 0
    np.testing.assert_array_equal(_plain_zarr(out), data)
    meta = ngff.read_metadata(out)
    assert meta.time_interval_s == 60.0 and meta.pixel_size_um == 0.65
    assert not (out / "1").exists()


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("truncated", [], r"(truncated|complete, readable TIFF image)"),
        ("non-image", [], "not a TIFF file"),
        ("empty-folder", [], r"at least one image file \(\.tif, .*\), got none"),
        ("mixed-shapes", ["--pattern", "{position}_t{timepoint}.tif"], "share shape and dtype"),
        ("no-match", ["--pattern", "{position}_z{timepoint}.tif"], "pattern must match"),
        ("unknown-position", [], "position must be one of"),
    ],
    ids=["truncated", "non-image", "empty-folder", "mixed-shapes", "no-match",
         "unknown-position"],
)
def test_cli_bad_input_one_line_error(tmp_path, capsys, setup, extra, message):
    folder = tmp_path / "exp"
    folder.mkdir()
    position = {"truncated": "t", "non-image": "t", "mixed-shapes": "m"}.get(setup, "x")
    if setup == "truncated":
        tifffile.imwrite(folder / "full.tif", _stack((3, 8, 8)), photometric="minisblack")
        data = (folder / "full.tif").read_bytes()
        (folder / "full.tif").unlink()
        (folder / "t.tif").write_bytes(data[:-50])
    elif setup == "non-image":
        (folder / "t.tif").write_text("hello")
    elif setup == "mixed-shapes":
        tifffile.imwrite(folder / "m_t0.tif", np.zeros((4, 4), "uint8"))
        tifffile.imwrite(folder / "m_t1.tif", np.zeros((4, 5), "uint8"))
    elif setup in ("no-match", "unknown-position"):
        tifffile.imwrite(folder / "a_t0.tif", np.zeros((4, 4), "uint8"))
    out = tmp_path / "res" / "image.ome.zarr"
    status = main(["ingest", "--experiment", str(folder), "--position", position,
                   "--output", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(err) == 1 and err[0].startswith("spheroseg ingest: error: ")
    assert re.search(message, err[0])
    named = {"truncated": "t.tif)", "non-image": "t.tif)", "mixed-shapes": "m_t1.tif)"}
    assert err[0].endswith(named.get(setup, f"(in {folder})"))
    assert _leftovers(tmp_path / "res") == []


@pytest.mark.parametrize("value", ["0", "-1", "inf"], ids=["zero", "neg", "inf"])
def test_cli_rejects_bad_override_before_reading(tmp_path, capsys, value):
    assert main(["ingest", "--experiment", str(tmp_path), "--position", "a", "--output",
                 str(tmp_path / "o.ome.zarr"), "--pixel-size-um", value]) == 1
    assert capsys.readouterr().err == (f"spheroseg ingest: error: pixel_size_um must be a number > 0, "
                                       f"got {float(value)!r}\n")


def test_cli_override_that_is_not_a_number_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--experiment", str(tmp_path), "--position", "a", "--output",
              str(tmp_path / "o.ome.zarr"), "--time-interval-s", "abc"])
    assert exit_info.value.code == 2
    assert "invalid float value: 'abc'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("axes", "shape", "to_tczyx"),
    [("CTYX", (2, 3, 6, 7), lambda d: d.transpose(1, 0, 2, 3)),
     ("ZTCYX", (2, 3, 2, 5, 4), lambda d: d.transpose(1, 2, 0, 3, 4)),
     ("TCZYX", (2, 2, 3, 5, 4), lambda d: d)],
    ids=["ctyx-reordered", "ztcyx-reordered", "tczyx-pages"],
)
def test_ome_axis_orders(tmp_path, axes, shape, to_tczyx):
    data = _stack(shape)
    tifffile.imwrite(tmp_path / "o.ome.tif", data, ome=True, photometric="minisblack",
                     metadata={"axes": axes})
    ingest.ingest_position([tmp_path / "o.ome.tif"], tmp_path / "o.ome.zarr", pyramid=False)
    np.testing.assert_array_equal(_plain_zarr(tmp_path / "o.ome.zarr"), to_tczyx(data))


REAL_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "spheroids"


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="real data ../shared/data not present")
def test_real_spheroid_image_round_trip(tmp_path):
    source = REAL_DATA / "spheroid9_day2.tif"
    positions = ingest.discover_positions(REAL_DATA)
    assert positions["spheroid9_day2"] == [source]
    meta = ingest.ingest_position([source], tmp_path / "image.ome.zarr")
    np.testing.assert_array_equal(ngff.read_frame(tmp_path / "image.ome.zarr", 0),
                                  tifffile.imread(source))
    assert meta.dtype == np.uint8 and meta.shape[-2:] == (1440, 1920)


@pytest.mark.parametrize(("pattern", "names", "match"), [
    ("{position}_t{timepoint}.tif", ["A_t0.tif", "A_t1.tif", "A_t3.tif", "B_t0.tif"],
     r"ingest.pattern files of position 'A' must be consecutive timepoints \(.*a gap would "
     r"shift every later time\), got no file for timepoint\(s\) 2 between 'A_t0.tif' and "
     r"'A_t3.tif' \(config key 'ingest.pattern', in .*\)$"),
    ("{position}/t{timepoint}.tif", ["A/t001.tif", "A/t002.tif", "A/t012.tif"],
     r"position 'A' .* timepoint\(s\) 3, 4, 5, 6, 7, 8, 9, 10 and 1 more between 'A/t001.tif' "
     r"and 'A/t012.tif'"),
], ids=["one-missing", "many-missing-in-subfolder"])
def test_discover_refuses_timepoint_gaps(tmp_path, pattern, names, match):
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=match):
        ingest.discover_positions(tmp_path, pattern=pattern)


def test_discover_takes_consecutive_timepoints_from_any_start(tmp_path):
    for t in (1, 2, 3, 10, 4, 5, 6, 7, 8, 9):
        (tmp_path / f"A_t{t}.tif").write_bytes(b"")
    positions = ingest.discover_positions(tmp_path, pattern="{position}_t{timepoint}.tif")
    assert [p.name for p in positions["A"]] == [f"A_t{t}.tif" for t in range(1, 11)]


@pytest.mark.parametrize("workers", [0, -5, 1.5], ids=["zero", "negative", "fraction"])
def test_workers_below_one_are_refused_before_reading(tmp_path, workers):
    tifffile.imwrite(tmp_path / "a.tif", _stack((2, 8, 8)), photometric="minisblack")
    with pytest.raises(ValueError, match=rf"workers must be an integer >= 1, got {workers!r} .*ingest\.workers"):
        ingest.ingest_position([tmp_path / "a.tif"], tmp_path / "image.ome.zarr", workers=workers)
    assert not (tmp_path / "image.ome.zarr").exists()


def test_ome_channel_names_reach_the_plan_and_unnamed_channels_stay_unnamed(tmp_path):
    """Vendor audit F8: a file's channel names appeared nowhere, so nothing said which one was
    segmented. OME-XML ``Channel/@Name`` is read; tifffile's own channels carry only IDs."""
    from spheroseg import preflight

    data = _stack((3, 2, 16, 16))
    tifffile.imwrite(tmp_path / "named.ome.tif", data, ome=True, photometric="minisblack",
                     metadata={"axes": "TCYX", "Channel": {"Name": ["BF", "H2B-GFP"]}})
    tifffile.imwrite(tmp_path / "plain.ome.tif", data, ome=True, photometric="minisblack",
                     metadata={"axes": "TCYX"})
    assert ingest.inspect_tiff(tmp_path / "named.ome.tif").channel_names == ("BF", "H2B-GFP")
    assert ingest.inspect_tiff(tmp_path / "plain.ome.tif").channel_names == ()
    plans = preflight.plan_experiment(tmp_path)
    assert plans["named"].channel_names == ("BF", "H2B-GFP") and plans["plain"].channel_names == ()
    lines = preflight.folder_warnings(plans, results=tmp_path / "results", channel=0)
    assert "'named' (2: 0 'BF' segmented, 1 'H2B-GFP'), 'plain' (2)" in lines[0]


def test_ingested_image_names_its_channels_and_gives_display_windows_for_viewers(tmp_path):
    """The ``omero`` block of NGFF: napari-ome-zarr and OMERO name the channel layers from its
    labels and set their contrast from the windows; without it every channel was unnamed and
    shown over the dtype's whole range (a 12-bit camera's image almost black)."""
    from ome_zarr_models.common.omero import Omero

    rng = np.random.default_rng(0)
    data = np.stack([rng.integers(100, 200, (3, 300, 300)), rng.integers(2000, 4000, (3, 300, 300))],
                    axis=1).astype(np.uint16)
    tifffile.imwrite(tmp_path / "named.ome.tif", data, ome=True, photometric="minisblack",
                     metadata={"axes": "TCYX", "Channel": {"Name": ["BF", "H2B-GFP"]}})
    tifffile.imwrite(tmp_path / "plain.tif", data[:, 0], photometric="minisblack")
    ingest.ingest_position([tmp_path / "named.ome.tif"], tmp_path / "named.ome.zarr")
    ingest.ingest_position([tmp_path / "plain.tif"], tmp_path / "plain.ome.zarr", pyramid=False)
    named = Omero.model_validate(ngff.read_attributes(tmp_path / "named.ome.zarr")["ome"]["omero"])
    assert [channel.model_extra["label"] for channel in named.channels] == ["BF", "H2B-GFP"]
    for channel, (low, high) in zip(named.channels, [(100, 200), (2000, 4000)], strict=True):
        window = channel.window
        assert (window.min, window.max) == (0, 65535)
        assert low <= window.start < window.end <= high and window.end - window.start > 0.3 * (high - low)
    (plain,) = Omero.model_validate(ngff.read_attributes(tmp_path / "plain.ome.zarr")["ome"]["omero"]).channels
    assert "label" not in plain.model_extra
    assert 100 <= plain.window.start < plain.window.end <= 200
    np.testing.assert_array_equal(np.asarray(ngff.open_array(tmp_path / "named.ome.zarr")), data)
    # ome-zarr-py, the reader under napari-ome-zarr, turns them into layer names and contrast limits
    reader, io = pytest.importorskip("ome_zarr.reader"), pytest.importorskip("ome_zarr.io")
    node = list(reader.Reader(io.parse_url(str(tmp_path / "named.ome.zarr")))())[0]
    assert node.metadata["channel_names"] == ["BF", "H2B-GFP"]
    assert node.metadata["contrast_limits"] == [[c.window.start, c.window.end] for c in named.channels]


def test_a_blank_stack_gets_a_display_window_of_nonzero_width(tmp_path):
    """A shutter that never opened: every pixel 0. A window with start == end makes viewers
    refuse the contrast limits, so the window is one grey level wide."""
    tifffile.imwrite(tmp_path / "blank.tif", np.zeros((3, 40, 40), np.uint16), photometric="minisblack")
    ingest.ingest_position([tmp_path / "blank.tif"], tmp_path / "blank.ome.zarr")
    (channel,) = ngff.read_attributes(tmp_path / "blank.ome.zarr")["ome"]["omero"]["channels"]
    assert channel["window"] == {"min": 0.0, "max": 65535.0, "start": 0.0, "end": 1.0}
