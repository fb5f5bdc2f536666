"""Vendor files (ND2, CZI, LIF) through the optional bioio readers (the ``vendor`` extra).

Real sample files from the readers' own repositories (``tests/data/vendor/README.md``) are
ingested and checked against the reader's own metadata and pixels: frame count, shape,
pixel size, frame interval. Tests skip when the extra or a format's file is absent, except
where ``SPHEROSEG_REQUIRE_VENDOR=1`` (CI installs the extra with ``.[test]``): there a
missing reader fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from spheroseg import ngff, preflight
from spheroseg.ingest import IngestError, MissingReaderError, discover_positions

DATA = Path(__file__).parent / "data" / "vendor"
READERS = {".nd2": "bioio_nd2", ".czi": "bioio_czi", ".lif": "bioio_lif"}
CZI = DATA / "CD_s_1_t_3_c_2_z_5.czi"
LIF = DATA / "LeicaLASX_wavelength-sweep_example.lif"
LIF_SERIES = DATA / "PR2729_frameOrderCombinedScanTypes.lif"
ND2 = DATA / "cluster.nd2"


def require_reader(suffix: str):
    """bioio and the format's plugin, or skip (fail where SPHEROSEG_REQUIRE_VENDOR=1)."""
    try:
        import bioio  # noqa: F401

        return __import__(READERS[suffix]).Reader
    except ImportError as err:
        if os.environ.get("SPHEROSEG_REQUIRE_VENDOR") == "1":
            pytest.fail(f"the vendor extra must be installed here: {err}")
        pytest.skip(f"the vendor extra is not installed ({err.name})")


def samples(suffix: str) -> list[Path]:
    """Sample files of one format in tests/data/vendor, or skip naming the missing format."""
    found = sorted(path for path in DATA.glob("*") if path.suffix.lower() == suffix)
    if not found:
        pytest.skip(f"no {suffix} sample file in {DATA} (see its README)")
    return found


def reader_scenes(path: Path):
    """(scene index, name, TCZYX pixels or None if the reader cannot read them, sizes) per
    scene, all from bioio itself."""
    import bioio

    image = bioio.BioImage(path, reader=require_reader(path.suffix.lower()))
    for index, name in enumerate(image.scenes):
        image.set_scene(index)
        try:
            pixels = image.get_image_data("TCZYX")
        except Exception:  # the reader's own limitation (e.g. bioio-lif and spectral scans)
            pixels = None
        yield (index, name, pixels, image.dims, image.physical_pixel_sizes,
               reader_interval_s(image, path))


def reader_interval_s(image, path: Path) -> float | None:
    """The frame interval as the reader states it: bioio's ``time_interval``, or for LIF the
    spacing of bioio-lif's T coordinates (seconds): bioio-lif 2.0 puts it there, not in
    ``time_interval``; for an ND2 that states none, its frames' acquisition times."""
    suffix = path.suffix.lower()
    interval = image.time_interval
    if interval is not None:
        return interval.total_seconds()
    if suffix == ".nd2":
        return nd2_timestamp_interval_s(path)
    times = image.xarray_dask_data.coords.get("T")
    if suffix != ".lif" or times is None or times.size < 2:
        return None
    return float(np.diff(times.values).mean())


def nd2_timestamp_interval_s(path) -> float | None:
    """An ND2's frame interval from its frames' own acquisition times (nd2's per-frame
    metadata, not its event table): the upper median step between the z-0 planes of
    consecutive timepoints; None for one timepoint. For time loops that state no period."""
    import nd2

    with nd2.ND2File(path) as document:
        if document.sizes.get("T", 1) < 2:
            return None
        starts = {}
        for frame, loops in enumerate(document.loop_indices):
            if loops.get("Z", 0) == 0 and loops.get("P", 0) == 0:
                starts.setdefault(loops["T"], document.frame_metadata(frame).channels[0].time.relativeTimeMs / 1000)
    ordered = [starts[t] for t in sorted(starts)]
    steps = sorted(np.diff(ordered))
    return float(steps[len(steps) // 2])


@pytest.mark.parametrize("suffix", list(READERS), ids=[s[1:] for s in READERS])
def test_ingest_agrees_with_the_reader(suffix, tmp_path):
    from spheroseg.cli import main

    require_reader(suffix)
    for sample in samples(suffix):
        folder = tmp_path / sample.stem
        folder.mkdir()
        shutil.copy(sample, folder / sample.name)
        scenes = list(reader_scenes(sample))
        if any(pixels is None for _, _, pixels, *_ in scenes):  # the reader cannot read them
            with pytest.raises(IngestError, match=rf"bioio reads, got .*\(in .*{sample.name}\)"):
                preflight.plan_experiment(folder)  # so the run stops before any job
            continue
        plans = list(preflight.plan_experiment(folder).values())
        assert len(plans) == len(scenes)
        for plan, (index, _, pixels, dims, sizes, interval) in zip(plans, scenes):
            assert plan.series == index
            assert plan.pixel_size_um == pytest.approx(sizes.X)
            assert plan.time_interval_s == (pytest.approx(interval) if interval else None)
            out = tmp_path / "out" / f"{index}.ome.zarr"
            status = main(["ingest", "--experiment", str(folder), "--position", plan.name,
                           "--output", str(out)])
            assert status == 0
            _check_image(out, pixels, dims, sizes, interval)


def _check_image(out: Path, pixels: np.ndarray, dims, sizes, interval: float | None) -> None:
    """The stored image equals the reader's pixels (T, C, [Z,] Y, X) and metadata."""
    meta = ngff.read_metadata(out)
    expected = pixels if dims.Z > 1 else pixels[:, :, 0]
    assert meta.shape == expected.shape and meta.shape[0] == dims.T
    assert meta.pixel_size_um == pytest.approx(sizes.X)
    assert meta.time_interval_s == (pytest.approx(interval) if interval and dims.T > 1 else None)
    if dims.Z > 1:
        assert meta.z_step_um == pytest.approx(abs(sizes.Z))  # bioio's step is signed
    stored = ngff.open_array(out)
    for t in range(dims.T):
        np.testing.assert_array_equal(np.asarray(stored[t]), expected[t])


def _czi_scaling_um(path: Path) -> dict[str, float]:
    """Pixel size per axis in µm from the CZI's own XML (Scaling/Items/Distance, metres)."""
    from pylibCZIrw import czi

    with czi.open_czi(str(path)) as document:
        root = ElementTree.fromstring(document.raw_metadata)
    return {item.get("Id"): float(item.findtext("Value")) * 1e6
            for item in root.iter("Distance")}


def test_czi_time_series_has_its_frames_pixel_size_and_interval(tmp_path):
    from spheroseg.ingest import ingest_position

    require_reader(".czi")
    if not CZI.is_file():
        pytest.skip(f"{CZI.name} is absent")
    meta = ingest_position([CZI], tmp_path / "image.ome.zarr", name="cd")
    scaling = _czi_scaling_um(CZI)
    assert meta.axes == "tczyx" and meta.shape == (3, 2, 5, 170, 240)
    assert meta.pixel_size_um == pytest.approx(scaling["X"])
    assert meta.z_step_um == pytest.approx(scaling["Z"])
    # bioio-czi: the time between the first and last frames' acquisition, per interval.
    assert meta.time_interval_s == pytest.approx(60.045434)
    assert ngff.read_attributes(tmp_path / "image.ome.zarr")["ome"]["multiscales"][0]["axes"][0] \
        == {"name": "t", "type": "time", "unit": "second"}


def test_nd2_time_series_has_its_frames_pixel_size_and_its_timestamps_interval(tmp_path):
    from spheroseg.ingest import ingest_position

    require_reader(".nd2")
    if not ND2.is_file():
        pytest.skip(f"{ND2.name} is absent")
    import nd2

    meta = ingest_position([ND2], tmp_path / "image.ome.zarr", name="cluster")
    with nd2.ND2File(ND2) as document:
        voxel = document.voxel_size()
        sizes = document.sizes
        (time_loop,) = [loop for loop in document.experiment if loop.type == "TimeLoop"]
        pixels = document.asarray()  # T, Z, C, Y, X
        names = [channel.channel.name for channel in document.metadata.channels]
    assert meta.axes == "tczyx"
    # viewers name the channel layers from the omero labels; each window lies within its channel's data
    omero = ngff.read_attributes(tmp_path / "image.ome.zarr")["ome"]["omero"]["channels"]
    assert [channel["label"] for channel in omero] == names == ["5-FAM/pH 9.0", "FM 4-64/2% CHAPS"]
    for index, channel in enumerate(omero):
        assert pixels[:, :, index].min() <= channel["window"]["start"] < channel["window"]["end"] <= pixels[:, :, index].max()
    assert meta.shape == (sizes["T"], sizes["C"], sizes["Z"], sizes["Y"], sizes["X"]) == (3, 2, 10, 31, 38)
    assert meta.pixel_size_um == pytest.approx(voxel.x) and meta.z_step_um == pytest.approx(voxel.z)
    # The time loop ran "no delay" (period 0 ms): the file states no period, so the interval
    # comes from the frames' own acquisition times (about 10.65 s apart).
    assert time_loop.parameters.periodMs == 0
    assert meta.time_interval_s == pytest.approx(nd2_timestamp_interval_s(ND2), abs=1e-5)
    assert 10.6 < meta.time_interval_s < 10.7
    np.testing.assert_array_equal(np.asarray(ngff.open_array(tmp_path / "image.ome.zarr")),
                                  pixels.transpose(0, 2, 1, 3, 4))


def test_vendor_channel_names_reach_the_plan_and_the_console_note(tmp_path):
    """Vendor audit F8: the files' channel names (ND2 '5-FAM/pH 9.0', CZI 'LED555') appeared
    nowhere, so nothing said which channel was segmented. Expected names come from each
    format's own library (nd2's metadata, the CZI's XML), not from bioio."""
    require_reader(".nd2")
    require_reader(".czi")
    if not (ND2.is_file() and CZI.is_file()):
        pytest.skip("a sample file is absent")
    import nd2
    from pylibCZIrw import czi

    with nd2.ND2File(ND2) as document:
        nd2_names = tuple(channel.channel.name for channel in document.metadata.channels)
    with czi.open_czi(str(CZI)) as document:
        channels = ElementTree.fromstring(document.raw_metadata).find(".//Information/Image/Dimensions/Channels")
    czi_names = tuple(channel.get("Name") for channel in channels)
    assert nd2_names == ("5-FAM/pH 9.0", "FM 4-64/2% CHAPS") and czi_names == ("LED555", "LED470")
    shutil.copy(ND2, tmp_path / "A.nd2")
    shutil.copy(CZI, tmp_path / "B.czi")
    plans = preflight.plan_experiment(tmp_path)
    assert plans["A"].channel_names == nd2_names and plans["B"].channel_names == czi_names
    (line,) = [line for line in preflight.folder_warnings(plans, results=tmp_path / "r", channel=1)
               if "several channels" in line]
    assert "'A' (2: 0 '5-FAM/pH 9.0', 1 'FM 4-64/2% CHAPS' segmented), 'B' (2: 0 'LED555', 1 'LED470' segmented)" in line
    record = preflight.write_experiment_record(tmp_path / "r", name="e", source=tmp_path, positions=plans)
    assert json.loads(record.read_text())["positions"]["B"]["channel_names"] == list(czi_names)


def _liffile_image(path: Path) -> dict:
    """Sizes, coordinates (metres, seconds), tile grid and pixels (T, M, Z, C, Y, X) of the
    LIF's only image, from liffile (the library under bioio-lif 2)."""
    liffile = pytest.importorskip("liffile")
    with liffile.LifFile(path) as document:
        (image,) = document.images
        assert image.dims == ("T", "M", "Z", "C", "Y", "X")
        return {"sizes": image.sizes, "coords": image.coords, "tiles": image.tilescan.tiles,
                "pixels": image.asarray()}


def test_lif_time_series_has_its_frames_pixel_size_z_step_and_interval(tmp_path):
    from spheroseg.cli import main

    require_reader(".lif")
    if not LIF_SERIES.is_file():
        pytest.skip(f"{LIF_SERIES.name} is absent")
    folder = tmp_path / "experiment"
    folder.mkdir()
    shutil.copy(LIF_SERIES, folder / "tiles.lif")
    (plan,) = preflight.plan_experiment(folder).values()
    out = tmp_path / "image.ome.zarr"
    assert main(["ingest", "--experiment", str(folder), "--position", plan.name,
                 "--output", str(out)]) == 0
    lif = _liffile_image(LIF_SERIES)
    sizes, tiles = lif["sizes"], lif["tiles"]
    step = {axis: float(np.diff(lif["coords"][axis]).mean()) for axis in "TZX"}
    rows, columns = int(tiles["field_y"].max()) + 1, int(tiles["field_x"].max()) + 1
    meta = ngff.read_metadata(out)
    # bioio-lif stitches the 2 x 2 tiles of 64 x 64 into one image (LIF tiles overlap by 1 pixel).
    assert meta.axes == "tczyx" and sizes["M"] == rows * columns == 4
    assert meta.shape == (sizes["T"], sizes["C"], sizes["Z"], rows * (sizes["Y"] - 1) + 1,
                          columns * (sizes["X"] - 1) + 1) == (2, 2, 3, 127, 127)
    assert meta.pixel_size_um == plan.pixel_size_um == pytest.approx(step["X"] * 1e6)
    # The stack was taken top-down (z increments of -6.23 µm): the spacing is their magnitude.
    assert step["Z"] < 0 and meta.z_step_um == pytest.approx(-step["Z"] * 1e6)
    assert meta.time_interval_s == plan.time_interval_s == pytest.approx(step["T"]) \
        == pytest.approx(8.271)
    assert ngff.read_attributes(out)["ome"]["multiscales"][0]["axes"][0] \
        == {"name": "t", "type": "time", "unit": "second"}
    # The tile of the last row and column keeps all its pixels; bioio-lif puts it top left.
    (last,) = np.flatnonzero((tiles["field_y"] == rows - 1) & (tiles["field_x"] == columns - 1))
    np.testing.assert_array_equal(np.asarray(ngff.open_array(out))[..., :sizes["Y"], :sizes["X"]],
                                  lif["pixels"][:, last].transpose(0, 2, 1, 3, 4))


def test_a_header_cache_from_before_lif_intervals_is_read_again(tmp_path):
    require_reader(".lif")
    if not LIF_SERIES.is_file():
        pytest.skip(f"{LIF_SERIES.name} is absent")
    shutil.copy(LIF_SERIES, tmp_path / "tiles.lif")
    cache = tmp_path / "cache.json"
    (plan,) = preflight.plan_experiment(tmp_path, cache=cache).values()
    document = json.loads(cache.read_text())
    for entry in document["files"].values():  # as an older spheroseg cached it
        entry["series"][0]["time_interval_s"] = None
    cache.write_text(json.dumps({**document, "version": 1}))
    (again,) = preflight.plan_experiment(tmp_path, cache=cache).values()
    assert again.time_interval_s == plan.time_interval_s == pytest.approx(8.271)


@pytest.mark.parametrize(("step", "expected"), [(-6.2, 6.2), (0.5, 0.5), (0.0, None),
                                                (float("nan"), None), (None, None)],
                         ids=["top-down", "bottom-up", "zero", "nan", "unknown"])
def test_a_z_step_is_the_magnitude_of_the_readers_signed_step(step, expected):
    from spheroseg.ingest.vendor import _z_step_um

    assert _z_step_um(step) == (pytest.approx(expected) if expected else None)


def test_multi_scene_lif_gives_one_position_per_scene(tmp_path):
    require_reader(".lif")
    if not LIF.is_file():
        pytest.skip(f"{LIF.name} is absent")
    shutil.copy(LIF, tmp_path / "sweep.lif")
    # Headers only: plan_experiment also reads the pixels, which bioio-lif cannot (spectral).
    names = ["sweep_x_y_lambdaEmi", "sweep_x_y_lambdaExc", "sweep_x_y_z_t_lambdaEmi"]
    plans = [preflight.resolve_position(tmp_path, name) for name in names]
    assert [plan.name for plan in plans] == names
    assert [plan.series for plan in plans] == [0, 1, 2]
    assert [plan.pixel_size_um for plan in plans] == [pytest.approx(0.104814428)] * 3
    with pytest.raises(ValueError, match=r"must name one series of the multi-series file "
                                         r"'sweep.lif', got 'sweep'"):
        preflight.resolve_position(tmp_path, "sweep")


def _first_bytes(source: Path, size: int | None) -> bytes:
    """The first `size` bytes of a sample file (all of it for None), or skip if it is absent."""
    require_reader(source.suffix)
    if not source.is_file():
        pytest.skip(f"{source.name} is absent")
    return source.read_bytes()[:size]


@pytest.mark.parametrize(("source", "size", "reason"), [
    (LIF, None, r"ValueError: axes don't match array"),
    (CZI, 1_000_000, r"RuntimeError: Not enough data read at offset \d+"),
    (LIF_SERIES, 150_000, r"OSError: read \d+ bytes, expected \d+"),
], ids=["spectral-lif", "truncated-czi", "truncated-lif"])
def test_vendor_pixels_bioio_cannot_read_stop_before_any_job(source, size, reason, tmp_path):
    from spheroseg.ingest import ingest_position

    broken = tmp_path / "raw" / f"broken{source.suffix}"
    broken.parent.mkdir()
    broken.write_bytes(_first_bytes(source, size))
    cache = tmp_path / "cache.json"
    message = rf"must be a complete \{source.suffix} image that bioio reads, got {reason}.*\(in .*broken"
    with pytest.raises(IngestError, match=message) as planned:
        preflight.plan_experiment(broken.parent, cache=cache)
    assert "\n" not in str(planned.value)
    (entry,) = json.loads(cache.read_text())["files"].values()  # remembered until it changes
    assert entry["error"] == str(planned.value)
    with pytest.raises(IngestError) as ingested:  # the error the ingest job would give
        ingest_position([broken], tmp_path / "image.ome.zarr", series=0)
    assert str(ingested.value).split(": ")[0] == str(planned.value).split(": ")[0]


def test_vendor_files_are_positions_without_reading_them(tmp_path):
    for name in ("A1.nd2", "B2.CZI", "c3.lif", "notes.txt"):
        (tmp_path / name).write_bytes(b"not read by discovery")
    assert list(discover_positions(tmp_path)) == ["A1", "B2", "c3"]


@pytest.fixture
def without_bioio(monkeypatch):
    """Imports of bioio and its plugins fail, as without the vendor extra."""
    for name in ("bioio", *READERS.values()):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_the_extra_a_vendor_folder_names_it(without_bioio, tmp_path, capsys):
    from spheroseg.cli import main

    (tmp_path / "A1.nd2").write_bytes(b"\0" * 64)
    message = r"pip install 'spheroseg\[vendor\]' \(bioio, bioio-nd2\) .*\(in .*A1\.nd2\)"
    with pytest.raises(MissingReaderError, match=message):
        preflight.plan_experiment(tmp_path)
    status = main(["ingest", "--experiment", str(tmp_path), "--position", "A1",
                   "--output", str(tmp_path / "out.ome.zarr")])
    assert status == 1
    assert "spheroseg[vendor]" in capsys.readouterr().err
    assert not (tmp_path / "out.ome.zarr").exists()


def test_a_missing_reader_is_not_cached(without_bioio, tmp_path, monkeypatch):
    (tmp_path / "A1.czi").write_bytes(b"\0" * 64)
    cache = tmp_path / "cache.json"
    with pytest.raises(MissingReaderError):
        preflight.plan_experiment(tmp_path, cache=cache)
    monkeypatch.undo()  # "the extra is installed now"
    require_reader(".czi")
    with pytest.raises(IngestError, match=r"must be a complete \.czi image that bioio reads"):
        preflight.plan_experiment(tmp_path, cache=cache)


def _tiff_bytes(tmp_path: Path, *, bigtiff: bool) -> bytes:
    """A small TIFF (or BigTIFF) file's bytes."""
    import tifffile

    tifffile.imwrite(tmp_path / "real.tif", np.zeros((3, 8, 8), np.uint8), bigtiff=bigtiff,
                     photometric="minisblack")
    return (tmp_path / "real.tif").read_bytes()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("A1.nd2", lambda tmp: b"", r"file must be a \.nd2 image, got an empty file \(0 bytes\)"),
    ("A1.nd2", lambda tmp: _tiff_bytes(tmp, bigtiff=False),
     r"file must be the \.nd2 image its name says, got a TIFF file; rename it to A1\.tif"),
    ("A1.lif", lambda tmp: _tiff_bytes(tmp, bigtiff=True),
     r"file must be the \.lif image its name says, got a TIFF file; rename it to A1\.tif"),
    ("A1.nd2", lambda tmp: _first_bytes(ND2, 300_000),
     r"got ValueError: Invalid ChunkMap signature \(32 zero bytes\) in file 'A1\.nd2'; if the "),
    ("A1.czi", lambda tmp: _first_bytes(ND2, None),  # the reader's own reason comes whole
     r"got UnsupportedFileFormatError: bioio-czi.* does not support the image: 'A1\.czi'\. "
     r"Illegal data detected at offset 0 -> Invalid FileHdr-magic; if the file is fine"),
], ids=["empty", "tiff-named-nd2", "bigtiff-named-lif", "truncated-nd2", "nd2-named-czi"])
def test_an_unreadable_vendor_file_is_told_what_it_is(name, content, message, tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / name).write_bytes(content(tmp_path))
    with pytest.raises(IngestError, match=message + r".*\(in .*A1\.") as error:
        preflight.plan_experiment(tmp_path / "raw")
    assert "\\x" not in str(error.value) and "b'" not in str(error.value)
    assert ("OME-TIFF" in str(error.value)) == ("bioio reads" in str(error.value))


@pytest.mark.parametrize(("text", "expected"), [
    ("short. reason", "short. reason"),
    ("First sentence here. Second sentence that goes on", "First sentence here. ..."),
    ("one two three four five six seven", "one two three four ..."),
    ("abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrst ..."),
], ids=["short", "sentence", "word", "one-word"])
def test_a_long_reader_reason_is_cut_after_a_sentence_or_before_a_word(text, expected):
    from spheroseg.ingest.vendor import _shorten

    assert _shorten(text, 20) == expected


def test_time_series_files_under_a_per_timepoint_pattern_name_the_pattern(tmp_path):
    require_reader(".nd2")
    if not ND2.is_file():
        pytest.skip(f"{ND2.name} is absent")
    for name in ("A_t0.nd2", "A_t1.nd2"):  # each holds 3 timepoints
        shutil.copy(ND2, tmp_path / name)
    with pytest.raises(IngestError, match=r"must hold one timepoint, got 3; without ingest\.pattern "
                                          r".*each file is read as a time series of its own "
                                          r"\(config key 'ingest\.pattern', in .*A_t0\.nd2\)"):
        preflight.plan_experiment(tmp_path, pattern="{position}_t{timepoint}.nd2")


def test_ingest_axes_of_the_wrong_length_names_bioios_axis_order(tmp_path):
    require_reader(".nd2")
    if not ND2.is_file():
        pytest.skip(f"{ND2.name} is absent")
    shutil.copy(ND2, tmp_path / "cluster.nd2")
    with pytest.raises(IngestError, match=r"ingest\.axes must have one letter per axis of the "
                                          r"file's shape \(3, 2, 10, 31, 38\), whose axes are "
                                          r"TCZYX in bioio's order, got 'tyx' \(in .*cluster"):
        preflight.plan_experiment(tmp_path, axes="tyx")
