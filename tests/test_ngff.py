"""Tests for spheroseg.ngff: NGFF 0.5 images written, described and read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from spheroseg import ngff
from spheroseg.atomic import atomic_path


def _make(path: Path, data: np.ndarray, axes: str, **sizes) -> Path:
    sizes.setdefault("pixel_size_um", 0.65)
    sizes.setdefault("time_interval_s", 300.0)
    array = ngff.create_image(path, shape=data.shape, dtype=data.dtype, axes=axes, **sizes)
    array[...] = data
    return path


@pytest.mark.parametrize(
    ("axes", "shape", "dtype"),
    [
        ("tcyx", (3, 2, 7, 9), "uint16"),
        ("tczyx", (2, 1, 3, 5, 6), "uint8"),
        ("tyx", (4, 5, 6), "float32"),
        ("yx", (5, 6), "int32"),
    ],
    ids=["tcyx-uint16", "tczyx-uint8", "tyx-float32", "yx-int32"],
)
def test_round_trip_with_plain_zarr(tmp_path, axes, shape, dtype):
    data = (np.arange(np.prod(shape)) % 251).astype(dtype).reshape(shape)
    path = _make(tmp_path / "a.ome.zarr", data, axes)
    stored = zarr.open_array(store=str(path / "0"), mode="r")
    assert stored.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(stored[...], data)
    meta = ngff.read_metadata(path)
    assert (meta.axes, meta.shape, meta.dtype) == (axes, shape, np.dtype(dtype))
    assert meta.pixel_size_um == 0.65
    assert meta.time_interval_s == (300.0 if "t" in axes else None)


def test_metadata_units_and_scale(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((2, 1, 4, 4), "uint16"), "tcyx")
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    assert attrs["version"] == "0.5"
    multiscale = attrs["multiscales"][0]
    assert [a.get("unit") for a in multiscale["axes"]] == ["second", None, "micrometer",
                                                         "micrometer"]
    assert [a["type"] for a in multiscale["axes"]] == ["time", "channel", "space", "space"]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [300.0, 1.0, 0.65, 0.65]


def test_unknown_sizes_have_no_unit_and_read_back_none(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((2, 4, 4), "uint8"), "tyx",
                 pixel_size_um=None, time_interval_s=None)
    multiscale = json.loads((path / "zarr.json").read_text())["attributes"]["ome"][
        "multiscales"][0]
    assert all("unit" not in axis for axis in multiscale["axes"])
    meta = ngff.read_metadata(path)
    assert meta.pixel_size_um is None and meta.time_interval_s is None


def test_default_chunks_one_frame_and_tiles(tmp_path):
    array = ngff.create_image(tmp_path / "a.ome.zarr", shape=(3, 2, 600, 2100), dtype="uint16",
                              axes="tcyx", pixel_size_um=None, time_interval_s=None)
    assert array.chunks == (1, 1, 600, 2048)


def test_independent_reader_ome_zarr(tmp_path):
    reader = pytest.importorskip("ome_zarr.reader")
    io = pytest.importorskip("ome_zarr.io")
    data = np.arange(2 * 2 * 8 * 10, dtype="uint16").reshape(2, 2, 8, 10)
    path = _make(tmp_path / "a.ome.zarr", data, "tcyx", name="well A1")
    nodes = list(reader.Reader(io.parse_url(str(path)))())
    assert nodes, "ome-zarr found no image"
    metadata = nodes[0].metadata
    assert [axis["name"] for axis in metadata["axes"]] == list("tcyx")
    assert metadata["coordinateTransformations"][0][0]["scale"] == [300.0, 1.0, 0.65, 0.65]
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), data)


def test_read_frame_channel_and_z_projection(tmp_path):
    data = np.random.default_rng(1).integers(0, 1000, (2, 2, 3, 4, 5)).astype("uint16")
    path = _make(tmp_path / "a.ome.zarr", data, "tczyx", z_step_um=2.0)
    np.testing.assert_array_equal(ngff.read_frame(path, 1, channel=1), data[1, 1].max(axis=0))
    array = ngff.open_array(path)
    np.testing.assert_array_equal(ngff.read_frame(array, 0), data[0, 0].max(axis=0))
    assert ngff.read_metadata(path).z_step_um == 2.0


def test_open_array_is_read_only(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((1, 4, 4), "uint8"), "tyx")
    array = ngff.open_array(path)
    with pytest.raises(Exception, match="read.only|read-only|mode"):
        array[0, 0, 0] = 1


def test_pyramid_levels_and_scales(tmp_path):
    data = np.full((2, 1, 40, 30), 7, dtype="uint16")
    path = _make(tmp_path / "a.ome.zarr", data, "tcyx")
    assert ngff.write_pyramid(path, min_size=8) == 2
    level1 = ngff.open_array(path, 1)
    assert level1.shape == (2, 1, 20, 15)
    assert np.all(level1[...] == 7) and level1.dtype == np.uint16
    assert ngff.open_array(path, 2).shape == (2, 1, 10, 8)
    multiscale = json.loads((path / "zarr.json").read_text())["attributes"]["ome"][
        "multiscales"][0]
    assert multiscale["datasets"][2]["coordinateTransformations"][0]["scale"] == [
        300.0, 1.0, 2.6, 2.6]
    assert ngff.read_metadata(path).pixel_size_um == 0.65


def test_downsample_block_mean_keeps_dtype():
    frame = np.array([[0, 2, 4], [2, 4, 6]], dtype=np.uint8)
    result = ngff.downsample_plane(frame, factor=2)
    np.testing.assert_array_equal(result, np.array([[2, 5]], dtype=np.uint8))
    assert result.dtype == np.uint8


def test_atomic_create(tmp_path):
    out = tmp_path / "a.ome.zarr"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(out) as tmp:
            array = ngff.create_image(tmp, shape=(1, 4, 4), dtype="uint8", axes="tyx",
                                      pixel_size_um=None, time_interval_s=None)
            array[...] = 1
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(out) as tmp:
        ngff.create_image(tmp, shape=(1, 4, 4), dtype="uint8", axes="tyx",
                          pixel_size_um=None, time_interval_s=None)[...] = 3
    assert ngff.read_frame(out, 0)[0, 0] == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"axes": "xy"}, ValueError, "axes must be a subsequence"),
        ({"axes": "tcq"}, ValueError, "axes must be a subsequence"),
        ({"axes": 3}, TypeError, "axes must be a string"),
        ({"shape": (2, 4)}, ValueError, "shape must have one entry"),
        ({"shape": (0, 4, 4)}, ValueError, "shape must have one entry"),
        ({"chunks": (1, 4)}, ValueError, "chunks must have one entry"),
        ({"pixel_size_um": -1.0}, ValueError, "pixel_size_um must be a finite number"),
        ({"time_interval_s": float("nan")}, ValueError, "time_interval_s must be a finite"),
        ({"pixel_size_um": "0.5"}, TypeError, "pixel_size_um must be a number"),
    ],
    ids=["axes-order", "axes-unknown", "axes-type", "shape-length", "shape-zero",
         "chunks-length", "pixel-negative", "interval-nan", "pixel-string"],
)
def test_create_image_rejects_bad_arguments(tmp_path, kwargs, error, match):
    arguments = {"shape": (2, 4, 4), "dtype": "uint8", "axes": "tyx", "pixel_size_um": 1.0,
                 "time_interval_s": 1.0}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        ngff.create_image(tmp_path / "a.ome.zarr", **arguments)


def test_create_image_refuses_existing_store(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((1, 4, 4), "uint8"), "tyx")
    with pytest.raises(ValueError, match="must not exist yet"):
        ngff.create_image(path, shape=(1, 4, 4), dtype="uint8", axes="tyx",
                          pixel_size_um=None, time_interval_s=None)


def test_read_metadata_rejects_non_ngff(tmp_path):
    with pytest.raises(ValueError, match=r"must be an NGFF image .*in .*missing"):
        ngff.read_metadata(tmp_path / "missing")
    zarr.open_group(store=str(tmp_path / "plain.zarr"), mode="w", zarr_format=3)
    with pytest.raises(ValueError, match="without it"):
        ngff.read_metadata(tmp_path / "plain.zarr")
    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    with pytest.raises(ValueError, match="valid JSON"):
        ngff.read_metadata(broken)


def test_read_metadata_rejects_missing_level(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((1, 4, 4), "uint8"), "tyx")
    with pytest.raises(ValueError, match="level must be an integer in"):
        ngff.open_array(path, 1)


def test_read_metadata_v04_layout_and_other_units(tmp_path):
    group = zarr.open_group(store=str(tmp_path / "v2.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(2, 3, 3), dtype="uint8", chunks=(1, 3, 3))
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "t", "type": "time", "unit": "minute"},
                 {"name": "y", "type": "space", "unit": "nanometer"},
                 {"name": "x", "type": "space", "unit": "nanometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [5.0, 500.0, 500.0]}]}],
    }]
    meta = ngff.read_metadata(tmp_path / "v2.zarr")
    assert meta.axes == "tyx"
    assert meta.time_interval_s == pytest.approx(300.0)
    assert meta.pixel_size_um == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("t", "channel", "match"),
    [(5, 0, "t must be an integer in"), (0, 2, "channel must be an integer in"),
     (-1, 0, "t must be an integer in"), (0.5, 0, "t must be an integer in")],
    ids=["t-high", "channel-high", "t-negative", "t-float"],
)
def test_read_frame_rejects_bad_index(tmp_path, t, channel, match):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((2, 2, 4, 4), "uint8"), "tcyx")
    with pytest.raises(ValueError, match=match):
        ngff.read_frame(path, t, channel=channel)


def test_read_frame_without_channel_axis_needs_channel_zero(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((2, 4, 4), "uint8"), "tyx")
    with pytest.raises(ValueError, match="channel must be 0"):
        ngff.read_frame(path, 0, channel=1)


def test_write_pyramid_rejects_bad_factor(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((1, 4, 4), "uint8"), "tyx")
    with pytest.raises(ValueError, match="factor must be an integer >= 2"):
        ngff.write_pyramid(path, factor=1)


@pytest.mark.parametrize(
    ("axes", "shape", "chunks"),
    [("tcyx", (3, 2, 37, 50), (1, 1, 16, 32)), ("tczyx", (2, 2, 3, 9, 7), None),
     ("tyx", (2, 5, 6), (2, 4, 4)), ("tcyx", (2, 3, 20, 20), (1, 2, 8, 16))],
    ids=["edge-chunks", "czyx-frame", "fallback-multi-t-chunks", "chunks-across-channels"],
)
def test_write_frame_matches_input(tmp_path, axes, shape, chunks):
    data = np.random.default_rng(2).integers(0, 60000, shape).astype("uint16")
    array = ngff.create_image(tmp_path / "a.ome.zarr", shape=shape, dtype="uint16", axes=axes,
                              pixel_size_um=None, time_interval_s=None, chunks=chunks)
    for t in range(shape[0]):
        ngff.write_frame(array, t, data[t])
    stored = zarr.open_array(store=str(tmp_path / "a.ome.zarr" / "0"), mode="r")
    np.testing.assert_array_equal(stored[...], data)


def test_write_frame_converts_big_endian(tmp_path):
    data = np.arange(2 * 4 * 4, dtype=">u2").reshape(2, 4, 4)
    array = ngff.create_image(tmp_path / "a.ome.zarr", shape=data.shape, dtype=data.dtype,
                              axes="tyx", pixel_size_um=None, time_interval_s=None)
    assert array.dtype == np.dtype("<u2")
    ngff.write_frame(array, 1, data[1])
    np.testing.assert_array_equal(ngff.read_frame(tmp_path / "a.ome.zarr", 1), data[1])


@pytest.mark.parametrize(
    ("t", "frame_shape", "match"),
    [(2, (4, 4), "t must be an integer in"), (0, (4, 5), "frame must have shape"),
     (True, (4, 4), "t must be an integer in")],
    ids=["t-out-of-range", "wrong-shape", "t-bool"],
)
def test_write_frame_rejects(tmp_path, t, frame_shape, match):
    array = ngff.create_image(tmp_path / "a.ome.zarr", shape=(2, 4, 4), dtype="uint8",
                              axes="tyx", pixel_size_um=None, time_interval_s=None)
    with pytest.raises(ValueError, match=match):
        ngff.write_frame(array, t, np.zeros(frame_shape, "uint8"))


@pytest.mark.parametrize(
    ("dtype", "factor", "low"),
    [("uint8", 2, 0), ("uint16", 2, 0), ("int32", 2, 0), ("float32", 2, 0),
     ("int16", 2, -300), ("uint16", 3, 0), ("int8", 3, -100)],
    ids=["uint8", "uint16", "int32", "float32", "int16-negative", "uint16-factor3",
         "int8-negative-factor3"])
def test_downsample_plane_equals_block_mean(dtype, factor, low):
    frame = np.random.default_rng(3).integers(low, 120, (2, 7, 9)).astype(dtype)
    pad_y, pad_x = (-7) % factor, (-9) % factor
    padded = np.pad(frame, [(0, 0), (0, pad_y), (0, pad_x)], mode="edge")
    shape = (2, padded.shape[1] // factor, factor, padded.shape[2] // factor, factor)
    mean = padded.reshape(shape).astype(float).mean(axis=(2, 4))
    expected = np.floor(mean + 0.5) if np.dtype(dtype).kind in "iu" else mean
    result = ngff.downsample_plane(frame, factor=factor)
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_allclose(result, expected.astype(dtype), rtol=1e-6)


def test_open_array_missing_level_array(tmp_path):
    import shutil

    path = _make(tmp_path / "a.ome.zarr", np.zeros((1, 4, 4), "uint8"), "tyx")
    shutil.rmtree(path / "0")
    with pytest.raises(ValueError, match=r"level 0 must be a readable Zarr array at '0'"):
        ngff.open_array(path)


@pytest.mark.parametrize(
    ("dtype", "high"),
    [("uint16", 16383), ("uint16", 16384), ("uint16", 65535), ("uint8", 63), ("uint8", 255)],
    ids=["uint16-narrow-limit", "uint16-wide", "uint16-max", "uint8-narrow-limit", "uint8-max"])
def test_downsample_plane_exact_at_the_narrow_arithmetic_limit(dtype, high):
    frame = np.random.default_rng(5).integers(high - 3, high + 1, (6, 8)).astype(dtype)
    frame[0, 0] = high  # the largest value decides whether 4 values fit the dtype
    mean = frame.reshape(3, 2, 4, 2).astype(float).mean(axis=(1, 3))
    np.testing.assert_array_equal(ngff.downsample_plane(frame), np.floor(mean + 0.5).astype(dtype))


def test_labels_nested_under_their_image_validate_and_are_found(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image

    image = _make(tmp_path / "image.ome.zarr", np.zeros((2, 1, 8, 10), "uint16"), "tcyx")
    assert ngff.list_labels(image) == []
    for name in ("cells", "spheroids"):
        with atomic_path(ngff.label_path(image, name), directory=True) as tmp:
            array = ngff.create_image(tmp, shape=(2, 8, 10), dtype="int32", axes="tyx",
                                      pixel_size_um=0.65, time_interval_s=300.0)
            array[1, 2:4, 3:5] = 7
            group = zarr.open_group(str(tmp), mode="r+")
            group.attrs["ome"] = {**group.attrs["ome"], "image-label": ngff.image_label_metadata()}
        ngff.register_label(image, name)
    ngff.register_label(image, "cells")  # again: listed once
    assert ngff.list_labels(image) == ["spheroids", "cells"]
    model = Image.from_zarr(zarr.open_group(str(image), mode="r"))
    assert model.labels is not None and sorted(model.labels.label_paths) == ["cells", "spheroids"]
    nodes = {Path(node.zarr.path).name: node for node in Reader(parse_url(str(image)))()}
    assert {"image.ome.zarr", "labels", "cells", "spheroids"} <= set(nodes)
    assert np.asarray(nodes["cells"].data[0])[1, 2, 3] == 7


def test_register_label_refuses_what_is_not_a_label_image(tmp_path):
    image = _make(tmp_path / "image.ome.zarr", np.zeros((1, 4, 4), "uint8"), "tyx")
    with pytest.raises(ValueError, match=r"must be an NGFF image .*labels/missing"):
        ngff.register_label(image, "missing")
    with pytest.raises(ValueError, match="label name must be a non-empty folder name"):
        ngff.label_path(image, "../x")
    assert not (image / "labels" / "zarr.json").exists()


def test_read_metadata_validates_against_the_spec(tmp_path):
    path = _make(tmp_path / "a.ome.zarr", np.zeros((1, 4, 4), "uint8"), "tyx")
    document = json.loads((path / "zarr.json").read_text())
    document["attributes"]["ome"]["multiscales"][0]["datasets"] = []
    (path / "zarr.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"multiscales must follow NGFF 0\.5, got "
                                         r"multiscales\.0\.datasets: .*\(in .*a\.ome\.zarr\)"):
        ngff.read_metadata(path)
