"""Vendor files (ND2, CZI, LIF) through the optional bioio readers (the ``vendor`` extra).

Real sample files from the readers' own repositories (``tests/data/vendor/README.md``) are
ingested and checked against the reader's own metadata and pixels: frame count, shape,
pixel size, frame interval. Tests skip when the extra or a format's file is absent, except
where ``SPHEROSEG_REQUIRE_VENDOR=1`` (CI installs the extra with ``.[test]``): there a
missing reader fails.
"""

from __future__ import annotations

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
        interval = image.time_interval
        yield (index, name, pixels, image.dims, image.physical_pixel_sizes,
               interval.total_seconds() if interval is not None else None)


@pytest.mark.parametrize("suffix", list(READERS), ids=[s[1:] for s in READERS])
def test_ingest_agrees_with_the_reader(suffix, tmp_path):
    from spheroseg.cli import main

    require_reader(suffix)
    for sample in samples(suffix):
        folder = tmp_path / sample.stem
        folder.mkdir()
        shutil.copy(sample, folder / sample.name)
        plans = list(preflight.plan_experiment(folder).values())
        scenes = list(reader_scenes(sample))
        assert len(plans) == len(scenes)
        for plan, (index, _, pixels, dims, sizes, interval) in zip(plans, scenes):
            assert plan.series == index
            assert plan.pixel_size_um == pytest.approx(sizes.X)
            assert plan.time_interval_s == (pytest.approx(interval) if interval else None)
            out = tmp_path / "out" / f"{index}.ome.zarr"
            status = main(["ingest", "--experiment", str(folder), "--position", plan.name,
                           "--output", str(out)])
            if pixels is None:  # the reader cannot read them: a clean stop, nothing written
                assert status == 1 and not out.exists()
                continue
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
        assert meta.z_step_um == pytest.approx(sizes.Z)
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


def test_nd2_time_series_has_its_frames_pixel_size_and_no_invented_interval(tmp_path):
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
    assert meta.axes == "tczyx"
    assert meta.shape == (sizes["T"], sizes["C"], sizes["Z"], sizes["Y"], sizes["X"]) == (3, 2, 10, 31, 38)
    assert meta.pixel_size_um == pytest.approx(voxel.x) and meta.z_step_um == pytest.approx(voxel.z)
    # The time loop ran "no delay" (period 0 ms): the file states no interval, so none is stored.
    assert time_loop.parameters.periodMs == 0 and meta.time_interval_s is None
    np.testing.assert_array_equal(np.asarray(ngff.open_array(tmp_path / "image.ome.zarr")),
                                  pixels.transpose(0, 2, 1, 3, 4))


def test_multi_scene_lif_gives_one_position_per_scene(tmp_path):
    require_reader(".lif")
    if not LIF.is_file():
        pytest.skip(f"{LIF.name} is absent")
    shutil.copy(LIF, tmp_path / "sweep.lif")
    plans = preflight.plan_experiment(tmp_path)
    assert list(plans) == ["sweep_x_y_lambdaEmi", "sweep_x_y_lambdaExc", "sweep_x_y_z_t_lambdaEmi"]
    assert [plan.series for plan in plans.values()] == [0, 1, 2]
    assert [plan.pixel_size_um for plan in plans.values()] == [pytest.approx(0.104814428)] * 3
    with pytest.raises(ValueError, match=r"must name one series of the multi-series file "
                                         r"'sweep.lif', got 'sweep'"):
        preflight.resolve_position(tmp_path, "sweep")
    assert preflight.resolve_position(tmp_path, "sweep_x_y_lambdaExc").series == 1


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
