"""The ``measure`` stage: sub-pixel contours of labelled objects and their shape metrics.

Pure shape maths apart from the files they end up in:

``shapes``  polygon maths: area, perimeter, moments, hull, Feret, Taubin smoothing
``trace``   sub-pixel tracing of one labelled object on the probability map
``frame``   one frame: every object traced and measured (:func:`measure_frame`)
``bodies``  main bodies and fragments: which tracked objects are the bodies under study
``tables``  CSV columns and rows (units in the names) and GeoJSON geometry
``store``   :func:`measure_store`: NGFF images in, contours and metrics CSVs out

The names below are the package's public interface.
"""

from __future__ import annotations

from spheroseg.measure.frame import ObjectMeasurement, measure_frame
from spheroseg.measure.shapes import (
    METRICS,
    ObjectContour,
    convex_hull,
    feret_diameters,
    polygon_metrics,
    polygon_perimeter,
    signed_area,
)
from spheroseg.measure.store import measure_store
from spheroseg.measure.tables import contour_geometry, format_csv, metric_columns, metric_rows
from spheroseg.measure.trace import trace_object

__all__ = [
    "METRICS", "ObjectContour", "ObjectMeasurement", "contour_geometry", "convex_hull",
    "feret_diameters", "format_csv", "measure_frame", "measure_store", "metric_columns",
    "metric_rows", "polygon_metrics", "polygon_perimeter", "signed_area", "trace_object",
]
