"""Polygon maths of spheroseg.measure.shapes: hull, Feret, metrics of exact polygons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spheroseg.measure.shapes import ObjectContour, convex_hull, feret_diameters, polygon_metrics, signed_area


def test_convex_hull_and_feret_of_rotated_rectangle() -> None:
    angle = math.radians(30)
    corners = np.array([[0, 0], [0, 10], [4, 10], [4, 0]], float)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = np.vstack([corners @ rotation.T, [[1, 1]]])  # plus an interior point
    hull = convex_hull(points)
    assert len(hull) == 4
    assert feret_diameters(hull) == pytest.approx((math.hypot(4, 10), 4.0))


def test_convex_hull_of_collinear_points_is_degenerate() -> None:
    hull = convex_hull(np.array([[0, 0], [1, 1], [2, 2]], float))
    assert len(hull) <= 2 or abs(signed_area(np.vstack([hull, hull[:1]]))) == 0


def test_polygon_metrics_needs_an_outer_boundary() -> None:
    with pytest.raises(ValueError, match="contour must have at least one outer boundary"):
        polygon_metrics(ObjectContour([], []))


def test_feret_matches_brute_force_on_random_hulls() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        points = rng.normal(size=(int(rng.integers(3, 40)), 2)) * rng.uniform(0.5, 10, size=2)
        hull = convex_hull(np.round(points, 1))
        if len(hull) < 3:
            continue
        pairwise = np.sqrt(((hull[:, None] - hull[None]) ** 2).sum(-1)).max()
        edges = np.roll(hull, -1, axis=0) - hull
        rel = hull[None] - hull[:, None]
        heights = np.abs(rel[..., 0] * edges[:, None, 1] - rel[..., 1] * edges[:, None, 0])
        width = (heights.max(axis=1) / np.hypot(edges[:, 0], edges[:, 1])).min()
        assert feret_diameters(hull) == pytest.approx((pairwise, width), abs=1e-9)
