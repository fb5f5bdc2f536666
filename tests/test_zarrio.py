"""Direct frame reads equal zarr-python's, for every layout; other layouts fall back to zarr."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from spheroseg import ngff
from spheroseg.zarrio import FrameReader, array_header, direct_layout


def _zarr_array(path, data, *, chunks, separator=".", codecs="blosc", fill_value=0, zarr_format=3):
    kwargs = {"chunks": chunks, "fill_value": fill_value, "zarr_format": zarr_format}
    if zarr_format == 3:
        kwargs["chunk_key_encoding"] = {"name": "default", "separator": separator}
    if zarr_format == 3:
        kwargs["compressors"] = [zarr.codecs.ZstdCodec() if codecs == "zstd" else ngff.default_compressor()]
    array = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, **kwargs)
    array[...] = data
    return array


@pytest.mark.parametrize(
    ("shape", "chunks", "dtype", "separator", "direct"),
    [((3, 2, 37, 50), (1, 1, 16, 32), "uint16", ".", True),
     ((2, 5, 9, 7), (1, 2, 4, 4), "float16", "/", True),
     ((4, 30, 20), (1, 30, 20), "int32", ".", True),
     ((4, 6, 6), (2, 6, 6), "uint8", ".", False)],
    ids=["edge-chunks", "chunks-across-channels-slash", "one-chunk-per-frame",
         "two-frames-per-chunk-via-zarr"],
)
def test_frames_equal_zarr(tmp_path, shape, chunks, dtype, separator, direct):
    data = np.random.default_rng(1).integers(0, 200, shape).astype(dtype)
    data[1] = 0  # a frame of fill values: zarr writes none of its chunks
    _zarr_array(tmp_path / "a", data, chunks=chunks, separator=separator)
    reader = FrameReader(tmp_path / "a")
    assert (reader.layout is not None) == direct
    assert reader.shape == shape and reader.dtype == np.dtype(dtype)
    for t in range(shape[0]):
        np.testing.assert_array_equal(reader[t], data[t])
        np.testing.assert_array_equal(reader[t, 1], data[t, 1])
    np.testing.assert_array_equal(reader[1:3], data[1:3])  # not a frame: through zarr


@pytest.mark.parametrize(("codecs", "zarr_format"), [("zstd", 3), ("blosc", 2)],
                         ids=["other-codec", "zarr-v2"])
def test_other_layouts_read_through_zarr(tmp_path, codecs, zarr_format):
    data = np.arange(2 * 5 * 6, dtype="uint16").reshape(2, 5, 6)
    _zarr_array(tmp_path / "a", data, chunks=(1, 5, 6), codecs=codecs, zarr_format=zarr_format)
    assert direct_layout(tmp_path / "a") is None
    assert array_header(tmp_path / "a") == ((2, 5, 6), np.dtype("uint16"))
    np.testing.assert_array_equal(FrameReader(tmp_path / "a")[1], data[1])


def test_read_frame_and_metadata_of_an_image_written_by_ngff(tmp_path):
    data = np.random.default_rng(2).integers(0, 4000, (3, 2, 40, 30)).astype("uint16")
    array = ngff.create_image(tmp_path / "i.ome.zarr", shape=data.shape, dtype=data.dtype,
                              axes="tcyx", pixel_size_um=0.5, time_interval_s=2.0)
    for t in range(3):
        ngff.write_frame(array, t, data[t])
    frames = ngff.open_frames(tmp_path / "i.ome.zarr")
    assert frames.layout is not None
    np.testing.assert_array_equal(ngff.read_frame(frames, 2, channel=1), data[2, 1])
    meta = ngff.read_metadata(tmp_path / "i.ome.zarr")
    assert (meta.shape, meta.dtype, meta.axes) == (data.shape, np.dtype("uint16"), "tcyx")


@pytest.mark.parametrize("index", [5, (0, 3), -1], ids=["t-beyond", "channel-beyond", "negative"])
def test_out_of_range_frames_raise(tmp_path, index):
    _zarr_array(tmp_path / "a", np.zeros((2, 2, 4, 4), "uint8"), chunks=(1, 1, 4, 4))
    with pytest.raises(IndexError, match="out of bounds"):
        FrameReader(tmp_path / "a")[index]


def test_not_an_array_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="path must be a Zarr array"):
        FrameReader(tmp_path / "a")


@pytest.mark.parametrize("content", [b"not blosc at all" * 8, b""], ids=["garbage", "empty-file"])
def test_corrupt_chunk_names_its_file(tmp_path, content):
    _zarr_array(tmp_path / "a", np.ones((2, 8, 8), "uint16"), chunks=(1, 8, 8))
    (tmp_path / "a" / "c.1.0.0").write_bytes(content)
    reader = FrameReader(tmp_path / "a")
    np.testing.assert_array_equal(reader[0], 1)
    with pytest.raises(ValueError, match=r"chunk must be a Blosc-compressed block of \(8, 8\) uint16, got a corrupt "
                                         r"file .*\(in .*c\.1\.0\.0\)"):
        reader[1]


def test_sealed_array_with_a_chunk_file_gone_is_refused(tmp_path):
    from spheroseg.zarrio import seal_arrays

    data = np.ones((3, 8, 8), "uint16")
    data[1] = 0  # a frame of fill values: zarr writes no chunk for it, and the seal counts what is there
    _zarr_array(tmp_path / "a", data, chunks=(1, 8, 8))
    assert seal_arrays(tmp_path) == 1
    np.testing.assert_array_equal(FrameReader(tmp_path / "a")[1], 0)
    (tmp_path / "a" / "c.2.0.0").unlink()
    with pytest.raises(ValueError, match=r"array must have the 2 chunk files it was written with, got 1: the store "
                                         r"was damaged or copied in part.*\(in .*a\)"):
        FrameReader(tmp_path / "a")
