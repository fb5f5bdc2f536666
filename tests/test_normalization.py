from __future__ import annotations

import numpy as np
import pytest

from spheroseg.normalization import normalize_image, percentiles_of_integers, series_window, validate_normalization


@pytest.mark.parametrize("kind", ["percentile", "zscore", "none"])
def test_constant_and_dtype(kind):
    spec = validate_normalization({"kind": kind})
    out = normalize_image(np.full((4, 5), 7, dtype=np.uint16), spec)
    assert out.dtype == np.float32
    assert out.shape == (4, 5)
    if kind != "none":
        assert np.all(out == 0)


def test_zscore_moments():
    rng = np.random.default_rng(0)
    out = normalize_image(rng.normal(100, 5, size=(64, 64)), {"kind": "zscore"})
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4


def test_percentile_scale_invariant():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 1000, size=(32, 32))
    spec = validate_normalization({"kind": "percentile"})
    np.testing.assert_allclose(normalize_image(image, spec), normalize_image(image * 3 + 10, spec), atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("percentile", TypeError, "must be a mapping"),
        ({"kind": "minmax"}, ValueError, "kind must be one of"),
        ({"kind": "percentile", "low": 50, "high": 50}, ValueError, "low < high"),
    ],
    ids=["not-mapping", "unknown-kind", "empty-range"],
)
def test_bad_specs(spec, error, message):
    with pytest.raises(error, match=message):
        validate_normalization(spec, source="card.json")


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [("uint16", 1.0, 99.8), ("uint8", 0.0, 100.0), ("int16", 33.3, 66.7)],
    ids=["uint16", "uint8-full-range", "int16-negative"],
)
def test_integer_histogram_path_equals_the_sorting_path(dtype, low, high):
    # 8/16-bit integers take the histogram path; the same values as float32 take np.percentile.
    rng = np.random.default_rng(1)
    frame = rng.integers(-50 if dtype == "int16" else 0, 4000 if dtype != "uint8" else 256,
                         (1, 37, 53)).astype(dtype)
    spec = {"kind": "percentile", "low": low, "high": high}
    np.testing.assert_array_equal(normalize_image(frame, spec),
                                  normalize_image(frame.astype(np.float32), spec))


@pytest.mark.parametrize("percents", [(0.0, 100.0), (1.0, 99.8), (12.5, 50.0)], ids=str)
def test_percentiles_of_integers_match_numpy(percents):
    frame = np.random.default_rng(2).integers(0, 65535, (31, 17)).astype(np.uint16)
    np.testing.assert_allclose(percentiles_of_integers(frame, percents), np.percentile(frame, percents),
                               rtol=0, atol=1e-9)


def _disk_field(shape, *, center, radius, background, body, noise, seed=0, dtype=np.uint16):
    """A noisy field with one bright (or dark) disk."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    inside = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2
    field = background + (body - background) * inside + rng.normal(0, noise, shape)
    return np.clip(np.rint(field), 0, np.iinfo(dtype).max).astype(dtype), inside


ROBUST = validate_normalization({"kind": "robust"})


def test_robust_defaults_and_old_specs_unchanged():
    assert ROBUST == {"kind": "robust", "low": 1.0, "high": 99.8, "block": 8, "polarity": "auto"}
    assert validate_normalization({"kind": "percentile", "low": 2, "high": 98}) == {
        "kind": "percentile", "low": 2.0, "high": 98.0}


@pytest.mark.parametrize(
    ("spec", "message"),
    [({"kind": "robust", "block": 0}, "block must be a positive integer"),
     ({"kind": "robust", "block": 2.5}, "block must be a positive integer"),
     ({"kind": "robust", "polarity": "dark"}, "polarity must be one of"),
     ({"kind": "robust", "low": 90, "high": 10}, "low < high")],
    ids=["zero-block", "float-block", "unknown-polarity", "reversed-percentiles"],
)
def test_bad_robust_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        validate_normalization(spec, source="card.json")


@pytest.mark.parametrize("side", [2000, 4000], ids=["2000px", "4000px"])
def test_robust_keeps_a_tiny_body_at_one_in_a_big_empty_field(side):
    # a 40 px radius body covers 0.13 % (2000 px) and 0.03 % (4000 px) of the field
    image, inside = _disk_field((side, side), center=(side // 3, side // 2), radius=40, background=300, body=1500,
                                noise=20)
    robust = normalize_image(image, ROBUST)
    assert np.median(robust[inside]) == pytest.approx(1.0, abs=0.05)
    assert abs(float(np.median(robust[~inside]))) < 0.05
    percentile = normalize_image(image, validate_normalization({"kind": "percentile"}))
    assert np.median(percentile[inside]) > 5  # the failure the robust kind avoids: p99.8 is background


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["uint8", "uint16"])
@pytest.mark.parametrize("polarity", ["bright", "dark"], ids=["bright-body", "dark-body"])
def test_robust_gives_an_image_and_its_negative_the_same_values(dtype, polarity):
    top = np.iinfo(dtype).max
    body, background = (0.8 * top, 0.2 * top) if polarity == "bright" else (0.2 * top, 0.8 * top)
    image, inside = _disk_field((96, 128), center=(40, 60), radius=18, background=background, body=body,
                                noise=0.02 * top, dtype=dtype)
    normalised = normalize_image(image, ROBUST)
    np.testing.assert_allclose(normalised, normalize_image(top - image, ROBUST), atol=1e-6)
    assert normalised[inside].mean() > normalised[~inside].mean() + 0.5  # objects always come out bright


def test_polarity_bright_never_negates():
    image, inside = _disk_field((64, 64), center=(32, 32), radius=10, background=200, body=40, noise=3,
                                dtype=np.uint8)
    spec = validate_normalization({"kind": "robust", "polarity": "bright"})
    out = normalize_image(image, spec)
    assert out[inside].mean() < out[~inside].mean()


def test_robust_integer_histogram_path_matches_float_path_with_channels():
    image, _ = _disk_field((70, 90), center=(30, 40), radius=12, background=100, body=3000, noise=30)
    stacked = np.stack([image, image // 2])  # (C, Y, X): channels pooled
    np.testing.assert_allclose(normalize_image(stacked, ROBUST), normalize_image(stacked.astype(np.float64), ROBUST),
                               atol=1e-6)


@pytest.mark.parametrize("modality", ["fluorescence", "invasive", "brightfield"])
def test_polarity_is_found_on_synthetic_modalities(modality):
    from spheroseg.normalization import block_means, objects_are_dark
    from spheroseg.synthetic import training_frame

    for seed in range(4):
        for polarity in ("bright", "dark"):
            image, _ = training_frame(seed, shape=(192, 192), modality=modality, polarity=polarity)
            blocks = block_means(image.astype(np.float32), 8)
            assert objects_are_dark(blocks) == (polarity == "dark"), (seed, polarity)


def test_constant_image_robust_is_zero():
    assert not normalize_image(np.full((40, 40), 9, np.uint8), ROBUST).any()


# --- series scope ----------------------------------------------------------------------


def _body(dtype: str, *, dark: bool = False, top: int = 200, seed: int = 0) -> np.ndarray:
    """A noisy bright (or dark) square body in a 64 x 64 field."""
    rng = np.random.default_rng(seed)
    field = rng.normal(30, 5, (64, 64))
    field[20:40, 18:44] = top
    field = np.clip(field, 0, 250)
    return (250 - field if dark else field).astype(dtype)


@pytest.mark.parametrize("spec", [{"kind": "robust"}, {"kind": "percentile"}], ids=["robust", "percentile"])
@pytest.mark.parametrize(("dtype", "dark"), [("uint8", False), ("uint16", True), ("int16", False),
                                             ("float32", False)], ids=["uint8", "uint16-dark", "int16", "float32"])
def test_a_one_frame_series_window_is_the_frame_s_own(spec, dtype, dark):
    spec = validate_normalization(spec)
    image = _body(dtype, dark=dark)
    window = series_window([image], spec)
    if dtype == "float32":  # a sample of every 16th pixel: close, not equal
        np.testing.assert_allclose(normalize_image(image, spec, window=window), normalize_image(image, spec), atol=0.02)
    else:
        assert np.array_equal(normalize_image(image, spec, window=window), normalize_image(image, spec))
    assert window["negate"] == (dark and spec["kind"] == "robust")


def test_series_window_spans_the_series_so_one_intensity_is_one_value():
    """Frames that saturate at 160 and at 240 (loop benchmark: day 0 at 194-217, day 2 at 255)."""
    spec = validate_normalization({"kind": "robust", "scope": "series"})
    dim, bright = _body("uint8", top=160), _body("uint8", top=240, seed=1)
    window = series_window([dim, bright], spec)
    assert window["top"] == 240.0
    dim_series, bright_series = (normalize_image(frame, spec, window=window) for frame in (dim, bright))
    assert dim_series[30, 30] == pytest.approx((160 - window["low"]) / (240 - window["low"]))
    assert normalize_image(dim, spec)[30, 30] == pytest.approx(1.0)  # alone, its own top is 1
    # the same raw value maps to the same input in both frames
    assert dim_series[dim == 35][0] == pytest.approx(bright_series[bright == 35][0])


def test_series_window_takes_the_polarity_most_frames_show():
    spec = validate_normalization({"kind": "robust", "scope": "series"})
    frames = [_body("uint8", dark=True, seed=s) for s in range(2)] + [_body("uint8", seed=2)]
    assert series_window(frames, spec)["negate"] is True
    assert series_window(frames[1:], spec)["negate"] is False  # a tie is not dark


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": "robust", "scope": "position"}, r"normalization.scope must be one of \('image', 'series'\), got 'position'"),
    ({"kind": "zscore", "scope": "series"}, r"scope 'series' needs kind 'percentile' or 'robust', got kind 'zscore'"),
], ids=["unknown", "zscore"])
def test_bad_scopes(spec, message):
    with pytest.raises(ValueError, match=message):
        validate_normalization(spec, source="card.json")


def test_scope_image_is_the_default_and_series_is_kept():
    assert validate_normalization({"kind": "percentile", "scope": "image"}) == validate_normalization({"kind": "percentile"})
    assert validate_normalization({"kind": "percentile", "scope": "series"})["scope"] == "series"
    with pytest.raises(ValueError, match="at least one frame"):
        series_window([], validate_normalization({"kind": "percentile"}))
