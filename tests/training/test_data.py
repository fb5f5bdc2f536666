"""Annotation discovery, validation (every bad-input error) and patch sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from spheroseg.training.data import (
    AnnotationError, AnnotationPair, PatchSampler, Sample, binarize_mask, find_annotation_pairs, load_samples,
    split_pairs,
)

NORM = {"kind": "percentile", "low": 1.0, "high": 99.8}


@pytest.mark.parametrize(
    ("layout", "suffix", "mask_folder", "scale"),
    [("folders", ".tif", "masks", 1), ("folders", ".png", "labels", 255), ("side", ".tif", "", 255),
     ("side", ".png", "", 1)],
    ids=["images-masks-tif", "images-labels-png", "side-by-side-tif", "side-by-side-png"],
)
def test_find_pairs_accepts_both_layouts(tmp_path, layout, suffix, mask_folder, scale, pairs_writer):
    pairs_writer(tmp_path, 3, layout=layout, suffix=suffix, mask_folder=mask_folder or "masks", scale=scale)
    pairs = find_annotation_pairs(tmp_path)
    assert [p.name for p in pairs] == ["000", "001", "002"]
    samples = load_samples(pairs, normalization=NORM)
    assert all(s.image.dtype == np.float32 and set(np.unique(s.mask)) == {0.0, 1.0} for s in samples)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(AnnotationError, match="got an empty folder"):
        find_annotation_pairs(tmp_path)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(AnnotationError, match="must be an existing folder"):
        find_annotation_pairs(tmp_path / "nope")


@pytest.mark.parametrize("layout", ["folders", "side"], ids=["folders", "side-by-side"])
def test_image_without_mask_names_the_image(tmp_path, layout, pairs_writer, plane_writer):
    pairs_writer(tmp_path, 2, layout=layout)
    lonely = tmp_path / ("images/007.tif" if layout == "folders" else "007.tif")
    plane_writer(lonely, np.zeros((32, 32), np.uint8))
    with pytest.raises(AnnotationError, match="images without a mask.*007.tif"):
        find_annotation_pairs(tmp_path)


def test_mask_without_image_names_the_mask(tmp_path, pairs_writer, plane_writer):
    pairs_writer(tmp_path, 2)
    plane_writer(tmp_path / "masks" / "009.tif", np.ones((32, 32), np.uint8))
    with pytest.raises(AnnotationError, match="masks without an image.*009.tif"):
        find_annotation_pairs(tmp_path)


def test_duplicate_names_are_an_error(tmp_path, pairs_writer, plane_writer):
    pairs_writer(tmp_path, 1)
    plane_writer(tmp_path / "images" / "000.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(AnnotationError, match="names must be unique.*000"):
        find_annotation_pairs(tmp_path)


def test_masks_and_labels_folders_together_are_ambiguous(tmp_path, pairs_writer):
    pairs_writer(tmp_path, 1)
    (tmp_path / "labels").mkdir()
    with pytest.raises(AnnotationError, match="exactly one of"):
        find_annotation_pairs(tmp_path)


def test_size_mismatch_names_both_files(tmp_path, pairs_writer, plane_writer):
    pairs_writer(tmp_path, 2)
    plane_writer(tmp_path / "masks" / "001.tif", np.ones((30, 32), np.uint8))
    with pytest.raises(AnnotationError, match=r"same size.*images/001.tif.*masks/001.tif"):
        load_samples(find_annotation_pairs(tmp_path), normalization=NORM)


def test_mask_without_foreground_names_the_file(tmp_path, pairs_writer, plane_writer):
    pairs_writer(tmp_path, 2)
    plane_writer(tmp_path / "masks" / "001.tif", np.zeros((32, 32), np.uint8))
    pairs = find_annotation_pairs(tmp_path)
    with pytest.raises(AnnotationError, match="no foreground anywhere.*masks/001.tif"):
        load_samples(pairs, normalization=NORM)
    assert len(load_samples(pairs, normalization=NORM, allow_empty=True)) == 2


def test_bad_mask_is_reported_before_any_other_work(tmp_path, pairs_writer):
    pairs_writer(tmp_path, 3)
    tifffile.imwrite(tmp_path / "masks" / "002.tif", np.full((32, 32), 0.37, np.float32))
    with pytest.raises(AnnotationError, match="to binarise.*masks/002.tif"):
        load_samples(find_annotation_pairs(tmp_path), normalization=NORM)


@pytest.mark.parametrize(
    ("mask", "kind", "expected"),
    [(np.array([[0, 1]], np.uint8), "auto", [[0, 1]]), (np.array([[0, 255]], np.uint8), "binary", [[0, 1]]),
     (np.array([[0, 4, 9]], np.uint16), "labels", [[0, 1, 1]]), (np.array([[0.0, 1.0]]), "auto", [[0, 1]]),
     (np.array([[0.0, 255.0]], np.float32), "binary", [[0, 1]]), (np.array([[False, True]]), "binary", [[0, 1]])],
    ids=["0-1", "0-255-binary", "labels", "float-0-1", "float-0-255", "bool"],
)
def test_binarize_accepts(mask, kind, expected):
    np.testing.assert_array_equal(binarize_mask(mask, kind=kind), np.array(expected, bool))


@pytest.mark.parametrize(
    ("mask", "kind", "message"),
    [(np.array([[0.0, 0.5, 0.7]]), "auto", "to binarise"),
     (np.array([[0, 1, 2]], np.uint8), "binary", "only 0/1 or 0/255"),
     (np.array([[0, 1, 255]], np.uint8), "binary", "only 0/1 or 0/255"),
     (np.array([[0, -3]], np.int16), "labels", "to binarise"),
     (np.array([[0.0, np.nan]]), "auto", "to binarise")],
    ids=["float-fractions", "multi-valued-binary", "mixed-binary", "negative-labels", "nan"],
)
def test_binarize_rejects(mask, kind, message):
    with pytest.raises(AnnotationError, match=f"{message}.*in m.tif"):
        binarize_mask(mask, kind=kind, path="m.tif")


def test_binarize_rejects_unknown_kind():
    with pytest.raises(ValueError, match="mask kind must be one of"):
        binarize_mask(np.zeros((2, 2)), kind="fuzzy")


def _pairs(names: str) -> list[AnnotationPair]:
    return [AnnotationPair(n, Path(n), Path(n)) for n in names]


def test_split_is_seeded_and_disjoint():
    train, val = split_pairs(_pairs("abcdefghij"), val_fraction=0.2, seed=3)
    again = split_pairs(_pairs("abcdefghij"), val_fraction=0.2, seed=3)
    assert len(val) == 2 and {p.name for p in train}.isdisjoint(p.name for p in val)
    assert [p.name for p in again[1]] == [p.name for p in val]


@pytest.mark.parametrize(
    ("names", "kwargs", "n_val"),
    [("abcd", {"val_min_pairs": 5}, 0), ("abcde", {"val_min_pairs": 5}, 1), ("ab", {}, 1), ("a", {}, 0),
     ("abcd", {"val_min_pairs": 5, "val_names": ["b"]}, 1)],
    ids=["fewer-than-min-all-train", "min-reached", "default-two", "one-pair", "names-win"],
)
def test_split_validates_only_from_val_min_pairs(names, kwargs, n_val):
    train, val = split_pairs(_pairs(names), val_fraction=0.2, **kwargs)
    assert len(val) == n_val and len(train) == len(names) - n_val


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"val_names": ["z"]}, "unknown"), ({"val_fraction": 1.0}, r"in \[0, 1\)"),
     ({"val_names": ["a", "b"]}, "must remain for training"),
     ({"val_min_pairs": 1}, r"val_min_pairs must be an integer >= 2, got 1")],
    ids=["unknown-name", "fraction-one", "nothing-left", "min-pairs-one"],
)
def test_split_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_pairs(_pairs("ab"), **kwargs)


def _sample(size: int = 40) -> Sample:
    mask = np.zeros((size, size), np.float32)
    mask[30:34, 5:9] = 1
    return Sample("s", np.arange(size * size, dtype=np.float32).reshape(size, size), mask)


def test_sampler_centres_on_foreground_and_keeps_alignment():
    sampler = PatchSampler([_sample()], size=16, foreground_fraction=1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        image, mask, weight = sampler.sample(rng)
        assert image.shape == mask.shape == (16, 16) and weight is None
        assert mask.sum() == 16  # the whole 4x4 object is inside every foreground-centred patch
        top, left = divmod(int(image[0, 0]), 40)  # image value encodes the source position
        np.testing.assert_array_equal(mask, _sample().mask[top:top + 16, left:left + 16])


def test_sampler_pads_small_images():
    image, mask, _ = PatchSampler([_sample(10)], size=16).sample(np.random.default_rng(0))
    assert image.shape == mask.shape == (16, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"samples": [], "size": 8}, "must not be empty"), ({"size": 0}, "positive integer"),
     ({"size": 8, "foreground_fraction": 2.0}, r"in \[0, 1\]"),
     ({"size": 8, "sampling": "pairs"}, "sampling must be one of")],
    ids=["no-samples", "zero-size", "bad-fraction", "bad-sampling"],
)
def test_sampler_errors(kwargs, message):
    kwargs.setdefault("samples", [_sample()])
    with pytest.raises(ValueError, match=message):
        PatchSampler(**kwargs)


def test_sources_combine_with_their_pixel_sizes(tmp_path, pairs_writer):
    from spheroseg.training.data import AnnotationSource, find_source_pairs

    first = pairs_writer(tmp_path / "a", 2)
    second = tmp_path / "b"
    second.mkdir()
    for name in ("x", "y"):
        tifffile.imwrite(second / f"{name}.tif", np.zeros((8, 8), np.uint8))
        tifffile.imwrite(second / f"{name}_mask.tif", np.ones((8, 8), np.uint8))
    pairs = find_source_pairs([AnnotationSource(first, 0.5), AnnotationSource(second)])
    assert [(p.name, p.pixel_size_um) for p in pairs] == [("000", 0.5), ("001", 0.5), ("x", None), ("y", None)]


@pytest.mark.parametrize(("sources", "message"), [("same-names", "unique across folders"),
                                                  ("bad-size", "pixel size must be > 0")],
                         ids=["duplicate-names", "non-positive-pixel-size"])
def test_bad_sources(tmp_path, pairs_writer, sources, message):
    from spheroseg.training.data import AnnotationSource, find_source_pairs

    first = pairs_writer(tmp_path / "a", 2)
    if sources == "same-names":
        chosen = [AnnotationSource(first), AnnotationSource(pairs_writer(tmp_path / "b", 1))]
    else:
        chosen = [AnnotationSource(first, 0.0)]
    with pytest.raises(AnnotationError, match=message):
        find_source_pairs(chosen)


def test_pairs_with_a_pixel_size_are_resampled_to_the_training_pixel_size(tmp_path, pairs_writer):
    from spheroseg.training.data import AnnotationSource, find_source_pairs

    pairs = find_source_pairs([AnnotationSource(pairs_writer(tmp_path / "a", 2), 1.0)])
    native = load_samples(pairs, normalization=NORM)
    halved = load_samples(pairs, normalization=NORM, pixel_size_um=2.0)
    assert native[0].image.shape == (32, 32) and halved[0].image.shape == (16, 16)
    assert halved[0].mask.shape == (16, 16) and set(np.unique(halved[0].mask)) == {0.0, 1.0}
    assert halved[0].mask.sum() == pytest.approx(native[0].mask.sum() / 4, rel=0.2)  # same physical area


def test_resample_pair_keeps_a_disk_area():
    from spheroseg.training.data import resample_pair

    yy, xx = np.indices((300, 300))
    mask = (yy - 150) ** 2 + (xx - 140) ** 2 <= 80**2
    image, small = resample_pair(mask.astype(np.uint8) * 200, mask, factor=0.37754)
    assert image.dtype == np.float32 and image.shape == small.shape == (113, 113)
    assert small.sum() / 0.37754**2 == pytest.approx(mask.sum(), rel=0.01)


def test_a_folder_repeated_at_another_pixel_size_is_used_at_both_scales(tmp_path, pairs_writer):
    from spheroseg.training.data import AnnotationSource, find_source_pairs

    folder = pairs_writer(tmp_path / "a", 2)
    pairs = find_source_pairs([AnnotationSource(folder, 1.0), AnnotationSource(folder, 2.0)])
    assert [(p.name, p.pixel_size_um, p.source) for p in pairs] == [
        ("000", 1.0, 0), ("001", 1.0, 0), ("000@2um", 2.0, 1), ("001@2um", 2.0, 1)]
    samples = load_samples(pairs, normalization=NORM, pixel_size_um=2.0)
    assert [s.image.shape for s in samples] == [(16, 16), (16, 16), (32, 32), (32, 32)]  # resampled, native
    assert [s.source for s in samples] == [0, 0, 1, 1]
    with pytest.raises(AnnotationError, match="repeated only with another pixel size, got 1.0 twice"):
        find_source_pairs([AnnotationSource(folder, 1.0), AnnotationSource(tmp_path / "a" / ".", 1.0)])


@pytest.mark.parametrize(("sampling", "expected"), [("area", [0.16, 0.16, 0.64, 0.04]),
                                                    ("source", [0.25, 0.25, 0.5 * 16 / 17, 0.5 / 17])],
                         ids=["area", "source"])
def test_sampler_shares_patches_by_area_or_by_source(sampling, expected):
    samples = [_sample(20), _sample(20), _sample(40), _sample(10)]
    for sample, source in zip(samples, (0, 0, 1, 1)):
        sample.source = source
    sampler = PatchSampler(samples, size=8, sampling=sampling)
    np.testing.assert_allclose(sampler.probabilities, expected)


def test_a_pair_with_its_series_window_is_normalised_with_it(tmp_path, pairs_writer):
    pairs_writer(tmp_path, 2)
    pairs = find_annotation_pairs(tmp_path)
    series = {"kind": "percentile", "low": 1.0, "high": 99.8, "scope": "series"}
    window = {"low": 0.0, "top": 1000.0, "negate": False}
    samples = load_samples(pairs, normalization=series, windows={(0, "000"): window})
    raw = tifffile.imread(pairs[0].image_path).astype(np.float32)
    np.testing.assert_allclose(samples[0].image, raw / 1000.0, rtol=1e-6)  # the series' window
    alone = load_samples(pairs[1:], normalization={k: v for k, v in series.items() if k != "scope"})
    np.testing.assert_array_equal(samples[1].image, alone[0].image)  # no window: normalised alone
