"""CSV columns and rows, and GeoJSON geometry (spheroseg.measure.tables)."""

from __future__ import annotations

import numpy as np
import pytest

from spheroseg.measure.frame import measure_frame
from spheroseg.measure.shapes import ObjectContour, polygon_metrics
from spheroseg.measure.tables import contour_geometry, format_csv, metric_columns, metric_rows


def test_empty_frame_gives_header_only_csv() -> None:
    labels = np.zeros((6, 6), np.int32)
    assert measure_frame(labels, np.zeros((6, 6))) == []
    columns = metric_columns(pixel_size_um=0.65, time_interval_s=60.0)
    rows = metric_rows([], experiment="e", position="p", timepoint=0, pixel_size_um=0.65,
                       time_interval_s=60.0)
    assert format_csv(columns, rows) == ",".join(columns) + "\n"


@pytest.mark.parametrize(
    ("pixel_size_um", "interval_s", "expected"),
    [
        (0.65, 30.0, ["time_s", "area_um2", "perimeter_um", "centroid_x_um"]),
        (None, None, ["time_frame", "area_px2", "perimeter_px", "centroid_x_px"]),
    ],
    ids=["physical", "unknown"],
)
def test_column_units(pixel_size_um: float | None, interval_s: float | None,
                      expected: list[str]) -> None:
    columns = metric_columns(pixel_size_um=pixel_size_um, time_interval_s=interval_s)
    assert set(expected) <= set(columns)
    assert columns[:5] == ["experiment", "position", "timepoint", expected[0], "object_id"]
    assert columns[-3:] == ["mean_intensity", "touches_border", "is_main_body"]
    assert len(columns) == 22


def test_geometry_polygon_with_hole_and_multipolygon() -> None:
    def square(y0: float, x0: float, size: float, *, hole: bool = False) -> np.ndarray:
        ring = np.array([[y0, x0], [y0, x0 + size], [y0 + size, x0 + size], [y0 + size, x0],
                         [y0, x0]], float)  # positive signed area: an outer boundary
        return ring[::-1] if hole else ring

    single = contour_geometry(ObjectContour([square(0, 0, 10)], [square(3, 3, 2, hole=True)]))
    assert single["type"] == "Polygon" and len(single["coordinates"]) == 2
    assert single["coordinates"][0][0] == [0.5, 0.5]  # pixel centre (0, 0) -> corner + 0.5
    double = contour_geometry(ObjectContour([square(0, 0, 10), square(0, 20, 10)],
                                            [square(3, 23, 2, hole=True)]))
    assert double["type"] == "MultiPolygon"
    assert [len(polygon) for polygon in double["coordinates"]] == [1, 2]  # hole in 2nd part
    metrics = polygon_metrics(ObjectContour([square(0, 0, 10), square(0, 20, 10)],
                                            [square(3, 23, 2, hole=True)]))
    assert metrics["area"] == pytest.approx(196) and metrics["perimeter"] == pytest.approx(80)
    assert metrics["convex_area"] == pytest.approx(300) and metrics["feret_min"] == 10


def test_main_bodies_are_decided_per_track() -> None:
    from spheroseg.measure.bodies import main_body_flags

    # track 1 grows; track 2 is a shed clump whose single big frame does not make it a body;
    # track 3 is a second gastruloid of 40 % of track 1's size
    ids = [1, 2, 3, 1, 2, 3, 1, 2, 3, 5]
    areas = [100.0, 5.0, 40.0, 120.0, 90.0, 44.0, 150.0, 6.0, 50.0, float("nan")]
    assert main_body_flags(ids, areas).tolist() == [True, False, True] * 3 + [False]
    assert main_body_flags(ids, areas, fraction=0.5).tolist() == [True, False, False] * 3 + [False]
    assert main_body_flags([], []).tolist() == []
    assert main_body_flags([4, 4], [0.0, 0.0]).tolist() == [True, True]


@pytest.mark.parametrize(("ids", "areas", "fraction", "match"), [
    ([1, 2], [1.0], 0.25, "one length"), ([1], [1.0], 0.0, r"fraction must be in \(0, 1\]")],
    ids=["lengths", "fraction"])
def test_main_body_flags_reject_bad_input(ids, areas, fraction, match) -> None:
    from spheroseg.measure.bodies import main_body_flags

    with pytest.raises(ValueError, match=match):
        main_body_flags(ids, areas, fraction=fraction)
