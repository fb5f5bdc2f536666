from __future__ import annotations

import numpy as np
import pytest

from spheroseg.normalization import normalize_image, percentiles_of_integers, validate_normalization


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
