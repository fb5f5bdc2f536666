from __future__ import annotations

import numpy as np
import pytest

from spheroseg.normalization import normalize_image, validate_normalization


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
